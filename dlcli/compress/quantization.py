"""Post-training int8 quantization of an ONNX model with `onnxruntime.quantization`: ModelProto in,
ModelProto out, plus the calibration reader that feeds it and a per-layer error report.

onnxruntime's quantization API reads and writes model files, so these transforms use a private
temporary folder; nothing else is touched. The defaults, and why (measured with onnxruntime 1.32 on
an AVX-512-VNNI CPU with 2 threads; benchmarks/bench_quantize.py has the numbers):

- Static QDQ with uint8 activations and per-channel int8 weights: onnxruntime fuses every
  DQ -> op -> Q group into QLinearConv / QLinearAdd / QGemm and runs the int8 convolutions in NHWC.
- `rewrite_for_int8` rewrites the fp32 graph, without changing its function, so that onnxruntime can use its
  fast int8 kernels: convolutions are zero-padded to channel counts MLAS's symmetric int8 convolution
  accepts (`pad_conv_channels`; the grayscale stem conv was 3-12x slower than fp32 without it, the
  main reason small int8 ConvNets lost), and a ReduceMean global pool becomes GlobalAveragePool
  (`spatial_mean_to_global_pool`; it then stays int8 instead of transposing and dequantizing the
  last feature map).
- `reduce_range` (7-bit weights) only on x86 CPUs without VNNI, where the u8s8 kernels (VPMADDUBSW)
  can saturate; VNNI and ARM kernels do not (`hardware_defaults`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from dlcli.errors import UsageError

METHODS = ("static", "dynamic")
CALIBRATIONS = ("minmax", "entropy", "percentile")
_CALIBRATORS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile}
CALIBRATION_BATCH = 64
# MLAS's symmetric int8 convolution (AVX2, AVX-512, VNNI) packs filters 16 output channels at a time
# and needs channel counts that are multiples of 4 (onnxruntime/core/mlas/lib/convsym.cpp).
ALIGN = 4
PACK_OUT = 16
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
LOSSLESS_DB = 200.0  # float32 round-off gives ~140 dB; above this a tensor passed through exactly
# Ops that act on each channel alone: zero channels stay zero through them.
_CHANNELWISE_OPS = ("Relu", "Clip", "LeakyRelu", "MaxPool", "AveragePool", "Identity")


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
        if self.method not in METHODS:
            raise UsageError(f"unknown quantization method {self.method!r}; choose from {', '.join(METHODS)}.")
        if self.calibration not in CALIBRATIONS:
            raise UsageError(f"unknown calibration method {self.calibration!r}; "
                             f"choose from {', '.join(CALIBRATIONS)}.")
        if self.activations not in ("uint8", "int8") or self.quant_format not in ("qdq", "qoperator"):
            raise UsageError(f"unsupported activations/format {self.activations}/{self.quant_format}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds float32 inputs to onnxruntime's calibrator in batches; `rewind` starts over, so the same
    reader serves calibration and the per-layer error report."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int = CALIBRATION_BATCH) -> None:
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


def default_method(proto: onnx.ModelProto) -> str:
    """static for graphs with convolutions (CNNs), dynamic for graphs of linear layers (mlp)."""
    return "static" if has_op(proto, "Conv") else "dynamic"


def quantizable_op_types(method: str) -> list[str]:
    """Every op type onnxruntime can quantize with this method (the set --exclude removes from)."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry

    if method == "dynamic":
        return sorted(set(IntegerOpsRegistry) | {"Gemm"})
    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


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
def _quiet() -> Iterator[None]:
    """onnxruntime's quantization tools log warnings on the root logger (per-channel axis notes,
    pre-processing advice) and print progress: keep both off our stdout and out of the user's way."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
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


@dataclass
class Rewritten:
    """The graph to quantize, one note per rewrite, and nodes the rewrites chose to keep fp32."""

    proto: onnx.ModelProto
    notes: list[str]
    fp32_nodes: list[str]


def rewrite_for_int8(proto: onnx.ModelProto, x86_kernels: bool = True, keep_fp32: Sequence[str] = ()) -> Rewritten:
    """A copy of a preprocessed graph rewritten, without changing its function, so that onnxruntime's
    fast int8 kernels apply. `x86_kernels`: also fit the graph to MLAS's x86 int8 convolution (the
    fp32 stem and channel padding). Nodes in `keep_fp32` (names or op types) are left alone."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    notes = spatial_mean_to_global_pool(proto)
    fp32_nodes: list[str] = []
    if x86_kernels:
        fp32_nodes, stem_notes = fp32_stem(proto, set(keep_fp32))
        notes += stem_notes + pad_conv_channels(proto, {*keep_fp32, *fp32_nodes})
    return Rewritten(proto, notes, fp32_nodes)


