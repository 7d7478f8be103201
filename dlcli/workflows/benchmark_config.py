"""`BenchmarkConfig` and `Timing`, kept free of torch: `dlcli benchmark`'s options take their help text
and shown default from these field declarations (dlcli.config.option), and `dlcli --help` must not
import torch. dlcli.workflows.benchmark's `run` takes it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dlcli.config import option
from dlcli.errors import UsageError

COMPARE_ROUNDS = 3  # several artifacts: interleaved rounds, so a noisy spell on the machine hits all alike


@dataclass(frozen=True)
class Timing:
    """How the artifacts are timed (the part of `BenchmarkConfig` that `time_all` needs)."""

    batch_sizes: tuple[int, ...]
    rounds: int
    warmup: int = 10
    iters: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class BenchmarkConfig:
    artifacts: Sequence[Path]
    batch_sizes: Sequence[int] = option((1, 32), show="1,32", help="Comma list of batch sizes.")
    threads: int | None = option(None, show="all cores",
                                 help="CPU threads for PyTorch and onnxruntime while measuring.")
    """torch.set_num_threads and onnxruntime intra-op threads; None: all cores available to us."""
    warmup: int = option(Timing.warmup, help="Untimed calls before timing.")
    iters: int | None = option(None, show="100 unless --seconds", help="Timed calls per batch size and round.")
    seconds: float | None = option(
        None, help="Time budget per batch size and round (with --iters: whichever ends first).")
    device: str = "auto"
    compile: bool = option(False, help="torch.compile checkpoints before timing.")
    data: str | None = None
    data_dir: str | None = None
    csv: Path | None = option(None, help="Also write the rows to this CSV file.")
    plot: Path | None = option(None, help="Also draw accuracy (or throughput) against latency into this PNG file.")
    """PNG of accuracy (or throughput) against latency; none unless asked for."""
    force: bool = False
    rounds: int | None = option(
        None, show=f"{COMPARE_ROUNDS} with several artifacts, else 1",
        help="Repeat the timing in N rounds that alternate the artifacts, so a noisy spell on the machine hits "
        "all of them alike (--iters/--seconds apply to each round).")
    """Interleaved timing rounds (iters/seconds apply to each); None: COMPARE_ROUNDS with several
    artifacts, else 1 (see `timing`)."""

    def __post_init__(self) -> None:
        if not self.artifacts:
            raise UsageError("give at least one artifact (.pt checkpoint or .onnx file) to benchmark.")
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes):
            raise UsageError(f"--batch-size needs positive integers, got {list(self.batch_sizes)}.")
        if self.threads is not None and self.threads <= 0:
            raise UsageError(f"--threads must be positive, got {self.threads}.")
        if self.rounds is not None and self.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {self.rounds}.")

    @property
    def timing(self) -> Timing:
        rounds = self.rounds or (COMPARE_ROUNDS if len(self.artifacts) > 1 else 1)
        return Timing(tuple(self.batch_sizes), rounds, self.warmup, self.iters, self.seconds)


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError(f"--batch-size expects positive integers like 1,32, got {text!r}.")
    return sizes
