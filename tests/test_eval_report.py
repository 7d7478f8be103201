"""`dlcli eval`'s per-class precision/recall/F1 and its confusion-matrix PNG, for .pt and .onnx."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.engine.metrics import confusion_matrix, per_class


def test_per_class_figures_on_a_hand_made_example() -> None:
    predicted, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 0])
    matrix = confusion_matrix(predicted, labels, 4)
    assert matrix.tolist() == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    rows = {r["class"]: r for r in per_class(matrix, ["a", "b", "c", "d"])}
    assert rows["b"]["precision"] == pytest.approx(0.5) and rows["b"]["recall"] == 1.0
    assert rows["c"]["precision"] == 1.0 and rows["c"]["recall"] == pytest.approx(0.5)
    assert rows["c"]["f1"] == pytest.approx(2 / 3) and rows["c"]["support"] == 2
    assert rows["d"] == {"class": "d", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # not NaN


def _check_report(payload: dict, classes: list[str]) -> None:
    metrics, rows, matrix = payload["metrics"], payload["per_class"], payload["confusion_matrix"]
    assert [r["class"] for r in rows] == classes and len(matrix) == len(classes)
    assert sum(r["support"] for r in rows) == metrics["samples"] == sum(map(sum, matrix))
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(len(classes))) / metrics["samples"])
    for i, row in enumerate(rows):
        assert row["recall"] == pytest.approx(matrix[i][i] / sum(matrix[i]))
    assert metrics["macro_f1"] == pytest.approx(sum(r["f1"] for r in rows) / len(rows))


def test_eval_checkpoint_reports_classes_and_draws_the_matrix(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    png = tmp_path / "confusion.png"
    result = cli("eval", trained_checkpoint, "--plot", png, "--json")
    assert result.code == 0, result.err
    payload = result.json()
    _check_report(payload, load_checkpoint(trained_checkpoint).classes)
    assert payload["artifact"] == payload["plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    assert "per class" in result.err and "macro average" in result.err
    # A PNG dlcli did not write is kept unless --force.
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG mine")
    refused = cli("eval", trained_checkpoint, "--plot", foreign, "-q")
    assert refused.code == 2 and "--force" in refused.err and foreign.read_bytes() == b"\x89PNG mine"
    assert "per class" not in refused.err  # refused before the evaluation, not after it
    # dlcli draws PNG only: a .jpg name is refused rather than given PNG bytes.
    jpg = cli("eval", trained_checkpoint, "--plot", tmp_path / "confusion.jpg")
    assert jpg.code == 2 and "ending in .png" in jpg.err and not (tmp_path / "confusion.jpg").exists()
    assert "per class" not in jpg.err


def test_data_with_other_class_names_is_refused() -> None:
    """A digit model on fashion-mnist: 10 classes and 10 classes, so the count check passed and eval
    printed 3 % accuracy against labels that mean other things."""
    import numpy as np

    from dlcli.data.dataset import Dataset, Split
    from dlcli.errors import UsageError
    from dlcli.workflows.evaluate import check_compatible

    split = Split(np.zeros((2, 1, 4, 4), np.uint8), np.zeros(2, np.int64))
    digits = [str(i) for i in range(10)]
    clothes = Dataset("clothes", split, None, ["T-shirt/top", "Trouser", *digits[2:]])
    check_compatible(Dataset("digits", split, None, digits), [1, 4, 4], digits, Path("m.pt"))
    with pytest.raises(UsageError, match=r"m\.pt predicts the classes \('0', '1', '2', '3', \.\.\.\) but clothes's "
                                         r"are \('T-shirt/top', 'Trouser', '2', '3', \.\.\.\)"):
        check_compatible(clothes, [1, 4, 4], digits, Path("m.pt"))
    with pytest.raises(UsageError, match="label numbers"):  # the same names in another order
        check_compatible(Dataset("shuffled", split, None, digits[::-1]), [1, 4, 4], digits, Path("m.pt"))


def test_eval_onnx_reports_the_same_classes(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    from dlcli.export.onnx_export import export_onnx

    model = load_checkpoint(trained_checkpoint).build_model()
    path = tmp_path / "model.onnx"  # the fast TorchScript exporter: this test is about eval
    onnx.save_model(export_onnx(model, [1, 28, 28], opset=17, dynamic_batch=True).proto, path)
    from_onnx = cli("eval", path, "--data", "mnist-sample", "--plot", tmp_path / "onnx.png", "--json", "-q")
    from_pt = cli("eval", trained_checkpoint, "--json", "-q", "--device", "cpu")
    assert from_onnx.code == 0, from_onnx.err
    _check_report(from_onnx.json(), [str(i) for i in range(10)])
    assert from_onnx.json()["confusion_matrix"] == from_pt.json()["confusion_matrix"]
    assert (tmp_path / "onnx.png").is_file()