def fp32_stem(proto: onnx.ModelProto, keep_fp32: set[str]) -> tuple[list[str], list[str]]:
    """Keep a Conv -> Relu -> MaxPool stem with unaligned input channels (a grayscale or RGB image) in
    fp32 and start int8 after the pool, in place; returns (fp32 node names, notes).

    Such a conv is the cheapest layer in fp32 (NCHWc direct convolution) and the slowest in int8 even
    when padded (4x the multiply-adds, and 8-bit pooling at full resolution). onnxruntime moves a
    QuantizeLinear up through MaxPool, which would quantize before the pool and run it as a slow
    8-bit NCHW MaxPool; a Relu after the pool (exact: its input is already >= 0) stops that, and
    onnxruntime then fuses it into the QuantizeLinear."""
    inits = {t.name: t for t in proto.graph.initializer}
    nodes = list(proto.graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type in _WEIGHTED_OPS), None)
    if first is None:
        return [], []
    conv = nodes[first]
    weight = _conv_weight(conv, inits)
    relu = _only_user(proto, conv.output[0], "Relu")
    pool = _only_user(proto, relu.output[0], "MaxPool") if relu is not None else None
    if weight is None or weight.shape[1] % ALIGN == 0 or pool is None or {conv.name, conv.op_type} & keep_fp32:
        return [], []
    barrier = helper.make_node("Relu", [f"{pool.output[0]}_fp32"], [pool.output[0]], name=f"{pool.name}_int8_start")
    pool.output[0] = barrier.input[0]
    proto.graph.node.insert(list(proto.graph.node).index(pool) + 1, barrier)
    kept = [n.name for n in nodes[:first]] + [conv.name, relu.name, pool.name, barrier.name]
    return kept, [f"{conv.name} ({weight.shape[1]} input channel(s)) -> {relu.name} -> {pool.name} kept fp32; "
                  "int8 starts after the pool"]


def _only_user(proto: onnx.ModelProto, tensor: str, op_type: str) -> onnx.NodeProto | None:
    users = [n for n in proto.graph.node if tensor in n.input]
    graph_outputs = {o.name for o in proto.graph.output}
    if len(users) == 1 and users[0].op_type == op_type and tensor not in graph_outputs:
        return users[0]
    return None


def spatial_mean_to_global_pool(proto: onnx.ModelProto) -> list[str]:
    """ReduceMean over H and W of an NCHW tensor (keepdims) -> GlobalAveragePool, in place.

    The dynamo exporter writes AdaptiveAvgPool2d(1) as ReduceMean, which onnxruntime has no int8
    kernel for: the int8 graph then transposes the last feature map back to NCHW, dequantizes it,
    averages in fp32 and quantizes again. GlobalAveragePool becomes QLinearGlobalAveragePool, which
    runs in the NHWC layout of the int8 convolutions."""
    ranks = _ranks(proto)
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    changed = []
    for i, node in enumerate(proto.graph.node):
        if node.op_type != "ReduceMean" or ranks.get(node.input[0]) != 4:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes") if len(node.input) < 2 else consts.get(node.input[1])
        if axes is None or attrs.get("keepdims", 1) != 1 or sorted(int(a) % 4 for a in np.ravel(axes)) != [2, 3]:
            continue
        proto.graph.node[i].CopyFrom(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output),
                                                      name=node.name))
        changed.append(node.name)
    _drop_unused_initializers(proto)
    return [f"ReduceMean over H, W -> GlobalAveragePool ({', '.join(changed)}): keeps global pooling in int8"] \
        if changed else []


