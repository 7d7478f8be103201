"""Resume, interruption and non-finite batches: a stopped run continued with --resume ends with
bitwise the same weights as a run that was never stopped (CPU, fixed seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlcli.checkpoint import load_checkpoint

# 320 training samples at batch 32: 10 steps an epoch, so step counts can land mid-epoch (small: the
# tests need steps, not accuracy). One thread: by default the count follows the machine's load, and
# a run resumed with another count than the reference's differs in its last bits.
RUN = ["--data", "mnist-sample", "--train-samples", "320", "--val-split", "0.1", "--batch-size", "32", "-q",
       "--augment", "flip", "--dropout", "0.2", "--threads", "1"]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def stop_at(monkeypatch: pytest.MonkeyPatch, step: int, how: str = "signal") -> None:
    """Deliver SIGTERM to this process (or fail hard, as a kill would) once `step` batches have trained."""
    from dlcli.engine.loop import Trainer

    real = Trainer._train_step
    count = {"n": 0}

    def step_then_stop(self, *args):
        out = real(self, *args)
        count["n"] += 1
        if count["n"] == step:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("simulated crash")
        return out

    monkeypatch.setattr(Trainer, "_train_step", step_then_stop)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted 3-epoch run every resumed run must reproduce."""
    from dlcli.cli import main

    out = tmp_path_factory.mktemp("reference")
    os.environ["DLCLI_RUNS_DIR"] = str(out / "runs")
    with pytest.raises(SystemExit) as done:
        main(["train", *RUN, "--epochs", "3", "--out", str(out / "run")])
    assert done.value.code == 0
    return out / "run"


@pytest.mark.parametrize("stop_step", [10, 13])  # an epoch boundary, and mid-epoch 2
def test_sigterm_then_resume_is_bitwise_identical(cli, tmp_path, monkeypatch, reference, stop_step) -> None:
    stop_at(monkeypatch, stop_step)
    run = tmp_path / "run"
    stopped = cli("train", *RUN, "--epochs", "3", "--out", run)
    assert stopped.code == 143, stopped.err
    assert "SIGTERM" in stopped.err and "--resume" in stopped.err
    state = load_checkpoint(run / "last.pt").training_state["trainer"]
    assert (state["epoch"], state["step"]) == divmod(stop_step, 10)
    monkeypatch.undo()
    resumed = cli("train", "--resume", run / "last.pt", "--json")
    assert resumed.code == 0, resumed.err
    assert same_weights(run / "last.pt", reference / "last.pt")
    assert same_weights(run / "best.pt", reference / "best.pt")
    expected = load_checkpoint(reference / "last.pt").training_state["trainer"]["history"]
    got = load_checkpoint(run / "last.pt").training_state["trainer"]["history"]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in expected]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in got] == strip
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    assert not list(run.glob(".*.tmp"))


def test_crash_after_periodic_save_resumes_exactly(cli, tmp_path, monkeypatch, reference) -> None:
    stop_at(monkeypatch, 17, how="crash")  # last periodic save at step 15 (every 5), mid-epoch 2
    run = tmp_path / "run"
    crashed = cli("train", *RUN, "--epochs", "3", "--save-every", "5", "--out", run)
    assert crashed.code == 1
    state = load_checkpoint(run / "last.pt").training_state["trainer"]
    assert state["global_step"] == 15 and (state["epoch"], state["step"]) == (1, 5)
    monkeypatch.undo()
    assert cli("train", "--resume", "auto", "--out", run).code == 0
    assert same_weights(run / "last.pt", reference / "last.pt")


@pytest.mark.slow
def test_resume_with_more_epochs_trains_the_extra_ones(cli, tmp_path) -> None:
    run = tmp_path / "run"
    assert cli("train", *RUN, "--epochs", "2", "--out", run).code == 0
    again = cli("train", "--resume", run, "--epochs", "4", "--json")
    assert again.code == 0, again.err
    assert again.json()["metrics"]["epochs"] == 4
    assert load_checkpoint(run / "last.pt").training_state["trainer"]["epoch"] == 4


