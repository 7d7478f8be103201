"""`dlcli quantize`: a checkpoint or fp32 ONNX file -> an int8 ONNX file, measured against its fp32 source.

A checkpoint is first exported with `dlcli export`'s workflow (verified against PyTorch) to a
temporary file. The int8 model comes from `dlcli.compress.quantization` (onnxruntime.quantization);
static quantization calibrates on a seeded subset of the *training* split of the model's dataset.

Before anything is written, both models are evaluated on the test split (the `dlcli eval` path) and
timed at batch 1 and 32 with the `dlcli benchmark` harness, in alternating rounds so a machine that
gets busier part-way affects both alike. `--max-accuracy-drop` failing writes nothing (exit 1): a
file at the destination is always one that passed. A slower int8 model is written, with a warning
that says so and what would help, and `slower_than_fp32` in the result.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import onnx

from dlcli.compress import quantization as q
from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.errors import InputFileError, UsageError
from dlcli.export.metadata import read_metadata, write_metadata, written_by
from dlcli.export.runtime import load_onnx
from dlcli.measure.environment import available_cores
from dlcli.runs import atomic_write, check_step_output
from dlcli.threads import use_threads
from dlcli.workflows.quantize_config import REPORT_LAYERS_STATIC, QuantizeConfig
from dlcli.workflows.quantize_measure import Comparison, gate, measure
from dlcli.workflows.quantize_plan import (
    Outcome,
    Plan,
    calibration_reader,
    check_outcome,
    int8_metadata,
    plan_quantization,
    spec_record,
    why_method,
)
from dlcli.workflows.quantize_report import layer_report, report, slower_batches, warn_if_slower
from dlcli.workflows.result import CommandResult, not_in_json


@dataclass
class QuantizeResult(CommandResult):
    """`dlcli quantize --json`: command, artifact (the int8 file), metrics (the int8 figures under plain
    keys and the source's under `_fp32` keys, see `Comparison.to_metrics`), device, seconds, source,
    method, quantization (the settings, as the file's metadata records them), data, slower_than_fp32,
    fp32_activations, threads, layers."""

    command: ClassVar[str] = "quantize"
    source: str
    method: str
    quantization: dict[str, Any]
    data: str | None
    slower_than_fp32: list[int]
    fp32_activations: list[str]
    threads: int
    layers: list[dict[str, Any]]
    found: Comparison = not_in_json()
    """The fp32-vs-int8 measurement (speedup(batch), accuracy_drop_pp, ...), for Python callers."""

    @classmethod
    def build(cls, artifact: Path, source: Path, method: str, found: Comparison, plan: Plan, outcome: Outcome,
              data: str | None, threads: int, layers: list[dict[str, Any]], seconds: float) -> QuantizeResult:
        return cls(str(artifact), found.to_metrics(), "cpu", seconds, str(source), method,
                   spec_record(plan, outcome), data, slower_batches(found), outcome.fp32_activations, threads,
                   layers, found=found)


@dataclass(frozen=True)
class Source:
    """The fp32 ONNX model to quantize and where it came from."""

    path: Path
    """The fp32 .onnx file (a temporary export for a checkpoint)."""
    proto: onnx.ModelProto
    meta: dict[str, Any]


def run(cfg: QuantizeConfig, console: Console) -> QuantizeResult:
    start = time.perf_counter()
    threads = use_threads(cfg.threads or available_cores())  # a measurement: every core unless told
    out = destination(cfg)
    with tempfile.TemporaryDirectory(prefix="dlcli-quantize-") as tmp:
        source, dataset = open_source(cfg, Path(tmp), console)
        method = choose_method(cfg, source, dataset, console)
        plan = plan_quantization(source.proto, method, cfg.exclude, cfg.calibration, cfg.per_channel,
                                 cfg.reduce_range, console)
        reader = _calibration(cfg, dataset, source.proto, console) if method == "static" else None
        int8 = q.quantize(plan.prepared, plan.spec, reader, silent=console.quiet)
        outcome = check_outcome(int8, plan, console)
        found = measure(source.path, int8, dataset, cfg.iters, cfg.rounds, threads, console)
        layers = layer_report(plan.prepared, int8, reader, console) if cfg.report_layers else []
        write_metadata(int8, int8_metadata(cfg.model, source.meta, dataset, plan, outcome,
                                           _calibration_record(cfg, plan, dataset),
                                           found.to_metrics(with_int8_size=False)))
        gate(found, cfg.max_accuracy_drop)
        atomic_write(out, lambda path: _save_checked(int8, path, source))
    found = found.with_int8_size(out.stat().st_size)
    report(found, console)
    warn_if_slower(found, plan, source.proto, console)
    return QuantizeResult.build(out, cfg.model, method, found, plan, outcome, dataset.name if dataset else None,
                                threads, layers, time.perf_counter() - start)


def choose_method(cfg: QuantizeConfig, source: Source, dataset: Dataset | None, console: Console) -> str:
    """--method, else static for a graph with Conv layers; checked against the data there is."""
    method = cfg.method or q.default_method(source.proto)
    if cfg.report_layers and method != "static":
        raise UsageError(REPORT_LAYERS_STATIC)
    check_data(cfg, source, method, dataset, console)
    console.info(f"method: {method}" + ("" if cfg.method else f" ({why_method(method)})"))
    return method


def open_source(cfg: QuantizeConfig, tmp: Path, console: Console) -> tuple[Source, Dataset | None]:
    """An .onnx file as it is; a checkpoint exported (and verified) to a temporary .onnx file first.
    With it the data for calibration (train split) and evaluation (test split): --data, else the
    dataset the model records. It is loaded before exporting, so missing data fails before any
    work, and the export verifies on it rather than reading it a second time."""
    path = Path(cfg.model)
    if not path.exists():
        raise InputFileError(f"model not found: {path}")
    if path.suffix.lower() != ".onnx":
        from dlcli.checkpoint import load_checkpoint
        from dlcli.workflows.export import export_verified
        from dlcli.workflows.export_config import ExportConfig

        dataset = _load_data(cfg, cfg.data or load_checkpoint(path).dataset, console)
        export = ExportConfig(path, tmp / f"{path.stem}.onnx", data_dir=cfg.data_dir, force=True, threads=cfg.threads)
        exported = Path(export_verified(export, console, dataset).artifact)
        proto = load_onnx(exported)
        return Source(exported, proto, read_metadata(proto)), dataset
    proto = load_onnx(path)
    meta = read_metadata(proto)
    if not meta:
        console.warn(f"{path} has no dlcli metadata: quantizing it as a foreign ONNX model "
                     "(inputs taken as float32 in [0, 1], from --data).")
    return Source(path, proto, meta), _load_data(cfg, cfg.data or meta.get("dataset"), console)


def _load_data(cfg: QuantizeConfig, spec: str | None, console: Console) -> Dataset | None:
    from dlcli.workflows.preparation import load_data

    return load_data(spec, cfg.data_dir, console) if spec else None


def destination(cfg: QuantizeConfig) -> Path:
    """--out, or `<stem>.int8.onnx` next to the input; never the input itself, never a foreign file."""
    out = cfg.destination
    if out.exists() and out.resolve() == Path(cfg.model).resolve():
        raise UsageError(f"--out {out} is the input model itself; give another file name.")
    return check_step_output(out, cfg.force, "quantize", written_by)


def check_data(
    cfg: QuantizeConfig, source: Source, method: str, dataset: Dataset | None, console: Console
) -> None:
    """Static quantization without data is an error; dynamic quantization then skips the accuracy
    check. Data the model was not built for is refused."""
    if dataset is None:
        if method == "static":
            raise UsageError(f"static quantization needs calibration data and {cfg.model} records no dataset: "
                             "pass --data NAME (the data it was trained on), or use --method dynamic.")
        console.warn("no dataset recorded and no --data: quantizing without measuring accuracy.")
        return
    from dlcli.workflows.evaluate import check_compatible
    from dlcli.workflows.evaluate_onnx import signature

    shape, classes = signature(source.proto, source.meta)
    check_compatible(dataset, shape or dataset.input_shape, classes or dataset.classes, Path(cfg.model))


def _calibration(
    cfg: QuantizeConfig, dataset: Dataset | None, proto: onnx.ModelProto, console: Console
) -> q.ArrayCalibrationReader:
    assert dataset is not None  # check_data refuses static quantization without data
    reader = calibration_reader(dataset, proto, cfg.calib_samples, cfg.seed)
    console.info(f"calibration: {len(reader.x)} samples of {dataset.name} (train split, seed {cfg.seed}), "
                 f"{cfg.calibration} ranges, {'per-channel' if cfg.per_channel else 'per-tensor'} weights")
    return reader


def _calibration_record(cfg: QuantizeConfig, plan: Plan, dataset: Dataset | None) -> dict[str, Any] | None:
    if plan.spec.method != "static" or dataset is None:
        return None
    return {"dataset": dataset.name, "split": "train", "samples": min(cfg.calib_samples, len(dataset.train)),
            "seed": cfg.seed, "method": plan.spec.calibration}


def _save_checked(proto: onnx.ModelProto, path: str, source: Source) -> None:
    from dlcli.export.verify import check_model_file

    onnx.save_model(proto, path)
    num_classes = len(source.meta["classes"]) if source.meta.get("classes") else None
    check_model_file(path, num_classes)
