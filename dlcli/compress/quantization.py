"""Post-training int8 quantization of an ONNX model with `onnxruntime.quantization`: ModelProto in,
ModelProto out, plus the calibration reader that feeds it and a per-layer error report.

onnxruntime's quantization API reads and writes model files, so these transforms use a private
temporary folder; nothing else is touched. The defaults, and why (measured with onnxruntime 1.32 on
an AVX-512-VNNI CPU with 2 threads; benchmarks/bench_quantize.py has the numbers):

- Static QDQ with uint8 activations and per-channel int8 weights: onnxruntime fuses every
  DQ -> op -> Q group into QLinearConv / QLinearAdd / QGemm and runs the int8 convolutions in NHWC.
- `int8_rewrites.rewrite_for_int8` rewrites the fp32 graph, without changing its function, so that
  onnxruntime can use its fast int8 kernels: convolutions are zero-padded to channel counts MLAS's
  symmetric int8 convolution accepts (the grayscale stem conv was 3-12x slower than fp32 without it,
  the main reason small int8 ConvNets lost), and a ReduceMean global pool becomes GlobalAveragePool
  (it then stays int8 instead of transposing and dequantizing the last feature map).
- `reduce_range` (7-bit weights) only on x86 CPUs without VNNI, where the u8s8 kernels (VPMADDUBSW)
  can saturate; VNNI and ARM kernels do not (`hardware_defaults`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from dlcli.compress.int8_rewrites import WEIGHTED_OPS
from dlcli.errors import UsageError

# Keyed by dlcli.choices.CALIBRATIONS (tests/test_contract_compress.py checks they agree).
_CALIBRATORS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}
CALIBRATION_BATCH = 64
LOSSLESS_DB = 200.0  # float32 round-off gives ~140 dB; above this a tensor passed through exactly


@dataclass
class QuantSpec:
    """How to quantize. Defaults suit a CNN on an x86 CPU with VNNI; `hardware_defaults` adapts them."""

    method: str = "static"
    """static (calibrated activation ranges, QDQ) or dynamic (weights int8, activations at run time)."""
    calibration: str = "minmax"
    """minmax, entropy or percentile (static only)."""
    per_channel: bool = True
    reduce_range: bool = False
    """7-bit weights: avoids u8s8 saturation on x86 without VNNI."""
    exclude_op_types: list[str] = field(default_factory=list)
    exclude_nodes: list[str] = field(default_factory=list)
    activations: str = "uint8"
    """uint8 or int8 activations (static); weights are always int8."""
    quant_format: str = "qdq"
    """qdq (QuantizeLinear/DequantizeLinear pairs, fused by onnxruntime) or qoperator (QLinearConv ...)."""
    extra_options: dict[str, Any] = field(default_factory=dict)
    """onnxruntime `quantize_static` extra_options (ActivationSymmetric, ...)."""

    def __post_init__(self) -> None:
        """method and calibration are user input, checked once where they enter: QuantizeConfig
        (dlcli.workflows.quantize_config), before any data loads."""
        if self.activations not in ("uint8", "int8") or self.quant_format not in ("qdq", "qoperator"):
            raise UsageError(f"unsupported activations/format {self.activations}/{self.quant_format}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds float32 inputs to onnxruntime's calibrator in batches; `rewind` starts over, so the same
    reader serves calibration and the per-layer error report."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int = CALIBRATION_BATCH,
                 fixed_batch: bool = False) -> None:
        """`fixed_batch`: the graph takes exactly `batch_size` rows (an export with --static-batch), so
        a shorter last batch is dropped instead of being refused by onnxruntime."""
        if fixed_batch:
            x = x[: len(x) - len(x) % batch_size]
        if len(x) == 0:
            raise UsageError("no calibration samples: static quantization needs data (--data, --calib-samples).")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.input_name = input_name
        self.batch_size = batch_size
        self._batches: Iterator[np.ndarray] = iter(())
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._batches = (self.x[i : i + self.batch_size] for i in range(0, len(self.x), self.batch_size))

    def __len__(self) -> int:
        return len(self.x)


def calibration_samples(x: np.ndarray, scale: float, count: int, seed: int = 0) -> np.ndarray:
    """A seeded random subset of `count` rows of `x` (a training split's stored values), as float32
    model inputs (`x * scale`, e.g. uint8 pixels / 255 -> [0, 1]). All rows when `count` >= len(x)."""
    if count <= 0:
        raise UsageError(f"--calib-samples must be positive, got {count}.")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(x), size=min(count, len(x)), replace=False))
    return np.asarray(x[index], dtype=np.float32) * np.float32(scale)


def has_vnni(isa: Sequence[str]) -> bool:
    """VNNI-class int8 dot products (x86 AVX-512 VNNI, AVX-VNNI or AMX; ARM dot product)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(isa))


