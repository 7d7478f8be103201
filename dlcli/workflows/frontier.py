"""`dlcli frontier`: which variant of a model should ship? Build compressed variants of one checkpoint
with the single commands' workflows (`frontier_build`), measure them all the same way in one
session, and report the size/accuracy/latency trade-off with the Pareto-optimal rows marked.

Measurement is `dlcli benchmark`'s: every variant is an ONNX file run by onnxruntime on the CPU;
test accuracy on the evaluation split; latency p50/p90 per batch size from interleaved rounds in which
all variants alternate (`benchmark.time_all`), so a busy spell on a shared machine hits every
variant alike and the speedups (ratios against the parent's fp32 export) hold even when absolute
times drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dlcli.console import Console
from dlcli.errors import UsageError
from dlcli.workflows.frontier_build import Built, Recipe, build, prepare_out_dir
from dlcli.workflows.frontier_config import BATCH_SIZES, FrontierConfig
from dlcli.workflows.frontier_rules import (
    REFERENCE,
    Gates,
    Point,
    gate_failures,
    pareto_flags,
    pick,
    student_args,
)
from dlcli.workflows.result import CommandResult


@dataclass
class FrontierResult(CommandResult):
    """`dlcli frontier --json` (and frontier.json): command, artifact (frontier.json), metrics (see
    `headline`), device ("cpu"), seconds, parent, out, pick and pick_variant (`picked_row`'s artifact and
    name, or null), gates, latency_batch, threads, method, environment, files (json, csv, plot),
    variants (one row per variant, the reference (fp32) first; see `_row`)."""

    command: ClassVar[str] = "frontier"
    parent: str
    out: str
    pick: str | None
    pick_variant: str | None
    gates: dict[str, Any]
    latency_batch: int
    threads: int
    method: str
    environment: dict[str, Any]
    files: dict[str, str]
    variants: list[dict[str, Any]]

    @property
    def passing(self) -> bool:
        return any(r["passes"] for r in self.variants)


def picked_row(rows: list[dict[str, Any]], latency_batch: int) -> dict[str, Any] | None:
    """The row `--pick` returns (frontier_rules.pick: highest accuracy among passing, then lowest latency)."""
    index = pick([row_point(r, latency_batch) for r in rows], [r["passes"] for r in rows])
    return None if index is None else rows[index]


def headline(rows: list[dict[str, Any]], b: int) -> dict[str, Any]:
    """The headline figures: the parent's accuracy, how many variants pass and are Pareto-optimal, the
    largest speedup at batch `b`, and the picked variant's figures."""
    chosen = picked_row(rows, b)
    others = [r for r in rows if r["variant"] != REFERENCE]
    metrics: dict[str, Any] = {
        "parent_accuracy": rows[0]["accuracy"], "variants": len(rows),
        "passing": sum(r["passes"] for r in rows), "pareto_optimal": sum(r["pareto"] for r in rows),
        f"max_speedup_b{b}": max((r[f"speedup_b{b}"] for r in others), default=1.0),
    }
    if chosen is not None:
        metrics.update({"pick_accuracy": chosen["accuracy"], "pick_accuracy_drop_pp": chosen["accuracy_drop_pp"],
                        f"pick_p50_ms_b{b}": chosen[f"p50_ms_b{b}"], f"pick_speedup_b{b}": chosen[f"speedup_b{b}"],
                        "pick_size_bytes": chosen["size_bytes"]})
    return metrics


def row_point(row: dict[str, Any], latency_batch: int) -> Point:
    return Point(row["accuracy"], row[f"p50_ms_b{latency_batch}"], row["size_bytes"])


def run(cfg: FrontierConfig, console: Console) -> FrontierResult:
    from dlcli.checkpoint import load_checkpoint
    from dlcli.measure.environment import available_cores, environment
    from dlcli.workflows.frontier_report import report_files, show, write_files

    start = time.perf_counter()
    parent = load_checkpoint(cfg.checkpoint)
    variants = cfg.parsed_variants()
    threads = cfg.threads or available_cores()
    student = None
    if any(v.base == "distill" for v in variants):
        student = (parent.model_name, student_args(parent.model_name, parent.model_args))
    recipe = Recipe(cfg.data, cfg.data_dir, cfg.recover_epochs, cfg.train_samples, cfg.seed, threads, student)
    out_dir = prepare_out_dir(cfg.out_dir, cfg.force)
    dataset = _load_test_data(cfg.data or parent.dataset, cfg.data_dir, console)
    built = build(variants, Path(cfg.checkpoint), out_dir, recipe, console, cfg.verbose)
    env = environment(threads)
    rows, method = measure(built, dataset, cfg, threads, console)
    _mark(rows, cfg.gates, cfg.latency_batch)
    chosen = picked_row(rows, cfg.latency_batch)
    files = report_files(out_dir)
    found = FrontierResult(files["json"], headline(rows, cfg.latency_batch), "cpu",
                           round(time.perf_counter() - start, 3), str(cfg.checkpoint), str(out_dir),
                           chosen["artifact"] if chosen else None, chosen["variant"] if chosen else None,
                           cfg.gates.to_dict(), cfg.latency_batch, threads, method, env, files, rows)
    write_files(found)
    show(found, console)
    return found


