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

import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from dlcli import __version__
from dlcli.checkpoint import atomic_write, lineage_entry
from dlcli.compress import int8_rewrites
from dlcli.compress import quantization as q
from dlcli.console import Console, result
from dlcli.data.dataset import Dataset
from dlcli.errors import InputFileError, UsageError, WorkError
from dlcli.export.metadata import read_metadata, write_metadata, written_by
from dlcli.export.runtime import load_onnx, ort_session
from dlcli.measure.environment import available_cores, busy_warning, cpu_info
from dlcli.runs import check_step_output
from dlcli.threads import use_threads
from dlcli.workflows.quantize_report import BATCH_SIZES, layer_report, report, slower_batches, warn_if_slower

LATENCY_ROUNDS = 3


REPORT_LAYERS_STATIC = "--report-layers compares calibrated (static) activations; use it with --method static."


@dataclass
class QuantizeConfig:
    model: Path
    """A dlcli checkpoint (.pt) or ONNX file."""
    method: str | None = None
    """static | dynamic; None: static when the graph has Conv layers, else dynamic."""
    data: str | None = None
    """Calibration and evaluation data; None: the dataset recorded in the model."""
    data_dir: str | None = None
    calib_samples: int = 512
    calibration: str = "minmax"
    per_channel: bool = True
    reduce_range: bool | None = None
    """None: on for x86 CPUs without VNNI, else off."""
    exclude: list[str] = field(default_factory=list)
    """Op types or node names to keep fp32."""
    report_layers: bool = False
    max_accuracy_drop: float | None = None
    """Percentage points of test accuracy the int8 model may lose; more fails the command."""
    out: Path | None = None
    force: bool = False
    seed: int = 0
    threads: int | None = None
    iters: int = 100
    """Timed calls per batch size and round."""
    rounds: int = LATENCY_ROUNDS
    """Alternating fp32/int8 timing rounds; each latency is the p50 over all rounds' calls."""

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in q.METHODS:
            raise UsageError(f"--method must be one of {', '.join(q.METHODS)}, got {self.method!r}.")
        if self.calibration not in q.CALIBRATIONS:
            raise UsageError(f"--calibration must be one of {', '.join(q.CALIBRATIONS)}, got {self.calibration!r}.")
        if self.calib_samples <= 0:
            raise UsageError(f"--calib-samples must be positive, got {self.calib_samples}.")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise UsageError(f"--max-accuracy-drop is in percentage points and cannot be negative, "
                             f"got {self.max_accuracy_drop}.")
        if self.iters <= 0 or self.rounds <= 0:
            raise UsageError(f"--iters and rounds must be positive, got {self.iters} and {self.rounds}.")
        if self.report_layers and self.method == "dynamic":  # known now: refuse before any data loads
            raise UsageError(REPORT_LAYERS_STATIC)


@dataclass
class Source:
    """The fp32 ONNX model to quantize and where it came from."""

    path: Path
    """The fp32 .onnx file (a temporary export for a checkpoint)."""
    proto: onnx.ModelProto
    meta: dict[str, Any]