def test_resume_refuses_what_cannot_continue(cli, tmp_path) -> None:
    run = tmp_path / "run"
    assert cli("train", *RUN, "--epochs", "1", "--out", run).code == 0
    finished = cli("train", "--resume", run)
    assert finished.code == 2 and "--epochs" in finished.err
    other = cli("train", "--resume", run, "--epochs", "2", "--batch-size", "64")
    assert other.code == 2 and "batch_size" in other.err and "32" in other.err and "64" in other.err
    model = cli("train", "--resume", run, "--epochs", "2", "--model", "mlp")
    assert model.code == 2 and "model" in model.err
    weights_only = cli("train", "--resume", run / "best.pt", "--epochs", "2")
    assert weights_only.code == 2 and "last.pt" in weights_only.err
    missing = cli("train", "--resume", tmp_path / "nope.pt")
    assert missing.code == 2 and "not found" in missing.err
    assert len(weights_only.err.strip().splitlines()) == 1


def test_skip_nonfinite_counts_and_continues(cli, tmp_path, monkeypatch) -> None:
    from dlcli.engine.tasks import ClassificationTask

    real = ClassificationTask.__call__
    calls = {"n": 0}

    def poisoned(self, model, x, y, *extra):
        loss, logits = real(self, model, x, y, *extra)
        calls["n"] += 1
        return (loss * float("nan"), logits) if calls["n"] in (2, 5) else (loss, logits)

    monkeypatch.setattr(ClassificationTask, "__call__", poisoned)
    skipped = cli("train", *RUN, "--epochs", "1", "--skip-nonfinite", "--out", tmp_path / "a", "--json")
    assert skipped.code == 0, skipped.err
    assert skipped.json()["metrics"]["skipped_batches"] == 2
    assert "skipped 2 batch" in skipped.err
    calls["n"] = 0
    stopped = cli("train", *RUN, "--epochs", "1", "--out", tmp_path / "b")
    assert stopped.code == 1 and "diverged" in stopped.err


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DLCLI_RUNS_DIR": str(tmp_path / "runs"), "NO_COLOR": "1"}
    args = [sys.executable, "-m", "dlcli", "train", "--data", "mnist-sample", "--epochs", "50",
            "--out", str(tmp_path / "run"), *extra]
    return subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _wait_for_training(proc: subprocess.Popen, run: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (run / "last.pt").exists():  # written at the end of epoch 1
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_a_real_process_saves_and_exits(tmp_path, signum, code) -> None:
    proc = _start(tmp_path)
    _wait_for_training(proc, tmp_path / "run")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "state saved to" in err
    assert load_checkpoint(tmp_path / "run" / "last.pt").training_state["trainer"]["global_step"] > 0
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.slow
def test_second_signal_exits_at_once(tmp_path) -> None:
    proc = _start(tmp_path)
    _wait_for_training(proc, tmp_path / "run")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode in (-signal.SIGTERM, 143)
    load_checkpoint(tmp_path / "run" / "last.pt")  # whatever was saved is still loadable


@pytest.mark.slow
def test_finetune_and_distill_resume_exactly(cli, tmp_path, monkeypatch) -> None:
    """The same path for the other training commands: finetune resumed after its unfreezing epoch,
    distill resumed mid-epoch, each bitwise equal to its uninterrupted run."""
    small = ["--data", "mnist-sample", "--train-samples", "256", "--batch-size", "64", "-q", "--threads", "1"]
    parent = tmp_path / "parent"
    assert cli("train", *small, "--epochs", "1", "--out", parent).code == 0
    commands = {
        "finetune": ["finetune", parent / "best.pt", *small, "--freeze", "all-but-head", "--unfreeze-after", "1"],
        "distill": ["distill", "--teacher", parent / "best.pt", "--student", "mlp", *small],
    }
    for name, args in commands.items():
        assert cli(*args, "--epochs", "3", "--out", tmp_path / f"{name}-ref").code == 0
        stop_at(monkeypatch, 10)  # 4 steps an epoch: mid-epoch 3, after finetune's unfreezing
        assert cli(*args, "--epochs", "3", "--out", tmp_path / name).code == 143
        monkeypatch.undo()
        resumed = cli(*args, "--resume", tmp_path / name)
        assert resumed.code == 0, resumed.err
        assert same_weights(tmp_path / name / "last.pt", tmp_path / f"{name}-ref" / "last.pt"), name


def test_distill_resume_keeps_the_student_it_was_trained_with(cli, tmp_path, tiny_train) -> None:
    """`distill -t T --resume RUN` without -s/-a continues the saved student (an mlp with its own
    arguments), rather than building the default cnn and failing on the weights."""
    teacher = tmp_path / "teacher"
    assert cli("train", *tiny_train, "--out", teacher).code == 0
    student = ["-s", "mlp", "-a", "hidden=[3]", "--epochs", "1", "-q", "--threads", "1"]
    assert cli("distill", "-t", teacher / "best.pt", *student, "--out", tmp_path / "d").code == 0
    resumed = cli("distill", "-t", teacher / "best.pt", "--resume", tmp_path / "d", "--epochs", "2", "-q")
    assert resumed.code == 0, resumed.err
    ckpt = load_checkpoint(tmp_path / "d" / "last.pt")
    assert ckpt.model_name == "mlp" and ckpt.model_args["hidden"] == [3]
    assert ckpt.training_state["trainer"]["epoch"] == 2


def test_python_api_resume_refuses_a_different_run(tmp_path) -> None:
    """From Python, `TrainConfig(..., resume=...)` is checked against the saved run as --resume is:
    more epochs continue it, another batch size is refused with both values named."""
    from dataclasses import replace

    from dlcli.config import TrainConfig
    from dlcli.console import Console
    from dlcli.errors import UsageError
    from dlcli.workflows import train

    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 2 + i / 100},{i / 50},{i % 2}\n" for i in range(40)))
    cfg = TrainConfig(model="mlp", model_args={"hidden": [4]}, data=f"csv:{table}", epochs=1, threads=1)
    console = Console(quiet=True)
    train.run(train.TrainRunConfig(cfg, out_dir=tmp_path / "run"), console)
    last = str(tmp_path / "run" / "last.pt")
    with pytest.raises(UsageError, match="batch_size.*16.*128"):
        train.run(train.TrainRunConfig(replace(cfg, epochs=2, batch_size=16, resume=last), tmp_path / "run"), console)
    more = train.run(train.TrainRunConfig(replace(cfg, epochs=2, resume=last), tmp_path / "run"), console)
    assert more.metrics["epochs"] == 2


