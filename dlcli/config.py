"""Typed configuration: the single source of defaults. Precedence: defaults < --config file < flags.

The resolved config is saved with every run and inside every checkpoint, so a run can be repeated
exactly from what it left behind.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.errors import InputFileError, UsageError
from dlcli.validation import check, validate_fields


@dataclass
class TrainConfig:
    """Everything a training run needs. Field docs are the flags' help texts."""

    model: str = "cnn"
    """Registered model name (see `dlcli models`)."""
    model_args: dict[str, Any] = field(default_factory=dict)
    """Constructor arguments of the model, e.g. {"width": 2} or {"depth": 8}."""
    data: str | None = None
    """Dataset name (see `dlcli datasets`), folder:PATH or csv:PATH. Default: the embedded
    mnist-sample for train; the checkpoint's own dataset for finetune, distill and prune."""
    data_dir: str | None = None
    """Root holding <dataset>/<files>; default $DLCLI_DATA_DIR, then the cache."""
    epochs: float | None = field(default=None, metadata=check(gt=0))
    """Passes over the training split; a fraction ends the last one early (1.5). Default: the dataset's
    recommended number, raised on small data so that a run takes at least
    dlcli.engine.budget.MIN_STEPS optimizer steps."""
    batch_size: int = field(default=128, metadata=check(ge=1))
    optimizer: str = "sgd"
    lr: float | None = field(default=None, metadata=check(gt=0))
    """Peak learning rate; default depends on the optimizer (sgd 0.2, adam/adamw 2e-3, rmsprop 1e-3)."""
    momentum: float = field(default=0.9, metadata=check(ge=0, lt=1))
    """SGD/RMSprop momentum; with onecycle, the momentum it cycles down from and back to."""
    nesterov: bool = True
    weight_decay: float = field(default=5e-4, metadata=check(ge=0))
    """L2 regularization (decoupled for adamw); not applied to biases and norm scales."""
    l1: float = field(default=0.0, metadata=check(ge=0))
    """L1 penalty coefficient on weights."""
    dropout: float | None = field(default=None, metadata=check(ge=0, lt=1))
    """Dropout before the head (cnn, mlp) or in the MLP blocks (vit); a model argument."""
    loss: str = "cross-entropy"
    label_smoothing: float = field(default=0.1, metadata=check(ge=0, lt=1))
    scheduler: str = "onecycle"
    warmup_epochs: float | None = field(default=None, metadata=check(ge=0))
    """Linear warmup length; for onecycle, where the peak is (default 25 % of the run)."""
    step_size: int = field(default=1, metadata=check(ge=1))
    """step scheduler: epochs between decays."""
    gamma: float = field(default=0.5, metadata=check(gt=0, le=1))
    """step scheduler: decay factor."""
    augment: list[str] = field(default_factory=list)
    """Batched augmentations: flip, rotate, crop."""
    patience: int | None = field(default=None, metadata=check(ge=1))
    """Stop after this many epochs without validation improvement."""
    val_split: float = field(default=0.1, metadata=check(ge=0, lt=1))
    """Fraction of the training split held out (seeded) to pick the best checkpoint."""
    train_samples: int | None = field(default=None, metadata=check(ge=1))
    """Train on a seeded, class-balanced subset of this many samples."""
    seed: int = field(default=0, metadata=check(ge=0, le=2**63 - 1))
    device: str = "auto"
    precision: str = field(default="fp32", metadata=check(choices=("fp32", "bf16", "fp16")))
    """fp32, bf16 or fp16 autocast."""
    channels_last: bool | None = None
    """Channels-last memory format for conv models; default: on for cpu and cuda."""
    threads: int | None = field(default=None, metadata=check(ge=1))
    """CPU threads (PyTorch intra-op); default: the cores no other process is busy on at start."""
    resume: str | None = None
    """Continue from a run's last.pt (a path, a run folder, or auto: the newest run of this command)."""
    save_every: int | None = field(default=None, metadata=check(ge=1))
    """Also save a resumable last.pt every N optimizer steps (it is always saved at each epoch end)."""
    skip_nonfinite: bool = False
    """Skip and count batches whose loss is NaN/inf instead of stopping the run."""
    sync_bn: bool = False
    """Distributed runs: synchronise BatchNorm statistics across processes (SyncBatchNorm)."""
    tensorboard: bool = False
    """Write TensorBoard event files (scalars, hyperparameters, graph) into RUN/tensorboard/."""
    stream: bool | None = None
    """Decode a folder dataset from disk batch by batch instead of loading it into memory; default: on
    for folders over 256 MiB of decoded pixels."""
    workers: int | None = field(default=None, metadata=check(ge=0))
    """DataLoader worker processes that decode streamed data (0: the main process); default: the
    cores beyond two, at most 2."""

    def validate(self) -> TrainConfig:
        """Every field's type and range (declared beside it: `check(...)` metadata and the annotation),
        then the registry names and the model's arguments; all before any file or folder is made."""
        if isinstance(self.augment, str):  # a config file may say augment = "flip,crop"
            self.augment = [self.augment]
        validate_fields(self, flag_name)
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
