"""`dlcli benchmark`: latency, throughput, size and (with data) accuracy of checkpoints and ONNX files,
measured the same way for every runtime (`dlcli.measure.timing.measure`) on the same inputs."""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlcli.checkpoint import atomic_write
from dlcli.console import Console, result, short_labels
from dlcli.data.dataset import Dataset
from dlcli.errors import InputFileError, UsageError, WorkError
from dlcli.measure.environment import available_cores, busy_warning, environment, fingerprint
from dlcli.measure.runners import Runner, onnx_runner, time_runners, torch_runner
from dlcli.measure.timing import LatencyStats, describe_method, input_batches
from dlcli.runs import check_output_file

POOL_SIZE = 512  # real images the timed batches rotate through, when --data is given
COMPARE_ROUNDS = 3  # several artifacts: interleaved rounds, so a noisy spell on the machine hits all alike


@dataclass
class BenchmarkConfig:
    artifacts: list[Path]
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    threads: int | None = None
    """torch.set_num_threads and onnxruntime intra-op threads; None: all cores available to us."""
    warmup: int = 10
    iters: int | None = None
    seconds: float | None = None
    device: str = "auto"
    compile: bool = False
    data: str | None = None
    data_dir: str | None = None
    csv: Path | None = None
    plot: Path | None = None
    """PNG of accuracy (or throughput) against latency; none unless asked for."""
    force: bool = False
    rounds: int | None = None
    """Interleaved timing rounds (iters/seconds apply to each); None: COMPARE_ROUNDS with several
    artifacts, else 1 (set in __post_init__)."""

    def __post_init__(self) -> None:
        if not self.artifacts:
            raise UsageError("give at least one artifact (.pt checkpoint or .onnx file) to benchmark.")
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes):
            raise UsageError(f"--batch-size needs positive integers, got {self.batch_sizes}.")
        if self.threads is not None and self.threads <= 0:
            raise UsageError(f"--threads must be positive, got {self.threads}.")
        if self.rounds is not None and self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}.")
        if self.rounds is None:
            self.rounds = COMPARE_ROUNDS if len(self.artifacts) > 1 else 1


@dataclass
class Artifact:
    """An opened artifact: its runner plus what the report says about it."""

    path: Path
    runner: Runner
    input_shape: list[int]
    params: int
    accuracy: Callable[[Dataset, Console], dict[str, float]]


def announce_timing(method: str, console: Console) -> None:
    """Say how latency will be measured, and warn when other work is keeping the cores busy (the
    figures would then be inflated); benchmark and frontier both begin their timing with it."""
    console.info(method)
    warning = busy_warning()
    if warning:
        console.warn(warning)


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError(f"--batch-size expects positive integers like 1,32, got {text!r}.")
    return sizes


def run(cfg: BenchmarkConfig, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    threads = cfg.threads or available_cores()
    method = describe_method(cfg.warmup, cfg.iters, cfg.seconds, rounds=cfg.rounds)
    artifacts = [open_artifact(path, cfg, threads) for path in cfg.artifacts]  # fail fast on a bad file
    env = environment(threads)
    console.info(f"machine: {env['cpu']} ({' '.join(env['isa']) or 'no ISA flags found'}), "
                 f"gpu {env['gpu'] or 'none'}, {threads} threads")
    announce_timing(method, console)
    with _torch_threads(threads), torch.inference_mode():
        dataset = _load_data(cfg, console)
        metrics = [artifact.accuracy(dataset, console) if dataset is not None else {} for artifact in artifacts]
        stats = time_all(artifacts, cfg, dataset.model_inputs(POOL_SIZE) if dataset is not None else None, console)
    machine = fingerprint(env)
    rows = [
        {"artifact": str(a.path), "runtime": a.runner.runtime, "device": a.runner.device, **s.to_dict(),
         "size_bytes": a.path.stat().st_size, "params": a.params, "accuracy": m.get("accuracy"),
         "loss": m.get("loss"), **machine}
        for a, m, per_batch in zip(artifacts, metrics, stats, strict=True) for s in per_batch
    ]
    _show_table(rows, console)
    csv_path = _write_csv(rows, cfg.csv, cfg.force) if cfg.csv else None
    plot_path = _write_plot(rows, cfg.plot, cfg.force) if cfg.plot and rows else None
    artifact = csv_path or plot_path
    devices = ",".join(sorted({r["device"] for r in rows})) or None
    return result("benchmark", str(artifact) if artifact else None, {}, devices, time.perf_counter() - start,
                  rows=rows, environment=env, method=method,
                  csv=str(csv_path) if csv_path else None, plot=str(plot_path) if plot_path else None)


def open_artifact(path: Path, cfg: BenchmarkConfig, threads: int) -> Artifact:
    """A .onnx file runs in onnxruntime; anything else must be a dlcli checkpoint (PyTorch)."""
    if path.suffix.lower() == ".onnx":
        if cfg.compile:
            raise UsageError("--compile applies to .pt checkpoints (torch.compile), not to ONNX files.")
        return _open_onnx(path, threads, cfg.device)
    return _open_checkpoint(path, cfg.device, cfg.compile)


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
    artifacts: list[Artifact], cfg: BenchmarkConfig, pool: np.ndarray | None, console: Console
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


def _load_data(cfg: BenchmarkConfig, console: Console) -> Dataset | None:
    if cfg.data is None:
        return None
    from dlcli.workflows.preparation import load_data

    return load_data(cfg.data, cfg.data_dir, console, test_only=True)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _show_table(rows: list[dict[str, Any]], console: Console) -> None:
    """The device column only when rows differ in it (the machine line above names it)."""
    labels = short_labels([r["artifact"] for r in rows])
    with_device = len({r["device"] for r in rows}) > 1
    columns = ["artifact", "runtime", *(["device"] if with_device else []), "batch", "p50 ms", "p90 ms", "p99 ms",
               "samples/s", "MB", "params", "accuracy"]
    console.table("benchmark", columns, [
        [labels[r["artifact"]], r["runtime"], *([r["device"]] if with_device else []), r["batch_size"],
         *(f"{r[k]:.3g}" for k in ("p50_ms", "p90_ms", "p99_ms")), f"{r['throughput']:,.0f}",
         f"{r['size_bytes'] / 1e6:.2f}", f"{r['params']:,}",
         f"{r['accuracy']:.2%}" if r["accuracy"] is not None else None]
        for r in rows
    ])


def _file_head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4096)
    except OSError:
        return b""


def _write_csv(rows: list[dict[str, Any]], path: Path, force: bool) -> Path:
    check_output_file(path, force, is_ours=_file_head(path).startswith(b"artifact,runtime,"))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["artifact", "runtime"])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def _write_plot(rows: list[dict[str, Any]], path: Path, force: bool) -> Path:
    from dlcli.plots import plot_latency

    return plot_latency(rows, short_labels([r["artifact"] for r in rows]), path, force)
