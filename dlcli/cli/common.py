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
        import json

        from dlcli.console import write_stdout

        write_stdout(json.dumps(cfg.to_dict()) + "\n" if json_output else dump_yaml(cfg.to_dict()))
        return None
    return cfg
