"""The machine a measurement was taken on: a number without it cannot be compared or reproduced.

The ISA flags listed are the ones that change which kernels PyTorch and onnxruntime pick (AVX-512
and VNNI/AMX matter most for int8); they come from /proc/cpuinfo on Linux.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve",
)


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware: a container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


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
