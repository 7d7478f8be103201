"""How `dlcli quantize` quantizes a given model on this CPU (`Plan`), what onnxruntime then did with
it (`Outcome`), and the record of both that the int8 file carries in its metadata."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from dlcli import __version__
from dlcli.checkpoint import lineage_entry
from dlcli.compress import int8_rewrites
from dlcli.compress import quantization as q
from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.measure.environment import cpu_info


@dataclass(frozen=True)
class Plan:
    """The settings for this model on this CPU, and the rewritten graph they apply to."""

    spec: q.QuantSpec
    prepared: onnx.ModelProto
    """The fp32 graph after onnxruntime's pre-processing and `int8_rewrites` (what is quantized)."""
    rewrites: list[str]
    """What `int8_rewrites` changed, in words."""
    cpu: dict[str, Any]
    """`cpu_info()`: the CPU's name and ISA flags the settings were chosen for."""
    reduce_range_reason: str


@dataclass(frozen=True)
class Outcome:
    """What the quantized model turned out to run in fp32 or int8 against the plan's intent."""

    requantized: list[str]
    """Excluded layers onnxruntime runs in int8 anyway (see `check_exclusions`)."""
    fp32_activations: list[str]
    """Activation op types with no int8 kernel, run in fp32 between int8 layers."""


def plan_quantization(
    source: onnx.ModelProto, method: str, exclude: tuple[str, ...], calibration: str, per_channel: bool,
    reduce_range: bool | None, console: Console,
) -> Plan:
    """Settings for this model on this CPU, each said out loud; and the rewritten graph to quantize."""
    cpu = cpu_info()
    machine = platform.machine()
    chosen_range, reason = q.hardware_defaults(cpu["isa"], machine)
    if reduce_range is not None:
        chosen_range, reason = reduce_range, f"--{'' if reduce_range else 'no-'}reduce-range given"
    console.info(f"hardware: {cpu['cpu']}; {reason}")
    preprocessed = q.preprocess(source)
    op_types, nodes = q.resolve_exclusions(preprocessed, exclude, method)
    if op_types or nodes:
        console.info(f"kept fp32: {', '.join([*op_types, *nodes])}")
    x86 = method == "static" and q.is_x86(machine)  # the stem and padding rules fit MLAS's x86 kernels
    rewritten = int8_rewrites.rewrite_for_int8(preprocessed, x86_kernels=x86, keep_fp32=[*op_types, *nodes])
    for note in rewritten.notes:
        console.info(f"rewrite: {note}")
    spec = q.QuantSpec(method=method, calibration=calibration, per_channel=per_channel,
                       reduce_range=chosen_range, exclude_op_types=op_types,
                       exclude_nodes=[*nodes, *rewritten.fp32_nodes])
    return Plan(spec, rewritten.proto, rewritten.notes, cpu, reason)


def check_outcome(int8: onnx.ModelProto, plan: Plan, console: Console) -> Outcome:
    return Outcome(check_exclusions(int8, plan, console), check_activations(plan, console))


def check_exclusions(int8: onnx.ModelProto, plan: Plan, console: Console) -> list[str]:
    """Excluded layers that onnxruntime quantizes anyway when it loads the model: say so, never let
    --exclude promise an fp32 layer that runs in int8."""
    spec = plan.spec
    if not spec.exclude_nodes and not spec.exclude_op_types:
        return []
    excluded = {n.name for n in plan.prepared.graph.node
                if n.name in spec.exclude_nodes or n.op_type in spec.exclude_op_types}
    requantized = sorted(excluded & q.runtime_int8_nodes(int8))
    if requantized:
        console.warn(f"onnxruntime runs {', '.join(requantized)} in int8 anyway (per-tensor weights): its input is "
                     "int8 and its output feeds an int8 layer, so onnxruntime's WeightBiasQuantization pass "
                     "quantizes it when the model loads. To keep it fp32, also --exclude the layer after it.")
    return requantized


def check_activations(plan: Plan, console: Console) -> list[str]:
    """Say plainly which activations int8 cannot speed up (see `q.float_activations`)."""
    ops = q.float_activations(plan.prepared, plan.spec.method)
    if ops:
        console.warn(f"{', '.join(ops)} runs in fp32 between the int8 layers (onnxruntime has no int8 kernel "
                     "for it): each one dequantizes and requantizes, so expect less speed-up than with "
                     "-a activation=relu (fused into the int8 convolution) or sigmoid/silu (int8 kernels).")
    return ops


def why_method(method: str) -> str:
    if method == "static":
        return "the graph has Conv layers: calibrated int8 activations, QDQ; --method dynamic to change"
    return "no Conv layers: int8 weights, activations quantized at run time; --method static to change"


def calibration_reader(dataset: Dataset, proto: onnx.ModelProto, samples: int, seed: int) -> q.ArrayCalibrationReader:
    """A seeded subset of the *training* split, in the graph's batch size when the export fixed one."""
    x = q.calibration_samples(dataset.train.x, dataset.input_scale(), samples, seed)
    graph_input = proto.graph.input[0]
    fixed = graph_input.type.tensor_type.shape.dim[0].dim_value if graph_input.type.tensor_type.shape.dim else 0
    if fixed > 0:  # a --static-batch export: calibrate in batches of exactly its size
        return q.ArrayCalibrationReader(x, graph_input.name, batch_size=fixed, fixed_batch=True)
    return q.ArrayCalibrationReader(x, graph_input.name)


def spec_record(plan: Plan, outcome: Outcome) -> dict[str, Any]:
    """The `quantization` object of `--json` and of the int8 file's metadata (settings, not figures)."""
    spec = plan.spec
    static = spec.method == "static"
    return {**spec.to_dict(), "format": spec.quant_format.upper() if static else "dynamic",
            "activations": spec.activations if static else "uint8, quantized at run time", "weights": "int8",
            "reduce_range_reason": plan.reduce_range_reason, "rewrites": plan.rewrites,
            "excluded_but_int8_in_onnxruntime": outcome.requantized}


def int8_metadata(
    model: Path, source_meta: dict[str, Any], dataset: Dataset | None, plan: Plan, outcome: Outcome,
    calibration: dict[str, Any] | None, metrics: dict[str, Any],
) -> dict[str, Any]:
    """The fp32 model's dlcli metadata, plus how it was quantized and a lineage step naming the input."""
    meta = dict(source_meta)
    if not meta and dataset is not None:  # a foreign model: record what it was checked against
        meta = {"input_shape": dataset.input_shape, "classes": dataset.classes, "input_range": [0.0, 1.0],
                "input_dtype": "float32"}
    spec = plan.spec
    record = {**spec_record(plan, outcome), "calibration": calibration,
              "cpu": plan.cpu["cpu"], "isa": plan.cpu["isa"], "metrics": metrics}
    step = lineage_entry(
        "quantize", model, method=spec.method, calibration_set=calibration and calibration["dataset"],
        calibration_samples=calibration and calibration["samples"], calibration_method=calibration and spec.calibration,
        per_channel=spec.per_channel, reduce_range=spec.reduce_range, excluded_nodes=spec.exclude_nodes,
        excluded_op_types=spec.exclude_op_types,
    )
    return {**meta, "version": __version__, "dataset": dataset.name if dataset else meta.get("dataset"),
            "quantization": record, "lineage": [*meta.get("lineage", []), step]}
