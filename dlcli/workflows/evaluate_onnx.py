"""`dlcli eval MODEL.onnx`: the same metrics as for a checkpoint, computed through onnxruntime.

The session is wrapped as an nn.Module so the engine's own `evaluate` computes accuracy and
cross-entropy exactly as it does for a checkpoint: the two results differ only in the runtime.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.data.tensors import TensorSplit
from dlcli.engine import evaluate
from dlcli.engine.metrics import evaluate_by_class
from dlcli.errors import UsageError
from dlcli.export.metadata import check_against_graph, read_metadata
from dlcli.export.runtime import load_onnx, ort_session, predict, session_device
from dlcli.losses import make_loss
from dlcli.threads import use_threads
from dlcli.workflows.evaluate import EvalConfig, EvalResult, check_compatible, evaluation_split, report_classes
from dlcli.workflows.preparation import eval_batches, load_data


class OnnxModule(nn.Module):
    """An onnxruntime session behind the nn.Module call interface (CPU tensors in and out)."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(predict(self.session, x.detach().cpu().float().contiguous().numpy()))


def signature(
    proto: onnx.ModelProto, meta: dict[str, Any], path: str | Path = "the ONNX model"
) -> tuple[list[int] | None, list[str] | None]:
    """Input shape (without batch) and class names: from dlcli metadata (checked against the graph),
    else from the graph."""
    check_against_graph(proto, meta, path)
    shape, classes = meta.get("input_shape"), meta.get("classes")
    if shape is None:
        dims = [d.dim_value or None for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
        shape = dims if dims and all(dims) else None
    if classes is None:
        dims = [d.dim_value or None for d in proto.graph.output[0].type.tensor_type.shape.dim]
        classes = [str(i) for i in range(dims[1])] if len(dims) == 2 and dims[1] else None
    return shape, classes


def onnx_metrics(session: Any, split: TensorSplit) -> dict[str, float]:
    """accuracy, loss (cross-entropy) and samples of `split` through an onnxruntime session."""
    return evaluate(OnnxModule(session), eval_batches(split, False), make_loss("cross-entropy"))


def load_for_eval(
    artifact: Path, data: str | None, data_dir: str | None, console: Console, device: str = "cpu",
    threads: int | None = None,
) -> tuple[Any, Dataset]:
    """Open the model and its evaluation data (default: the dataset recorded at export), checked
    against each other."""
    proto = load_onnx(artifact)
    meta = read_metadata(proto)
    session = ort_session(artifact, threads, device=device)
    spec = data or meta.get("dataset")
    if not spec:
        raise UsageError(f"{artifact} records no dataset (it was not exported by dlcli); pass --data NAME.")
    dataset = load_data(spec, data_dir, console, test_only=True)
    shape, classes = signature(proto, meta, artifact)
    check_compatible(dataset, shape or dataset.input_shape, classes or dataset.classes, artifact)
    return session, dataset


def run(config: EvalConfig, console: Console) -> EvalResult:
    """`eval` of an ONNX file. `config.device` picks onnxruntime's execution provider: auto takes CUDA
    when this onnxruntime has it, cuda without it is an error rather than a silent CPU run."""
    start = time.perf_counter()
    threads = use_threads(config.threads)
    session, dataset = load_for_eval(config.artifact, config.data, config.data_dir, console, config.device, threads)
    console.info(f"runtime: onnxruntime {session.get_providers()[0]}")
    split = evaluation_split(dataset, torch.device("cpu"), console)
    metrics, report = evaluate_by_class(OnnxModule(session), eval_batches(split, False), make_loss("cross-entropy"),
                                        dataset.classes)
    extra = report_classes(config.artifact, dataset, metrics, report, console, config.plot, config.force)
    return EvalResult(extra.get("plot"), metrics, session_device(session), time.perf_counter() - start,
                      checkpoint=str(config.artifact), data=dataset.name, runtime="onnxruntime", **extra)
