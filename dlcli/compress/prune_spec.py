"""`PruneSpec`: what to prune and how far. Kept free of torch so that `dlcli prune`'s options take their
help text and shown default from these field declarations without `dlcli --help` importing torch;
dlcli.compress.pruning re-exports it."""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.config import option
from dlcli.errors import UsageError

# channel: widths are kept multiples of this unless --round-to says otherwise. onnxruntime's fast CPU
# convolutions (NCHWc) take input channels below its SIMD block (8 or 16) or multiples of it; other
# widths fall back to a slower path: cnn widths 6/11/22/45 (0.3 pruned, unrounded) measured 1.08x
# the unpruned latency with 1 thread and 1.50x with 2, rounded to 4/12/24/44 0.84x and 0.96x
# (benchmarks/bench_cnn_widths.py, results/cnn_widths.json). GPUs' tensor cores also want multiples of 4-8.
DEFAULT_ROUND_TO = 4


@dataclass
class PruneSpec:
    """What to prune and how far; validated before any model is loaded."""

    method: str = option(help="l1-unstructured (per layer), global-unstructured (one threshold) or channel "
                         "(removes filters/neurons: a smaller, faster dense model).")
    amount: float = option(help="Fraction to remove, in (0, 1): of weights (unstructured) or of each layer's "
                           "channels (channel).")
    steps: int = option(1, help="Reach the amount in K equal rounds, with recovery training after each.")
    round_to: int | None = option(
        None, show=str(DEFAULT_ROUND_TO), help="channel: each layer keeps the multiple of N channels nearest its "
        "target (1: no rounding). Other widths can make onnxruntime's CPU kernels slower than the unpruned model's.")
    ignore: list[str] = option(factory=list, help="Module name never to prune, e.g. body.0 (repeatable). The "
                               "classifier head's outputs are never pruned.")

    def validate(self) -> PruneSpec:
        from dlcli.compress.pruning import PRUNERS

        PRUNERS.get(self.method)  # unknown names fail with a suggestion
        if not 0 < self.amount < 1:
            raise UsageError(
                f"--amount must be strictly between 0 and 1 (the fraction of weights, or for channel the "
                f"fraction of each layer's channels, to remove); got {self.amount}."
            )
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.steps}.")
        if self.round_to is not None and self.round_to < 1:
            raise UsageError(f"--round-to must be a positive channel count, got {self.round_to}.")
        if self.round_to is not None and self.method != "channel":
            raise UsageError("--round-to applies to --method channel only.")
        return self

    @property
    def channel_multiple(self) -> int | None:
        """What channel counts are rounded to (channel only): --round-to, else DEFAULT_ROUND_TO."""
        return (self.round_to or DEFAULT_ROUND_TO) if self.method == "channel" else None

    def schedule(self) -> list[float]:
        """The cumulative amount after each round: equal steps up to the target."""
        return [self.amount * k / self.steps for k in range(1, self.steps + 1)]
