"""Typed configuration: the single source of defaults. Precedence: defaults < --config file < flags.

The resolved config is saved with every run and inside every checkpoint, so a run can be repeated
exactly from what it left behind.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from dlcli.choices import DEFAULT_LR, PRECISIONS
from dlcli.errors import InputFileError, UsageError
from dlcli.validation import check, validate_fields

HELP_KEY = "dlcli.help"
SHOW_KEY = "dlcli.show"


def option(default: Any = MISSING, *, help: str, show: str | None = None, factory: Any = MISSING,
           **bounds: Any) -> Any:
    """A config field with its flag's help text (and, where the default is None or not worth
    printing as a value, what `--help` shows as the default); `bounds` are its `check(...)`.

    The CLI reads these (dlcli.cli._options), so a field's meaning and default are written once."""
    metadata: dict[str, Any] = {HELP_KEY: help, **(check(**bounds) if bounds else {})}
    if show is not None:
        metadata[SHOW_KEY] = show
    return field(default=default, default_factory=factory, metadata=metadata)


def field_help(cls: type, name: str) -> str:
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get(HELP_KEY, "")


def shown_default(cls: type, name: str) -> str | None:
    """What `--help` shows as a field's default: the declared `show`, else the default value itself
    (booleans as on/off); None when there is nothing to show (a None default without `show`)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if SHOW_KEY in f.metadata:
        return f.metadata[SHOW_KEY]
    if f.default is MISSING or f.default is None:
        return None
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return f"{f.default:g}" if isinstance(f.default, float) else str(f.default)


DATA_HELP = "Dataset: a name from `dlcli datasets`, folder:PATH or csv:PATH."
"""--data's meaning, for every command; the training commands add their default (TrainConfig.data)."""
LR_HELP = ("Peak learning rate. Default per optimizer: "
           + ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items()) + ".")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Each field's `help` is its flag's help text (dlcli.cli._options
    reads it), so the two cannot disagree. Frozen: a workflow derives the values it resolves with
    `dataclasses.replace` (see dlcli.workflows.resolve) and never changes the config it was given."""

    model: str = option("cnn", help="Registered model name (see `dlcli models`).")
    model_args: dict[str, Any] = option(
        factory=dict, help='Constructor arguments of the model, e.g. {"width": 2} or {"depth": 8}.')
    data: str | None = option(
        None, help=DATA_HELP + " Default: the embedded mnist-sample for train; the checkpoint's own dataset for "
        "finetune, distill and prune.")
    data_dir: str | None = option(
        None, help="Root holding <dataset>/<files>. Default: $DLCLI_DATA_DIR, then the cache.")
    epochs: float | None = option(
        None, gt=0, help="Passes over the training split; a fraction ends the last one early (1.5). Default: the "
        "dataset's recommended number, more on small data so that a run takes a few hundred optimizer steps "
        "(dlcli.engine.budget).")
    batch_size: int = option(128, ge=1, help="Batch size (the global batch in a distributed run).")
    optimizer: str = option("sgd", help="Optimizer.")
    lr: float | None = option(None, gt=0, help=LR_HELP)
    momentum: float = option(0.9, ge=0, lt=1,
                             help="SGD/RMSprop momentum, in [0, 1) (onecycle: the momentum it cycles down from).")
    nesterov: bool = option(True, help="Nesterov momentum (sgd).")
    weight_decay: float = option(5e-4, ge=0, show="5e-4",
                                 help="L2 regularization (decoupled for adamw); not on biases and norm scales.")
    l1: float = option(0.0, ge=0, show="0", help="L1 penalty coefficient on weights.")
    dropout: float | None = option(
        None, ge=0, lt=1, help="Dropout before the head (cnn, mlp) or in the MLP blocks (vit); a model argument.")
    loss: str = option("cross-entropy", help="Loss.")
    label_smoothing: float = option(0.1, ge=0, lt=1, help="Label smoothing.")
    scheduler: str = option("onecycle", help="Learning-rate schedule, stepped per batch.")
    warmup_epochs: float | None = option(None, ge=0, show="onecycle: 25 % of the run",
                                         help="Linear warmup length (onecycle: where the peak is).")
    step_size: int = option(1, ge=1, help="step scheduler: epochs between decays.")
    gamma: float = option(0.5, gt=0, le=1, help="step scheduler: decay factor.")
    augment: list[str] = option(
        factory=list, help="Batched augmentations: flip, rotate, crop (comma list or repeated).")
    patience: int | None = option(None, ge=1, help="Stop after this many epochs without validation improvement.")
    val_split: float = option(0.1, ge=0, lt=1,
                              help="Fraction of the training split held out (seeded) to pick the best checkpoint.")
    train_samples: int | None = option(None, ge=1, help="Train on a seeded, class-balanced subset of N samples.")
    seed: int = option(0, ge=0, le=2**63 - 1, help="Random seed.")
    device: str = option("auto", help="auto picks cuda > mps > cpu.")
    precision: str = option("fp32", choices=PRECISIONS, help="Autocast precision.")
    channels_last: bool | None = option(None, show="on for conv models on cpu and cuda",
                                        help="Channels-last memory format.")
    threads: int | None = option(None, ge=1, show="free cores",
                                 help="CPU threads for PyTorch and onnxruntime. Default: the cores no other process is "
                                 "busy on when the command starts (at least 1).")
    resume: str | None = option(None, help="Continue a run from its last.pt: a path, a run folder, or auto (--out's, "
                                "else the newest run of this command).")
    save_every: int | None = option(None, ge=1, help="Also save a resumable last.pt every N optimizer steps (always "
                                    "at each epoch end).")
    skip_nonfinite: bool = option(False, show="stop", help="Skip and count batches with a NaN/inf loss instead of "
                                  "stopping the run.")
    sync_bn: bool = option(False, help="Distributed runs: synchronise BatchNorm statistics across processes.")
    tensorboard: bool = option(False, help="TensorBoard event files (scalars, hyperparameters, graph) in "
                               "RUN/tensorboard (needs dlcli[tensorboard]).")
    stream: bool | None = option(None, show="folders over 256 MiB decoded",
                                 help="Decode a folder dataset from disk batch by batch instead of loading it.")
    workers: int | None = option(None, ge=0, show="cores beyond 2, at most 2",
                                 help="DataLoader processes decoding streamed data (0: the main process).")

    def validate(self) -> TrainConfig:
        """Every field's type and range, then the registry names and the model's arguments; all before
        any file or folder is made."""
        return self.validate_values().validate_names()

    def validate_values(self, label: Callable[[str], str] | None = None) -> TrainConfig:
        """Every field's type and range (declared beside it: `check(...)` metadata and the annotation);
        `label(field)` names a field in errors (the flag by default; the CLI names a config file's key
        and its file). Needs no torch: the CLI reads the dataset ahead on these values while the
        names' checks import it."""
        if isinstance(self.augment, str):  # a config file may say augment = "flip,crop"
            object.__setattr__(self, "augment", [self.augment])  # coercion, as validate_fields does
        validate_fields(self, label or flag_name)
        return self

    def validate_names(self) -> TrainConfig:
        """The registry names, the model's arguments and optional packages (after `validate_values`)."""
        self._check_names()
        if self.tensorboard:
            require_tensorboard()
        return self

    def _check_names(self) -> None:
        """Unknown dataset, optimizer, scheduler, loss or model names and bad model arguments fail here,
        with a suggestion, before any data is loaded or run folder made (the registries live beside torch
        code: imported only now)."""
        from dlcli.data.augment import parse_augment
        from dlcli.data.catalog import check_spec
        from dlcli.losses import LOSSES
        from dlcli.models import model_args
        from dlcli.optim import OPTIMIZERS, SCHEDULERS

        if self.data is not None:
            check_spec(self.data)
        OPTIMIZERS.get(self.optimizer)
        SCHEDULERS.get(self.scheduler)
        LOSSES.get(self.loss)
        model_args(self.model, self.model_args)
        parse_augment(self.augment)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def flag_name(field_name: str) -> str:
    """The flag a config field is given with: batch_size -> --batch-size."""
    return "--" + field_name.replace("_", "-")


def require_tensorboard() -> None:
    """--tensorboard without the optional package fails in one line (exit 2) before any work; found
    without importing it, so a config check stays cheap."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError("--tensorboard needs the tensorboard package: pip install 'dlcli[tensorboard]'")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML file into a flat dict of option names (dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise InputFileError(f"config file {path} must end in .toml, .yaml or .yml")
    except InputFileError:
        raise
    except Exception as exc:  # tomllib and yaml raise their own families; both mean "fix the file"
        raise InputFileError(f"cannot parse config file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputFileError(f"config file {path} must hold a table/mapping of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def merge(cls: type, file_values: dict[str, Any], flag_values: dict[str, Any]) -> Any:
    """defaults < file < flags; flags that were not given are None and do not override."""
    known = field_names(cls)
    for key in file_values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"unknown option {key!r} in config file.{hint}")
    values = {**file_values, **{k: v for k, v in flag_values.items() if v is not None and k in known}}
    try:
        return cls(**values)
    except TypeError as exc:
        raise UsageError(f"invalid configuration: {exc}") from None


def dump_yaml(values: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(values, sort_keys=False)
