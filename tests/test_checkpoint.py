"""The checkpoint format: round trip, safety of loading, atomic writes."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, lineage_entry, load_checkpoint, save_checkpoint
from dlcli.errors import InputFileError
from dlcli.models import create_model
from dlcli.runs import atomic_write


def make_checkpoint() -> Checkpoint:
    model = create_model("cnn", (1, 28, 28), 3, [0.1], [0.3])
    return Checkpoint(
        model_name="cnn", model_args={"width": 1.0}, state_dict=model.state_dict(), classes=["a", "b", "c"],
        input_shape=[1, 28, 28], mean=[0.1], std=[0.3], dataset="mnist-sample", metrics={"val_accuracy": 0.5},
        config={"lr": 0.1}, lineage=[lineage_entry("train")],
    )


def test_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    ckpt = make_checkpoint()
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert loaded.classes == ["a", "b", "c"] and loaded.metrics == {"val_accuracy": 0.5}
    assert loaded.lineage[0]["step"] == "train"
    x = torch.rand(2, 1, 28, 28)
    original = create_model("cnn", (1, 28, 28), 3, [0.1], [0.3])
    original.load_state_dict(ckpt.state_dict)
    assert torch.allclose(loaded.build_model().eval()(x), original.eval()(x))


def test_file_holds_only_plain_data(tmp_path: Path) -> None:
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "dlcli.checkpoint" and raw["format_version"] == 1
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_loading_never_runs_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "dlcli.checkpoint", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputFileError, match="not a safe dlcli checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"garbage", "not a readable checkpoint"), (None, "not a dlcli checkpoint"), (b"", "not a readable")],
)
def test_bad_files_are_input_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint_is_an_input_error(tmp_path: Path) -> None:
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputFileError):
        load_checkpoint(path)


def test_newer_format_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(InputFileError, match="Upgrade dlcli"):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.pt"
    target.write_bytes(b"last good")

    def crash(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_bytes() == b"last good"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]


def test_lineage_hashes_the_source(tmp_path: Path) -> None:
    source = tmp_path / "parent.pt"
    source.write_bytes(b"abc")
    entry = lineage_entry("prune", source=source, amount=0.5)
    assert entry["source_sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert entry["amount"] == 0.5
    assert pickle.dumps(entry)  # plain data only


def test_rebuilt_model_owns_its_weights(tmp_path: Path) -> None:
    """build_model hands the model copies: training it leaves the loaded checkpoint as it was."""
    loaded = load_checkpoint(save_checkpoint(make_checkpoint(), tmp_path / "m.pt"))
    model = loaded.build_model()
    before = {k: v.clone() for k, v in loaded.state_dict.items()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1.0)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in before.items())
    assert all(p.requires_grad and p.device.type == "cpu" for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())


@pytest.fixture
def tied_model():
    """A model whose head reuses the embedding's weight, as a plugin might define one."""
    from dlcli.models import MODELS, register_model

    class Tied(nn.Module):
        def __init__(self, features: int, num_classes: int) -> None:
            super().__init__()
            self.encode = nn.Linear(features, num_classes, bias=False)
            self.head = nn.Linear(features, num_classes, bias=False)
            self.head.weight = self.encode.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.flatten(1)) + self.encode(x.flatten(1))

    @register_model("tied-test", "tied weights", image_only=False)
    def tied(input_shape, num_classes):
        return Tied(math.prod(input_shape), num_classes)

    yield "tied-test"
    MODELS._entries.pop("tied-test", None)


def test_tied_weights_stay_tied(tied_model: str, tmp_path: Path) -> None:
    model = create_model(tied_model, (4,), 3, [0.0] * 4, [1.0] * 4)
    ckpt = Checkpoint(model_name=tied_model, model_args={}, state_dict=model.state_dict(), classes=["a", "b", "c"],
                      input_shape=[4], mean=[0.0] * 4, std=[1.0] * 4, dataset="csv:x.csv", metrics={}, config={},
                      lineage=[lineage_entry("train")])
    rebuilt = load_checkpoint(save_checkpoint(ckpt, tmp_path / "t.pt")).build_model()
    assert rebuilt.body.head.weight is rebuilt.body.encode.weight
    assert torch.equal(rebuilt.body.head.weight, model.body.head.weight)


def test_tied_names_saved_with_different_values_keep_them(tied_model: str, tmp_path: Path) -> None:
    """A file saved from an untied copy (what rebuilding did before) loads as it was saved."""
    model = create_model(tied_model, (4,), 3, [0.0] * 4, [1.0] * 4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["body.head.weight"] = state["body.head.weight"] + 1.0
    ckpt = Checkpoint(model_name=tied_model, model_args={}, state_dict=state, classes=["a", "b", "c"],
                      input_shape=[4], mean=[0.0] * 4, std=[1.0] * 4, dataset="csv:x.csv", metrics={}, config={},
                      lineage=[lineage_entry("train")])
    rebuilt = load_checkpoint(save_checkpoint(ckpt, tmp_path / "t.pt")).build_model()
    assert rebuilt.body.head.weight is not rebuilt.body.encode.weight
    assert torch.equal(rebuilt.body.head.weight, state["body.head.weight"])
    assert torch.equal(rebuilt.body.encode.weight, state["body.encode.weight"])


def test_a_model_with_unsaved_buffers_is_refused_in_one_line(tmp_path: Path) -> None:
    from dlcli.models import MODELS, register_model

    class Scaled(nn.Linear):
        def __init__(self) -> None:
            super().__init__(4, 3)
            self.register_buffer("scale", torch.ones(3), persistent=False)

    def scaled(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return Scaled()

    register_model("unsaved-buffer-test", "a buffer outside state_dict", image_only=False)(scaled)
    try:
        model = create_model("unsaved-buffer-test", (4,), 3, [0.0] * 4, [1.0] * 4)
        ckpt = Checkpoint(model_name="unsaved-buffer-test", model_args={}, state_dict=model.state_dict(),
                          classes=["a", "b", "c"], input_shape=[4], mean=[0.0] * 4, std=[1.0] * 4,
                          dataset="csv:x.csv", metrics={}, config={}, lineage=[lineage_entry("train")])
        loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "b.pt"))
        with pytest.raises(InputFileError, match="body.scale.*non-persistent") as refused:
            loaded.build_model()
        assert "\n" not in str(refused.value)
    finally:
        MODELS._entries.pop("unsaved-buffer-test", None)
