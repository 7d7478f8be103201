"""`dlcli export`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, ForceOpt, JsonOpt, QuietOpt, ThreadsOpt
from dlcli.cli.common import emit, make_console


def export(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) to export; default: the latest run's best checkpoint.")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX (the default and only format).")] = True,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output file (default: next to the checkpoint, same name, .onnx).")] = None,
    opset: Annotated[int | None, typer.Option(
        "--opset", help="ONNX opset (default: the exporter's; below 18 uses the TorchScript exporter).")] = None,
    static_batch: Annotated[bool, typer.Option(
        "--static-batch", help="Fix the batch size to 1 instead of a dynamic batch axis.")] = False,
    atol: Annotated[float, typer.Option(
        "--atol", help="Largest allowed |onnxruntime - PyTorch| logit difference.")] = 1e-4,
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
    from dlcli.runs import latest_checkpoint
    from dlcli.workflows.export import ExportConfig, run

    cfg = ExportConfig(checkpoint or latest_checkpoint(), out, opset, not static_batch, atol,
                       str(data_dir) if data_dir else None, force, threads)
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
