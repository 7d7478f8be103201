"""`runs/latest.json` names the latest *training* run: deriving an artifact does not move it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FAST_TRAIN


def latest() -> str:
    return json.loads((Path(os.environ["DLCLI_RUNS_DIR"]) / "latest.json").read_text())["checkpoint"]


@pytest.mark.slow
def test_prune_and_quantize_leave_the_latest_run_alone(cli, tmp_path: Path) -> None:
    trained = cli("train", *FAST_TRAIN, "--out", tmp_path / "run", "--json").json()["artifact"]
    assert latest() == str(Path(trained).resolve())
    pruned = cli("prune", "--method", "l1-unstructured", "--amount", "0.3", "--finetune-epochs", "0", "--json")
    assert pruned.code == 0, pruned.err
    assert latest() == str(Path(trained).resolve())
    exported = cli("export", "--json").json()  # a bare export takes the trained model, not the pruned one
    assert exported["artifact"] == str(Path(trained).with_suffix(".onnx"))
