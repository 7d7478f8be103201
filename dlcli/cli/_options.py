"""Shared option aliases, and the options that train, finetune, distill and prune all take.

The training flags (`TRAINING_OPTIONS`) and the data/device/config/output options
(`COMMON_OPTIONS`) are declared once and attached to a command by `with_training_options`, which
hands them over as one `TrainingInvocation`; so the four commands cannot drift apart and each
declares only what is its own. No torch types appear here: Typer resolves annotations when the app
is built, and `dlcli --help` must not import torch.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from dlcli.errors import UsageError


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else there.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or tables on stderr.")]
DeviceOpt = Annotated[
    Device | None, typer.Option("--device", help="auto picks cuda > mps > cpu.", show_default="auto")
]
DataOpt = Annotated[
    str | None,
    typer.Option("--data", "-d", help="Dataset: a name from `dlcli datasets`, folder:PATH or csv:PATH."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Root holding <dataset>/<files>. Default: $DLCLI_DATA_DIR, then the cache."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite outputs dlcli did not write.")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML or YAML file of options (flags override it).")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads for PyTorch and onnxruntime. Default: the cores no other "
                 "process is busy on when the command starts (at least 1).", show_default="free cores"),
]
MeasureThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU threads for PyTorch and onnxruntime while measuring.",
                             show_default="all cores")]
PrintConfigOpt = Annotated[bool, typer.Option("--print-config", help="Print the resolved config and exit.")]


def parse_model_args(items: list[str] | None) -> dict[str, Any] | None:
    """`-a width=2 -a channels=[8,16,32]` -> {"width": 2, "channels": [8, 16, 32]} (YAML scalars)."""
    if not items:
        return None
    import yaml

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model-arg expects KEY=VALUE, got {item!r}.")
        try:
            parsed[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--model-arg {item!r}: cannot parse the value.") from None
    return parsed


def _opt(name: str, annotation: Any, *decls: str, help: str, **kw: Any) -> inspect.Parameter:
    option = typer.Option(*decls, help=help, rich_help_panel="Training", **kw)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[annotation, option]
    )


TRAINING_OPTIONS = [
    _opt("epochs", float | None, "--epochs", "-e", help="Epochs, fractions allowed: 1.5 (default: the "
         "dataset's recommended number, more on small data so that a run takes at least 300 optimizer steps)."),
    _opt("batch_size", int | None, "--batch-size", "-b", help="Batch size.", show_default="128"),
    _opt("optimizer", str | None, "--optimizer", help="sgd, adam, adamw or rmsprop.", show_default="sgd"),
    _opt("lr", float | None, "--lr", help="Peak learning rate (default per optimizer: sgd 0.2, adam(w) 2e-3)."),
    _opt("momentum", float | None, "--momentum", help="SGD/RMSprop momentum, in [0, 1) (onecycle: its peak).",
         show_default="0.9"),
    _opt("nesterov", bool | None, "--nesterov/--no-nesterov", help="Nesterov momentum (sgd).",
         show_default="on"),
    _opt("weight_decay", float | None, "--weight-decay", help="L2 regularization.", show_default="5e-4"),
    _opt("l1", float | None, "--l1", help="L1 penalty on weights.", show_default="0"),
    _opt("dropout", float | None, "--dropout", help="Dropout rate (a model argument)."),
    _opt("loss", str | None, "--loss", help="cross-entropy or mse.", show_default="cross-entropy"),
    _opt("label_smoothing", float | None, "--label-smoothing", help="Label smoothing.", show_default="0.1"),
    _opt("scheduler", str | None, "--scheduler", help="none, step, cosine or onecycle.",
         show_default="onecycle"),
    _opt("warmup_epochs", float | None, "--warmup-epochs", help="Linear warmup (onecycle: peak position)."),
    _opt("step_size", int | None, "--step-size", help="step scheduler: epochs per decay.", show_default="1"),
    _opt("gamma", float | None, "--gamma", help="step scheduler: decay factor.", show_default="0.5"),
    _opt("augment", list[str] | None, "--augment", help="flip,rotate,crop (comma list or repeated)."),
    _opt("patience", int | None, "--patience", help="Early stopping after N epochs without improvement."),
    _opt("val_split", float | None, "--val-split", help="Validation fraction of train.", show_default="0.1"),
    _opt("train_samples", int | None, "--train-samples", help="Train on a balanced subset of N samples."),
    _opt("seed", int | None, "--seed", help="Random seed.", show_default="0"),
    _opt("precision", str | None, "--precision", help="fp32, bf16 or fp16 autocast.", show_default="fp32"),
    _opt("channels_last", bool | None, "--channels-last/--no-channels-last",
         help="Channels-last memory format.", show_default="auto"),
    _opt("save_every", int | None, "--save-every",
         help="Also save a resumable last.pt every N steps (always at each epoch end)."),
    _opt("skip_nonfinite", bool | None, "--skip-nonfinite/--stop-nonfinite",
         help="Skip and count batches with a NaN/inf loss instead of stopping.", show_default="stop"),
    _opt("sync_bn", bool | None, "--sync-bn/--no-sync-bn",
         help="Distributed runs: synchronise BatchNorm statistics across processes.", show_default="off"),
    _opt("tensorboard", bool | None, "--tensorboard/--no-tensorboard",
         help="TensorBoard event files in RUN/tensorboard (needs dlcli[tensorboard]).", show_default="off"),
    _opt("stream", bool | None, "--stream/--no-stream",
         help="Decode a folder dataset from disk batch by batch (default: folders over 256 MiB decoded)."),
    _opt("workers", int | None, "--workers", help="Processes decoding streamed data (0: main process).",
         show_default="cores beyond 2, at most 2"),
]

ResumeOpt = Annotated[str | None, typer.Option(
    "--resume", help="Continue a run from its last.pt: a path, a run folder, or auto (--out's, else the newest "
    "run of this command).", rich_help_panel="Run")]
NprocOpt = Annotated[int | None, typer.Option(
    "--nproc-per-node", help="Train with N processes on this machine (hands over to torchrun).",
    rich_help_panel="Run")]

# The command line as given, for --nproc-per-node to hand to torchrun (set by dlcli.cli.main).
ARGV: list[str] = []


# Options every training command (train, finetune, distill, prune) takes besides the training flags.
COMMON_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, annotation, default in (
        ("data", DataOpt, None), ("data_dir", DataDirOpt, None), ("device", DeviceOpt, None),
        ("threads", ThreadsOpt, None),
        ("force", ForceOpt, False), ("config", ConfigOpt, None), ("print_config", PrintConfigOpt, False),
        ("json_output", JsonOpt, False), ("quiet", QuietOpt, False), ("resume", ResumeOpt, None),
        ("nproc_per_node", NprocOpt, None),
    )
]


@dataclass
class TrainingInvocation:
    """What a training command was given besides its own options: the training flags (None where
    not given, so a config file can fill them), the config file and the output switches."""

    flags: dict[str, Any]
    config: Path | None
    print_config: bool
    force: bool
    json_output: bool
    quiet: bool
    resume: str | None = None
    nproc_per_node: int | None = None

    def run_setup(self, command: str, out: Path | None, name: str | None, **more: Any) -> tuple[Any, Path] | None:
        """The resolved config and run folder of a training command, or None when there is nothing left
        to do here (--print-config printed it; --nproc-per-node ran the command under torchrun).

        With --resume the config is the one saved in the checkpoint, changed only by what the user gave
        again (see dlcli.resume), and the run folder is the checkpoint's own unless --out says otherwise.
        In a distributed run, rank 0 makes the run folder and every rank writes into it.
        """
        from dlcli.cli.common import launch_distributed, resumed_train_config, show_config
        from dlcli.distributed import current, setup, shared_run_dir
        from dlcli.runs import prepare_out_dir, remove_stale_temporaries

        if self.nproc_per_node is not None:
            launch_distributed(self.nproc_per_node, ARGV)
            return None
        if self.resume:
            cfg, checkpoint = resumed_train_config(self.resume, command, out, self.config, {**self.flags, **more})
        else:
            cfg = self.train_config(**more)
        if cfg is None:
            return None
        if self.print_config:
            show_config(cfg, self.json_output)
            return None
        setup(cfg.device)
        if self.resume:
            folder = Path(out) if out is not None else checkpoint.parent
            if current().is_main:
                remove_stale_temporaries(folder)  # a killed save's leftovers, as for a reused --out
            return cfg, folder
        return cfg, shared_run_dir(lambda: prepare_out_dir(out, command, name, self.force))

    def train_config(self, command_defaults: dict[str, Any] | None = None, **more: Any) -> Any:
        """defaults < the command's defaults < --config file < flags (`more` are the command's own);
        None after printing it when --print-config was given."""
        from dlcli.cli.common import resolve_train_config

        return resolve_train_config(self.config, {**self.flags, **more}, self.print_config, command_defaults,
                                    self.json_output)

    def console(self) -> Any:
        """stderr for humans; in a distributed run only rank 0 talks (warnings still come from all)."""
        from dlcli.cli.common import make_console
        from dlcli.distributed import current

        return make_console(self.quiet or not current().is_main)

    def emit(self, result: dict[str, Any]) -> None:
        """The result on stdout, once per run: rank 0's alone in a distributed run."""
        from dlcli.cli.common import emit
        from dlcli.distributed import current

        if current().is_main:
            emit(result, self.json_output)


def with_training_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Append COMMON_OPTIONS and TRAINING_OPTIONS to a command's signature; the command receives
    them as one `TrainingInvocation` named `given`."""
    signature = inspect.signature(func)
    own = [p for p in signature.parameters.values() if p.name != "given"]
    added = COMMON_OPTIONS + TRAINING_OPTIONS

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        flags = {p.name: kwargs.pop(p.name) for p in TRAINING_OPTIONS}
        data_dir, device = kwargs.pop("data_dir"), kwargs.pop("device")
        flags.update(data=kwargs.pop("data"), data_dir=str(data_dir) if data_dir else None,
                     device=device.value if device else None, threads=kwargs.pop("threads"))
        given = TrainingInvocation(flags, kwargs.pop("config"), kwargs.pop("print_config"), kwargs.pop("force"),
                                   kwargs.pop("json_output"), kwargs.pop("quiet"), kwargs.pop("resume"),
                                   kwargs.pop("nproc_per_node"))
        return func(**kwargs, given=given)

    wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper
