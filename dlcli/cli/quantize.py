"""`dlcli quantize`."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import DataDirOpt, DataOpt, ForceOpt, JsonOpt, MeasureThreadsOpt, QuietOpt
from dlcli.cli.common import emit, make_console
from dlcli.compress.int8_choices import CALIBRATIONS, METHODS

# The choices are the quantization module's own names (int8_choices imports neither onnx nor torch).
Method = Enum("Method", {name: name for name in METHODS}, type=str)  # type: ignore[misc]
Calibration = Enum("Calibration", {name: name for name in CALIBRATIONS}, type=str)  # type: ignore[misc]
DEFAULT_CALIBRATION = Calibration(CALIBRATIONS[0])


def quantize(
    model: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) or fp32 ONNX file; default: the latest run's best checkpoint.")] = None,
    method: Annotated[Method | None, typer.Option(
        "--method", help="static (calibrated activations; CNNs) or dynamic (linear layers: mlp, vit).",
        show_default="static if the model has Conv layers, else dynamic")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    calib_samples: Annotated[int, typer.Option(
        "--calib-samples", help="Calibration images: a seeded random subset of the training split.")] = 512,
    calibration: Annotated[Calibration, typer.Option(
        "--calibration", help="How activation ranges are chosen from the calibration data.")] = DEFAULT_CALIBRATION,
    per_channel: Annotated[bool, typer.Option(
        "--per-channel/--per-tensor", help="One weight scale per output channel, or one per tensor.")] = True,
    reduce_range: Annotated[bool | None, typer.Option(
        "--reduce-range/--no-reduce-range", help="7-bit weights, against u8s8 saturation on x86 without VNNI.",
        show_default="on only on x86 CPUs without VNNI")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Op type (e.g. Gemm) or node name to keep fp32 (repeatable); see --report-layers.")] = None,
    report_layers: Annotated[bool, typer.Option(
        "--report-layers", help="Rank layers by quantization error (SQNR) on calibration data.")] = False,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        "--max-accuracy-drop", help="Fail (exit 1, nothing written) if int8 test accuracy is more than X "
                                    "percentage points below fp32's.")] = None,
    threads: MeasureThreadsOpt = None,
    iters: Annotated[int, typer.Option("--iters", help="Timed calls per batch size and round.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the calibration subset.")] = 0,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output file (default: next to the input, <stem>.int8.onnx).")] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Quantize to an int8 ONNX file (onnxruntime), and measure it against fp32: size, test accuracy,
    latency at batch 1 and 32.

    A checkpoint is exported and verified first, as by `dlcli export`. Static quantization calibrates on
    the model's dataset (or --data); settings that depend on the CPU (reduce_range, channel padding for
    the x86 int8 kernels) are chosen for this machine and printed. If the int8 model is slower than
    fp32, a warning says so and what would help. The file's metadata records the source's hash, the
    method, the calibration set and every setting.

    \b
    Examples:
      dlcli quantize runs/train/exp/best.pt
      dlcli quantize model.onnx --data mnist --calibration percentile --max-accuracy-drop 0.3
      dlcli quantize best.pt --report-layers --exclude Gemm --json
      dlcli quantize mlp.pt --method dynamic
    """
    from dlcli.runs import latest_checkpoint
    from dlcli.workflows.quantize import QuantizeConfig, run

    cfg = QuantizeConfig(
        model=model or latest_checkpoint(), method=method.value if method else None, data=data,
        data_dir=str(data_dir) if data_dir else None, calib_samples=calib_samples, calibration=calibration.value,
        per_channel=per_channel, reduce_range=reduce_range, exclude=tuple(exclude or ()),
        report_layers=report_layers, max_accuracy_drop=max_accuracy_drop, out=out, force=force, seed=seed,
        threads=threads, iters=iters,
    )
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
