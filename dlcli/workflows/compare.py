"""`dlcli compare`: runs and artifacts side by side: metrics, the config keys that differ, lineage.

Reads only what the files say about themselves (checkpoint metrics and config, ONNX metadata), so it
takes no data and runs no model: comparing the run folders of a sweep takes a second. A run folder
stands for its best.pt. An int8 ONNX file is compared on its own measured metrics, not its parent's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dlcli.console import Console, metric_value, short_labels
from dlcli.errors import InputFileError, UsageError
from dlcli.runs import checkpoint_argument
from dlcli.workflows.result import CommandResult

ACCURACY_KEYS = ("test_accuracy", "accuracy")
"""Checkpoints record the test accuracy as test_accuracy, ONNX files (int8 measurements) as accuracy."""


@dataclass
class Entry:
    """One compared artifact, as `--json` lists it."""

    path: str
    kind: str
    """"checkpoint", "onnx" or "onnx int8"."""
    model: str | None
    model_args: dict[str, Any] | None
    params: int | None
    size_bytes: int
    metrics: dict[str, Any]
    config: dict[str, Any] | None
    """The resolved training config, flattened (None for an ONNX file: it records none)."""
    lineage: list[dict[str, Any]] = field(default_factory=list)


def resolve(path: Path) -> Path:
    """A run folder means its best.pt; anything else must be a file."""
    path = checkpoint_argument(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file or run folder.")
    return path


def describe(path: Path) -> Entry:
    if path.suffix.lower() == ".onnx":
        return _describe_onnx(path)
    from dlcli.checkpoint import load_checkpoint
    from dlcli.models import count_parameters

    ckpt = load_checkpoint(path)
    # The model's resolved arguments (the config holds only those given on the command line).
    config = flatten({**ckpt.config, "model": ckpt.model_name, "model_args": ckpt.model_args})
    return Entry(str(path), "checkpoint", ckpt.model_name, ckpt.model_args, count_parameters(ckpt.build_model()),
                 path.stat().st_size, dict(ckpt.metrics), config, list(ckpt.lineage))


def _describe_onnx(path: Path) -> Entry:
    from dlcli.export.metadata import parameter_count, read_metadata
    from dlcli.export.runtime import load_onnx

    proto = load_onnx(path)
    meta = read_metadata(proto)
    quantization = meta.get("quantization")
    metrics = (quantization or {}).get("metrics") or meta.get("metrics") or {}
    model = meta.get("model") or {}
    return Entry(str(path), "onnx int8" if quantization else "onnx", model.get("name"), model.get("args"),
                 parameter_count(proto), path.stat().st_size, dict(metrics), None, list(meta.get("lineage", [])))


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model_args": {"width": 2}} -> {"model_args.width": 2}: nested keys compare one by one."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(entries: list[Entry], everything: bool) -> dict[str, list[Any]]:
    """Config keys whose values differ among the entries that record a config (all keys with
    `everything`); an ONNX file records no config, so it neither adds nor hides a difference."""
    configs = [e.config for e in entries if e.config is not None]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    table = {k: [None if e.config is None else e.config.get(k) for e in entries] for k in keys}
    if everything:
        return table
    return {k: values for k, values in table.items()
            if len({repr(c.get(k)) for c in configs}) > 1}


def headline(entry: Entry) -> float | None:
    return next((entry.metrics[k] for k in ACCURACY_KEYS if entry.metrics.get(k) is not None), None)


@dataclass(frozen=True)
class CompareConfig:
    artifacts: tuple[Path, ...]
    """Run folders (their best.pt), checkpoints and/or ONNX files."""
    all_config: bool = False
    """Show every config key, not only those that differ."""

    def __post_init__(self) -> None:
        if not self.artifacts:
            raise UsageError("give at least one run folder, .pt or .onnx file to compare.")


@dataclass
class CompareResult(CommandResult):
    """`dlcli compare --json`: command, artifact (null), metrics (`<label>:accuracy` and
    `<label>:size_bytes` per artifact), device (null), seconds, artifacts (each `Entry` with its table
    label first) and config_differences ({key: [value per artifact]})."""

    command: ClassVar[str] = "compare"
    artifacts: list[dict[str, Any]]
    config_differences: dict[str, list[Any]]


def run(config: CompareConfig, console: Console) -> CompareResult:
    start = time.perf_counter()
    entries = [describe(resolve(Path(p))) for p in config.artifacts]
    labels = list(short_labels([e.path if Path(e.path).name != "best.pt" else str(Path(e.path).parent)
                                for e in entries]).values())
    differences = config_differences(entries, config.all_config)
    _show(entries, labels, differences, config.all_config, console)
    listed = [{"label": label, **asdict(e)} for label, e in zip(labels, entries, strict=True)]
    return CompareResult(None, _metrics(entries, labels), None, time.perf_counter() - start, listed, differences)


def _metrics(entries: list[Entry], labels: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for label, entry in zip(labels, entries, strict=True):
        accuracy = headline(entry)
        if accuracy is not None:
            found[f"{label}:accuracy"] = accuracy
        found[f"{label}:size_bytes"] = entry.size_bytes
    return found


def _show(entries: list[Entry], labels: list[str], differences: dict[str, list[Any]], everything: bool,
          console: Console) -> None:
    rows: list[list[Any]] = [
        ["kind", *(e.kind for e in entries)],
        ["model", *(e.model for e in entries)],  # its arguments are config keys: they show when they differ
        ["params", *(f"{e.params:,}" if e.params is not None else None for e in entries)],
        ["size (MB)", *(f"{e.size_bytes / 1e6:.3f}" for e in entries)],
        ["test accuracy", *(f"{a:.2%}" if (a := headline(e)) is not None else None for e in entries)],
    ]
    metric_keys = dict.fromkeys(k for e in entries for k in e.metrics if k not in ACCURACY_KEYS)
    rows += [[f"  {k}", *(metric_value(k, e.metrics.get(k)) for e in entries)] for k in metric_keys]
    console.table("metrics", ["", *labels], rows)
    if differences:
        title = "config" if everything else "config (keys that differ; --all-config for every key)"
        console.table(title, ["", *labels], [[k, *v] for k, v in differences.items()])
    elif any(e.config is not None for e in entries):
        console.info("config: identical" + (" (only one artifact records one)" if sum(
            e.config is not None for e in entries) == 1 else ""))
    console.table("lineage", ["", *labels], [
        ["steps", *(" -> ".join(str(s.get("step")) for s in e.lineage) or None for e in entries)],
        ["parent", *(e.lineage[-1].get("source") if e.lineage else None for e in entries)],
    ])
