"""`dlcli info`, `dlcli models`, `dlcli datasets`: what is in an artifact, the registry, the data."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, JsonOpt, QuietOpt
from dlcli.cli.common import emit, make_console


def info(
    artifact: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) or ONNX file; a run folder: its best.pt. Default: the latest run's.")] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Show an artifact's architecture, parameters, input shape, classes, metrics and lineage."""
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.inspect import InfoConfig, run

    emit(run(InfoConfig(checkpoint_argument(artifact)), make_console(quiet)).to_json(), json_output)


def models(
    input_shape: Annotated[str, typer.Option("--input-shape", help="C,H,W used to count parameters.")] = "1,28,28",
    num_classes: Annotated[int, typer.Option("--classes", help="Class count used to count parameters.")] = 10,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List registered models with their parameter counts and constructor arguments."""
    from dlcli.workflows.inspect import ModelsConfig, list_models, parse_shape

    cfg = ModelsConfig(parse_shape(input_shape), num_classes)
    emit(list_models(cfg, make_console(quiet)).to_json(), json_output)


def datasets(
    data_dir: DataDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List datasets, where they are found or cached, and whether they are present."""
    from dlcli.workflows.inspect import DatasetsConfig, list_datasets

    cfg = DatasetsConfig(str(data_dir) if data_dir else None)
    emit(list_datasets(cfg, make_console(quiet)).to_json(), json_output)
