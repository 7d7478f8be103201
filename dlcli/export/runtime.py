"""Reading .onnx files and running them with onnxruntime: every failure is one InputFileError line.

`ort_session` is the one place sessions are made, so eval, benchmark, quantize and prune measure and
evaluate with the same settings (sequential execution, all graph optimizations, explicit threads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from dlcli.errors import DeviceError, InputFileError, UsageError

# What onnxruntime raises for a model it cannot load (all plain Exception subclasses).
_ORT_LOAD_ERRORS = (
    ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile, ort_errors.NotImplemented, ort_errors.RuntimeException, ort_errors.NoModel,
    RuntimeError,
)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputFileError(f"ONNX file not found: {path}")
    if path.is_dir():
        raise InputFileError(f"{path} is a folder; give an .onnx file.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Parse an .onnx file, refusing truncated or non-ONNX files with a clear message."""
    path = Path(path)
    _check_path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, missing external data, ...
        raise InputFileError(f"{path} is not a readable ONNX model (truncated or not ONNX): "
                             f"{_first_line(exc)}") from None
    # Protobuf happily parses some garbage into an empty message; a real model has a graph.
    if proto.ir_version <= 0 or not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise InputFileError(f"{path} is not an ONNX model (no graph found); is it truncated?")
    return proto


def providers_for(device: str) -> list[Any]:
    """Execution providers for `--device`: auto prefers CUDA when onnxruntime has it, cpu never;
    `cuda:N` picks GPU N."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    kind, _, index = (device or "auto").partition(":")
    if kind == "cuda" and not has_cuda:
        raise DeviceError("--device cuda: this onnxruntime has no CUDAExecutionProvider "
                          "(install onnxruntime-gpu), or use --device cpu.")
    if kind not in ("auto", "cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {device!r} for onnxruntime; use cpu, cuda or auto.")
    if kind in ("auto", "cuda") and has_cuda:
        if not index:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if not index.isdigit():
            raise UsageError(f"unknown device {device!r} for onnxruntime; use cuda or cuda:N.")
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_device(session: ort.InferenceSession) -> str:
    """Where a session runs: "cuda" when its first provider is CUDA's, else "cpu"."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


def _require_cuda(session: ort.InferenceSession, device: str) -> None:
    """onnxruntime-gpu lists its CUDA provider even where the CUDA libraries fail to load, and then
    falls back to CPU with only a log line: an explicit --device cuda must not run on CPU silently."""
    if device.startswith("cuda") and session_device(session) != "cuda":
        raise DeviceError(f"--device {device}: onnxruntime could not start its CUDA provider (CUDA or cuDNN "
                          "libraries missing or mismatched); use --device cpu.")


def ort_session(
    model: str | Path | bytes, threads: int | None = None, device: str = "cpu"
) -> ort.InferenceSession:
    """An onnxruntime session for a path (or serialized bytes).

    `threads` sets intra-op threads (None: onnxruntime's default, one per physical core); inter-op
    parallelism is off because our graphs are chains, where it only adds scheduling noise.
    """
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings would interleave with our output
    if threads is not None:
        if threads <= 0:
            raise UsageError(f"--threads must be positive, got {threads}.")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source: str | bytes = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        _check_path(Path(model))
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers_for(device))
    except _ORT_LOAD_ERRORS as exc:
        name = "the ONNX model" if isinstance(model, bytes) else str(model)
        raise InputFileError(f"onnxruntime cannot load {name}: {_first_line(exc)}") from None
    _require_cuda(session, device or "auto")
    return session


def input_spec(session: ort.InferenceSession) -> tuple[str, list[int | None]]:
    """The first input's name and shape; dynamic dimensions are None."""
    first = session.get_inputs()[0]
    return first.name, [d if isinstance(d, int) else None for d in first.shape]


def predict(session: ort.InferenceSession, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits for all of `x`, run in batches. A model exported with a fixed batch size gets exactly
    that many rows per call (the last call zero-padded and the padding dropped)."""
    name, shape = input_spec(session)
    fixed = shape[0] if shape and shape[0] is not None else None
    step = fixed or batch_size
    outputs = []
    for start in range(0, len(x), step):
        chunk = np.ascontiguousarray(x[start : start + step], dtype=np.float32)
        rows = len(chunk)
        if fixed and rows < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - rows, *chunk.shape[1:]), np.float32)])
        outputs.append(run(session, name, chunk)[:rows])
    return np.concatenate(outputs)


def run(session: ort.InferenceSession, input_name: str, x: np.ndarray) -> Any:
    """One inference call: the first output for input `x`."""
    return session.run(None, {input_name: x})[0]
