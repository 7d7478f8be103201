"""Graph rewrites that let onnxruntime's fast int8 kernels apply, without changing what the fp32
graph computes (each is tested to give the same outputs). Applied by `quantization` before
quantizing; ModelProto in, ModelProto out, in place unless said otherwise.

Kept apart from the quantizer because they are plain ONNX graph surgery, written by hand: neither
onnxruntime's quantization tools nor onnx's optimizers offer them, and each exists because a
measured int8 model was slower than fp32 without it (benchmarks/bench_quantize.py has the numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

# MLAS's symmetric int8 convolution (AVX2, AVX-512, VNNI) packs filters 16 output channels at a time
# and needs channel counts that are multiples of 4 (onnxruntime/core/mlas/lib/convsym.cpp).
ALIGN = 4
PACK_OUT = 16
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Ops that act on each channel alone: zero channels stay zero through them.
_CHANNELWISE_OPS = ("Relu", "Clip", "LeakyRelu", "MaxPool", "AveragePool", "Identity")


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
    """Keep a Conv -> Relu -> MaxPool (or Conv -> MaxPool -> Relu) stem with unaligned input channels (a
    grayscale or RGB image) in fp32 and start int8 after it, in place; returns (fp32 node names, notes).

    Such a conv is the cheapest layer in fp32 (NCHWc direct convolution) and the slowest in int8 even
    when padded (4x the multiply-adds, and 8-bit pooling at full resolution). onnxruntime moves a
    QuantizeLinear up through MaxPool, which would quantize before the pool and run it as a slow
    8-bit NCHW MaxPool; a Relu after the pool stops that, and onnxruntime then fuses it into the
    QuantizeLinear. Conv -> MaxPool -> Relu (dlcli's cnn pools before a monotonic activation) has that
    Relu already; Conv -> Relu -> MaxPool gets one (exact: its input is already >= 0)."""
    inits = {t.name: t for t in proto.graph.initializer}
    nodes = list(proto.graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type in WEIGHTED_OPS), None)
    if first is None:
        return [], []
    conv = nodes[first]
    weight = _conv_weight(conv, inits)
    if weight is None or weight.shape[1] % ALIGN == 0 or {conv.name, conv.op_type} & keep_fp32:
        return [], []
    stem = _stem_after(proto, conv)
    if stem is None:
        return [], []
    if stem[-1].op_type == "MaxPool":
        pool = stem[-1]
        barrier = helper.make_node("Relu", [f"{pool.output[0]}_fp32"], [pool.output[0]],
                                   name=f"{pool.name}_int8_start")
        pool.output[0] = barrier.input[0]
        proto.graph.node.insert(list(proto.graph.node).index(pool) + 1, barrier)
        stem.append(barrier)
    kept = [n.name for n in nodes[:first]] + [conv.name] + [n.name for n in stem]
    return kept, [f"{conv.name} ({weight.shape[1]} input channel(s)) -> {' -> '.join(n.name for n in stem[:2])} "
                  "kept fp32; int8 starts after the pool"]


def _stem_after(proto: onnx.ModelProto, conv: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    """The [Relu, MaxPool] or [MaxPool, Relu] that alone follow `conv`, or None."""
    for first, second in (("Relu", "MaxPool"), ("MaxPool", "Relu")):
        a = _only_user(proto, conv.output[0], first)
        b = _only_user(proto, a.output[0], second) if a is not None else None
        if b is not None:
            return [a, b]
    return None


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
