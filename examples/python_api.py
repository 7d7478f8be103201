"""dlcli without the CLI: train on the embedded sample, evaluate, export and time the ONNX file.

Run: python examples/python_api.py
"""

from pathlib import Path

from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.workflows import evaluate, export, train
from dlcli.workflows.export_config import ExportConfig

console = Console(quiet=True)
config = train.TrainRunConfig(TrainConfig(model="cnn", data="mnist-sample", epochs=3), out_dir=Path("runs/api"))
run = train.run(config, console)
print("trained:", run.artifact, "test accuracy", run.metrics["accuracy"])

onnx = export.run(ExportConfig(Path(run.artifact), out=Path("runs/api/model.onnx"), force=True), console)
print("exported:", onnx.artifact, "max |onnx - torch|", onnx.metrics["max_abs_diff"])

print("onnx accuracy:", evaluate.run(evaluate.EvalConfig(Path(onnx.artifact)), console).metrics["accuracy"])
