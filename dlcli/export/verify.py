"""Is an exported file valid ONNX, and does onnxruntime compute what PyTorch computes?

Parity is checked on real inputs when the caller has them (else seeded random ones) at batch 1 and,
when the batch axis is dynamic, at a larger batch too, since batch-dependent bugs (a batch axis
baked into a Reshape) only show at a second batch size. A static export is compared over several
batch-1 runs instead. A difference beyond `atol` is a failure, never a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from dlcli.errors import WorkError
from dlcli.export.runtime import input_spec, run

LARGE_BATCH = 64
SINGLE_RUNS = 4
STATIC_SINGLE_RUNS = 16


@dataclass
class ParityReport:
    max_abs_diff: float
    top1_agreement: float
    samples: int
    atol: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Per call: batch_size, max_abs_diff, top1_agreement."""

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.atol

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_model_file(path: str | Path, num_classes: int | None = None, label: str | Path | None = None) -> None:
    """`onnx.checker` with full_check (which includes strict shape inference), then check that
    shape inference gives the output the shape [batch, num_classes]. Raises WorkError naming `label`
    (the file the user asked for, when `path` is a temporary one)."""
    label = label or path
    try:
        onnx.checker.check_model(str(path), full_check=True)
        inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except Exception as exc:  # ValidationError, InferenceError, DecodeError for a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkError(f"{label} failed the ONNX checker: {first}") from None
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    if num_classes is not None and (len(dims) != 2 or (dims[1].dim_value or None) != num_classes):
        shape = [d.dim_param or d.dim_value for d in dims]
        raise WorkError(f"{label}: shape inference gives output shape {shape}, expected [batch, {num_classes}].")


def parity_inputs(pool: np.ndarray, dynamic_batch: bool) -> list[np.ndarray]:
    """Split a pool of float32 inputs into the batches to compare: several batch-1 runs, plus one
    batch of up to LARGE_BATCH rows when the batch axis is dynamic."""
    singles = SINGLE_RUNS if dynamic_batch else STATIC_SINGLE_RUNS
    batches = [pool[i : i + 1] for i in range(min(singles, len(pool)))]
    if dynamic_batch and len(pool) > singles:
        batches.append(pool[singles : singles + LARGE_BATCH])
    return [np.ascontiguousarray(b, dtype=np.float32) for b in batches]


def inputs_needed(dynamic_batch: bool) -> int:
    return SINGLE_RUNS + LARGE_BATCH if dynamic_batch else STATIC_SINGLE_RUNS


def random_inputs(input_shape: Sequence[int], count: int, seed: int = 0) -> np.ndarray:
    """Seeded uniform [0, 1) float32 inputs: the fallback when no real data is available."""
    return np.random.default_rng(seed).random((count, *input_shape), dtype=np.float32)


def compare_outputs(model: nn.Module, session: Any, batches: Sequence[np.ndarray], atol: float) -> ParityReport:
    """Run each batch through PyTorch (CPU, eval mode) and onnxruntime and compare the logits."""
    model = model.eval().to("cpu")
    name, _ = input_spec(session)
    runs, diffs, agree, total = [], [], 0, 0
    for x in batches:
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = np.asarray(run(session, name, x))
        if got.shape != expected.shape:
            raise WorkError(f"onnxruntime output shape {list(got.shape)} differs from PyTorch's "
                            f"{list(expected.shape)} at batch {len(x)}.")
        diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0
        same = int((got.argmax(1) == expected.argmax(1)).sum())
        runs.append({"batch_size": len(x), "max_abs_diff": diff, "top1_agreement": same / len(x)})
        diffs.append(diff if np.isfinite(diff) else float("inf"))
        agree += same
        total += len(x)
    return ParityReport(max(diffs, default=0.0), agree / max(total, 1), total, atol, runs)


def require_parity(report: ParityReport) -> None:
    if not report.passed:
        worst = max(report.runs, key=lambda r: r["max_abs_diff"])
        raise WorkError(
            f"ONNX verification failed: onnxruntime and PyTorch differ by up to {report.max_abs_diff:.3g} "
            f"(allowed {report.atol:g}; worst at batch {worst['batch_size']}; top-1 agreement "
            f"{report.top1_agreement:.2%}). No file was written; pass a larger --atol only if the "
            "difference is expected."
        )
