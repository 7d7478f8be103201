"""Small helpers the command modules share (kept free of torch)."""

from pathlib import Path
from typing import Any

from dlcli.config import TrainConfig, dump_yaml, flag_name, merge, read_config_file


def make_console(quiet: bool) -> Any:
    from dlcli.console import Console

    return Console(quiet=quiet)


def emit(result: dict[str, Any], json_output: bool) -> None:
    from dlcli.console import emit_result

    emit_result(result, json_output)


def resolve_train_config(
    config: Path | None, flags: dict[str, Any], command_defaults: dict[str, Any] | None = None,
    prefetch: bool = False,
) -> TrainConfig:
    """defaults < the command's own defaults < --config file < flags, validated.

    `prefetch` (a training run will follow) starts reading the dataset's files on a thread between
    the checks of the values and of the names, so that they are read while the names' checks import
    torch (dlcli.data.idx.prefetch). The CLI calls the catalog itself here, not through a workflow:
    only here is torch not imported yet."""
    from_file = read_config_file(config) if config else {}
    file_values = {**(command_defaults or {}), **from_file}
    given = {k for k, v in flags.items() if v is not None}

    def label(name: str) -> str:  # a bad value is named where the user wrote it
        return f"{name.replace('_', '-')} in {config}" if name in from_file and name not in given else flag_name(name)

    cfg = merge(TrainConfig, file_values, flags).validate_values(label)
    if prefetch and cfg.data:
        from dlcli.data import catalog

        catalog.prefetch(cfg.data, cfg.data_dir)
    return cfg.validate_names()


def show_config(values: dict[str, Any], json_output: bool) -> None:
    """A resolved config on stdout: YAML, or one JSON object with --json."""
    import json

    from dlcli.console import write_stdout

    write_stdout(json.dumps(values, default=str) + "\n" if json_output else dump_yaml(values))


def resumed_train_config(
    spec: str, command: str, out: Path | None, config: Path | None, flags: dict[str, Any]
) -> TrainConfig:
    """The config saved in the checkpoint --resume names, with what was given again applied (see
    dlcli.resume for what may change); its `resume` is the checkpoint's path."""
    from dlcli.checkpoint import load_checkpoint
    from dlcli.resume import check_resumable, find_checkpoint, resumed_config

    path = find_checkpoint(spec, command, out)
    ckpt = load_checkpoint(path)
    explicit = {**(read_config_file(config) if config else {}), **{k: v for k, v in flags.items() if v is not None}}
    values = resumed_config(ckpt.config, explicit, path)
    values["resume"] = str(path)
    cfg = merge(TrainConfig, values, {}).validate()
    check_resumable(ckpt.training_state, path, cfg.epochs or 0)  # before any data is loaded
    return cfg


def launch_distributed(nproc: int, argv: list[str]) -> None:
    """Run this same command line under torchrun with `nproc` processes (--nproc-per-node removed)."""
    import os

    from dlcli.distributed import launch
    from dlcli.errors import UsageError

    if nproc < 1:
        raise UsageError(f"--nproc-per-node must be at least 1, got {nproc}.")
    if "WORLD_SIZE" in os.environ:
        raise UsageError("--nproc-per-node inside a torchrun job: drop it (torchrun already started the processes).")
    launch(nproc, strip_option(argv, "--nproc-per-node"))


def strip_option(argv: list[str], name: str) -> list[str]:
    """`argv` without `name VALUE` / `name=VALUE`."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(f"{name}="):
            kept.append(arg)
    return kept


def remove_if_unused(folder: Path | None, used: str | None) -> None:
    """Remove a run folder made for a step that did not happen (prune without data: no recovery)."""
    if folder is not None and used is None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
