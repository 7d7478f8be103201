"""Budget-aware defaults (dlcli.engine.budget): small data trains for enough optimizer steps, and a tiny
validation split does not pick the best epoch."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dlcli.engine import budget


@pytest.mark.parametrize(("samples", "batch", "dataset_epochs", "expected"), [
    (54_000, 128, 2, 2),        # full MNIST: 422 steps an epoch, the dataset's default already suffices
    (2_000, 128, 2, 19),        # --train-samples 2000: 16 steps an epoch -> 19 epochs for 300 steps
    (94, 128, 10, 300),         # a 150-row table: one step an epoch
    (10, 128, 10, 300),         # never fewer than MIN_STEPS steps below the MAX_EPOCHS cap
])
def test_default_epochs_reach_the_step_budget(samples: int, batch: int, dataset_epochs: int, expected: int) -> None:
    epochs = budget.default_epochs(dataset_epochs, samples, batch)
    assert epochs == expected
    steps = epochs * budget.steps_per_epoch(samples, batch)
    assert steps >= budget.MIN_STEPS or epochs == budget.MAX_EPOCHS


def test_the_grown_default_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "MIN_STEPS", 10_000)
    assert budget.default_epochs(10, 50, 128) == budget.MAX_EPOCHS


def test_small_validation_splits_do_not_select() -> None:
    assert not budget.selects_by_validation(10)
    assert not budget.selects_by_validation(budget.MIN_SELECTION_SAMPLES - 1)
    assert budget.selects_by_validation(budget.MIN_SELECTION_SAMPLES)


def _table(path: Path, rows: int) -> Path:
    """Two linearly separable classes in two features: any working recipe learns it."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "label"])
        for i in range(rows):
            label = i % 2
            writer.writerow([label * 2.0 + (i % 7) * 0.1, 1.0 - label + (i % 5) * 0.1, label])
    return path


@pytest.mark.slow
def test_a_small_table_trains_longer_and_keeps_its_last_epoch(cli, tmp_path: Path) -> None:
    data = _table(tmp_path / "t.csv", 40)
    result = cli("train", "-m", "mlp", "-a", "hidden=[8]", "--data", f"csv:{data}", "--batch-size", "16",
                 "--out", tmp_path / "run", "--json", "-q")
    assert result.code == 0, result.err
    metrics = result.json()["metrics"]
    steps_per_epoch = budget.steps_per_epoch(36, 16)  # 40 rows less the 10 % validation split
    assert metrics["epochs"] == budget.MIN_STEPS // steps_per_epoch == 100
    assert metrics["best_epoch"] == metrics["epochs"]  # 4 validation rows never pick an epoch
    given = cli("train", "-m", "mlp", "-a", "hidden=[8]", "--data", f"csv:{data}", "--batch-size", "16",
                "--epochs", "3", "--out", tmp_path / "run3", "--json", "-q")
    assert given.json()["metrics"]["epochs"] == 3  # --epochs always wins
