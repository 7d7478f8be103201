"""What `dlcli benchmark` reports: its headline metrics, the table on stderr, and the CSV and plot
files it writes when asked."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from dlcli.console import Console, short_labels
from dlcli.runs import atomic_write, check_output_file


def headline(rows: list[dict[str, Any]]) -> dict[str, float]:
    """`<label>:p50_ms_b<N>` and `<label>:throughput_b<N>` per artifact and batch size,
    `<label>:accuracy` when measured, and with several artifacts `<label>:speedup_b<N>` of each
    later one against the first (its p50 over theirs; above 1 means faster). Labels are the file
    names (the last two path parts when names repeat), as the table shows them."""
    labels = short_labels([r["artifact"] for r in rows])
    first = rows[0]["artifact"] if rows else None
    reference = {r["batch_size"]: r["p50_ms"] for r in rows if r["artifact"] == first}
    metrics: dict[str, float] = {}
    for r in rows:
        label, batch = labels[r["artifact"]], r["batch_size"]
        metrics[f"{label}:p50_ms_b{batch}"] = r["p50_ms"]
        metrics[f"{label}:throughput_b{batch}"] = r["throughput"]
        if r["accuracy"] is not None:
            metrics[f"{label}:accuracy"] = r["accuracy"]
        if r["artifact"] != first and batch in reference:
            metrics[f"{label}:speedup_b{batch}"] = reference[batch] / r["p50_ms"]
    return metrics


def show_table(rows: list[dict[str, Any]], console: Console) -> None:
    """The device column only when rows differ in it (the machine line above names it)."""
    labels = short_labels([r["artifact"] for r in rows])
    with_device = len({r["device"] for r in rows}) > 1
    columns = ["artifact", "runtime", *(["device"] if with_device else []), "batch", "p50 ms", "p90 ms", "p99 ms",
               "samples/s", "MB", "params", "accuracy"]
    console.table("benchmark", columns, [
        [labels[r["artifact"]], r["runtime"], *([r["device"]] if with_device else []), r["batch_size"],
         *(f"{r[k]:.3g}" for k in ("p50_ms", "p90_ms", "p99_ms")), f"{r['throughput']:,.0f}",
         f"{r['size_bytes'] / 1e6:.2f}", f"{r['params']:,}",
         f"{r['accuracy']:.2%}" if r["accuracy"] is not None else None]
        for r in rows
    ])


def _file_head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4096)
    except OSError:
        return b""


def write_csv(rows: list[dict[str, Any]], path: Path, force: bool) -> Path:
    check_output_file(path, force, is_ours=_file_head(path).startswith(b"artifact,runtime,"))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["artifact", "runtime"])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def write_plot(rows: list[dict[str, Any]], path: Path, force: bool) -> Path:
    from dlcli.plots import plot_latency

    return plot_latency(rows, short_labels([r["artifact"] for r in rows]), path, force)
