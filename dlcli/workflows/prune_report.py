"""What `dlcli prune` prints on stderr: one line per pruning round, the per-layer table and the
before/after summary (the --json result carries the same numbers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlcli.compress.pruning import PruneSpec
from dlcli.console import Console
from dlcli.measure.timing import NOISE_BAND

if TYPE_CHECKING:
    from dlcli.workflows.prune_measure import ModelStats

UNSTRUCTURED_NOTE = ("note: unstructured sparsity makes nothing faster on dense runtimes (PyTorch, onnxruntime): "
                     "the zeros are stored and multiplied like any other weight; use --method channel for speed.")


def round_line(entry: dict[str, Any], steps: int) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2%}"

    removed = entry.get("achieved", entry["amount"])
    text = (f"round {entry['round']}/{steps}: pruned to {removed:.2%} (scheduled {entry['amount']:.1%}), "
            f"accuracy {pct(entry['accuracy_pruned'])}")
    if "accuracy_recovered" in entry:
        text += f", after recovery {pct(entry['accuracy_recovered'])}"
    return text


def report(spec: PruneSpec, before: ModelStats, after: ModelStats, metrics: dict[str, Any],
           console: Console) -> None:
    rows = []
    for name, stats in after.layers.items():
        old = before.layers[name]
        shape = "x".join(map(str, stats["shape"]))
        if stats["shape"] != old["shape"]:
            shape = f"{'x'.join(map(str, old['shape']))} -> {shape}"
        rows.append([name, stats["type"], shape, f"{old['params']:,} -> {stats['params']:,}",
                     f"{stats['zeros'] / stats['params']:.1%}" if stats["params"] else "-"])
    console.table(f"layers ({spec.method}, amount {spec.amount:g})", ["layer", "type", "weight shape", "weights",
                                                                        "zeros"], rows)
    console.table("pruning result", ["metric", "original", "pruned"], _summary_rows(spec, metrics))
    if spec.method != "channel":
        console.info(UNSTRUCTURED_NOTE)
    _warn_if_slower(spec, metrics, console)


def _warn_if_slower(spec: PruneSpec, m: dict[str, Any], console: Console) -> None:
    """A smaller model can run no faster; say so, with the likelier cause, rather than let fewer MACs
    pass for speed."""
    slower = sorted(key for key in m if key.startswith("latency_ms_b") and not key.endswith("_before")
                    and m[key] > m[f"{key}_before"] * (1 - NOISE_BAND))
    if not slower:
        return
    where = ", ".join(f"batch {k.removeprefix('latency_ms_b')} ({m[k]:.3f} vs {m[k + '_before']:.3f} ms)"
                      for k in slower)
    cause = ("widths that are not multiples of 4 leave its fast kernels: try --round-to 4 or 8"
             if spec.channel_multiple == 1 else
             "at this size its fixed per-operator costs dominate and small layers gain little from extra "
             "threads (compare with --threads 1), or remove more with a larger --amount")
    console.warn(f"the pruned model is not faster than the original on onnxruntime at {where}: {cause}.")


def _summary_rows(spec: PruneSpec, m: dict[str, Any]) -> list[list[Any]]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2%}"

    rows = [
        ["test accuracy", pct(m["accuracy_before"]), pct(m["accuracy"])],
        ["  right after pruning (before recovery)", "", pct(m["accuracy_pruned"])],
        ["sparsity" if spec.method != "channel" else "channels removed", "0.00%", pct(m["sparsity"])],
        ["parameters", f"{m['params_before']:,}", f"{m['params']:,} ({m['params_ratio']:.2f}x)"],
        ["non-zero parameters", f"{m['nonzero_params_before']:,}", f"{m['nonzero_params']:,}"],
        ["MACs per sample", f"{m['macs_before']:,}", f"{m['macs']:,} ({m['macs'] / m['macs_before']:.2f}x)"],
        ["file size", f"{m['size_bytes_before']:,} B", f"{m['size_bytes']:,} B"],
    ]
    for key in sorted(k for k in m if k.startswith("latency_ms_b") and not k.endswith("_before")):
        batch = key.removeprefix("latency_ms_b")
        ratio = m[key] / m[f"{key}_before"]
        rows.append([f"ONNX latency, batch {batch} (p50)", f"{m[key + '_before']:.3f} ms",
                     f"{m[key]:.3f} ms ({ratio:.2f}x)"])
    return rows
