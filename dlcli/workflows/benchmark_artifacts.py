"""The artifacts `dlcli benchmark` (and frontier) time: each file opened behind one `Runner`, with how
to measure its accuracy; and the timing of all of them together, in interleaved rounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.errors import InputFileError, UsageError, WorkError
from dlcli.measure.runners import Runner, onnx_runner, time_runners, torch_runner
from dlcli.measure.timing import LatencyStats, input_batches
from dlcli.workflows.benchmark_config import Timing


@dataclass
class Artifact:
    """An opened artifact: its runner plus what the report says about it."""

    path: Path
    runner: Runner
    input_shape: list[int]
    params: int
    accuracy: Callable[[Dataset, Console], dict[str, float]]


def open_artifact(path: Path, device: str, compile: bool, threads: int) -> Artifact:
    """A .onnx file runs in onnxruntime; anything else must be a dlcli checkpoint (PyTorch)."""
    if path.suffix.lower() == ".onnx":
        if compile:
            raise UsageError("--compile applies to .pt checkpoints (torch.compile), not to ONNX files.")
        return _open_onnx(path, threads, device)
    return _open_checkpoint(path, device, compile)


def _open_onnx(path: Path, threads: int, device: str) -> Artifact:
    from dlcli.export.metadata import parameter_count, read_metadata
    from dlcli.export.runtime import load_onnx, ort_session
    from dlcli.workflows.evaluate import check_compatible, evaluation_split
    from dlcli.workflows.evaluate_onnx import onnx_metrics, signature

    proto = load_onnx(path)  # a clear error for truncated/non-ONNX files before onnxruntime sees it
    shape, classes = signature(proto, read_metadata(proto))
    if shape is None:
        raise InputFileError(f"{path} has no fixed input shape and no dlcli metadata to say what it takes.")
    session = ort_session(path, threads, device)

    def accuracy(dataset: Dataset, console: Console) -> dict[str, float]:
        check_compatible(dataset, shape, classes or dataset.classes, path)
        return onnx_metrics(session, evaluation_split(dataset, torch.device("cpu"), console))

    return Artifact(path, onnx_runner(session), shape, parameter_count(proto), accuracy)


def _open_checkpoint(path: Path, device_name: str, compile: bool) -> Artifact:
    from dlcli.checkpoint import load_checkpoint
    from dlcli.device import prefers_channels_last, resolve_device
    from dlcli.engine import evaluate
    from dlcli.losses import make_loss
    from dlcli.models import count_parameters
    from dlcli.workflows.evaluate import check_compatible, evaluation_split
    from dlcli.workflows.preparation import eval_batches

    ckpt = load_checkpoint(path)
    device = resolve_device(device_name)
    model = ckpt.build_model()
    # The layout `dlcli eval` and training use for images on cpu/cuda (measured faster there).
    channels_last = prefers_channels_last(device, ckpt.input_shape)

    def accuracy(dataset: Dataset, console: Console) -> dict[str, float]:
        check_compatible(dataset, ckpt.input_shape, ckpt.classes, path)
        split = evaluation_split(dataset, device, console)
        return evaluate(model, eval_batches(split, channels_last), make_loss("cross-entropy"))

    runner = torch_runner(model, device, compile, channels_last)
    return Artifact(path, runner, list(ckpt.input_shape), count_parameters(model), accuracy)


def time_all(
    artifacts: list[Artifact], cfg: Timing, pool: np.ndarray | None, console: Console
) -> list[list[LatencyStats]]:
    """Per artifact, its stats at each batch size it accepts. All artifacts at one batch size are
    timed together, in interleaved rounds on the same inputs, so that they are compared under the
    same machine conditions; each is first run once on its own, so a failure names its file."""
    found: list[list[LatencyStats]] = [[] for _ in artifacts]
    for batch_size in cfg.batch_sizes:
        chosen = {}
        for i, artifact in enumerate(artifacts):
            fixed = artifact.runner.fixed_batch
            if fixed is not None and batch_size != fixed:
                console.warn(f"{artifact.path} was exported with a fixed batch size of {fixed}; "
                             f"skipping batch {batch_size}.")
                continue
            chosen[str(i)] = artifact
        inputs = {key: input_batches(a.input_shape, batch_size, pool=pool) for key, a in chosen.items()}
        for key, artifact in chosen.items():
            _first_call(artifact, inputs[key][0], batch_size)
        stats = time_runners({k: a.runner for k, a in chosen.items()}, inputs, cfg.rounds, cfg.warmup, cfg.iters,
                             cfg.seconds)
        for key, value in stats.items():
            found[int(key)].append(value)
    return found


def _first_call(artifact: Artifact, batch: np.ndarray, batch_size: int) -> None:
    """One untimed call; a runtime failure (e.g. torch.compile failing on its first call) becomes one
    line naming the artifact and runtime."""
    runner = artifact.runner
    try:
        runner.call(runner.prepare(batch))
    except (UsageError, WorkError):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkError(f"{runner.runtime} failed to run {artifact.path} at batch {batch_size}: {first}") from None
