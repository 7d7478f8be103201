"""A model ready to be timed: PyTorch eager (optionally torch.compile) or an onnxruntime session,
behind one interface, so `timing.measure` times every runtime the same way.

`prepare` moves an input batch where the runtime wants it (a device tensor, a numpy array) before
timing starts; `call` is then exactly one inference, and `sync` waits for an asynchronous device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dlcli.export.runtime import input_spec, session_device
from dlcli.measure.timing import LatencyStats, input_batches, measure_interleaved


@dataclass
class Runner:
    runtime: str
    """"pytorch", "pytorch-compile" or "onnxruntime"."""
    device: str
    """"cpu" or "cuda" (for onnxruntime: where its first execution provider runs)."""
    call: Callable[[Any], Any]
    prepare: Callable[[np.ndarray], Any]
    sync: Callable[[], None] | None = None
    fixed_batch: int | None = None
    """The only batch size a statically exported ONNX model accepts."""


def torch_runner(model: nn.Module, device: torch.device, compile: bool = False, channels_last: bool = False) -> Runner:
    """Eager PyTorch in eval mode (or torch.compile'd: compilation happens in the warm-up calls).
    Calls must run under `torch.inference_mode()`, which the caller enters once for all of them."""
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward: Callable[[Any], Any] = torch.compile(model) if compile else model

    def prepare(batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch).to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return Runner("pytorch-compile" if compile else "pytorch", device.type, forward, prepare, sync)


def onnx_runner(session: Any) -> Runner:
    """An onnxruntime session fed numpy arrays. With the CUDA provider, each call includes the
    host-to-device copy of its input and the copy of the logits back, as a plain `session.run` does."""
    name, shape = input_spec(session)
    device = session_device(session)

    def call(batch: np.ndarray) -> Any:
        return session.run(None, {name: batch})

    def prepare(batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch, dtype=np.float32)

    fixed = shape[0] if shape and shape[0] is not None else None
    return Runner("onnxruntime", device, call, prepare, None, fixed)


def time_runners(
    runners: dict[str, Runner], batches: dict[str, list[np.ndarray]], rounds: int, warmup: int = 10,
    iters: int | None = None, seconds: float | None = None,
) -> dict[str, LatencyStats]:
    """`timing.measure_interleaved` over runners. Inputs are prepared (copied to the device, made
    contiguous) before any timing, so the timed calls measure inference and not data movement."""
    calls = {key: (r.call, [r.prepare(b) for b in batches[key]], r.sync) for key, r in runners.items()}
    return measure_interleaved(calls, rounds, warmup, iters, seconds)


def p50_by_batch(
    runners: dict[str, Runner], input_shape: list[int], batch_sizes: list[int], rounds: int,
    iters: int | None = None, pool: np.ndarray | None = None,
) -> dict[str, dict[int, float]]:
    """Compare runners on the same inputs, per batch size, interleaved in `rounds` rounds. Returns
    {runner key: {batch size: p50 ms over all timed calls}}; batch sizes that a fixed-batch runner
    cannot take are skipped."""
    out: dict[str, dict[int, float]] = {key: {} for key in runners}
    for batch_size in batch_sizes:
        if any(r.fixed_batch not in (None, batch_size) for r in runners.values()):
            continue
        batches = input_batches(input_shape, batch_size, pool=pool)
        stats = time_runners(runners, dict.fromkeys(runners, batches), rounds, iters=iters)
        for key, s in stats.items():
            out[key][batch_size] = s.p50_ms
    return out


def alternating_p50(
    runners: dict[str, Runner], input_shape: list[int], batch_sizes: list[int], rounds: int,
    iters: int | None = None, pool: np.ndarray | None = None,
) -> dict[str, float]:
    """`p50_by_batch` flattened to {"latency_ms_b{N}{key}": p50}: the flat keys the benchmark scripts record."""
    found = p50_by_batch(runners, input_shape, batch_sizes, rounds, iters, pool)
    return {f"latency_ms_b{b}{key}": p50 for b in batch_sizes for key, per in found.items()
            for batch, p50 in per.items() if batch == b}
