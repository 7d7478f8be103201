"""`dlcli predict`."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DeviceOpt, QuietOpt, ThreadsOpt
from dlcli.cli.common import make_console


def predict(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or ONNX file; a run folder: its best.pt.")],
    inputs: Annotated[list[Path], typer.Argument(
        help="Image files, folders of images (searched recursively) and/or .csv files (one input per row).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes to show per input.")] = 5,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="One JSON object per input on stdout (JSON Lines), each as soon as it is done.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Predict the classes of images or CSV rows, streaming one result per input.

    Inputs are read as the model's training data was (grey or RGB, resized to its input size,
    pixels scaled to [0, 1]; CSV features in column order, a label column dropped). stderr shows the
    top-k classes with probabilities; stdout gets INPUT<TAB>CLASS per input, or with --json one
    object per input: {"input": ..., "predictions": [{"class", "index", "probability"}, ...]}.

    \b
    Examples:
      dlcli predict runs/train/exp/best.pt digit.png
      dlcli predict model.onnx photos/ --top-k 3 --json | jq .predictions[0]
      dlcli predict iris.pt new_flowers.csv
    """
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.predict import PredictConfig, run

    cfg = PredictConfig(checkpoint_argument(model), tuple(inputs), top_k, device.value if device else "auto", threads)
    for found in run(cfg, make_console(quiet)):
        if json_output:
            sys.stdout.write(json.dumps(found.to_json()) + "\n")
        else:
            sys.stdout.write(f"{found.input}\t{found.top}\n")
        sys.stdout.flush()
