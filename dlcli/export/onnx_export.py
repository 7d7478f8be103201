"""PyTorch model -> in-memory ONNX model, with the torch.export-based ("dynamo") exporter.

The dynamo exporter traces with `torch.export`; a dynamic batch axis is declared through
`dynamic_shapes` (`dynamic_axes` belongs to the legacy TorchScript exporter). Its lowest opset is
18: an older `--opset`, or a model it cannot trace, falls back to the TorchScript exporter
explicitly, and the reason is returned so that it can be printed and stored in the metadata.

The example input has batch 2 when the batch axis is dynamic: torch.export specializes dimensions
of size 0 and 1, so a batch-1 example would pin the batch axis to 1. The model is returned as a
ModelProto with its weights inline (never external data), ready for `onnx.save_model`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import onnx
import torch
from torch import nn

from dlcli.errors import WorkError
from dlcli.export.metadata import opset_version

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DYNAMO_MIN_OPSET = 18
# Loggers that print progress, tracebacks of handled fallbacks and "torchvision is not installed".
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "onnxscript")


@dataclass
class ExportedModel:
    proto: onnx.ModelProto
    exporter: str
    """"dynamo" (torch.export-based) or "torchscript" (the legacy fallback)."""
    opset: int | None
    dynamic_batch: bool
    fallback_reason: str | None = None

    def info(self) -> dict[str, Any]:
        """What the metadata and the --json result record about how the file was made."""
        return {"name": self.exporter, "opset": self.opset, "dynamic_batch": self.dynamic_batch,
                "fallback_reason": self.fallback_reason, "torch": torch.__version__,
                "onnx": onnx.__version__}


def export_onnx(
    model: nn.Module, input_shape: Sequence[int], opset: int | None = None, dynamic_batch: bool = True,
) -> ExportedModel:
    """Export `model` (float32 inputs of `input_shape` without batch) to ONNX, input `input`,
    output `logits`. The model is put in eval mode on the CPU in place. Raises WorkError when both
    exporters fail."""
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    example = torch.rand((2 if dynamic_batch else 1, *input_shape), generator=torch.Generator().manual_seed(0))
    if opset is not None and opset < DYNAMO_MIN_OPSET:
        reason = f"opset {opset} requested; the dynamo exporter supports opset >= {DYNAMO_MIN_OPSET}"
    else:
        try:
            proto = _export_dynamo(model, example, opset, dynamic_batch)
        except Exception as exc:  # any tracing/translation failure: fall back, and say why
            reason = f"dynamo exporter failed ({type(exc).__name__}: {_first_line(exc)})"
        else:
            if opset is None or opset_version(proto) == opset:
                return ExportedModel(proto, "dynamo", opset_version(proto), dynamic_batch)
            reason = f"the dynamo exporter produced opset {opset_version(proto)}, not {opset}"
    try:
        proto = _export_torchscript(model, example, opset, dynamic_batch)
    except Exception as exc:
        raise WorkError(f"ONNX export failed: {reason}; the TorchScript exporter also failed "
                        f"({type(exc).__name__}: {_first_line(exc)}).") from None
    return ExportedModel(proto, "torchscript", opset_version(proto), dynamic_batch, reason)


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int | None, dynamic: bool) -> onnx.ModelProto:
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    with _quiet():
        program = torch.onnx.export(
            model, (example,), dynamo=True, verbose=False, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], opset_version=opset, dynamic_shapes=dynamic_shapes,
            external_data=False, optimize=True,
        )
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _export_torchscript(
    model: nn.Module, example: torch.Tensor, opset: int | None, dynamic: bool
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic else None
    with _quiet():
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=opset, dynamic_axes=axes,
        )
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and logs, and keep anything they print off stdout (which
    carries only our result)."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"
