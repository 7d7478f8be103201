"""What `dlcli prune` measures on a model before and after: parameters, non-zero parameters, MACs and
per-layer shapes (`ModelStats`), test accuracy, and, for channel pruning, the ONNX latency of both
models timed alternately (`LatencyComparison`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlcli.compress import pruning
from dlcli.console import Console
from dlcli.workflows.preparation import PreparedData, split_metrics

LATENCY_ROUNDS = 7  # alternating rounds: on a shared CPU, fewer gave ratios that moved by 0.1 between runs


@dataclass
class ModelStats:
    macs: int
    """Multiply-accumulates per sample (torch-pruning's counter, batch 1)."""
    params: int
    nonzero_params: int
    layers: dict[str, dict[str, Any]]
    """Per prunable layer: type, weight shape, params, zeros (pruning.layer_stats)."""


def model_stats(model: nn.Module, example: torch.Tensor) -> ModelStats:
    macs, params = pruning.macs_and_params(model, example)
    nonzero = sum(int((p.detach() != 0).sum()) for p in model.parameters())
    return ModelStats(macs, params, nonzero, pruning.layer_stats(model))


def accuracy_on_test(model: nn.Module, data: PreparedData | None, channels_last: bool) -> float | None:
    if data is None or data.test is None:
        return None
    return split_metrics(model, data.test, channels_last)["accuracy"]


@dataclass
class LatencyComparison:
    """p50 latency in ms per batch size of the unpruned and the pruned model on onnxruntime."""

    threads: int
    before_ms: dict[int, float]
    after_ms: dict[int, float]

    def metrics(self) -> dict[str, float]:
        """The metrics keys prune has always reported: latency_threads, latency_ms_b{N} (pruned) and
        latency_ms_b{N}_before (unpruned)."""
        out: dict[str, float] = {"latency_threads": self.threads}
        for batch, after in self.after_ms.items():
            out[f"latency_ms_b{batch}_before"] = self.before_ms[batch]
            out[f"latency_ms_b{batch}"] = after
        return out


def compare_onnx_latency(
    original: nn.Module, pruned: nn.Module, input_shape: list[int], batch_sizes: list[int], threads: int | None,
    console: Console,
) -> LatencyComparison:
    """Export both models to ONNX (each checked against PyTorch), then time them with onnxruntime on
    the CPU in alternating rounds, so that a machine getting busier mid-way affects both alike."""
    from dlcli.measure.environment import announce_timing, available_cores
    from dlcli.measure.runners import time_runners
    from dlcli.measure.timing import input_batches

    threads = threads or available_cores()
    announce_timing(f"latency: ONNX fp32 on onnxruntime (CPU, {threads} threads), batches "
                    f"{', '.join(map(str, batch_sizes))}; p50 over {LATENCY_ROUNDS} rounds alternating the two models",
                    console)
    runners = {key: onnx_checked(m, input_shape, threads) for key, m in (("before", original), ("after", pruned))}
    p50: dict[str, dict[int, float]] = {"before": {}, "after": {}}
    for batch in batch_sizes:
        batches = input_batches(input_shape, batch)
        for key, stats in time_runners(runners, dict.fromkeys(runners, batches), LATENCY_ROUNDS).items():
            p50[key][batch] = stats.p50_ms
    return LatencyComparison(threads, p50["before"], p50["after"])


def onnx_checked(model: nn.Module, input_shape: list[int], threads: int) -> Any:
    """An onnxruntime runner of `model`'s ONNX export, whose outputs were checked against PyTorch's."""
    from dlcli.export.onnx_export import export_onnx
    from dlcli.export.runtime import ort_session
    from dlcli.export.verify import compare_outputs, inputs_needed, parity_inputs, random_inputs, require_parity
    from dlcli.measure.runners import onnx_runner
    from dlcli.workflows.export_config import DEFAULT_ATOL

    model = copy.deepcopy(model).cpu()  # export_onnx moves its model to the CPU in place
    session = ort_session(export_onnx(model, input_shape).proto.SerializeToString(), threads)
    pool = random_inputs(input_shape, inputs_needed(True))
    require_parity(compare_outputs(model, session, parity_inputs(pool, True), DEFAULT_ATOL))
    return onnx_runner(session)
