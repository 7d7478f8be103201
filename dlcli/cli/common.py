"""Small helpers the command modules share (kept free of torch)."""

from pathlib import Path
from typing import Any

from dlcli.config import TrainConfig, dump_yaml, merge, read_config_file


def make_console(quiet: bool) -> Any:
    from dlcli.console import Console

    return Console(quiet=quiet)


def emit(result: dict[str, Any], json_output: bool) -> None:
    from dlcli.console import emit_result

    emit_result(result, json_output)


def resolve_train_config(
    config: Path | None, flags: dict[str, Any], print_config: bool, command_defaults: dict[str, Any] | None = None,
    json_output: bool = False,
) -> TrainConfig | None:
    """defaults < the command's own defaults < --config file < flags; with --print-config, print the
    result (YAML, or one JSON object with --json) and return None."""
    file_values = {**(command_defaults or {}), **(read_config_file(config) if config else {})}
    cfg = merge(TrainConfig, file_values, flags).validate()
    if print_config:
        show_config(cfg, json_output)
        return None
    return cfg


def show_config(cfg: TrainConfig, json_output: bool) -> None:
    """The resolved config on stdout: YAML, or one JSON object with --json."""
    import json

    from dlcli.console import write_stdout

    write_stdout(json.dumps(cfg.to_dict()) + "\n" if json_output else dump_yaml(cfg.to_dict()))


def resumed_train_config(
    spec: str, command: str, out: Path | None, config: Path | None, flags: dict[str, Any]
) -> tuple[TrainConfig, Path]:
    """The config saved in the checkpoint --resume names, with what was given again applied (see
    dlcli.resume for what may change); returns it with the checkpoint's path."""
    from dlcli.checkpoint import load_checkpoint
    from dlcli.resume import check_resumable, find_checkpoint, resumed_config

    path = find_checkpoint(spec, command, out)
    ckpt = load_checkpoint(path)
    explicit = {**(read_config_file(config) if config else {}), **{k: v for k, v in flags.items() if v is not None}}
    values = resumed_config(ckpt.config, explicit, path)
    values["resume"] = str(path)
    cfg = merge(TrainConfig, values, {}).validate()
    check_resumable(ckpt.training_state, path, cfg.epochs or 0)  # before any data is loaded
    return cfg, path


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
