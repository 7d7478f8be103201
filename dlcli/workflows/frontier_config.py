"""`FrontierConfig`, kept free of torch: `dlcli frontier`'s options take their help text and shown
default from these field declarations (dlcli.config.option), and `dlcli --help` must not import
torch. dlcli.workflows.frontier's `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlcli.config import option
from dlcli.errors import UsageError
from dlcli.workflows.frontier_rules import DEFAULT_VARIANTS, VARIANT_FORMS, Gates, Variant, parse_variants

BATCH_SIZES = (1, 32)


@dataclass(frozen=True)
class FrontierConfig:
    checkpoint: Path
    """The parent: a dlcli checkpoint (.pt)."""
    out: Path | None = option(None, show="frontier/ next to the model", help="Folder for the variants and reports.")
    data: str | None = None
    """Data for recovery, distillation, calibration and accuracy; None: the checkpoint's dataset."""
    data_dir: str | None = None
    variants: tuple[str, ...] = option(
        DEFAULT_VARIANTS, show=", ".join(DEFAULT_VARIANTS),
        help=f"Comma list of variants: {VARIANT_FORMS}. fp32, the reference, is always built.")
    recover_epochs: float = option(
        1, help="Recovery epochs after pruning (0: none), and the distilled student's epochs.")
    train_samples: int | None = option(
        None, help="Recovery and distillation on a balanced subset of N samples (quick tries).")
    seed: int = option(0, help="Seed of training, subsets and calibration.")
    threads: int | None = option(None, show="all cores", help="onnxruntime threads for every measurement.")
    latency_batch: int = option(32, help=f"Batch size ({' or '.join(map(str, BATCH_SIZES))}) whose p50 latency the "
                                "Pareto marking and --max-latency-ms use.")
    warmup: int = 10
    iters: int = option(100, help="Timed calls per variant, batch size and round.")
    rounds: int = option(3, help="Timing rounds in which all variants alternate.")
    gates: Gates = field(default_factory=Gates)
    force: bool = False
    verbose: bool = option(False, help="Show each step's own output (training progress, its tables).")

    def __post_init__(self) -> None:
        chosen = self.parsed_variants()  # unknown names fail before any work
        if self.recover_epochs < 0:
            raise UsageError(f"--recover-epochs must be 0 or more, got {self.recover_epochs}.")
        if self.recover_epochs == 0 and any(v.base == "distill" for v in chosen):
            raise UsageError("the distilled variant trains a student: --recover-epochs must be at least 1 "
                             "(or drop `distilled` from --variants).")
        if self.latency_batch not in BATCH_SIZES:
            raise UsageError(f"--latency-batch must be one of the measured batch sizes "
                             f"{', '.join(map(str, BATCH_SIZES))}, got {self.latency_batch}.")
        for flag, value in (("--iters", self.iters), ("--rounds", self.rounds)):
            if value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}.")
        if self.warmup < 0 or (self.threads is not None and self.threads < 1):
            raise UsageError("--warmup must be 0 or more and --threads positive.")
        if self.train_samples is not None and self.train_samples < 1:
            raise UsageError(f"--train-samples must be positive, got {self.train_samples}.")

    def parsed_variants(self) -> list[Variant]:
        return parse_variants(self.variants)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.checkpoint).parent / "frontier"
