"""Read-only commands: describe a checkpoint, list the model registry, list datasets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dlcli.checkpoint import lineage_rows, load_checkpoint
from dlcli.console import Console, result
from dlcli.errors import UsageError


def describe_artifact(path: Path, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    if path.suffix.lower() == ".onnx":
        from dlcli.export.metadata import describe_onnx

        return describe_onnx(path, console)
    from dlcli.models import count_parameters

    ckpt = load_checkpoint(path)
    model = ckpt.build_model()
    details = {
        "format_version": 1,
        "model": ckpt.model_name,
        "model_args": ckpt.model_args,
        "params": count_parameters(model),
        "input_shape": ckpt.input_shape,
        "classes": ckpt.classes,
        "normalization": {"mean": ckpt.mean, "std": ckpt.std},
        "dataset": ckpt.dataset,
        "lineage": ckpt.lineage,
        "size_bytes": path.stat().st_size,
        "dlcli_version": ckpt.dlcli_version,
    }
    rows = [[k, v] for k, v in details.items() if k not in ("lineage", "classes")]
    rows.append(["classes", ", ".join(ckpt.classes)])
    console.table(str(path), ["field", "value"], rows)
    if ckpt.metrics:
        console.table("metrics", ["metric", "value"], [[k, v] for k, v in ckpt.metrics.items()])
    if ckpt.lineage:
        console.table("lineage", ["step", "time", "details"], lineage_rows(ckpt.lineage))
    return result("info", None, ckpt.metrics, None, time.perf_counter() - start, path=str(path), **details)


def parse_shape(text: str) -> list[int]:
    try:
        shape = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        shape = []
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape must be positive integers like 1,28,28, got {text!r}.")
    return shape


def list_models(input_shape: str, num_classes: int, console: Console) -> dict[str, Any]:
    import inspect as pyinspect

    from dlcli.models import MODELS, count_parameters, create_model, model_args

    start = time.perf_counter()
    shape = parse_shape(input_shape)
    entries = []
    for name in MODELS:
        spec = MODELS.get(name)
        args = model_args(name, None)
        try:
            params = count_parameters(create_model(name, shape, num_classes, [0.0] * shape[0], [1.0] * shape[0]))
        except UsageError:
            params = None  # e.g. an image-only model asked about a tabular shape
        doc = next(iter((pyinspect.getdoc(spec.factory) or "").splitlines()), "")  # a plugin may have none
        entries.append({"name": name, "params": params, "args": args, "summary": spec.summary, "doc": doc,
                        "arg_checks": spec.describe_arguments()})
    console.table(f"models (input {shape}, {num_classes} classes)", ["name", "params", "default args", "summary"],
                  [[e["name"], f"{e['params']:,}" if e["params"] else "-", e["args"], e["summary"]] for e in entries])
    console.table("model arguments (-a KEY=VALUE): type and allowed range", ["model", "argument", "accepts"],
                  [[e["name"], key, text] for e in entries for key, text in e["arg_checks"].items()])
    return result("models", None, {}, None, time.perf_counter() - start, models=entries)


def list_datasets(data_dir: str | None, console: Console) -> dict[str, Any]:
    from dlcli.data.catalog import DATASETS, dataset_status
    from dlcli.data.locate import cache_dir

    start = time.perf_counter()
    entries = [dataset_status(name, data_dir) for name in DATASETS]
    console.table(f"datasets (cache: {cache_dir()})", ["name", "present", "path", "summary"],
                  [[e["name"], "yes" if e["present"] else "no", e.get("path"), e.get("summary")] for e in entries])
    console.info("also: folder:PATH (one sub-folder of images per class), csv:PATH (features + label column)")
    return result("datasets", None, {}, None, time.perf_counter() - start, datasets=entries,
                  cache_dir=str(cache_dir()))
