"""Shared option aliases, and the options that train, finetune, distill and prune all take.

The training flags (`TRAINING_OPTIONS`) and the data/device/config/output options
(`COMMON_OPTIONS`) are declared once and attached to a command by `with_training_options`, which
hands them over as one `TrainingInvocation`; so the four commands cannot drift apart and each
declares only what is its own. Each training flag takes its help text and shown default from its
TrainConfig field (dlcli.config.option) and its choices from dlcli.choices (the registries' names),
so neither is written twice; so do --data, --data-dir, --device, --threads and --resume, and a
command's own options come from its workflow config the same way (`config_option`). No torch types
appear here: Typer resolves annotations when the app is built, and `dlcli --help` must not import torch.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from dlcli import choices
from dlcli.config import DATA_HELP, TrainConfig, field_help, flag_name, shown_default
from dlcli.errors import UsageError
from dlcli.validation import field_hints
from dlcli.workflows.benchmark_config import BenchmarkConfig

Device = Enum("Device", {name: name for name in choices.DEVICES}, type=str)  # type: ignore[misc]
"""--device's choices: the names dlcli.device resolves."""


def config_option(cls: type, name: str, *decls: str, **kw: Any) -> Any:
    """An option declared by a config's field `name` (dlcli.config.option): the help text and shown
    default come from there. The command's parameter defaults to None (not given), so the config's
    default is the only one; see `given_values`."""
    return typer.Option(*decls, help=field_help(cls, name), show_default=shown_default(cls, name) or False, **kw)


def given_values(**values: Any) -> dict[str, Any]:
    """The options the user gave (not None), to build a workflow config whose defaults fill the rest."""
    return {key: value for key, value in values.items() if value is not None}


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else there.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or tables on stderr.")]
# --device, --data-dir and --threads mean the same for every command: TrainConfig declares them.
DeviceOpt = Annotated[Device | None, config_option(TrainConfig, "device", "--device")]
DataDirOpt = Annotated[Path | None, config_option(TrainConfig, "data_dir", "--data-dir")]
ThreadsOpt = Annotated[int | None, config_option(TrainConfig, "threads", "--threads")]
DataOpt = Annotated[str | None, typer.Option("--data", "-d", help=DATA_HELP)]
"""--data for the commands that read an artifact (eval, benchmark, quantize, frontier): its meaning as
TrainConfig.data says it, without the training commands' default."""
TrainDataOpt = Annotated[str | None, config_option(TrainConfig, "data", "--data", "-d")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite outputs dlcli did not write.")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML or YAML file of options (flags override it).")
]
MeasureThreadsOpt = Annotated[int | None, config_option(BenchmarkConfig, "threads", "--threads")]
"""--threads of the measuring commands (benchmark, quantize): all cores unless told."""
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


# The training flags, in --help order: each takes its help text, shown default and choices from
# TrainConfig's field declaration (dlcli.config.option) and the registries' names (dlcli.choices).
TRAINING_FIELDS = (
    "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "l1", "dropout", "loss",
    "label_smoothing", "scheduler", "warmup_epochs", "step_size", "gamma", "augment", "patience", "val_split",
    "train_samples", "seed", "precision", "channels_last", "save_every", "skip_nonfinite", "sync_bn",
    "tensorboard", "stream", "workers",
)
SHORT_FLAGS = {"epochs": "-e", "batch_size": "-b"}
FLAG_DECLS = {"skip_nonfinite": "--skip-nonfinite/--stop-nonfinite"}
CHOICES = {"optimizer": choices.OPTIMIZERS, "loss": choices.LOSSES, "scheduler": choices.SCHEDULERS,
           "precision": choices.PRECISIONS}


def training_option(name: str) -> inspect.Parameter:
    """The `--flag` of TrainConfig field `name`: None by default (so a config file can fill it), its
    type the field's (a Literal of the registry's names where there are choices)."""
    hint = field_hints(TrainConfig)[name]
    flag = flag_name(name)
    if name in CHOICES:
        hint = Literal[CHOICES[name]]  # type: ignore[valid-type]
    elif hint is bool or hint == bool | None:
        hint, flag = bool, FLAG_DECLS.get(name, f"{flag}/--no-{flag[2:]}")
    decls = [flag, *([SHORT_FLAGS[name]] if name in SHORT_FLAGS else [])]
    option = config_option(TrainConfig, name, *decls, rich_help_panel="Training")
    annotation = Annotated[hint | None, option]  # type: ignore[operator]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


