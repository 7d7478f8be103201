"""The shell examples run as a user would run them (tiny settings, the embedded sample)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sweep_trains_three_runs_and_compares_them(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path / "sweep"), "EPOCHS": "1", "TRAIN_SAMPLES": "300", "LRS": "0.05 0.4 0.8"}
    done = subprocess.run(["bash", str(ROOT / "examples" / "sweep.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()[:3]] == ["lr 0.05", "lr 0.4", "lr 0.8"]
    assert "keys that differ" in done.stderr
    compared = json.loads((tmp_path / "sweep" / "compare.json").read_text())
    # Each run records the threads it used, which follow the machine's load (dlcli.threads): they may
    # differ between the three runs on a shared machine, and compare rightly lists them then.
    differences = {k: v for k, v in compared["config_differences"].items() if k != "threads"}
    assert differences == {"lr": [0.05, 0.4, 0.8]}
    assert [a["label"] for a in compared["artifacts"]] == ["lr-0.05", "lr-0.4", "lr-0.8"]
    assert all(a["metrics"]["test_accuracy"] > 0 for a in compared["artifacts"])
