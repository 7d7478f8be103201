"""What an exported .onnx file says about itself: JSON values under `dlcli.*` metadata_props keys.

A consumer needs no dlcli to use the file: it reads `dlcli.classes`, `dlcli.input_shape` and
`dlcli.input_layout`, feeds float32 pixels in `dlcli.input_range` and gets logits; normalization is
inside the graph (`dlcli.normalization` records it for reference). `dlcli eval` reads
`dlcli.dataset` to pick its default data, and quantize/prune read the lineage and source hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dlcli import __version__
from dlcli.checkpoint import Checkpoint
from dlcli.errors import InputFileError, UsageError
from dlcli.export.runtime import load_onnx

PREFIX = "dlcli."
METADATA_VERSION = 1


def export_metadata(
    ckpt: Checkpoint, source_sha256: str, exporter: dict[str, Any], dynamic_batch: bool,
    lineage_step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata of an ONNX file exported from `ckpt` (values are plain JSON data)."""
    return {
        "metadata_version": METADATA_VERSION,
        "version": __version__,
        "model": {"name": ckpt.model_name, "args": ckpt.model_args},
        "classes": list(ckpt.classes),
        "input_shape": list(ckpt.input_shape),
        "input_layout": "NCHW" if len(ckpt.input_shape) == 3 else "NF",
        "input_range": [0.0, 1.0],
        "input_dtype": "float32",
        "dynamic_batch": dynamic_batch,
        "normalization": {"mean": list(ckpt.mean), "std": list(ckpt.std), "in_graph": True},
        "dataset": ckpt.dataset,
        "metrics": ckpt.metrics,
        "source_sha256": source_sha256,
        "exporter": exporter,
        "lineage": [*ckpt.lineage, *([lineage_step] if lineage_step else [])],
    }


def write_metadata(proto: onnx.ModelProto, values: dict[str, Any]) -> None:
    """Set `dlcli.<key>` = JSON(value) in `proto.metadata_props`, replacing earlier dlcli keys."""
    keep = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith(PREFIX)]
    del proto.metadata_props[:]
    for key, value in keep:
        proto.metadata_props.add(key=key, value=value)
    for key, value in values.items():
        proto.metadata_props.add(key=PREFIX + key, value=json.dumps(value, default=str))


def read_metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    """The `dlcli.*` metadata as Python values ({} for an ONNX file dlcli did not write)."""
    values: dict[str, Any] = {}
    for prop in proto.metadata_props:
        if prop.key.startswith(PREFIX):
            try:
                values[prop.key[len(PREFIX):]] = json.loads(prop.value)
            except ValueError:
                values[prop.key[len(PREFIX):]] = prop.value
    return values


def written_by(path: str | Path) -> str | None:
    """The dlcli step that wrote an existing ONNX file ("export", "quantize"), from its own metadata's
    lineage; None for a file dlcli did not write. Decides whether a re-run may replace it."""
    try:
        meta = read_metadata(load_onnx(path))
    except InputFileError:
        return None
    if "version" not in meta:
        return None
    lineage = meta.get("lineage")
    if isinstance(lineage, list) and lineage and isinstance(lineage[-1], dict) and lineage[-1].get("step"):
        return str(lineage[-1]["step"])
    return "quantize" if "quantization" in meta else "export"


def parameter_count(proto: onnx.ModelProto) -> int:
    """Weights and biases stored in the graph: elements of the initializers except shape constants and
    the scales and zero points of (De)QuantizeLinear nodes, so an int8 file and its fp32 source count alike. Either
    is below the checkpoint's parameter count when the exporter folded BatchNorm into the convolutions
    (see `parameter_counts`)."""
    return parameter_counts(proto)["params"]


def parameter_counts(proto: onnx.ModelProto) -> dict[str, int]:
    """{"params": weights and biases, "quantization_params": scales and zero points}."""
    # int64 initializers are shapes and axes (Reshape, Flatten constants), not learned values.
    sizes = {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in proto.graph.initializer
             if t.data_type != onnx.TensorProto.INT64}
    quant = {name for node in proto.graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
             for name in node.input[1:] if name in sizes}
    return {"params": sum(v for k, v in sizes.items() if k not in quant),
            "quantization_params": sum(sizes[k] for k in quant)}


def check_against_graph(proto: onnx.ModelProto, meta: dict[str, Any], path: str | Path) -> None:
    """The dlcli metadata must describe this graph: a file whose `input_shape` or `classes` disagree
    with the graph's own input and output (edited, or metadata copied from another model) is refused
    as one line, rather than failing later inside onnxruntime or being shown as if it were true."""
    from dlcli.validation import coerce

    try:
        shape = coerce("input_shape", meta.get("input_shape"), list[int] | None)
        classes = coerce("classes", meta.get("classes"), list[str] | None)
    except UsageError as exc:
        raise InputFileError(f"{path}: damaged dlcli metadata: {exc}") from None
    graph_in = [d.dim_value or None for d in proto.graph.input[0].type.tensor_type.shape.dim][1:] \
        if proto.graph.input else []
    graph_out = [d.dim_value or None for d in proto.graph.output[0].type.tensor_type.shape.dim] \
        if proto.graph.output else []
    differs = len(shape or []) != len(graph_in) or any(
        g is not None and g != m for g, m in zip(graph_in, shape or [], strict=False))
    if shape is not None and graph_in and differs:
        raise InputFileError(f"{path}: its dlcli metadata says input shape {shape} but the graph takes "
                             f"{graph_in}; the file was altered or its metadata belongs to another model.")
    if classes is not None and graph_out and graph_out[-1] is not None and graph_out[-1] != len(classes):
        raise InputFileError(f"{path}: its dlcli metadata names {len(classes)} classes but the graph outputs "
                             f"{graph_out[-1]}; the file was altered or its metadata belongs to another model.")


def graph_io(proto: onnx.ModelProto) -> dict[str, list[dict[str, Any]]]:
    """Names and shapes (symbolic dimensions as their names) of the graph's inputs and outputs."""

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
            out.append({"name": v.name, "shape": dims, "dtype": dtype})
        return out

    return {"inputs": describe(proto.graph.input), "outputs": describe(proto.graph.output)}


def opset_version(proto: onnx.ModelProto) -> int | None:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