def hardware_defaults(isa: Sequence[str], machine: str) -> tuple[bool, str]:
    """(reduce_range, reason) for this CPU: 7-bit weights only on x86 without VNNI."""
    if not is_x86(machine):
        return False, f"{machine}: int8 kernels do not saturate; full 8-bit weights (reduce_range off)"
    if has_vnni(isa):
        found = ", ".join(f for f in isa if f in ("avx512_vnni", "avx_vnni", "amx_int8"))
        return False, f"CPU has VNNI-class int8 instructions ({found}): full 8-bit weights (reduce_range off)"
    return True, ("CPU has no VNNI (no avx512_vnni/avx_vnni/amx): 7-bit weights (reduce_range on) to avoid "
                  "u8s8 saturation in the AVX2/AVX-512 kernels")


def has_op(proto: onnx.ModelProto, op_type: str) -> bool:
    return any(node.op_type == op_type for node in proto.graph.node)


def nodes_of_type(proto: onnx.ModelProto, op_type: str) -> list[str]:
    """The names of the graph's `op_type` nodes, in graph order: what `--exclude NODE` takes. The
    exporter numbers its nodes (`node_Conv_68`) by its own internal counter, which changes with the
    model's configuration and the torch version, so code and tests look names up with this rather
    than writing them down."""
    return [node.name for node in proto.graph.node if node.op_type == op_type]


def default_method(proto: onnx.ModelProto) -> str:
    """static for graphs with convolutions (CNNs), dynamic for graphs of linear layers (mlp)."""
    return "static" if has_op(proto, "Conv") else "dynamic"


def quantizable_op_types(method: str) -> list[str]:
    """Every op type onnxruntime can quantize with this method (the set --exclude removes from)."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry

    if method == "dynamic":
        return sorted(set(IntegerOpsRegistry) | {"Gemm"})
    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


# Element-wise activations a model argument can choose (dlcli.models.activations), as ONNX ops.
ACTIVATION_OPS = ("Relu", "Gelu", "Erf", "Tanh", "Sigmoid")


def float_activations(proto: onnx.ModelProto, method: str) -> list[str]:
    """Activation op types of `proto` that static int8 leaves in fp32 (no int8 kernel in onnxruntime:
    Gelu, Tanh), each costing a dequantize and a quantize between int8 layers. Relu fuses into the int8
    convolution and Sigmoid has QLinearSigmoid; dynamic quantization keeps every activation fp32 by
    design, so there is nothing to report for it."""
    if method != "static":
        return []
    quantizable = set(quantizable_op_types(method))
    present = {n.op_type for n in proto.graph.node}
    return [op for op in ACTIVATION_OPS if op in present and op not in quantizable]


def resolve_exclusions(proto: onnx.ModelProto, items: Sequence[str], method: str) -> tuple[list[str], list[str]]:
    """Split `--exclude` values into (op types, node names): a node name wins, then an op type found in
    the graph or quantizable by onnxruntime; anything else is a usage error naming close matches."""
    import difflib

    names = [n.name for n in proto.graph.node]
    graph_ops = {n.op_type for n in proto.graph.node}
    known_ops = graph_ops | set(quantizable_op_types(method))
    op_types, nodes = [], []
    for item in items:
        if item in names:
            nodes.append(item)
        elif item in known_ops:
            op_types.append(item)
        else:
            close = difflib.get_close_matches(item, [*sorted(graph_ops), *names], n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UsageError(f"--exclude {item!r} is neither an op type nor a node name in this model.{hint} "
                             f"Op types here: {', '.join(sorted(graph_ops))}; see --report-layers for node names.")
    return op_types, nodes


@contextlib.contextmanager
def _quiet(silent: bool = False) -> Iterator[None]:
    """onnxruntime's quantization tools log warnings on the root logger (per-channel axis notes,
    pre-processing advice) and print progress (the percentile/entropy calibrators): keep both off our
    stdout and out of the user's way; `silent` (--quiet) drops the progress prints altogether."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") if silent else contextlib.nullcontext(sys.stderr) as sink:
            with contextlib.redirect_stdout(sink):
                yield
    finally:
        root.setLevel(level)


