"""The machine a measurement was taken on: a number without it cannot be compared or reproduced.

The ISA flags listed are the ones that change which kernels PyTorch and onnxruntime pick (AVX-512
and VNNI/AMX matter most for int8); they come from /proc/cpuinfo on Linux.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from dlcli.threads import available_cores

BUSY_SHARE = 0.2  # busy + stolen share of all CPU time above which timings are flagged as noisy
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve",
)


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model name and the ISA flags of interest (best effort: None/[] where unknown)."""
    model, flags = None, set()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {"cpu": model or platform.processor() or platform.machine(),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def gpu_name() -> str | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.cuda.current_device())
    return None


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine is the first thing that skews timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows
        return None


def cpu_usage(interval: float = 0.2, stat: str | Path = "/proc/stat") -> dict[str, float] | None:
    """The share of the machine's CPU time that other work kept busy, and that the hypervisor stole,
    over the next `interval` seconds (Linux /proc/stat; None elsewhere).

    Why not the load average: Linux counts tasks blocked on I/O in it, so an idle machine with one
    stuck mount reads as busy (load 1.1 on an idle 2-core VM here); this measures what competes for
    the cores. This process's own CPU time in the window (idle runtime threads still spin for a
    moment after inference) is taken out."""
    def sample() -> list[int]:
        fields = [int(v) for v in Path(stat).read_text().splitlines()[0].split()[1:9]]
        return fields + [0] * (8 - len(fields))  # older kernels have no steal/irq columns

    try:
        first, own_first = sample(), _own_cpu_seconds()
        time.sleep(interval)
        second, own = sample(), _own_cpu_seconds() - own_first
    except (OSError, ValueError, IndexError):
        return None
    delta = [b - a for a, b in zip(first, second, strict=True)]
    user, nice, system, _idle, _iowait, irq, softirq, steal = delta
    total = sum(delta)
    if total <= 0:
        return None
    own_ticks = own * os.sysconf("SC_CLK_TCK")
    busy = max(0.0, user + nice + system + irq + softirq - own_ticks)
    return {"busy": busy / total, "steal": steal / total}


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def announce_timing(method: str, console: Any, advice: str = "") -> None:
    """Say how latency will be measured, and warn when other work keeps the cores busy (the figures
    would then be inflated): every command that times something (benchmark, frontier, quantize,
    prune) begins its timing with this. `advice` follows the warning (what to do about it)."""
    console.info(method)
    warning = busy_warning()
    if warning:
        console.warn(f"{warning} {advice}".strip())


def busy_warning() -> str | None:
    """One line when other work competes for the CPU (None when the machine looks idle)."""
    usage = cpu_usage()
    if usage is not None:
        if usage["busy"] + usage["steal"] < BUSY_SHARE:
            return None
        return (f"the machine is busy ({usage['busy']:.0%} of its CPU time in use by other work, "
                f"{usage['steal']:.0%} taken by the hypervisor): latencies will be slower and noisier than on "
                "an idle machine.")
    load, cores = load_average(), available_cores()
    if load is None or load <= 0.5 * cores:
        return None
    return (f"the machine is busy (load average {load} on {cores} cores): latencies will be slower and noisier "
            "than on an idle machine.")


def environment(threads: int | None = None) -> dict[str, Any]:
    """Everything a latency number depends on besides the model: CPU, ISA, GPU, threads, versions."""
    import onnxruntime
    import torch

    return {
        **cpu_info(),
        "cores": available_cores(),
        "load_avg_1m": load_average(),
        "gpu": gpu_name(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ort_providers": onnxruntime.get_available_providers(),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """The compact subset each result row carries (flat, so it fits a CSV column each)."""
    keys = ("cpu", "gpu", "threads", "load_avg_1m", "torch", "onnxruntime", "python", "os")
    return {**{k: env[k] for k in keys}, "isa": " ".join(env["isa"])}
