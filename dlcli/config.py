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
    epochs: int | None = None
    """Passes over the training split; default: the dataset's recommended number, raised on small data
    so that a run takes at least dlcli.engine.budget.MIN_STEPS optimizer steps."""
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    """Peak learning rate; default depends on the optimizer (sgd 0.2, adam/adamw 2e-3, rmsprop 1e-3)."""
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    """L2 regularization (decoupled for adamw); not applied to biases and norm scales."""
    l1: float = 0.0
    """L1 penalty coefficient on weights."""
    dropout: float | None = None
    """Dropout before the head (cnn, mlp) or in the MLP blocks (vit); a model argument."""
    loss: str = "cross-entropy"
    label_smoothing: float = 0.1
    scheduler: str = "onecycle"
    warmup_epochs: float | None = None
    """Linear warmup length; for onecycle, where the peak is (default 25 % of the run)."""
    step_size: int = 1
    """step scheduler: epochs between decays."""
    gamma: float = 0.5
    """step scheduler: decay factor."""
    augment: list[str] = field(default_factory=list)
    """Batched augmentations: flip, rotate, crop."""
    patience: int | None = None
    """Stop after this many epochs without validation improvement."""
    val_split: float = 0.1
    """Fraction of the training split held out (seeded) to pick the best checkpoint."""
    train_samples: int | None = None
    """Train on a seeded, class-balanced subset of this many samples."""
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    """fp32, bf16 or fp16 autocast."""
    channels_last: bool | None = None
    """Channels-last memory format for conv models; default: on for cpu and cuda."""
    threads: int | None = None
    """CPU threads (PyTorch intra-op); default: the cores no other process is busy on at start."""
    resume: str | None = None
    """Continue from a run's last.pt (a path, a run folder, or auto: the newest run of this command)."""
    save_every: int | None = None
    """Also save a resumable last.pt every N optimizer steps (it is always saved at each epoch end)."""
    skip_nonfinite: bool = False
    """Skip and count batches whose loss is NaN/inf instead of stopping the run."""
    sync_bn: bool = False
    """Distributed runs: synchronise BatchNorm statistics across processes (SyncBatchNorm)."""

    def validate(self) -> TrainConfig:
        checks = [
            (self.epochs is None or self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}."),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}."),
            (self.weight_decay >= 0, "--weight-decay must be >= 0."),
            (self.l1 >= 0, "--l1 must be >= 0."),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)."),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)."),
            (0 <= self.val_split < 1, "--val-split must be in [0, 1)."),
            (self.patience is None or self.patience >= 1, "--patience must be at least 1."),
            (self.threads is None or self.threads >= 1, f"--threads must be at least 1, got {self.threads}."),
            (self.save_every is None or self.save_every >= 1, "--save-every must be at least 1."),
            (self.precision in ("fp32", "bf16", "fp16"),
             f"--precision must be fp32, bf16 or fp16, not {self.precision!r}."),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        self._check_names()
        return self

    def _check_names(self) -> None:
        """Unknown dataset, optimizer, scheduler or loss names fail here, with a suggestion, before
        any data is loaded or run folder made (the registries live beside torch code: imported only now)."""
        from dlcli.data.catalog import check_spec
        from dlcli.losses import LOSSES
        from dlcli.optim import OPTIMIZERS, SCHEDULERS

        if self.data is not None:
            check_spec(self.data)
        OPTIMIZERS.get(self.optimizer)
        SCHEDULERS.get(self.scheduler)
        LOSSES.get(self.loss)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
