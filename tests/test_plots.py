"""The PNGs people read: axes that make sense, labels that stay apart, files written only when ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcli import plots
from dlcli.errors import ArtifactExistsError


def _row(artifact: str, p50: float, accuracy: float | None, batch: int = 1) -> dict:
    return {"artifact": artifact, "runtime": "onnxruntime", "batch_size": batch, "p50_ms": p50,
            "accuracy": accuracy, "throughput": batch / p50 * 1000}


def _overlap(fig, texts) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def test_equal_accuracies_keep_the_axis_at_or_below_one() -> None:
    rows = [_row(f"variant{i}.onnx", 1.0 + 0.02 * i, 1.0, batch) for i in range(3) for batch in (1, 32)]
    fig = plots.latency_figure(rows, {r["artifact"]: r["artifact"] for r in rows})
    low, high = fig.axes[0].get_ylim()
    assert high <= 1.0 and high - low >= 0.005
    assert plots.accuracy_limits([0.99, 0.99]) == pytest.approx((0.985, 0.995))


def test_close_points_get_labels_that_do_not_overlap() -> None:
    # Nearly the same latency and accuracy: the labels start on top of each other.
    rows = [_row(f"model-{name}.onnx", 2.0 + 0.01 * i, 0.98 + 0.0001 * i) for i, name in enumerate("abcdef")]
    fig = plots.latency_figure(rows, {r["artifact"]: r["artifact"] for r in rows})
    texts = [t for t in fig.axes[0].texts]
    assert len(texts) == 6 and _overlap(fig, texts) == []


def test_curves_have_axis_labels_and_a_learning_rate_panel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.5 + e / 10, "val_loss": 1.2 / e,
                "val_accuracy": 0.4 + e / 10, "lr": 0.1 / e} for e in (1, 2, 3)]
    ylabels, fits = [], []
    real_save = plots.save

    def save(fig, path, software, **options):
        ylabels.append([ax.get_ylabel() for ax in fig.axes])
        fig.canvas.draw()  # saved uncropped: every label and title must lie inside the figure
        drawn, page = fig.get_tightbbox(fig.canvas.get_renderer()), fig.bbox_inches
        fits.append(drawn.x0 >= page.x0 and drawn.y0 >= page.y0 and drawn.x1 <= page.x1 and drawn.y1 <= page.y1)
        return real_save(fig, path, software, **options)

    monkeypatch.setattr(plots, "save", save)
    path = plots.plot_curves(history, tmp_path / "curves.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG" and plots.is_dlcli_png(path)
    assert ylabels == [["loss (cross-entropy)", "accuracy", "learning rate at epoch end"]] and fits == [True]


def test_a_one_epoch_run_has_one_epoch_tick() -> None:
    """The default MNIST recipe trains one epoch: its x axes once read 0.945, 0.960, ... run together."""
    fig = plots.curves_figure([{"epoch": 1, "train_loss": 0.2, "train_accuracy": 0.95, "val_loss": 0.05,
                                "val_accuracy": 0.988, "lr": 3e-4}])
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high] == ["1"]
    assert _overlap(fig, [label for ax in fig.axes for label in ax.get_xticklabels() if label.get_text()]) == []


def test_a_png_dlcli_did_not_write_is_kept_without_force(tmp_path: Path) -> None:
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG not ours")
    rows = [_row("a.onnx", 1.0, 0.9)]
    with pytest.raises(ArtifactExistsError):
        plots.plot_latency(rows, {"a.onnx": "a.onnx"}, foreign, force=False)
    assert foreign.read_bytes() == b"\x89PNG not ours"
    assert plots.plot_latency(rows, {"a.onnx": "a.onnx"}, foreign, force=True) == foreign
    assert plots.is_dlcli_png(foreign)
