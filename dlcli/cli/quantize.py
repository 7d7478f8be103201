"""`dlcli quantize`."""

from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer

from dlcli.choices import CALIBRATIONS, QUANTIZE_METHODS
from dlcli.cli._options import (
    DataDirOpt,
    DataOpt,
    ForceOpt,
    JsonOpt,
    MeasureThreadsOpt,
    QuietOpt,
    config_option,
    given_values,
)
from dlcli.cli.common import emit, make_console
from dlcli.workflows.quantize_config import QuantizeConfig

own = partial(config_option, QuantizeConfig)  # quantize's own options: declared by QuantizeConfig's fields


def quantize(
    model: Annotated[Path | None, typer.Argument(
        help="Checkpoint (.pt) or fp32 ONNX file; a run folder: its best.pt. Default: the latest run's.")] = None,
    method: Annotated[Literal[QUANTIZE_METHODS] | None, own(  # type: ignore[valid-type]
        "method", "--method")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    calib_samples: Annotated[int | None, own("calib_samples", "--calib-samples")] = None,
    calibration: Annotated[Literal[CALIBRATIONS] | None, own(  # type: ignore[valid-type]
        "calibration", "--calibration")] = None,
    per_channel: Annotated[bool | None, own("per_channel", "--per-channel/--per-tensor")] = None,
    reduce_range: Annotated[bool | None, own("reduce_range", "--reduce-range/--no-reduce-range")] = None,
    exclude: Annotated[list[str] | None, own("exclude", "--exclude")] = None,
    report_layers: Annotated[bool | None, own("report_layers", "--report-layers")] = None,
    max_accuracy_drop: Annotated[float | None, own("max_accuracy_drop", "--max-accuracy-drop")] = None,
    threads: MeasureThreadsOpt = None,
    iters: Annotated[int | None, own("iters", "--iters")] = None,
    seed: Annotated[int | None, own("seed", "--seed")] = None,
    out: Annotated[Path | None, own("out", "--out", "-o")] = None,
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
    from dlcli.runs import checkpoint_argument
    from dlcli.workflows.quantize import run

    cfg = QuantizeConfig(checkpoint_argument(model), force=force, **given_values(
        method=method, data=data, data_dir=str(data_dir) if data_dir else None, calib_samples=calib_samples,
        calibration=calibration, per_channel=per_channel, reduce_range=reduce_range,
        exclude=tuple(exclude) if exclude else None, report_layers=report_layers,
        max_accuracy_drop=max_accuracy_drop, threads=threads, iters=iters, seed=seed, out=out))
    emit(run(cfg, make_console(quiet)).to_json(), json_output)
