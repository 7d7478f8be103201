"""Every PNG dlcli draws: training curves, the confusion matrix, the benchmark scatter.

matplotlib is imported inside each function (headless Agg backend), so importing this module costs
nothing on the CLI path. PNGs carry a "Software: dlcli ..." tag, which is how `save` recognises a file
it may overwrite without --force; they are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli.errors import UsageError
from dlcli.runs import atomic_write, check_output_file


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (imported on first use: it costs 0.46 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def is_dlcli_png(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"dlcli" in head


def save(fig: Any, path: Path, software: str, force: bool = True, crop: bool = True) -> Path:
    """Write `fig` atomically as a tagged PNG; a PNG dlcli did not write is kept unless `force`.

    `crop` trims the figure to what is drawn (bbox_inches="tight"), which draws it twice; a figure laid
    out with tight_layout already fits and is saved without it (for curves.png, written after every
    training run, that was about a quarter of its drawing time).
    """
    check_png_output(path, force)
    plt = pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                          bbox_inches="tight" if crop else None,
                                                          metadata={"Software": f"dlcli {software}"}))
    finally:
        plt.close(fig)


def check_png_output(path: Path, force: bool) -> Path:
    """A --plot path `save` may write, checked before the work that draws it too: dlcli writes PNG only
    (`--plot x.jpg` wrote PNG bytes under a .jpg name), and a PNG it did not write is kept unless `force`."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: dlcli draws PNG files; give a --plot path ending in .png.")
    return check_output_file(path, force, is_ours=is_dlcli_png(path))


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss, accuracy and learning rate per epoch (train and, when there is one, validation)."""
    if not history:
        return None
    return save(curves_figure(history), path, "train", crop=False)


def curves_figure(history: list[dict[str, Any]]) -> Any:
    """plot_curves' figure, laid out, not yet saved."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(12, 3.5))
    for split, prefix in (("train", "train_"), ("validation", "val_")):
        if f"{prefix}loss" in history[0]:
            ax_loss.plot(epochs, [h[f"{prefix}loss"] for h in history], marker="o", label=split)
            ax_acc.plot(epochs, [h[f"{prefix}accuracy"] for h in history], marker="o", label=split)
    # The loop records the rate at each epoch's end (a per-step schedule moves within the epoch).
    ax_lr.plot(epochs, [h.get("lr") for h in history], marker="o", color="tab:green")
    ax_acc.yaxis.set_major_formatter(_percent())
    for ax, title, ylabel in ((ax_loss, "loss", "loss (cross-entropy)"), (ax_acc, "accuracy", "accuracy"),
                              (ax_lr, "learning rate", "learning rate at epoch end")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    if len(set(epochs)) == 1:  # one epoch (the default MNIST recipe): the integer locator finds too few
        for ax in (ax_loss, ax_acc, ax_lr):  # integers and falls back to 0.945, 0.960, ... run together
            ax.set_xticks(epochs[:1])
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    return fig


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=1)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path, title: str, force: bool) -> Path:
    """Counts of (true class, predicted class); cells are shaded by the share of their row, so a
    rare class's errors are as visible as a common one's."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = list(range(n))
    ax.set_xticks(ticks, labels=classes, rotation=45 if max(map(len, classes), default=0) > 3 else 0, ha="right")
    ax.set_yticks(ticks, labels=classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 30:  # beyond that the numbers do not fit in the cells
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    return save(fig, path, "eval", force)


def plot_latency(rows: list[dict[str, Any]], labels: dict[str, str], path: Path, force: bool) -> Path:
    """Accuracy (or, without data, throughput) against p50 latency as a PNG (see `latency_figure`)."""
    return save(latency_figure(rows, labels), path, "benchmark", force)


def latency_figure(rows: list[dict[str, Any]], labels: dict[str, str]) -> Any:
    """One point per artifact and batch size, each labelled without overlapping its neighbours."""
    plt = pyplot()
    y_key = "accuracy" if all(r["accuracy"] is not None for r in rows) else "throughput"
    fig, ax = plt.subplots(figsize=(8, 5))
    notes = []
    for batch_size in sorted({r["batch_size"] for r in rows}):
        chosen = [r for r in rows if r["batch_size"] == batch_size]
        ax.scatter([r["p50_ms"] for r in chosen], [r[y_key] for r in chosen], label=f"batch {batch_size}",
                   clip_on=False, zorder=3)
        notes += [ax.annotate(f"{labels[r['artifact']]} ({r['runtime']})", (r["p50_ms"], r[y_key]),
                              textcoords="offset points", xytext=(5, 5), fontsize=8, annotation_clip=False)
                  for r in chosen]
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per batch (ms, log scale)")
    if y_key == "accuracy":
        ax.set_ylim(*accuracy_limits([r["accuracy"] for r in rows]))
        ax.yaxis.set_major_formatter(_percent())
        ax.set_ylabel("test accuracy")
    else:
        ax.set_ylabel("throughput (samples/s)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _separate_labels(fig, ax, notes)
    return fig


def accuracy_limits(values: list[float]) -> tuple[float, float]:
    """A y range around the accuracies that never goes above 100 % or below 0 %, and is at least
    one percentage point tall so that equal values do not make a range of zero (which matplotlib
    would widen to +-5 %, past 100 %)."""
    low, high = min(values), max(values)
    pad = max((high - low) * 0.15, 0.005)
    return max(0.0, low - pad), min(1.0, high + pad)


def _separate_labels(fig: Any, ax: Any, notes: list[Any], rounds: int = 50) -> None:
    """Nudge point labels apart and into the axes: a label that would leave the axes on the right is
    placed left of its point, and overlapping labels are pushed up/down in small steps. Written here
    because a few labels do not justify a dependency (adjustText) for the same effect."""
    if not notes:
        return
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    for note in notes:
        if note.get_window_extent(renderer).x1 > frame.x1:
            note.set_horizontalalignment("right")
            note.set_position((-5, 5))
    for _ in range(rounds):
        boxes = [note.get_window_extent(renderer) for note in notes]
        moved = False
        for i in range(len(notes)):
            for j in range(i + 1, len(notes)):
                if boxes[i].overlaps(boxes[j]):
                    upper, lower = (i, j) if boxes[i].y0 >= boxes[j].y0 else (j, i)
                    _nudge(notes[upper], 3)
                    _nudge(notes[lower], -3)
                    moved = True
        if not moved:
            return
        fig.canvas.draw()


def _nudge(note: Any, points: float) -> None:
    x, y = note.get_position()
    note.set_position((x, y + points))