def pad_conv_channels(proto: onnx.ModelProto, keep_fp32: set[str] | None = None) -> list[str]:
    """Zero-pad convolutions to the channel counts of onnxruntime's fast int8 convolution, in place.

    MLAS's symmetric int8 convolution (the "ConvSym" kernels for AVX2/AVX-512/VNNI) needs input and
    output channels that are multiples of 4 and at least 16 output channels; any other Conv falls
    back to im2col + a generic int8 GEMM, which for a grayscale stem (1 input channel, 3x3) measured
    3-12x slower than fp32 and made small int8 ConvNets slower overall. Input channels are padded
    with a Pad node and zero weights; output channels with zero filters, which the next Conv (reached
    through channel-wise ops only) ignores through zero weights. The function is unchanged: padded
    channels are multiplied by zero weights.
    """
    inits = {t.name: t for t in proto.graph.initializer}
    skip = keep_fp32 or set()
    notes = []
    for node in list(proto.graph.node):
        weight = _conv_weight(node, inits)
        if weight is None or {node.name, node.op_type} & skip:
            continue
        cout, cin = weight.shape[:2]
        want_out = max(PACK_OUT, -(-cout // ALIGN) * ALIGN)
        nxt = _next_conv(proto, node, inits) if want_out != cout else None
        if nxt is not None and nxt.name not in skip:
            _set_init(inits, node.input[1], _pad_axis(weight, 0, want_out))
            if len(node.input) > 2 and node.input[2] in inits:
                _set_init(inits, node.input[2], _pad_axis(numpy_helper.to_array(inits[node.input[2]]), 0, want_out))
            _set_init(inits, nxt.input[1], _pad_axis(numpy_helper.to_array(inits[nxt.input[1]]), 1, want_out))
            notes.append(f"{node.name}: output channels {cout} -> {want_out} (zero filters; {nxt.name} ignores them)")
        weight = numpy_helper.to_array(inits[node.input[1]])
        cin = weight.shape[1]
        if cin % ALIGN:
            want_in = -(-cin // ALIGN) * ALIGN
            _set_init(inits, node.input[1], _pad_axis(weight, 1, want_in))
            pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, want_in - cin, 0, 0], np.int64),
                                           f"{node.name}_channel_pads")
            proto.graph.initializer.append(pads)
            padded = f"{node.input[0]}_channel_padded"
            index = list(proto.graph.node).index(node)
            proto.graph.node.insert(index, helper.make_node("Pad", [node.input[0], pads.name], [padded],
                                                            name=f"{node.name}_channel_pad", mode="constant"))
            node.input[0] = padded
            notes.append(f"{node.name}: input channels {cin} -> {want_in} (Pad + zero weights)")
    if notes:
        del proto.graph.value_info[:]  # shapes changed; onnxruntime's quantizer re-infers them
        proto.graph.ParseFromString(onnx.shape_inference.infer_shapes(proto).graph.SerializeToString())
    return notes


def _conv_weight(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """The constant 4-D weight of a plain (group 1) Conv, else None."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    group = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
    weight = numpy_helper.to_array(inits[node.input[1]])
    return weight if group == 1 and weight.ndim == 4 else None


def _next_conv(
    proto: onnx.ModelProto, node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]
) -> onnx.NodeProto | None:
    """The single Conv that `node`'s output reaches through single-consumer channel-wise ops, if any."""
    outputs = {o.name for o in proto.graph.output}
    tensor = node.output[0]
    while tensor not in outputs:
        users = [n for n in proto.graph.node if tensor in n.input]
        if len(users) != 1:
            return None
        user = users[0]
        if _conv_weight(user, inits) is not None and user.input[0] == tensor:
            return user
        if user.op_type not in _CHANNELWISE_OPS or user.input[0] != tensor:
            return None
        tensor = user.output[0]
    return None


def _pad_axis(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, size - array.shape[axis])
    return np.pad(array, widths)


def _set_init(inits: dict[str, onnx.TensorProto], name: str, value: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(inits[name]).dtype), name))


def _drop_unused_initializers(proto: onnx.ModelProto) -> None:
    used = {name for node in proto.graph.node for name in node.input}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def _ranks(proto: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def quantize(
    proto: onnx.ModelProto, spec: QuantSpec, calibration: ArrayCalibrationReader | None = None
) -> onnx.ModelProto:
    """The int8 model of `proto` (a graph from `preprocess`/`rewrite_for_int8`); metadata_props are the
    caller's to write."""
    op_types = [t for t in quantizable_op_types(spec.method) if t not in set(spec.exclude_op_types)]
    with tempfile.TemporaryDirectory(prefix="dlcli-quantize-") as tmp:
        source, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(proto, str(source))
        with _quiet():
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
    if node is None:
        return None
    if node.op_type in ("Relu", "Clip") and node.input[0] in producers:
        parent = producers[node.input[0]]
        if parent.op_type in _WEIGHTED_OPS:
            return parent.name
    return node.name


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
