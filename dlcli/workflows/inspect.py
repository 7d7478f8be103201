"""Read-only commands: `dlcli info` (what a checkpoint or ONNX file says about itself), `dlcli models`
(the model registry) and `dlcli datasets` (the data catalog). Nothing is written, no model is run.

The ONNX metadata itself is read by `dlcli.export.metadata`; the tables and the result are built here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dlcli.console import Console, metric_value
from dlcli.errors import UsageError
from dlcli.workflows.result import CommandResult, inlined

PARAMS_NOTE = ("weights and biases in the graph (int8 scales and zero points counted apart); fewer than the "
               "checkpoint's parameters when BatchNorm is folded into the convolutions on export")


@dataclass(frozen=True)
class InfoConfig:
    artifact: Path
    """A dlcli checkpoint (.pt) or an ONNX file (dlcli's or foreign)."""


@dataclass
class InfoResult(CommandResult):
    """`dlcli info --json`: command, artifact (null), metrics (the artifact's recorded metrics, an int8
    file's own), device (null), seconds, path, and the artifact's fields (`details`, printed at the top
    level): for a checkpoint format_version, model, model_args, params, input_shape, classes,
    normalization, dataset, lineage, size_bytes, dlcli_version; for an ONNX file format, precision, the
    same model fields, params, quantization_params, params_note, opset, exporter, source_sha256, inputs,
    outputs, and for an int8 file quantization and source_metrics."""

    command: ClassVar[str] = "info"
    path: str
    details: dict[str, Any] = inlined()


def run(config: InfoConfig, console: Console) -> InfoResult:
    start = time.perf_counter()
    path = Path(config.artifact)
    describe = describe_onnx if path.suffix.lower() == ".onnx" else describe_checkpoint
    details, metrics = describe(path, console)
    return InfoResult(None, metrics, None, time.perf_counter() - start, str(path), details)


def describe_checkpoint(path: Path, console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    from dlcli.checkpoint import lineage_rows, load_checkpoint
    from dlcli.models import count_parameters

    ckpt = load_checkpoint(path)
    details = {
        "format_version": 1, "model": ckpt.model_name, "model_args": ckpt.model_args,
        "params": count_parameters(ckpt.build_model()), "input_shape": ckpt.input_shape, "classes": ckpt.classes,
        "normalization": {"mean": ckpt.mean, "std": ckpt.std}, "dataset": ckpt.dataset, "lineage": ckpt.lineage,
        "size_bytes": path.stat().st_size, "dlcli_version": ckpt.dlcli_version,
    }
    rows = [[k, v] for k, v in details.items() if k not in ("lineage", "classes")]
    rows.append(["classes", ", ".join(ckpt.classes)])
    console.table(str(path), ["field", "value"], rows)
    if ckpt.metrics:
        console.table("metrics", ["metric", "value"], [[k, metric_value(k, v)] for k, v in ckpt.metrics.items()])
    if ckpt.lineage:
        console.table("lineage", ["step", "time", "details"], lineage_rows(ckpt.lineage))
    return details, dict(ckpt.metrics)


def onnx_details(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields `info` shows for an ONNX file, and its dlcli metadata (checked against the graph)."""
    from dlcli.export.metadata import (
        check_against_graph,
        graph_io,
        opset_version,
        parameter_counts,
        read_metadata,
    )
    from dlcli.export.runtime import load_onnx

    proto = load_onnx(path)
    meta = read_metadata(proto)
    check_against_graph(proto, meta, path)
    model = meta.get("model") or {}
    details = {
        "format": "onnx", "precision": "int8" if meta.get("quantization") else "fp32",
        "model": model.get("name"), "model_args": model.get("args"), **parameter_counts(proto),
        "params_note": PARAMS_NOTE, "input_shape": meta.get("input_shape"), "classes": meta.get("classes"),
        "normalization": meta.get("normalization"), "dataset": meta.get("dataset"),
        "lineage": meta.get("lineage", []), "size_bytes": path.stat().st_size, "dlcli_version": meta.get("version"),
        "opset": opset_version(proto), "exporter": meta.get("exporter"), "source_sha256": meta.get("source_sha256"),
        **graph_io(proto),
    }
    return details, meta


def describe_onnx(path: Path, console: Console) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dlcli metadata, graph inputs/outputs, opset and parameter count; for an int8 file also how
    it was quantized, and its own measured metrics rather than its fp32 parent's."""
    from dlcli.checkpoint import lineage_rows

    details, meta = onnx_details(path)
    if not meta:
        console.warn(f"{path} has no dlcli metadata; showing what the graph itself says.")
    skip = ("lineage", "classes", "inputs", "outputs")
    rows = [[k, v] for k, v in details.items() if k not in skip and v is not None]
    rows.append(["classes", ", ".join(details["classes"] or []) or None])
    rows += [[f"{kind[:-1]} {v['name']}", f"{v['dtype']} {v['shape']}"]
             for kind in ("inputs", "outputs") for v in details[kind]]
    console.table(str(path), ["field", "value"], rows)
    metrics = source_metrics = meta.get("metrics") or {}
    quantization = meta.get("quantization")
    if quantization:
        console.table("how it was quantized", ["setting", "value"], quantization_rows(quantization))
        metrics = quantization.get("metrics") or {}
        details.update(quantization=quantization, source_metrics=source_metrics)
    if metrics:
        title = "metrics (of this int8 file, measured when it was made)" if quantization else \
            "metrics (of the source checkpoint)"
        console.table(title, ["metric", "value"], [[k, metric_value(k, v)] for k, v in metrics.items()])
    if details["lineage"]:
        console.table("lineage", ["step", "time", "details"], lineage_rows(details["lineage"]))
    return details, metrics


def quantization_rows(record: dict[str, Any]) -> list[list[Any]]:
    """The quantize step's record (see `dlcli.workflows.quantize_plan`) as the settings a reader asks about."""
    calibration = record.get("calibration")
    if calibration:
        calibration = (f"{calibration.get('samples')} {calibration.get('split')} samples of "
                       f"{calibration.get('dataset')}, {calibration.get('method')}, seed {calibration.get('seed')}")
    excluded = [*(record.get("exclude_nodes") or []), *(f"all {t}" for t in record.get("exclude_op_types") or [])]
    rows = [
        ["method", f"{record.get('method')} ({record.get('format')})"],
        ["weights / activations", f"{record.get('weights')} / {record.get('activations')}"],
        ["per channel", record.get("per_channel")],
        ["reduce range", f"{record.get('reduce_range')} ({record.get('reduce_range_reason')})"
         if record.get("reduce_range_reason") else record.get("reduce_range")],
        ["calibration", calibration or "none (dynamic)"],
        ["excluded nodes", ", ".join(excluded) or "none"],
        ["excluded but int8 in onnxruntime", ", ".join(record.get("excluded_but_int8_in_onnxruntime") or []) or None],
        ["graph rewrites", "; ".join(record.get("rewrites") or []) or None],
        ["quantized on", f"{record.get('cpu')} ({' '.join(record.get('isa') or [])})" if record.get("cpu") else None],
    ]
    return [row for row in rows if row[1] is not None]


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape must be positive integers like 1,28,28, got {text!r}.")
    return shape


@dataclass(frozen=True)
class ModelsConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    """C,H,W (or features) used to count each model's parameters."""
    num_classes: int = 10


@dataclass(frozen=True)
class DatasetsConfig:
    data_dir: str | None = None


@dataclass
class ModelsResult(CommandResult):
    """`dlcli models --json`: command, artifact (null), metrics ({"count": models}), device (null),
    seconds, models (name, params, args, summary, doc, arg_checks, and recipes: {dataset: the model
    arguments its training recipe sets} per registered model)."""

    command: ClassVar[str] = "models"
    models: list[dict[str, Any]]


@dataclass
class DatasetsResult(CommandResult):
    """`dlcli datasets --json`: command, artifact (null), metrics ({"count": datasets}), device (null),
    seconds, datasets (`dlcli.data.catalog.dataset_status` per catalog entry), cache_dir."""

    command: ClassVar[str] = "datasets"
    datasets: list[dict[str, Any]]
    cache_dir: str


def list_models(config: ModelsConfig, console: Console) -> ModelsResult:
    import inspect as pyinspect

    from dlcli.data.catalog import DATASETS
    from dlcli.models import MODELS, count_parameters, create_model, model_args

    start = time.perf_counter()
    shape, classes = list(config.input_shape), config.num_classes
    entries = []
    for name in MODELS:
        spec = MODELS.get(name)
        try:
            params = count_parameters(create_model(name, shape, classes, [0.0] * shape[0], [1.0] * shape[0]))
        except UsageError:
            params = None  # e.g. an image-only model asked about a tabular shape
        doc = next(iter((pyinspect.getdoc(spec.factory) or "").splitlines()), "")  # a plugin may have none
        recipes = {data: dict(DATASETS.get(data).recipes[name].model_args) for data in DATASETS
                   if name in DATASETS.get(data).recipes}
        entries.append({"name": name, "params": params, "args": model_args(name, None), "summary": spec.summary,
                        "doc": doc, "arg_checks": spec.describe_arguments(), "recipes": recipes})
    console.table(f"models (input {shape}, {classes} classes)", ["name", "params", "default args", "summary"],
                  [[e["name"], f"{e['params']:,}" if e["params"] else "-", e["args"], e["summary"]] for e in entries])
    console.table("model arguments (-a KEY=VALUE): type and allowed range", ["model", "argument", "accepts"],
                  [[e["name"], key, text] for e in entries for key, text in e["arg_checks"].items()])
    for e in (e for e in entries if e["recipes"]):  # what `dlcli train` builds there is not the table's default
        console.info(f"{e['name']}: `dlcli train` on {', '.join(e['recipes'])} uses that dataset's recipe instead of "
                     f"these defaults ({next(iter(e['recipes'].values()))}, its lr and epochs too; "
                     "`dlcli datasets` lists the recipes, -a and the flags override them)")
    return ModelsResult(None, {"count": len(entries)}, None, time.perf_counter() - start, entries)


def list_datasets(config: DatasetsConfig, console: Console) -> DatasetsResult:
    from dlcli.data.catalog import DATASETS, dataset_status
    from dlcli.data.locate import cache_dir

    start = time.perf_counter()
    entries = [dataset_status(name, config.data_dir) for name in DATASETS]
    console.table(f"datasets (cache: {cache_dir()})", ["name", "present", "path", "recipes", "summary"],
                  [[e["name"], "yes" if e["present"] else "no", e.get("path"), ", ".join(e["recipes"]) or None,
                    e.get("summary")] for e in entries])
    console.info("also: folder:PATH (one sub-folder of images per class), csv:PATH (features + label column)")
    return DatasetsResult(None, {"count": len(entries)}, None, time.perf_counter() - start, entries,
                          str(cache_dir()))
