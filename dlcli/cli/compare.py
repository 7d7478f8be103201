"""`dlcli compare`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import JsonOpt, QuietOpt
from dlcli.cli.common import emit, make_console


def compare(
    artifacts: Annotated[list[Path], typer.Argument(
        help="Run folders (their best.pt), checkpoints (.pt) and/or ONNX files.")],
    all_config: Annotated[bool, typer.Option(
        "--all-config", help="Show every config key, not only those that differ.")] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare runs and artifacts side by side: metrics, config differences and lineage.

    Reads what the files record (no data, no model runs). An int8 ONNX file shows its own measured
    metrics.

    \b
    Examples:
      dlcli compare runs/train/exp runs/train/exp2 runs/train/exp3
      dlcli compare best.pt best.onnx best.int8.onnx --json
    """
    from dlcli.workflows.compare import CompareConfig, run

    emit(run(CompareConfig(tuple(artifacts), all_config), make_console(quiet)).to_json(), json_output)