def test_distill_resume_keeps_its_temperature_and_refuses_another(cli, tmp_path, tiny_train) -> None:
    """A run distilled at -T 2 --alpha 0.5 continues at those values when they are not repeated (not at
    the defaults 4.0 / 0.9); a different -T or --alpha is refused with both values named, from the CLI
    and from Python; a finetune of the distilled model owes nothing to its distillation settings."""
    from dataclasses import replace

    from dlcli.config import TrainConfig
    from dlcli.console import Console
    from dlcli.errors import UsageError
    from dlcli.workflows.distill import DistillConfig, run, saved_settings

    teacher = tmp_path / "teacher"
    assert cli("train", *tiny_train, "--out", teacher).code == 0
    student = ["-s", "mlp", "-a", "hidden=[3]", "--epochs", "1", "-q", "--threads", "1"]
    assert cli("distill", "-t", teacher / "best.pt", *student, "-T", "2", "--alpha", "0.5",
               "--out", tmp_path / "d").code == 0
    shown = cli("distill", "-t", teacher / "best.pt", "--resume", tmp_path / "d", "--epochs", "2",
                "--print-config", "--json").json()
    assert (shown["temperature"], shown["alpha"], shown["feature_loss"]) == (2.0, 0.5, 0.0)
    for flag, given, saved in (("-T", "temperature=3.0", "temperature=2.0"), ("--alpha", "alpha=0.7", "alpha=0.5")):
        refused = cli("distill", "-t", teacher / "best.pt", "--resume", tmp_path / "d", "--epochs", "2", flag,
                      given.split("=")[1])
        assert refused.code == 2 and given in refused.err and saved in refused.err, refused.err
    saved_config = load_checkpoint(tmp_path / "d" / "last.pt").config
    api = DistillConfig(teacher / "best.pt", student="mlp", student_args={"hidden": [3]},
                        train=replace(TrainConfig(**saved_config), resume=str(tmp_path / "d" / "last.pt"), epochs=2))
    with pytest.raises(UsageError, match="temperature=4.0.*temperature=2.0"):
        run(api, Console(quiet=True))  # the defaults, 4.0 / 0.9, are not the run's
    resumed = cli("distill", "-t", teacher / "best.pt", "--resume", tmp_path / "d", "--epochs", "2", "-q")
    assert resumed.code == 0, resumed.err
    entries = [e for e in load_checkpoint(tmp_path / "d" / "last.pt").lineage if e["step"] == "distill"]
    assert (entries[-1]["temperature"], entries[-1]["alpha"], entries[-1]["feature_loss"]) == (2.0, 0.5, 0.0)
    assert cli("finetune", tmp_path / "d", "--epochs", "1", "-q", "--threads", "1", "--out", tmp_path / "f").code == 0
    assert saved_settings(tmp_path / "f" / "last.pt") == {}  # its last step is the finetune
