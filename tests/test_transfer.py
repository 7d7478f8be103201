"""finetune and distill: new set-ups of the one loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.models import count_parameters
from dlcli.models.surgery import head_name


def write_csv(path: Path, classes: list[str], n: int = 60) -> Path:
    g = torch.Generator().manual_seed(0)
    rows = ["f1,f2,label"]
    for i in range(n):
        c = i % len(classes)
        x = torch.randn(2, generator=g) * 0.2 + c
        rows.append(f"{x[0]:.4f},{x[1]:.4f},{classes[c]}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_finetune_replaces_the_head_and_records_lineage(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "letters"
    for cls in ("a", "b", "c"):  # three new classes of 28x28 grey images
        (folder / cls).mkdir(parents=True)
    from PIL import Image

    for i in range(30):
        cls = "abc"[i % 3]
        img = torch.zeros(28, 28, dtype=torch.uint8)
        img[4 + 6 * (i % 3) : 10 + 6 * (i % 3), :] = 255
        Image.fromarray(img.numpy()).save(folder / cls / f"{i}.png")
    result = cli("finetune", trained_checkpoint, "--data", f"folder:{folder}", "--epochs", "2", "--val-split", "0",
                 "--out", tmp_path / "ft", "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "finetune" and payload["metrics"]["head_replaced"] is True
    assert "head replaced" in result.err
    child = load_checkpoint(payload["artifact"])
    assert child.classes == ["a", "b", "c"]
    assert [e["step"] for e in child.lineage] == ["train", "finetune"]
    assert child.lineage[-1]["source"] == str(trained_checkpoint)


def test_freeze_all_but_head_leaves_the_backbone_untouched(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("finetune", trained_checkpoint, "--freeze", "all-but-head", "--epochs", "1", "--train-samples",
                 "300", "--out", tmp_path / "ft", "-q", "--lr", "0.5")
    assert result.code == 0, result.err
    before = load_checkpoint(trained_checkpoint).state_dict
    after = load_checkpoint(Path(result.out.strip())).state_dict
    head = head_name(load_checkpoint(trained_checkpoint).build_model()) + "."
    moved = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(head) for k in moved), moved


def test_freeze_backbone_lets_batchnorm_statistics_follow_the_data(cli, trained_checkpoint: Path,
                                                                  tmp_path: Path) -> None:
    result = cli("finetune", trained_checkpoint, "--freeze", "backbone", "--epochs", "1", "--train-samples", "300",
                 "--out", tmp_path / "ft", "-q", "--data", "mnist-sample")
    assert result.code == 0, result.err
    before = load_checkpoint(trained_checkpoint).state_dict
    after = load_checkpoint(Path(result.out.strip())).state_dict
    norm = next(n for n, m in load_checkpoint(trained_checkpoint).build_model().named_modules()
                if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(before["body.0.weight"], after["body.0.weight"])
    assert not torch.equal(before[f"{norm}.running_mean"], after[f"{norm}.running_mean"])


def test_unfreeze_after_trains_the_backbone_later(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("finetune", trained_checkpoint, "--freeze", "all-but-head", "--unfreeze-after", "1", "--epochs",
                 "2", "--train-samples", "300", "--out", tmp_path / "ft")
    assert result.code == 0, result.err
    assert "unfreezing all layers" in result.err
    before = load_checkpoint(trained_checkpoint).state_dict
    after = load_checkpoint(tmp_path / "ft" / "last.pt").state_dict
    assert not torch.equal(before["body.0.weight"], after["body.0.weight"])


def test_finetune_refuses_incompatible_inputs(cli, tmp_path: Path) -> None:
    """An mlp's first layer takes a fixed input size: one trained on 2 table features cannot take
    28x28 images (a table is the cheapest parent to train)."""
    csv = write_csv(tmp_path / "t.csv", ["x", "y"])
    mlp = cli("train", "-m", "mlp", "-a", "hidden=[8]", "--data", f"csv:{csv}", "--epochs", "1", "-q",
              "--out", tmp_path / "mlp")
    assert mlp.code == 0, mlp.err
    result = cli("finetune", Path(mlp.out.strip()), "--data", "mnist-sample", "--epochs", "1", "-q",
                 "--out", tmp_path / "ft")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "cannot" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "ft").exists()


@pytest.mark.slow
def test_distill_beats_nothing_silently_and_reports_all_three(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("distill", "--teacher", trained_checkpoint, "--student", "cnn", "-a", "width=0.5", "--epochs", "1",
                 "--train-samples", "600", "--baseline", "--out", tmp_path / "kd", "--json")
    assert result.code == 0, result.err
    payload = result.json()
    m = payload["metrics"]
    assert payload["command"] == "distill"
    student = load_checkpoint(payload["artifact"])
    teacher, baseline = load_checkpoint(trained_checkpoint), load_checkpoint(payload["baseline_artifact"])
    # Each reported accuracy is that model's test accuracy as its own checkpoint records it (the teacher
    # is re-evaluated by distill: one argmax tie in 1,000 may fall the other way).
    assert m["accuracy"] == pytest.approx(student.metrics["test_accuracy"])
    assert m["baseline_accuracy"] == pytest.approx(baseline.metrics["test_accuracy"])
    assert m["teacher_accuracy"] == pytest.approx(teacher.metrics["test_accuracy"], abs=0.002)
    assert m["student_params"] == count_parameters(student.build_model())
    assert m["teacher_params"] == count_parameters(teacher.build_model())
    assert m["param_ratio"] == pytest.approx(m["student_params"] / m["teacher_params"]) and m["param_ratio"] < 1
    assert m["latency_ratio"] > 0
    assert student.lineage[-1]["step"] == "distill"
    assert student.model_args["width"] == 0.5
    assert Path(payload["baseline_artifact"]).exists()
    latest = json.loads((tmp_path / "runs" / "latest.json").read_text())["checkpoint"]
    assert latest == str(Path(payload["artifact"]).resolve())  # the baseline is not "the latest run"


def test_distill_refuses_a_teacher_with_other_classes(cli, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "t.csv", ["x", "y", "z"])
    teacher = cli("train", "-m", "mlp", "--data", f"csv:{csv}", "--epochs", "1", "-q", "--out", tmp_path / "t")
    assert teacher.code == 0, teacher.err
    result = cli("distill", "--teacher", Path(teacher.out.strip()), "--student", "mlp", "--data", "mnist-sample",
                 "--epochs", "1")
    assert result.code == 2
    assert "same classes" in result.err


def test_feature_loss_needs_equal_widths(cli, trained_checkpoint: Path) -> None:
    result = cli("distill", "-t", trained_checkpoint, "-s", "cnn", "-a", "width=0.5", "--feature-loss", "1",
                 "--epochs", "1", "--train-samples", "300")
    assert result.code == 2 and "feature widths" in result.err
    ok = cli("distill", "-t", trained_checkpoint, "-s", "cnn", "--feature-loss", "1", "--epochs", "1",
             "--train-samples", "300", "-q")
    assert ok.code == 0, ok.err