def _load_test_data(spec: str | None, data_dir: str | None, console: Console) -> Any:
    from dlcli.workflows.preparation import load_data

    if not spec:
        raise UsageError("the checkpoint records no dataset: pass --data NAME (the data it was trained on).")
    return load_data(spec, data_dir, console, test_only=True)


def measure(
    built: dict[str, Built], dataset: Any, cfg: FrontierConfig, threads: int, console: Console
) -> tuple[list[dict[str, Any]], str]:
    """Accuracy and interleaved latency of every variant, as `dlcli benchmark` measures them."""
    import torch

    from dlcli.measure.environment import announce_timing
    from dlcli.measure.timing import describe_method
    from dlcli.workflows.benchmark import POOL_SIZE, open_artifact, time_all
    from dlcli.workflows.benchmark_config import BenchmarkConfig

    bench = BenchmarkConfig(artifacts=[b.artifact for b in built.values()], batch_sizes=list(BATCH_SIZES),
                            threads=threads, warmup=cfg.warmup, iters=cfg.iters, device="cpu", rounds=cfg.rounds)
    method = describe_method(cfg.warmup, cfg.iters, None, rounds=cfg.rounds)
    console.info(f"measuring {len(built)} variants: test accuracy on {dataset.name}, latency on onnxruntime CPU, "
                 f"{threads} threads")
    announce_timing(method, console)
    artifacts = [open_artifact(path, bench.device, bench.compile, threads) for path in bench.artifacts]
    with torch.inference_mode():
        accuracy = [a.accuracy(dataset, console)["accuracy"] for a in artifacts]
    stats = time_all(artifacts, bench.timing, dataset.model_inputs(POOL_SIZE), console)
    rows = [_row(name, b, a.params, acc, per_batch)
            for (name, b), a, acc, per_batch in zip(built.items(), artifacts, accuracy, stats, strict=True)]
    reference = rows[0]
    for row in rows:
        row["accuracy_drop_pp"] = (reference["accuracy"] - row["accuracy"]) * 100
        for batch in BATCH_SIZES:
            row[f"speedup_b{batch}"] = reference[f"p50_ms_b{batch}"] / row[f"p50_ms_b{batch}"]
    return rows, method


def _row(name: str, built: Built, params: int, accuracy: float, stats: list[Any]) -> dict[str, Any]:
    from dlcli.export.metadata import read_metadata
    from dlcli.export.runtime import load_onnx

    proto = load_onnx(built.artifact)
    row: dict[str, Any] = {
        "variant": name, "artifact": str(built.artifact), "parent": str(built.parent), "reused": built.reused,
        "accuracy": accuracy, "params": params, "nonzero_params": _nonzero(proto),
        "size_bytes": built.artifact.stat().st_size,
    }
    for s in stats:
        row.update({f"p50_ms_b{s.batch_size}": s.p50_ms, f"p90_ms_b{s.batch_size}": s.p90_ms})
    row.update({"command": built.command, "lineage": read_metadata(proto).get("lineage", [])})
    return row


def _nonzero(proto: Any) -> int:
    """Non-zero initializer elements: what unstructured pruning changes while the file stays dense."""
    import numpy as np
    from onnx import numpy_helper

    return int(sum(np.count_nonzero(numpy_helper.to_array(t)) for t in proto.graph.initializer))


def _mark(rows: list[dict[str, Any]], gates: Gates, latency_batch: int) -> None:
    """Pareto flags over (accuracy up, latency down, size down) and the gates' verdict, per row."""
    points = [row_point(r, latency_batch) for r in rows]
    for row, optimal in zip(rows, pareto_flags(points), strict=True):
        row["pareto"] = optimal
        row["failures"] = gate_failures(row["accuracy_drop_pp"], row[f"p50_ms_b{latency_batch}"], row["size_bytes"],
                                        gates)
        row["passes"] = not row["failures"]
