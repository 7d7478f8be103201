"""`dlcli eval`: metrics of a checkpoint (or, with the export extra, an ONNX file) on a dataset's
test split. Every artifact kind yields the same metrics object so they compare on equal terms."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.console import Console, result
from dlcli.data.dataset import Dataset
from dlcli.data.streaming import StreamSplit, to_device_split
from dlcli.data.tensors import TensorSplit
from dlcli.device import describe_device, prefers_channels_last, resolve_device
from dlcli.engine.metrics import evaluate_by_class
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.threads import use_threads
from dlcli.workflows.preparation import eval_batches, load_data


def check_compatible(dataset: Dataset, input_shape: list[int], classes: list[str], artifact: Path) -> None:
    """Refuse data the model was not built for, naming both shapes/class counts."""
    if list(input_shape) != dataset.input_shape:
        raise UsageError(
            f"{artifact} expects inputs of shape {list(input_shape)} but {dataset.name} has "
            f"{dataset.input_shape}."
        )
    if len(classes) != dataset.num_classes:
        raise UsageError(
            f"{artifact} predicts {len(classes)} classes but {dataset.name} has {dataset.num_classes}; "
            "use `dlcli finetune` to adapt it."
        )


def evaluation_split(dataset: Dataset, device: torch.device, console: Console) -> TensorSplit | StreamSplit:
    """The evaluation split as tensors on `device`; only that split is moved there."""
    if dataset.test is None:
        console.warn(f"{dataset.name} has no test split; evaluating on its training data.")
    return to_device_split(dataset.evaluation, dataset.input_scale(), device)  # streamed when lazy



def run(
    artifact: Path, data: str | None, data_dir: str | None, device_name: str, console: Console,
    plot: Path | None = None, force: bool = False, threads: int | None = None,
) -> dict[str, Any]:
    """Metrics of `artifact` on the evaluation split, per class too; `plot` draws the confusion matrix.
    `threads`: PyTorch's and onnxruntime's CPU threads (see dlcli.threads)."""
    start = time.perf_counter()
    threads = use_threads(threads)
    if artifact.suffix.lower() == ".onnx":
        from dlcli.workflows.evaluate_onnx import run as run_onnx

        return run_onnx(artifact, data, data_dir, device_name, console, plot, force, threads)
    ckpt = load_checkpoint(artifact)
    device = resolve_device(device_name)
    console.info(f"device: {describe_device(device)}")
    dataset = load_data(data or ckpt.dataset, data_dir, console, test_only=True)
    check_compatible(dataset, ckpt.input_shape, ckpt.classes, artifact)
    split = evaluation_split(dataset, device, console)
    model = ckpt.build_model().to(device)
    channels_last = prefers_channels_last(device, dataset.input_shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics, report = evaluate_by_class(model, eval_batches(split, channels_last), make_loss("cross-entropy"),
                                        dataset.classes)
    extra = report_classes(artifact, dataset, metrics, report, console, plot, force)
    return result("eval", extra.get("plot"), metrics, str(device), time.perf_counter() - start,
                  checkpoint=str(artifact), data=dataset.name, **extra)


def report_classes(
    artifact: Path, dataset: Dataset, metrics: dict[str, Any], report: dict[str, Any], console: Console,
    plot: Path | None, force: bool,
) -> dict[str, Any]:
    """The summary line, the per-class table and, when asked, the confusion-matrix PNG; returns what
    --json adds to the metrics (per-class rows, the matrix, the plot's path)."""
    console.info(f"{artifact}: accuracy {metrics['accuracy']:.2%}  loss {metrics['loss']:.4f}  "
                 f"on {metrics['samples']} samples of {dataset.name}")
    rows = [[r["class"], f"{r['precision']:.2%}", f"{r['recall']:.2%}", f"{r['f1']:.2%}", r["support"]]
            for r in report["per_class"]]
    rows.append(["macro average", *(f"{metrics[f'macro_{k}']:.2%}" for k in ("precision", "recall", "f1")),
                 metrics["samples"]])
    console.table("per class", ["class", "precision", "recall", "F1", "support"], rows)
    if plot is None:
        return report
    from dlcli.plots import plot_confusion

    title = f"{artifact.name} on {dataset.name}: accuracy {metrics['accuracy']:.2%}"
    path = plot_confusion(report["confusion_matrix"], dataset.classes, plot, title, force)
    console.info(f"confusion matrix: {path}")
    return {**report, "plot": str(path)}
