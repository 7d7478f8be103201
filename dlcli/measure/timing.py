"""The latency harness every dlcli speed number comes from (benchmark, quantize, prune).

Method: warm-up calls are run and discarded (they pay for lazy initialization, allocator growth,
torch.compile); then each timed call is measured on its own with `time.perf_counter_ns`, with a
device synchronisation inside the timed region when one is given, so percentiles come from real
per-call times rather than an average. Inputs rotate among several pre-generated batches so that a
single batch sitting in cache does not flatter the result. Python's garbage collector is paused
while timing, as `timeit` does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dlcli.errors import UsageError

DEFAULT_ITERS = 100
ROTATING_BATCHES = 8
MAX_RUNS = 1_000_000  # bounds memory when only --seconds is given
# Latency differences within this fraction are within a shared CPU's run-to-run noise: compressed
# models gaining less than this are "not faster", int8 models losing more than this are "slower".
NOISE_BAND = 0.05


Call = tuple[Callable[[Any], Any], Sequence[Any], Callable[[], None] | None]
"""What is timed: (fn, the batches it rotates through, an optional device sync)."""


@dataclass
class LatencyStats:
    batch_size: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput: float
    """Samples per second: batch_size * runs / total timed seconds."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_method(
    warmup: int, iters: int | None, seconds: float | None, batches: int = ROTATING_BATCHES, rounds: int = 1
) -> str:
    """One line saying how the numbers were taken (printed with every benchmark)."""
    iters, seconds = _budget(iters, seconds)
    if seconds is None:
        budget = f"{iters} timed calls"
    elif iters >= MAX_RUNS:
        budget = f"timed calls for {seconds:g} s"
    else:
        budget = f"up to {iters} timed calls or {seconds:g} s, whichever ends first"
    interleave = (f"; repeated in {rounds} rounds that alternate the artifacts, statistics over all rounds' calls"
                  if rounds > 1 else "")
    return (f"method: {warmup} warm-up calls discarded, then {budget}, each timed alone (perf_counter_ns, "
            f"device synchronised){interleave}; inputs rotate among {batches} pre-generated batches; "
            "p50/p90/p99 from per-call times; throughput = samples / total timed time.")


def _budget(iters: int | None, seconds: float | None) -> tuple[int, float | None]:
    if iters is not None and iters <= 0:
        raise UsageError(f"--iters must be positive, got {iters}.")
    if seconds is not None and seconds <= 0:
        raise UsageError(f"--seconds must be positive, got {seconds}.")
    if iters is None:
        iters = DEFAULT_ITERS if seconds is None else MAX_RUNS
    return iters, seconds


def measure(
    fn: Callable[[Any], Any],
    batches: Sequence[Any],
    warmup: int = 10,
    iters: int | None = None,
    seconds: float | None = None,
    sync: Callable[[], None] | None = None,
) -> LatencyStats:
    """Time `fn(batch)` over `batches` in rotation: `warmup` untimed calls, then `iters` timed calls
    or as many as fit in `seconds` (whichever comes first; default DEFAULT_ITERS calls).

    `sync` (e.g. `torch.cuda.synchronize`) is called inside each timed region so asynchronous
    devices are measured to completion.
    """
    return measure_interleaved({"": (fn, batches, sync)}, 1, warmup, iters, seconds)[""]


def measure_interleaved(
    calls: dict[str, Call],
    rounds: int,
    warmup: int = 10,
    iters: int | None = None,
    seconds: float | None = None,
) -> dict[str, LatencyStats]:
    """Time several `(fn, batches, sync)` against each other: `rounds` rounds, each running `measure`'s
    procedure (warm-up included, which re-warms caches the others evicted) once per key, then
    statistics over all of a key's timed calls.

    Why: on a shared machine the speed changes over seconds (other tenants, clock scaling). Timed one
    after another, two models can differ by a third for that reason alone; interleaved, both see the
    same slow and fast spells, so their ratio holds even when their absolute times do not.
    """
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {rounds}.")
    times: dict[str, list[np.ndarray]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            times[key].append(_time_calls(call, warmup, iters, seconds))
    return {key: summarize(np.concatenate(parts), len(calls[key][1][0])) for key, parts in times.items()}


def _time_calls(call: Call, warmup: int, iters: int | None, seconds: float | None) -> np.ndarray:
    """The per-call times (ns) of one round: statistics are taken only after all rounds, over all calls."""
    fn, batches, sync = call
    if not batches:
        raise UsageError("measure() needs at least one input batch.")
    if warmup < 0:
        raise UsageError(f"--warmup must be zero or more, got {warmup}.")
    iters, seconds = _budget(iters, seconds)
    for i in range(warmup):
        fn(batches[i % len(batches)])
    if sync is not None:
        sync()
    times = np.empty(min(iters, MAX_RUNS), dtype=np.int64)
    deadline = time.perf_counter_ns() + int(seconds * 1e9) if seconds else None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        count = 0
        while count < len(times):
            batch = batches[count % len(batches)]
            start = time.perf_counter_ns()
            fn(batch)
            if sync is not None:
                sync()
            end = time.perf_counter_ns()
            times[count] = end - start
            count += 1
            if deadline is not None and end >= deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return times[:count].copy()  # not a view: the full MAX_RUNS buffer would stay alive


def summarize(times_ns: np.ndarray, batch_size: int) -> LatencyStats:
    ms = times_ns.astype(np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    total_s = float(ms.sum()) / 1e3
    return LatencyStats(
        batch_size=batch_size, runs=int(len(ms)), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
        mean_ms=float(ms.mean()), min_ms=float(ms.min()),
        throughput=batch_size * len(ms) / total_s if total_s > 0 else float("inf"),
    )


def input_batches(
    input_shape: Sequence[int], batch_size: int, count: int = ROTATING_BATCHES,
    pool: np.ndarray | None = None, seed: int = 0,
) -> list[np.ndarray]:
    """`count` distinct float32 batches: consecutive slices of `pool` (real data, wrapping around)
    when given, else seeded uniform [0, 1) inputs."""
    if batch_size <= 0:
        raise UsageError(f"batch sizes must be positive, got {batch_size}.")
    if pool is None or len(pool) == 0:
        rng = np.random.default_rng(seed)
        return [rng.random((batch_size, *input_shape), dtype=np.float32) for _ in range(count)]
    index = np.arange(count * batch_size) % len(pool)
    rows = np.asarray(pool[index], dtype=np.float32)
    return [np.ascontiguousarray(rows[i * batch_size : (i + 1) * batch_size]) for i in range(count)]
