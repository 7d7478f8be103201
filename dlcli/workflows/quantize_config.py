"""`QuantizeConfig`, kept free of torch and onnx: `dlcli quantize`'s options take their help text and
shown default from these field declarations (dlcli.config.option), and `dlcli --help` must not import
either. dlcli.workflows.quantize's `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlcli.choices import CALIBRATIONS, QUANTIZE_METHODS
from dlcli.config import option
from dlcli.errors import UsageError

LATENCY_ROUNDS = 3
REPORT_LAYERS_STATIC = "--report-layers compares calibrated (static) activations; use it with --method static."


@dataclass(frozen=True)
class QuantizeConfig:
    model: Path
    """A dlcli checkpoint (.pt) or ONNX file."""
    method: str | None = option(None, show="static if the model has Conv layers, else dynamic",
                                help="static (calibrated activations; CNNs) or dynamic (linear layers: mlp, vit).")
    """A name from dlcli.choices.QUANTIZE_METHODS."""
    data: str | None = None
    """Calibration and evaluation data; None: the dataset recorded in the model."""
    data_dir: str | None = None
    calib_samples: int = option(512, help="Calibration images: a seeded random subset of the training split.")
    calibration: str = option("minmax", help="How activation ranges are chosen from the calibration data.")
    """A name from dlcli.choices.CALIBRATIONS."""
    per_channel: bool = option(True, show="per-channel", help="One weight scale per output channel, or one per tensor.")
    reduce_range: bool | None = option(None, show="on only on x86 CPUs without VNNI",
                                       help="7-bit weights, against u8s8 saturation on x86 without VNNI.")
    exclude: tuple[str, ...] = option(
        (), show="none", help="Op type (e.g. Gemm) or node name to keep fp32 (repeatable); see --report-layers.")
    report_layers: bool = option(False, help="Rank layers by quantization error (SQNR) on calibration data.")
    max_accuracy_drop: float | None = option(None, help="Fail (exit 1, nothing written) if int8 test accuracy is "
                                             "more than X percentage points below fp32's.")
    out: Path | None = option(None, help="Output file (default: next to the input, <stem>.int8.onnx).")
    force: bool = False
    seed: int = option(0, help="Seed of the calibration subset.")
    threads: int | None = None
    """CPU threads while measuring (see dlcli.cli._options.MeasureThreadsOpt); None: all cores."""
    iters: int = option(100, help="Timed calls per batch size and round.")
    rounds: int = LATENCY_ROUNDS
    """Alternating fp32/int8 timing rounds; each latency is the p50 over all rounds' calls."""

    def __post_init__(self) -> None:
        """The one check of the method and calibration names (compress.quantization trusts them)."""
        if self.method is not None and self.method not in QUANTIZE_METHODS:
            raise UsageError(f"--method must be one of {', '.join(QUANTIZE_METHODS)}, got {self.method!r}.")
        if self.calibration not in CALIBRATIONS:
            raise UsageError(f"--calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}.")
        if self.calib_samples <= 0:
            raise UsageError(f"--calib-samples must be positive, got {self.calib_samples}.")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise UsageError(f"--max-accuracy-drop is in percentage points and cannot be negative, "
                             f"got {self.max_accuracy_drop}.")
        if self.iters <= 0 or self.rounds <= 0:
            raise UsageError(f"--iters and rounds must be positive, got {self.iters} and {self.rounds}.")
        if self.report_layers and self.method == "dynamic":  # known now: refuse before any data loads
            raise UsageError(REPORT_LAYERS_STATIC)

    @property
    def destination(self) -> Path:
        model = Path(self.model)
        return Path(self.out) if self.out is not None else model.with_name(f"{model.stem}.int8.onnx")
