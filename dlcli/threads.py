"""How many CPU threads a command computes with (`--threads`), PyTorch's and onnxruntime's alike.

The default is the cores no other process is using when the command starts, at least one. PyTorch's
own default (one thread per core) collapses when jobs share a machine: its OpenMP threads spin-wait
for each other, and a descheduled thread stalls every parallel region of the others. Measured on a
2-core machine (issue #15): two default trainings started together took 68 s, against 19 s for one
alone. Counting the runnable tasks at start is a snapshot, not a reservation: jobs started at the
same moment see each other (each is busy importing), a job started later is not seen by an earlier
one. `--threads` always wins; the README has the measurements and the recommendation.

Nothing here imports torch at module level: the CLI's option parsing imports this module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LOADAVG = Path("/proc/loadavg")
SAMPLES = 3  # a few reads a few ms apart: the running count flickers as tasks block and wake
SAMPLE_GAP_S = 0.005


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware: a container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def other_running(loadavg: Path = LOADAVG) -> int:
    """Runnable tasks on the machine besides this one (the 4th field of /proc/loadavg, "running/total",
    counts the reader itself); 0 where the kernel does not say (macOS, Windows)."""
    counts = []
    for i in range(SAMPLES):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return 0
        counts.append(max(0, running - 1))
        if i + 1 < SAMPLES:
            time.sleep(SAMPLE_GAP_S)
    return min(counts)


def default_threads(loadavg: Path = LOADAVG) -> int:
    """The cores not busy right now, at least 1 (see the module docstring)."""
    cores = available_cores()
    return max(1, min(cores, cores - other_running(loadavg)))


def resolve_threads(threads: int | None) -> int:
    """`--threads` if given (it must be positive), else `default_threads()`."""
    from dlcli.errors import UsageError

    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}.")
    return threads if threads is not None else default_threads()


def use_threads(threads: int | None) -> int:
    """Set PyTorch's intra-op threads for this process (see `resolve_threads`); returns the number, which
    the caller passes on to onnxruntime sessions."""
    import torch

    count = resolve_threads(threads)
    torch.set_num_threads(count)
    return count
