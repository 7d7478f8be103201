"""What `dlcli frontier` shows and writes: the table (stderr), frontier.json, frontier.csv and
frontier.png, each written atomically into the output folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcli.console import Console, signed
from dlcli.runs import atomic_write
from dlcli.workflows.frontier_rules import Point, pareto_flags

if TYPE_CHECKING:
    from dlcli.workflows.frontier import FrontierResult

CSV_SKIP = ("lineage",)  # nested: in frontier.json only


def show(found: FrontierResult, console: Console) -> None:
    b = found.latency_batch
    rows = [[
        ("* " if r["pareto"] else "") + r["variant"], _short(r["parent"], Path(found.out)), f"{r['accuracy']:.2%}",
        signed(r['accuracy_drop_pp']), f"{r['params']:,}", f"{r['size_bytes'] / 1e6:.3f}",
        *(f"{r[f'p50_ms_b{batch}']:.3g} / {r[f'p90_ms_b{batch}']:.3g}" for batch in (1, 32)),
        f"{r[f'speedup_b{b}']:.2f}x", "pass" if r["passes"] else "FAIL " + ", ".join(r["failures"]),
        "reused" if r["reused"] else "built",
    ] for r in found.variants]
    console.table(f"frontier of {found.parent} (onnxruntime CPU, {found.threads} threads; * Pareto-optimal: "
                  f"accuracy up, p50 at batch {b} down, size down)",
                  ["variant", "parent", "accuracy", "drop pp", "params", "MB", "b1 ms p50 / p90", "b32 ms p50 / p90",
                   f"speedup b{b}", "gates", "artifact"], rows)
    if found.pick is not None:
        console.info(f"pick (highest accuracy among passing, then lowest latency): {found.pick}")
    else:
        console.warn("no variant passes the gates.")
    console.info(f"wrote {', '.join(found.files.values())}")


def _short(path: str, out_dir: Path) -> str:
    """A path inside the output folder relative to it, else its file name (the table is wide)."""
    try:
        return str(Path(path).relative_to(out_dir))
    except ValueError:
        return Path(path).name


def report_files(out_dir: Path) -> dict[str, str]:
    """Where `write_files` writes: frontier.json (what --json prints), frontier.csv (one row per variant)
    and frontier.png."""
    return {"json": str(out_dir / "frontier.json"), "csv": str(out_dir / "frontier.csv"),
            "plot": str(out_dir / "frontier.png")}


def write_files(found: FrontierResult) -> None:
    """The files `found.files` names (see `report_files`)."""
    files = found.files
    _write_csv(found.variants, Path(files["csv"]))
    write_plot(found, Path(files["plot"]))
    text = json.dumps(found.to_json(), indent=2, default=str) + "\n"
    atomic_write(files["json"], lambda tmp: Path(tmp).write_text(text))


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns = [k for k in rows[0] if k not in CSV_SKIP]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "failures": "; ".join(row["failures"])})

    return atomic_write(path, write)


def write_plot(found: FrontierResult, path: Path) -> Path:
    """Accuracy against p50 latency at the reference batch; marker area by file size; the Pareto line
    of accuracy against latency; Pareto-optimal rows (all three objectives) outlined; every point
    labelled, labels placed so that they neither overlap nor leave the axes (`place_labels`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = found.latency_batch
    rows = found.variants
    x = [r[f"p50_ms_b{b}"] for r in rows]
    y = [r["accuracy"] * 100 for r in rows]
    biggest = max(r["size_bytes"] for r in rows) or 1
    area = [60 + 540 * r["size_bytes"] / biggest for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    ax.scatter(x, y, s=area, c=["tab:orange" if r["pareto"] else "tab:blue" for r in rows], alpha=0.6,
               edgecolors="black", linewidths=[1.2 if r["pareto"] else 0.0 for r in rows], zorder=3)
    failing = [i for i, r in enumerate(rows) if not r["passes"]]
    if failing:
        ax.scatter([x[i] for i in failing], [y[i] for i in failing], marker="x", c="tab:red", s=40, zorder=4,
                   label="fails a gate")
    on_line = pareto_flags([Point(a, t, 0) for a, t in zip(y, x, strict=True)])  # size left out: the plot's 2 axes
    line = sorted((x[i], y[i]) for i, ok in enumerate(on_line) if ok)
    ax.plot([p[0] for p in line], [p[1] for p in line], drawstyle="steps-post", color="tab:orange", zorder=2,
            label="Pareto line (accuracy vs latency)")
    ax.scatter([], [], c="tab:orange", edgecolors="black", label="Pareto-optimal (accuracy, latency, size)")
    log = min(x) > 0 and max(x) / min(x) > 4  # a log axis only pays when latencies span several-fold
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))  # not 5x10^-1
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    _pad_limits(ax, x, y, log)
    scale = ", log scale" if log else ""
    ax.set_xlabel(f"p50 latency at batch {b} (ms{scale}; onnxruntime CPU, {found.threads} threads)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"dlcli frontier of {Path(found.parent).name}: marker area is file size")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    place_labels(ax, list(zip(x, y, strict=True)), [r["variant"] for r in rows], area)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": "dlcli frontier"}))
    finally:
        plt.close(fig)