TRAINING_OPTIONS = [training_option(name) for name in TRAINING_FIELDS]


ResumeOpt = Annotated[str | None, config_option(TrainConfig, "resume", "--resume", rich_help_panel="Run")]
NprocOpt = Annotated[int | None, typer.Option(
    "--nproc-per-node", help="Train with N processes on this machine (hands over to torchrun).",
    rich_help_panel="Run")]

# The command line as given, for --nproc-per-node to hand to torchrun (set by dlcli.cli.main).
ARGV: list[str] = []


# Options every training command (train, finetune, distill, prune) takes besides the training flags.
COMMON_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, annotation, default in (
        ("data", TrainDataOpt, None), ("data_dir", DataDirOpt, None), ("device", DeviceOpt, None),
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

    def train_config(self, command: str, out: Path | None = None, command_defaults: dict[str, Any] | None = None,
                     trains: bool = True, **more: Any) -> TrainConfig | None:
        """The command's TrainConfig: defaults < the command's defaults < --config file < flags (`more`
        are the command's own); with --resume, the one saved in the checkpoint, changed only by what the
        user gave again (see dlcli.resume). None when --nproc-per-node handed the command line to
        torchrun (this process has nothing left to do).

        When a training loop will run (`trains`, and not --print-config), the curves helper starts
        here, and the dataset's files start being read on a thread: the config's checks import torch,
        and both exist to overlap that import (dlcli.plot_process, dlcli.data.idx.prefetch). A config
        refused next leaves the helper to read end-of-file and exit, and the read unused."""
        from dlcli.cli.common import launch_distributed, resolve_train_config, resumed_train_config

        runs_here = trains and not self.print_config and self.nproc_per_node is None
        if runs_here:
            from dlcli import plot_process

            plot_process.start()
        if self.nproc_per_node is not None:
            launch_distributed(self.nproc_per_node, ARGV)
            return None
        flags = {**self.flags, **more}
        if self.resume:
            return resumed_train_config(self.resume, command, out, self.config, flags)
        return resolve_train_config(self.config, flags, command_defaults, prefetch=runs_here)

    def run_folder(self, command: str, out: Path | None, name: str | None, cfg: TrainConfig) -> Path:
        """The run folder, made here: --out (refused when it holds files dlcli did not write, unless
        --force), else a fresh runs/<command>/expN; with --resume the checkpoint's own folder unless
        --out says otherwise. In a distributed run rank 0 makes it and every rank writes into it."""
        from dlcli.distributed import current, setup, shared_run_dir
        from dlcli.runs import prepare_out_dir, remove_stale_temporaries

        setup(cfg.device)
        if cfg.resume:
            folder = Path(out) if out is not None else Path(cfg.resume).parent
            if current().is_main:
                remove_stale_temporaries(folder)  # a killed save's leftovers, as for a reused --out
            return folder
        return shared_run_dir(lambda: prepare_out_dir(out, command, name, self.force))

    def show(self, values: dict[str, Any]) -> None:
        """--print-config: the resolved config on stdout (YAML, or one JSON object with --json)."""
        from dlcli.cli.common import show_config

        show_config(values, self.json_output)

    def console(self) -> Any:
        """stderr for humans; in a distributed run only rank 0 talks (warnings still come from all)."""
        from dlcli.cli.common import make_console
        from dlcli.distributed import current

        return make_console(self.quiet or not current().is_main)

    def emit(self, result: Any) -> None:
        """The result (a workflow's CommandResult) on stdout, once per run: rank 0's alone in a
        distributed run."""
        from dlcli.cli.common import emit
        from dlcli.distributed import current

        if current().is_main:
            emit(result.to_json(), self.json_output)


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
