"""torchrun / DDP on CPU (gloo): two real processes on tiny data. Slow tier: each launch costs
seconds of process start-up and rendezvous."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcli.checkpoint import load_checkpoint
from dlcli.cli.common import strip_option

pytestmark = pytest.mark.slow

TINY = ["--data", "mnist-sample", "--train-samples", "600", "-q"]


def dlcli(tmp_path: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "DLCLI_RUNS_DIR": str(tmp_path / "runs"), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlcli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def test_strip_option_removes_both_spellings() -> None:
    argv = ["train", "--nproc-per-node", "2", "--epochs", "1", "--nproc-per-node=3", "-q"]
    assert strip_option(argv, "--nproc-per-node") == ["train", "--epochs", "1", "-q"]


def test_two_processes_write_one_run_that_eval_agrees_with(tmp_path) -> None:
    run = tmp_path / "run"
    proc = dlcli(tmp_path, "train", "--nproc-per-node", "2", *TINY, "--epochs", "2", "--out", str(run), "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # rank 0 alone prints the result
    result = json.loads(lines[0])
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt.training_state == {} and load_checkpoint(run / "last.pt").training_state["world_size"] == 2
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.yaml", "curves.png", "last.pt",
                                                     "metrics.jsonl"]
    assert not (tmp_path / "runs" / "train").exists()  # no stray folder from the other rank
    check = dlcli(tmp_path, "eval", str(run / "best.pt"), "--json")
    eval_out, eval_err = check.communicate(timeout=120)
    assert check.returncode == 0, eval_err
    assert json.loads(eval_out)["metrics"]["accuracy"] == result["metrics"]["accuracy"]


def _children(pid: int) -> dict[int, int]:
    """{rank: pid} of the dlcli worker processes started by the launcher `pid`."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:
                continue
            env = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        for item in env:
            if item.startswith(b"RANK="):
                ranks[int(item[5:])] = int(stat.parent.name)
    return ranks


def test_sigterm_to_one_rank_stops_all_at_the_same_step_and_resume_finishes(tmp_path) -> None:
    run = tmp_path / "run"
    proc = dlcli(tmp_path, "train", "--nproc-per-node", "2", *TINY, "--epochs", "40", "--out", str(run))
    deadline = time.monotonic() + 240
    while not (run / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ranks = _children(proc.pid)
    assert set(ranks) == {0, 1}, ranks
    os.kill(ranks[1], signal.SIGTERM)  # only rank 1 hears it, as when a scheduler signals one node
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    state = load_checkpoint(run / "last.pt").training_state["trainer"]
    assert state["global_step"] > 0
    # Every rank that got to say so stopped at the step rank 0 saved (torchrun's agent may end rank 0
    # before its line is printed, once the other rank has exited).
    stops = {line for line in err.splitlines() if "stopped by SIGTERM" in line}
    epoch, step = state["epoch"], state["step"]
    saved_at = f"epoch {epoch + 1}, step {step}" if step else f"end of epoch {epoch}"
    assert len(stops) == 1 and saved_at in stops.pop(), (stops, saved_at)
    resumed = dlcli(tmp_path, "train", "--nproc-per-node", "2", "--resume", str(run),
                    "--epochs", str(state["epoch"] + 1), "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out)["metrics"]["epochs"] == state["epoch"] + 1


def test_prune_recovery_runs_distributed(tmp_path) -> None:
    parent = tmp_path / "parent"
    train = dlcli(tmp_path, "train", *TINY, "--epochs", "1", "--out", str(parent))
    assert train.wait(timeout=300) == 0
    proc = dlcli(tmp_path, "prune", str(parent / "best.pt"), "--method", "channel", "--amount", "0.5",
                 "--nproc-per-node", "2", *TINY, "--no-latency", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)  # exactly one JSON object: rank 0's
    assert result["metrics"]["params"] < result["metrics"]["params_before"]
    assert [p.name for p in (tmp_path / "runs" / "prune").iterdir()] == ["exp"]  # one recovery folder
    assert load_checkpoint(result["artifact"]).metrics["accuracy"] == result["metrics"]["accuracy"]
