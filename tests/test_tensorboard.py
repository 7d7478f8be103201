"""--tensorboard: event files in the run folder, read back with TensorBoard's own reader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator").EventAccumulator


def _events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
def test_train_writes_scalars_hparams_and_graph_without_changing_the_run(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _session_checkpoint: Path,
) -> None:
    from dlcli.engine import tensorboard

    monkeypatch.setattr(tensorboard, "STEP_EVERY", 2)  # the tiny run has 5 steps an epoch
    run = tmp_path / "run"
    result = cli("train", *FAST_TRAIN, "--tensorboard", "--out", run)
    assert result.code == 0, result.err
    events = _events(run / "tensorboard")
    scalars = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "step/samples_per_s", "epoch/train_loss", "epoch/train_accuracy",
            "epoch/val_loss", "epoch/val_accuracy", "epoch/lr", "epoch/samples_per_s"} <= scalars
    assert [e.step for e in events.Scalars("step/loss")] == [2, 4]
    assert [e.step for e in events.Scalars("epoch/val_accuracy")] == [1]
    logged = events.Scalars("epoch/val_accuracy")[0].value
    assert logged == pytest.approx(torch.load(run / "best.pt", weights_only=True)["metrics"]["val_accuracy"])
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(
        events.PluginTagToContent("hparams"))
    assert b"lr" in events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert any("Conv" in node.op or "conv" in node.op for node in events.Graph().node)
    # Tracing the graph and logging change nothing about the training itself.
    with_tb = torch.load(run / "best.pt", weights_only=True)["state_dict"]
    plain = torch.load(_session_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(with_tb[k], plain[k]) for k in plain)


def test_missing_tensorboard_is_one_line_exit_2(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = cli("train", *FAST_TRAIN, "--tensorboard", "--out", tmp_path / "run")
    assert result.code == 2
    assert result.err.strip() == "error: --tensorboard needs the tensorboard package: pip install 'dlcli[tensorboard]'"
    assert not (tmp_path / "run").exists()


def test_a_model_that_does_not_trace_is_skipped_with_a_note(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from dlcli.engine.tensorboard import add_graph

    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict:
            return {"logits": x} if x.sum() > 0 else {"other": x}  # a dict output: add_graph refuses it

    with SummaryWriter(str(tmp_path)) as writer:
        note = add_graph(writer, Branchy().train(), torch.ones(1, 3))
    assert note is not None and note.startswith("tensorboard: model graph skipped")


def test_prune_recovery_logs_too(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("prune", trained_checkpoint, "--method", "channel", "--amount", "0.5", "--finetune-epochs", "1",
                 "--data", "mnist-sample", "--train-samples", "300", "--no-latency", "--tensorboard",
                 "--out", tmp_path / "pruned.pt", "--json", "-q")
    assert result.code == 0, result.err
    events = _events(Path(result.json()["run_dir"]) / "tensorboard")
    assert [e.step for e in events.Scalars("epoch/train_loss")] == [1]
    assert events.Graph().node  # the pruned (smaller) model traces too
