"""End to end on real MNIST (runs when DLCLI_DATA_DIR points at the real files, as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("DLCLI_DATA_DIR"), reason="set DLCLI_DATA_DIR to the real data"),
]


@pytest.mark.slow
def test_train_then_eval_on_a_real_mnist_subset(cli, tmp_path: Path) -> None:
    trained = cli("train", "--model", "cnn", "--data", "mnist", "--train-samples", "12000", "--epochs", "2",
                  "--out", tmp_path / "run", "--json", "-q")
    assert trained.code == 0, trained.err
    train_metrics = trained.json()["metrics"]
    assert train_metrics["test_samples"] == 10000
    assert train_metrics["accuracy"] > 0.95  # 12k digits, 2 epochs: typically ~98 %
    evaluated = cli("eval", trained.json()["artifact"], "--data", "mnist", "--json", "-q").json()
    assert evaluated["metrics"]["accuracy"] == pytest.approx(train_metrics["accuracy"], abs=1e-9)
    assert evaluated["metrics"]["samples"] == 10000
