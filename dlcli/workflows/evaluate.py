"""`dlcli eval`: metrics of a checkpoint (or, with the export extra, an ONNX file) on a dataset's
test split. Every artifact kind yields the same metrics object so they compare on equal terms."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.data.streaming import StreamSplit, to_device_split
from dlcli.data.tensors import TensorSplit
from dlcli.device import describe_device, prefers_channels_last, resolve_device
from dlcli.engine.metrics import evaluate_by_class
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.threads import use_threads
from dlcli.workflows.preparation import eval_batches, load_data
from dlcli.workflows.result import CommandResult, omitted_when_none


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
    if list(classes) != list(dataset.classes):  # e.g. a digit model on fashion-mnist: 10 and 10
        raise UsageError(
            f"{artifact} predicts the classes {_listing(classes)} but {dataset.name}'s are "
            f"{_listing(dataset.classes)}: its accuracy there would compare label numbers, not classes; "
            "use `dlcli finetune` to adapt it."
        )


def _listing(names: list[str], shown: int = 4) -> str:
    """The first few class names, as a message shows them."""
    head = ", ".join(map(repr, names[:shown]))
    return f"({head}, ...)" if len(names) > shown else f"({head})"


def evaluation_split(dataset: Dataset, device: torch.device, console: Console) -> TensorSplit | StreamSplit:
    """The evaluation split as tensors on `device`; only that split is moved there."""
    if dataset.test is None:
        console.warn(f"{dataset.name} has no test split; evaluating on its training data.")
    return to_device_split(dataset.evaluation, dataset.input_scale(), device)  # streamed when lazy



@dataclass(frozen=True)
class EvalConfig:
    """Evaluating a checkpoint (or, with the export extra, an ONNX file) on a dataset's test split."""

    artifact: Path
    data: str | None = None
    """Dataset spec; None: the one the artifact records."""
    data_dir: str | None = None
    device: str = "auto"
    plot: Path | None = None
    """Also draw the confusion matrix into this PNG file."""
    force: bool = False
    """Overwrite a --plot file dlcli did not write."""
    threads: int | None = None
    """PyTorch's and onnxruntime's CPU threads (see dlcli.threads); None: the free cores."""


@dataclass
class EvalResult(CommandResult):
    """`dlcli eval --json`: command, artifact (the --plot PNG, or null), metrics (loss, accuracy,
    samples, macro precision/recall/F1), device, seconds, checkpoint (what was evaluated), data,
    runtime (ONNX files only), per_class, confusion_matrix, and plot when drawn."""

    command: ClassVar[str] = "eval"
    checkpoint: str = ""
    data: str = ""
    runtime: str | None = omitted_when_none()
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    plot: str | None = omitted_when_none()


def run(config: EvalConfig, console: Console) -> EvalResult:
    """Metrics of the artifact on the evaluation split, per class too; --plot draws the confusion matrix."""
    if config.plot is not None:
        from dlcli.plots import check_png_output

        check_png_output(config.plot, config.force)  # before the evaluation, not after it
    if config.artifact.suffix.lower() == ".onnx":
        from dlcli.workflows.evaluate_onnx import run as run_onnx

        return run_onnx(config, console)
    start = time.perf_counter()
    use_threads(config.threads)
    ckpt = load_checkpoint(config.artifact)
    device = resolve_device(config.device)
    console.info(f"device: {describe_device(device)}")
    dataset = load_data(config.data or ckpt.dataset, config.data_dir, console, test_only=True)
    check_compatible(dataset, ckpt.input_shape, ckpt.classes, config.artifact)
    split = evaluation_split(dataset, device, console)
    model = ckpt.build_model().to(device)
    channels_last = prefers_channels_last(device, dataset.input_shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics, report = evaluate_by_class(model, eval_batches(split, channels_last), make_loss("cross-entropy"),
                                        dataset.classes)
    extra = report_classes(config.artifact, dataset, metrics, report, console, config.plot, config.force)
    return EvalResult(extra.get("plot"), metrics, str(device), time.perf_counter() - start,
                      checkpoint=str(config.artifact), data=dataset.name, **extra)


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
