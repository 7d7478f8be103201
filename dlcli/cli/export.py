"""`dlcli export`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, ForceOpt, JsonOpt, QuietOpt, ThreadsOpt, config_option, given_values
from dlcli.cli.common import emit, make_console
from dlcli.workflows.export_config import ExportConfig


def export(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) to export; a run folder: its best.pt. Default: the latest run's.")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX (the default and only format).")] = True,
    out: Annotated[Path | None, config_option(ExportConfig, "out", "--out", "-o")] = None,
    opset: Annotated[int | None, config_option(ExportConfig, "opset", "--opset")] = None,
    dynamic_batch: Annotated[bool | None, config_option(
        ExportConfig, "dynamic_batch", "--dynamic-batch/--static-batch")] = None,
    atol: Annotated[float | None, config_option(ExportConfig, "atol", "--atol")] = None,
    data_dir: DataDirOpt = None,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a checkpoint to a verified, self-describing ONNX file.

    The graph takes float32 NCHW pixels in [0, 1] (input `input`, output `logits`); normalization is
    inside it. The file is checked (ONNX checker, shape inference) and onnxruntime's outputs are
    compared with PyTorch's on the model's dataset (random inputs if it is not available locally)
    before it is written; a mismatch beyond --atol fails with exit 1 and writes nothing.

    \b
    Examples:
      dlcli export
      dlcli export runs/train/exp/best.pt --out model.onnx
      dlcli export best.pt --static-batch --opset 17 --json
    """
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.export import run

    cfg = ExportConfig(checkpoint_argument(checkpoint), force=force, **given_values(
        out=out, opset=opset, dynamic_batch=dynamic_batch, atol=atol, data_dir=str(data_dir) if data_dir else None,
        threads=threads))
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
