"""`dlcli eval`."""

from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, DataOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, ThreadsOpt, given_values
from dlcli.cli.common import emit, make_console


def eval_command(
    artifact: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) or ONNX file; a run folder: its best.pt. Default: the latest run's.")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw the confusion matrix into this PNG file.")] = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a checkpoint or ONNX file on a dataset's test split (default: the dataset it was trained on):
    loss, accuracy, and precision, recall and F1 per class.

    \b
    Examples:
      dlcli eval
      dlcli eval runs/train/exp/best.pt --data mnist
      dlcli eval "$(dlcli train -q)" --json
      dlcli eval model.int8.onnx --plot confusion.png
    """
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.evaluate import EvalConfig, run

    config = EvalConfig(checkpoint_argument(artifact), force=force, **given_values(
        data=data, data_dir=str(data_dir) if data_dir else None, device=device.value if device else None, plot=plot,
        threads=threads))
    emit(run(config, make_console(quiet)).to_json(), json_output)
