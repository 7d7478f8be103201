"""What `dlcli quantize` measures before it writes anything: test accuracy, size and latency of the
fp32 source and the int8 model, the latency in alternating rounds so a machine that gets busier
part-way affects both alike; and the --max-accuracy-drop gate over those figures."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.errors import InputFileError, UsageError, WorkError
from dlcli.export.runtime import ort_session
from dlcli.measure.environment import announce_timing

BATCH_SIZES = (1, 32)
LATENCY_POOL = 512  # real images the timed batches rotate through


@dataclass(frozen=True)
class Figures:
    """One model's measured figures."""

    size_bytes: int
    latency_ms: dict[int, float] = field(default_factory=dict)
    """p50 per batch size (a fixed-batch export is timed at its own batch size only)."""
    accuracy: float | None = None
    loss: float | None = None


@dataclass(frozen=True)
class Comparison:
    """fp32 source against int8 model, measured on the same inputs in the same session."""

    fp32: Figures
    int8: Figures
    samples: int | None = None
    """Test samples both accuracies were measured on; None without data."""

    @property
    def accuracy_drop_pp(self) -> float | None:
        if self.fp32.accuracy is None or self.int8.accuracy is None:
            return None
        return (self.fp32.accuracy - self.int8.accuracy) * 100

    @property
    def size_ratio(self) -> float:
        return self.int8.size_bytes / self.fp32.size_bytes

    def speedup(self, batch_size: int) -> float | None:
        """fp32 p50 / int8 p50 at `batch_size`; None where it was not timed."""
        if batch_size not in self.int8.latency_ms:
            return None
        return self.fp32.latency_ms[batch_size] / self.int8.latency_ms[batch_size]

    def with_int8_size(self, size_bytes: int) -> Comparison:
        return replace(self, int8=replace(self.int8, size_bytes=size_bytes))

    def to_metrics(self, with_int8_size: bool = True) -> dict[str, Any]:
        """The flat keys `--json` has always printed: int8 figures plain, the source's with `_fp32`.
        Without the int8 size (not known until the file is written: the metadata it carries)."""
        m: dict[str, Any] = {"size_bytes_fp32": self.fp32.size_bytes}
        if with_int8_size:
            m = {"size_bytes": self.int8.size_bytes, **m}
        if self.int8.accuracy is not None:
            m.update(accuracy=self.int8.accuracy, accuracy_fp32=self.fp32.accuracy,
                     accuracy_drop_pp=self.accuracy_drop_pp, loss=self.int8.loss, loss_fp32=self.fp32.loss,
                     samples=self.samples)
        for b, p50 in self.int8.latency_ms.items():
            m.update({f"latency_ms_b{b}_fp32": self.fp32.latency_ms[b], f"latency_ms_b{b}": p50})
        m.update({f"speedup_b{b}": self.speedup(b) for b in self.int8.latency_ms})
        if with_int8_size:
            m["size_ratio"] = self.size_ratio
        return m


def measure(
    source_path: Path, int8: onnx.ModelProto, dataset: Dataset | None, iters: int, rounds: int, threads: int,
    console: Console,
) -> Comparison:
    """Test accuracy (with data), size and latency of both models."""
    sessions = {"fp32": ort_session(source_path, threads), "int8": _int8_session(int8, threads)}
    accuracy = accuracies(sessions, dataset, console) if dataset is not None else {}
    latency = _latency(sessions, dataset, iters, rounds, threads, console)
    fp32 = Figures(source_path.stat().st_size, latency["fp32"], **accuracy.get("fp32", {}))
    quantized = Figures(int8.ByteSize(), latency["int8"], **accuracy.get("int8", {}))
    return Comparison(fp32, quantized, accuracy.get("samples"))


def _int8_session(int8: onnx.ModelProto, threads: int) -> Any:
    try:
        return ort_session(int8.SerializeToString(), threads)
    except InputFileError as exc:  # our own output: a failed quantization, not a bad input
        raise WorkError(f"the quantized model does not load in onnxruntime: {exc}") from None


def accuracies(sessions: dict[str, Any], dataset: Dataset, console: Console) -> dict[str, Any]:
    """{"fp32": {"accuracy", "loss"}, "int8": {...}, "samples": n} on the test split."""
    import torch

    from dlcli.workflows.evaluate import evaluation_split
    from dlcli.workflows.evaluate_onnx import onnx_metrics

    split = evaluation_split(dataset, torch.device("cpu"), console)
    found = {key: onnx_metrics(session, split) for key, session in sessions.items()}
    out: dict[str, Any] = {key: {"accuracy": m["accuracy"], "loss": m["loss"]} for key, m in found.items()}
    return {**out, "samples": found["int8"]["samples"]}


def _latency(
    sessions: dict[str, Any], dataset: Dataset | None, iters: int, rounds: int, threads: int, console: Console
) -> dict[str, dict[int, float]]:
    """p50 latency per batch size over all timed calls of the alternating rounds."""
    from dlcli.measure.runners import onnx_runner, p50_by_batch

    runners = {key: onnx_runner(session) for key, session in sessions.items()}
    shape = [d or 1 for d in sessions["int8"].get_inputs()[0].shape[1:]]
    pool = None
    if dataset is not None:
        pool = dataset.model_inputs(LATENCY_POOL)
        shape = list(pool.shape[1:])
    announce_timing(f"latency: onnxruntime CPU, {threads} threads, p50 of {iters} calls x {rounds} rounds "
                    "alternating fp32 and int8", console, "Compare with `dlcli benchmark` later.")
    return p50_by_batch(runners, shape, list(BATCH_SIZES), rounds, iters=iters, pool=pool)


def gate(found: Comparison, max_accuracy_drop: float | None) -> None:
    """--max-accuracy-drop: more lost than allowed fails the command before anything is written."""
    if max_accuracy_drop is None:
        return
    drop = found.accuracy_drop_pp
    if drop is None:
        raise UsageError("--max-accuracy-drop needs test data to measure accuracy: pass --data NAME.")
    if drop > max_accuracy_drop:
        raise WorkError(
            f"int8 accuracy {found.int8.accuracy:.2%} is {drop:.2f} percentage points below fp32's "
            f"{found.fp32.accuracy:.2%} (allowed {max_accuracy_drop:g}); nothing was written. "
            "Try --report-layers and --exclude the worst layers, --calibration percentile or entropy, "
            "or more --calib-samples."
        )