def run(cfg: QuantizeConfig, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    threads = use_threads(cfg.threads or available_cores())  # a measurement: every core unless told
    out = destination(cfg)
    with tempfile.TemporaryDirectory(prefix="dlcli-quantize-") as tmp:
        source, dataset = open_source(cfg, Path(tmp), console)
        method = cfg.method or q.default_method(source.proto)
        if cfg.report_layers and method != "static":
            raise UsageError(REPORT_LAYERS_STATIC)
        check_data(cfg, source, method, dataset, console)
        console.info(f"method: {method}" + ("" if cfg.method else f" ({_why_method(method)})"))
        spec, plan = plan_quantization(cfg, source, method, console)
        reader = _calibration_reader(cfg, dataset, source.proto, console) if method == "static" else None
        int8 = q.quantize(plan["prepared"], spec, reader, silent=console.quiet)
        plan["requantized"] = _check_exclusions(int8, spec, plan, console)
        plan["fp32_activations"] = _check_activations(plan["prepared"], method, console)
        metrics = measure(cfg, source, int8, dataset, threads, console)
        layers = layer_report(plan["prepared"], int8, reader, console) if cfg.report_layers else []
        write_metadata(int8, _metadata(cfg, source, dataset, spec, plan, metrics))
        _gate(cfg, metrics)
        atomic_write(out, lambda path: _save_checked(int8, path, source))
    metrics["size_bytes"] = out.stat().st_size
    metrics["size_ratio"] = metrics["size_bytes"] / metrics["size_bytes_fp32"]
    report(metrics, console)
    warn_if_slower(metrics, plan, source.proto, method, console)
    return result(
        "quantize", str(out), metrics, "cpu", time.perf_counter() - start, source=str(cfg.model), method=method,
        quantization=_spec_record(spec, plan), data=dataset.name if dataset else None,
        slower_than_fp32=slower_batches(metrics), fp32_activations=plan["fp32_activations"],
        threads=threads, layers=layers,
    )


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
        from dlcli.workflows.export import run as export

        dataset = _load_data(cfg, cfg.data or load_checkpoint(path).dataset, console)
        exported = Path(export(path, tmp / f"{path.stem}.onnx", data_dir=cfg.data_dir, force=True,
                               console=console, dataset=dataset, threads=cfg.threads)["artifact"])
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
    model = Path(cfg.model)
    out = Path(cfg.out) if cfg.out is not None else model.with_name(f"{model.stem}.int8.onnx")
    if out.exists() and out.resolve() == model.resolve():
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


def plan_quantization(
    cfg: QuantizeConfig, source: Source, method: str, console: Console
) -> tuple[q.QuantSpec, dict[str, Any]]:
    """Settings for this model on this CPU, each said out loud; and the rewritten graph to quantize."""
    cpu = cpu_info()
    machine = platform.machine()
    reduce_range, reason = q.hardware_defaults(cpu["isa"], machine)
    if cfg.reduce_range is not None:
        reduce_range, reason = cfg.reduce_range, f"--{'' if cfg.reduce_range else 'no-'}reduce-range given"
    console.info(f"hardware: {cpu['cpu']}; {reason}")
    preprocessed = q.preprocess(source.proto)
    op_types, nodes = q.resolve_exclusions(preprocessed, cfg.exclude, method)
    if op_types or nodes:
        console.info(f"kept fp32: {', '.join([*op_types, *nodes])}")
    x86 = method == "static" and q.is_x86(machine)  # the stem and padding rules fit MLAS's x86 kernels
    rewritten = int8_rewrites.rewrite_for_int8(preprocessed, x86_kernels=x86, keep_fp32=[*op_types, *nodes])
    for note in rewritten.notes:
        console.info(f"rewrite: {note}")
    spec = q.QuantSpec(method=method, calibration=cfg.calibration, per_channel=cfg.per_channel,
                       reduce_range=reduce_range, exclude_op_types=op_types,
                       exclude_nodes=[*nodes, *rewritten.fp32_nodes])
    return spec, {"prepared": rewritten.proto, "rewrites": rewritten.notes, "cpu": cpu,
                  "reduce_range_reason": reason, "user_excluded_nodes": nodes}


def _check_exclusions(
    int8: onnx.ModelProto, spec: q.QuantSpec, plan: dict[str, Any], console: Console
) -> list[str]:
    """Excluded layers that onnxruntime quantizes anyway when it loads the model: say so, never let
    --exclude promise an fp32 layer that runs in int8."""
    if not spec.exclude_nodes and not spec.exclude_op_types:
        return []
    excluded = {n.name for n in plan["prepared"].graph.node
                if n.name in spec.exclude_nodes or n.op_type in spec.exclude_op_types}
    requantized = sorted(excluded & q.runtime_int8_nodes(int8))
    if requantized:
        console.warn(f"onnxruntime runs {', '.join(requantized)} in int8 anyway (per-tensor weights): its input is "
                     "int8 and its output feeds an int8 layer, so onnxruntime's WeightBiasQuantization pass "
                     "quantizes it when the model loads. To keep it fp32, also --exclude the layer after it.")
    return requantized


def _check_activations(prepared: onnx.ModelProto, method: str, console: Console) -> list[str]:
    """Say plainly which activations int8 cannot speed up (see `q.float_activations`)."""
    ops = q.float_activations(prepared, method)
    if ops:
        console.warn(f"{', '.join(ops)} runs in fp32 between the int8 layers (onnxruntime has no int8 kernel "
                     "for it): each one dequantizes and requantizes, so expect less speed-up than with "
                     "-a activation=relu (fused into the int8 convolution) or sigmoid/silu (int8 kernels).")
    return ops


def _why_method(method: str) -> str:
    if method == "static":
        return "the graph has Conv layers: calibrated int8 activations, QDQ; --method dynamic to change"
    return "no Conv layers: int8 weights, activations quantized at run time; --method static to change"


def _calibration_reader(
    cfg: QuantizeConfig, dataset: Dataset | None, proto: onnx.ModelProto, console: Console
) -> q.ArrayCalibrationReader:
    assert dataset is not None  # check_data refuses static quantization without data
    x = q.calibration_samples(dataset.train.x, dataset.input_scale(), cfg.calib_samples, cfg.seed)
    console.info(f"calibration: {len(x)} samples of {dataset.name} (train split, seed {cfg.seed}), "
                 f"{cfg.calibration} ranges, {'per-channel' if cfg.per_channel else 'per-tensor'} weights")
    graph_input = proto.graph.input[0]
    fixed = graph_input.type.tensor_type.shape.dim[0].dim_value if graph_input.type.tensor_type.shape.dim else 0
    if fixed > 0:  # a --static-batch export: calibrate in batches of exactly its size
        return q.ArrayCalibrationReader(x, graph_input.name, batch_size=fixed, fixed_batch=True)
    return q.ArrayCalibrationReader(x, graph_input.name)


def measure(
    cfg: QuantizeConfig, source: Source, int8: onnx.ModelProto, dataset: Dataset | None, threads: int,
    console: Console,
) -> dict[str, Any]:
    """Test accuracy, size and latency of both models; *_fp32 keys are the source's."""
    sessions = {"_fp32": ort_session(source.path, threads), "": _int8_session(int8, threads)}
    metrics: dict[str, Any] = {"size_bytes": int8.ByteSize(), "size_bytes_fp32": source.path.stat().st_size}
    if dataset is not None:
        metrics.update(_accuracy(sessions, dataset, console))
    metrics.update(_latency(sessions, dataset, cfg.iters, cfg.rounds, threads, console))
    return metrics


def _int8_session(int8: onnx.ModelProto, threads: int) -> Any:
    try:
        return ort_session(int8.SerializeToString(), threads)
    except InputFileError as exc:  # our own output: a failed quantization, not a bad input
        raise WorkError(f"the quantized model does not load in onnxruntime: {exc}") from None


def _accuracy(sessions: dict[str, Any], dataset: Dataset, console: Console) -> dict[str, Any]:
    import torch

    from dlcli.workflows.evaluate import evaluation_split
    from dlcli.workflows.evaluate_onnx import onnx_metrics

    split = evaluation_split(dataset, torch.device("cpu"), console)
    found = {key: onnx_metrics(session, split) for key, session in sessions.items()}
    drop = (found["_fp32"]["accuracy"] - found[""]["accuracy"]) * 100
    return {"accuracy": found[""]["accuracy"], "accuracy_fp32": found["_fp32"]["accuracy"],
            "accuracy_drop_pp": drop, "loss": found[""]["loss"], "loss_fp32": found["_fp32"]["loss"],
            "samples": found[""]["samples"]}


def _latency(
    sessions: dict[str, Any], dataset: Dataset | None, iters: int, rounds: int, threads: int, console: Console
) -> dict[str, Any]:
    """p50 latency per batch size over all timed calls of the alternating rounds."""
    from dlcli.measure.runners import alternating_p50, onnx_runner

    runners = {key: onnx_runner(session) for key, session in sessions.items()}
    shape = [d or 1 for d in sessions[""].get_inputs()[0].shape[1:]]
    pool = None
    if dataset is not None:
        pool = dataset.model_inputs(512)
        shape = list(pool.shape[1:])
    console.info(f"latency: onnxruntime CPU, {threads} threads, p50 of {iters} calls x {rounds} rounds "
                 "alternating fp32 and int8")
    warning = busy_warning()
    if warning:
        console.warn(f"{warning} Compare with `dlcli benchmark` later.")
    metrics: dict[str, Any] = alternating_p50(runners, shape, list(BATCH_SIZES), rounds, iters=iters, pool=pool)
    for batch_size in BATCH_SIZES:
        if f"latency_ms_b{batch_size}" in metrics:  # a fixed-batch export runs only at its own batch size
            metrics[f"speedup_b{batch_size}"] = metrics[f"latency_ms_b{batch_size}_fp32"] / metrics[
                f"latency_ms_b{batch_size}"]
    return metrics


def _spec_record(spec: q.QuantSpec, plan: dict[str, Any]) -> dict[str, Any]:
    static = spec.method == "static"
    return {**spec.to_dict(), "format": spec.quant_format.upper() if static else "dynamic",
            "activations": spec.activations if static else "uint8, quantized at run time", "weights": "int8",
            "reduce_range_reason": plan["reduce_range_reason"], "rewrites": plan["rewrites"],
            "excluded_but_int8_in_onnxruntime": plan.get("requantized", [])}


def _metadata(
    cfg: QuantizeConfig, source: Source, dataset: Dataset | None, spec: q.QuantSpec, plan: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The fp32 model's dlcli metadata, plus how it was quantized and a lineage step naming the input."""
    meta = dict(source.meta)
    if not meta and dataset is not None:  # a foreign model: record what it was checked against
        meta = {"input_shape": dataset.input_shape, "classes": dataset.classes, "input_range": [0.0, 1.0],
                "input_dtype": "float32"}
    calibration = None
    if spec.method == "static" and dataset is not None:
        calibration = {"dataset": dataset.name, "split": "train", "samples": min(cfg.calib_samples, len(dataset.train)),
                       "seed": cfg.seed, "method": spec.calibration}
    record = {**_spec_record(spec, plan), "calibration": calibration,
              "cpu": plan["cpu"]["cpu"], "isa": plan["cpu"]["isa"],
              "metrics": {k: v for k, v in metrics.items() if k != "size_bytes"}}
    step = lineage_entry(
        "quantize", cfg.model, method=spec.method, calibration_set=calibration and calibration["dataset"],
        calibration_samples=calibration and calibration["samples"], calibration_method=calibration and spec.calibration,
        per_channel=spec.per_channel, reduce_range=spec.reduce_range, excluded_nodes=spec.exclude_nodes,
        excluded_op_types=spec.exclude_op_types,
    )
    return {**meta, "version": __version__, "dataset": dataset.name if dataset else meta.get("dataset"),
            "quantization": record, "lineage": [*meta.get("lineage", []), step]}


def _gate(cfg: QuantizeConfig, metrics: dict[str, Any]) -> None:
    if cfg.max_accuracy_drop is None:
        return
    if "accuracy" not in metrics:
        raise UsageError("--max-accuracy-drop needs test data to measure accuracy: pass --data NAME.")
    drop = metrics["accuracy_drop_pp"]
    if drop > cfg.max_accuracy_drop:
        raise WorkError(
            f"int8 accuracy {metrics['accuracy']:.2%} is {drop:.2f} percentage points below fp32's "
            f"{metrics['accuracy_fp32']:.2%} (allowed {cfg.max_accuracy_drop:g}); nothing was written. "
            "Try --report-layers and --exclude the worst layers, --calibration percentile or entropy, "
            "or more --calib-samples."
        )


def _save_checked(proto: onnx.ModelProto, path: str, source: Source) -> None:
    from dlcli.export.verify import check_model_file

    onnx.save_model(proto, path)
    num_classes = len(source.meta["classes"]) if source.meta.get("classes") else None
    check_model_file(path, num_classes)