def preprocess(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime's quantization pre-processing: graph optimization and ONNX shape inference."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="dlcli-quantize-") as tmp:
        source, out = Path(tmp) / "fp32.onnx", Path(tmp) / "preprocessed.onnx"
        onnx.save_model(proto, str(source))
        # Symbolic shape inference crashes on dynamo-exported graphs and only helps transformers.
        with _quiet():
            quant_pre_process(str(source), str(out), skip_symbolic_shape=True)
        return onnx.load_model(str(out))


def quantize(
    proto: onnx.ModelProto, spec: QuantSpec, calibration: ArrayCalibrationReader | None = None,
    silent: bool = False,
) -> onnx.ModelProto:
    """The int8 model of `proto` (a graph from `preprocess`/`rewrite_for_int8`); metadata_props are the
    caller's to write. `silent`: drop onnxruntime's progress prints (--quiet)."""
    op_types = [t for t in quantizable_op_types(spec.method) if t not in set(spec.exclude_op_types)]
    with tempfile.TemporaryDirectory(prefix="dlcli-quantize-") as tmp:
        source, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(proto, str(source))
        with _quiet(silent):
            _run_quantizer(spec, source, out, op_types, calibration)
        return onnx.load_model(str(out))


def _run_quantizer(
    spec: QuantSpec, source: Path, out: Path, op_types: list[str], calibration: ArrayCalibrationReader | None
) -> None:
    if spec.method == "dynamic":
        quantize_dynamic(source, out, op_types_to_quantize=op_types, per_channel=spec.per_channel,
                         reduce_range=spec.reduce_range, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(spec.exclude_nodes))
        return
    if calibration is None:
        raise UsageError("static quantization needs calibration data: pass --data NAME "
                         "(or --method dynamic, which needs none).")
    calibration.rewind()
    quantize_static(
        source, out, calibration, op_types_to_quantize=op_types,
        quant_format=QuantFormat.QDQ if spec.quant_format == "qdq" else QuantFormat.QOperator,
        per_channel=spec.per_channel, reduce_range=spec.reduce_range,
        activation_type=QuantType.QUInt8 if spec.activations == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=list(spec.exclude_nodes),
        calibrate_method=_CALIBRATORS[spec.calibration], extra_options=dict(spec.extra_options),
    )


def runtime_int8_nodes(proto: onnx.ModelProto) -> set[str]:
    """Names of the nodes onnxruntime runs as int8 kernels once it has optimized `proto` (QDQ groups
    fused into QLinearConv, QGemm, ...). A node excluded from quantization can still be among them:
    onnxruntime's WeightBiasQuantization pass quantizes a float Conv/Gemm whose input is dequantized
    and whose output path leads to a QuantizeLinear."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="dlcli-ort-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # keeps node names
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load_model(options.optimized_model_filepath)
    int8_ops = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize")
    return {n.name for n in optimized.graph.node if n.op_type.startswith(int8_ops)}


def layer_errors(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, calibration: ArrayCalibrationReader
) -> list[dict[str, Any]]:
    """Per quantized activation, worst first: `sqnr_db`, the signal-to-quantization-noise ratio (dB;
    lower is worse) of quantizing that tensor alone, and `sqnr_vs_fp32_db`, the int8 model's value
    against the fp32 model's (it accumulates the error of every layer before it). `layer` is the node
    to --exclude to keep it fp32: the Conv/Gemm/MatMul whose output it is, through a fused Relu.

    Uses onnxruntime's qdq_loss_debug: both graphs are augmented to output every activation and run
    on the calibration samples (unfused QDQ graph: quantization error, not kernel differences)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory(prefix="dlcli-layers-") as tmp:
        acts = {}
        for key, model in (("fp32", fp32), ("int8", int8)):
            path, augmented = Path(tmp) / f"{key}.onnx", Path(tmp) / f"{key}.aug.onnx"
            onnx.save_model(model, str(path))
            modify_model_output_intermediate_tensors(str(path), str(augmented))
            calibration.rewind()
            acts[key] = collect_activations(str(augmented), calibration)
    producers = {out: node for node in fp32.graph.node for out in node.output}
    rows = []
    for tensor, match in create_activation_matching(acts["int8"], acts["fp32"]).items():
        node = producers.get(tensor)
        pre, post = list(match["pre_qdq"]), list(match["post_qdq"])
        if node is not None and node.op_type == "Relu":
            # The quantizer folds a Relu into the quantization of its input (zero point 0 clamps), so
            # the tensor before Q is the pre-activation: compare its Relu with the int8 value.
            pre = [np.maximum(a, 0) for a in pre]
        float_values = match.get("float")
        rows.append({
            "tensor": tensor, "node": node.name if node is not None else tensor,
            "op_type": node.op_type if node is not None else "input", "layer": _layer_of(node, producers),
            "sqnr_db": _finite(compute_signal_to_quantization_noice_ratio(pre, post)),
            "sqnr_vs_fp32_db": _finite(compute_signal_to_quantization_noice_ratio(float_values, post))
            if float_values else None,
        })
    return sorted(rows, key=lambda r: r["sqnr_db"] if r["sqnr_db"] is not None else float("inf"))


def _layer_of(node: onnx.NodeProto | None, producers: dict[str, onnx.NodeProto]) -> str | None:
    """The Conv/Gemm/MatMul a Relu or Clip belongs to (the quantizer fuses them away), also through a
    MaxPool (dlcli's cnn pools before a monotonic activation); any other node is its own layer."""
    if node is None:
        return None
    if node.op_type not in ("Relu", "Clip"):
        return node.name
    parent = producers.get(node.input[0])
    if parent is not None and parent.op_type == "MaxPool":
        parent = producers.get(parent.input[0])
    return parent.name if parent is not None and parent.op_type in WEIGHTED_OPS else node.name


def _finite(value: float) -> float | None:
    """SQNR of a lossless tensor is ~300 dB (float epsilon); report values, not that artefact."""
    return float(value) if np.isfinite(value) and value < LOSSLESS_DB else None


def is_x86(machine: str) -> bool:
    return machine.lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def conv_widths(proto: onnx.ModelProto) -> list[int]:
    """Output channels of each Conv with constant weights, in graph order."""
    inits = {t.name: t for t in proto.graph.initializer}
    return [int(inits[n.input[1]].dims[0]) for n in proto.graph.node
            if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits]
