"""`dlcli compare` (runs and artifacts side by side) and `dlcli predict` (streaming top-k per input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcli.checkpoint import load_checkpoint, save_checkpoint
from dlcli.choices import DEFAULT_LR


def _variant(source: Path, folder: Path, **config: object) -> Path:
    """A copy of a run folder whose best.pt records a different config and test accuracy."""
    ckpt = load_checkpoint(source)
    ckpt.config.update(config)
    ckpt.metrics["test_accuracy"] = 0.5
    folder.mkdir(parents=True)
    save_checkpoint(ckpt, folder / "best.pt")
    return folder


def test_compare_shows_only_differing_config_keys(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    other = _variant(trained_checkpoint, tmp_path / "lr-0.05", lr=0.05)
    result = cli("compare", trained_checkpoint.parent, other, "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "compare"
    assert [a["path"] for a in payload["artifacts"]] == [str(trained_checkpoint), str(other / "best.pt")]
    # the saved config holds the lr the run used (the sample's cnn recipe: not sgd's default), not null
    from dlcli.data.catalog import DATASETS

    used = load_checkpoint(trained_checkpoint).config["lr"]
    assert used == DATASETS.get("mnist-sample").recipes["cnn"].lr["sgd"] != DEFAULT_LR["sgd"]
    assert payload["config_differences"] == {"lr": [used, 0.05]}
    assert payload["artifacts"][1]["metrics"]["test_accuracy"] == 0.5
    assert payload["artifacts"][0]["lineage"][0]["step"] == "train"
    shown = cli("compare", trained_checkpoint.parent, other)
    assert "keys that differ" in shown.err and "50.00%" in shown.err and "train" in shown.err
    # every accuracy row as a percentage, like the headline (val_accuracy once read 0.9925 beside it)
    val = load_checkpoint(trained_checkpoint).metrics["val_accuracy"]
    assert f"{val:.2%}" in shown.err and f"{val:.4g}" not in shown.err
    assert f"{val:.2%}" in cli("info", trained_checkpoint).err
    everything = cli("compare", trained_checkpoint.parent, other, "--all-config", "--json").json()
    assert {"lr", "epochs", "seed", "model", "model_args.width"} <= set(everything["config_differences"])


def test_compare_refuses_a_folder_without_a_run(cli, tmp_path: Path) -> None:
    result = cli("compare", tmp_path)
    assert result.code == 2 and result.err.count("\n") == 1 and "best.pt" in result.err


def _digits(folder: Path, count: int, size: int = 28, mode: str = "L") -> list[int]:
    """The first test images of the embedded sample as PNG files (resized and converted as asked)."""
    from PIL import Image

    from dlcli.data.catalog import load_dataset

    test = load_dataset("mnist-sample").test
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(test.x[i, 0]).resize((size, size)).convert(mode).save(folder / f"{i:02d}.png")
    return [int(y) for y in test.y[:count]]


def test_predict_streams_one_json_line_per_image_matching_the_model(
    cli, trained_checkpoint: Path, tmp_path: Path
) -> None:
    _digits(tmp_path / "digits", 4)
    result = cli("predict", trained_checkpoint, tmp_path / "digits", "--json", "-k", "3")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [Path(r["input"]).name for r in lines] == ["00.png", "01.png", "02.png", "03.png"]
    # The same pixels through the model directly: predict reads images exactly as the dataset did.
    from dlcli.data.catalog import load_dataset

    model = load_checkpoint(trained_checkpoint).build_model().eval()
    x = torch.from_numpy(load_dataset("mnist-sample").test.x[:4].astype(np.float32) / 255)
    with torch.no_grad():
        expected = torch.softmax(model(x), 1)
    for row, probabilities in zip(lines, expected, strict=True):
        top = row["predictions"]
        assert len(top) == 3 and [p["probability"] for p in top] == sorted((p["probability"] for p in top),
                                                                            reverse=True)
        assert top[0]["index"] == int(probabilities.argmax()) and top[0]["class"] == str(top[0]["index"])
        assert top[0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_predict_converts_and_resizes_like_the_folder_reader(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    _digits(tmp_path / "big", 2, size=56, mode="RGB")  # RGB and twice the size: made grey, resized
    result = cli("predict", trained_checkpoint, tmp_path / "big" / "00.png", tmp_path / "big" / "01.png")
    assert result.code == 0, result.err
    out = [line.split("\t") for line in result.out.splitlines()]
    assert [Path(name).name for name, _ in out] == ["00.png", "01.png"] and all(c.isdigit() for _, c in out)
    assert "top 5 per input" in result.err


def test_predict_csv_rows_drop_the_label_column(cli, tmp_path: Path) -> None:
    rows = [f"{a},{b},{'big' if a + b > 1 else 'small'}" for a in (0.1, 0.9) for b in (0.2, 0.8)]
    (tmp_path / "t.csv").write_text("\n".join(["f1,f2,label", *rows * 10]) + "\n")
    trained = cli("train", "-m", "mlp", "--data", f"csv:{tmp_path / 't.csv'}", "--epochs", "1", "-q",
                  "--out", tmp_path / "run")
    assert trained.code == 0, trained.err
    (tmp_path / "new.csv").write_text("f1,f2\n0.9,0.8\n0.1,0.2\n")
    result = cli("predict", tmp_path / "run" / "best.pt", tmp_path / "new.csv", tmp_path / "t.csv", "--json")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [r["input"] for r in lines[:3]] == [f"{tmp_path / 'new.csv'}:2", f"{tmp_path / 'new.csv'}:3",
                                               f"{tmp_path / 't.csv'}:2"]
    assert len(lines) == 2 + 40 and all({p["class"] for p in r["predictions"]} == {"big", "small"} for r in lines)


def test_predict_takes_threads_for_both_runtimes(cli, trained_checkpoint: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--threads, as on every command that computes (issue #15): the same answers with one thread,
    from the checkpoint and from its ONNX export; an invalid count is refused."""
    from dlcli.export import runtime

    _digits(tmp_path / "digits", 3)
    onnx = Path(cli("export", trained_checkpoint, "-o", tmp_path / "m.onnx", "-q").out.strip())
    sessions: list[int | None] = []
    real_session = runtime.ort_session
    monkeypatch.setattr(runtime, "ort_session", lambda path, threads=None, device="cpu": (
        sessions.append(threads), real_session(path, threads, device=device))[1])
    torch.set_num_threads(2)
    answers = []
    for model in (trained_checkpoint, onnx):
        result = cli("predict", model, tmp_path / "digits", "--threads", "1", "-q")
        assert result.code == 0, result.err
        answers.append([line.split("\t")[1] for line in result.out.splitlines()])
        if model == trained_checkpoint:
            assert torch.get_num_threads() == 1  # PyTorch's threads for the checkpoint
    assert sessions == [1]  # onnxruntime's for the ONNX file
    assert answers[0] == answers[1] and len(answers[0]) == 3
    # A run folder stands for its best.pt, as in eval, info and export.
    from_folder = cli("predict", trained_checkpoint.parent, tmp_path / "digits", "--threads", "1", "-q")
    assert [line.split("\t")[1] for line in from_folder.out.splitlines()] == answers[0]
    refused = cli("predict", trained_checkpoint, tmp_path / "digits", "--threads", "0")
    assert refused.code == 2 and "--threads" in refused.err


@pytest.mark.parametrize("name, content", [("notes.txt", "hello"), ("bad.csv", "a,b,c,d\n1,2,3,4\n"),
                                           ("missing.png", None)])
def test_predict_bad_inputs_are_one_line_exit_2(cli, trained_checkpoint: Path, tmp_path: Path, name, content) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    result = cli("predict", trained_checkpoint, tmp_path / name, "-q")
    assert result.code == 2 and result.err.strip().startswith("error: ") and result.err.count("\n") == 1, result.err