def _pad_limits(ax: Any, x: list[float], y: list[float], log: bool) -> None:
    """Room around the points for markers and labels; accuracy never shown above 100 %, and a spread
    of at least 0.2 pp so equal accuracies do not fill the axis with noise digits."""
    lo, hi = min(y), max(y)
    spread = max(hi - lo, 0.2)
    ax.set_ylim(lo - 0.6 * spread, min(hi + 0.6 * spread, 100.0 + 0.05 * spread))
    left, right = min(x), max(x)
    if log:
        pad = max((right / left) ** 0.12, 1.3)
        ax.set_xlim(left / pad, right * pad)
    else:
        pad = max(right - left, 0.1 * right) * 0.25
        ax.set_xlim(max(left - pad, 0.0), right + pad)


# Candidate label offsets (points) around a marker, nearest first: right, left, above, below, diagonals.
_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))
_DISTANCES = (4, 12, 24, 40, 60)


def place_labels(ax: Any, points: list[tuple[float, float]], texts: list[str], areas: list[float]) -> list[Any]:
    """Annotate each point with the first candidate offset whose text box lies inside the axes and
    overlaps neither an earlier label nor any marker; when none is free, the candidate that overlaps
    least (drawn with a leader line). Measured text extents from the renderer make this exact.

    Why by hand: adjustText nudges labels iteratively and may leave them overlapping or outside the
    axes; with the handful of points a frontier has, trying fixed candidates is small and certain."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-2)
    scale = fig.dpi / 72
    occupied = []
    for (px, py), area in zip(points, areas, strict=True):
        cx, cy = ax.transData.transform((px, py))
        r = math.sqrt(area) / 2 * scale
        occupied.append((cx - r, cy - r, cx + r, cy + r))
    legend = ax.get_legend()
    if legend is not None:
        box = legend.get_window_extent(renderer)
        occupied.append((box.x0, box.y0, box.x1, box.y1))
    placed = []
    for i, ((px, py), text) in enumerate(zip(points, texts, strict=True)):
        radius = math.sqrt(areas[i]) / 2
        best, best_cost = None, math.inf
        for distance in _DISTANCES:
            for dx, dy in _DIRECTIONS:
                offset = (dx * (radius + distance), dy * (radius + distance))
                label = _annotate(ax, text, (px, py), offset, dx, dy, leader=distance > 12)
                box = label.get_window_extent(renderer)
                extent = (box.x0, box.y0, box.x1, box.y1)
                cost = sum(_overlap(extent, o) for o in occupied) + _outside(extent, inside)
                if cost < best_cost:
                    if best is not None:
                        best[0].remove()
                    best, best_cost = (label, extent), cost
                else:
                    label.remove()
                if best_cost == 0:
                    break
            if best_cost == 0:
                break
        assert best is not None
        occupied.append(best[1])
        placed.append(best[0])
    return placed


def _annotate(ax: Any, text: str, xy: tuple[float, float], offset: tuple[float, float], dx: int, dy: int,
              leader: bool) -> Any:
    ha = {1: "left", -1: "right", 0: "center"}[dx]
    va = {1: "bottom", -1: "top", 0: "center"}[dy]
    arrow = {"arrowstyle": "-", "color": "0.5", "lw": 0.6} if leader else None
    return ax.annotate(text, xy, xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=8, zorder=5,
                       arrowprops=arrow, annotation_clip=False)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _outside(box: tuple[float, ...], inside: Any) -> float:
    """Area of `box` outside the axes, weighted so that leaving the axes costs more than touching a marker."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    kept = _overlap(box, (inside.x0, inside.y0, inside.x1, inside.y1))
    return 10 * (area - kept)
