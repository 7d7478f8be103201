"""A model registered from outside the package works with every command, by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_TRAIN

PLUGIN = '''
from torch import nn

from dlcli.models import register_model


@register_model("tiny-external", "two conv blocks, defined outside dlcli")
def tiny_external(input_shape, num_classes, width: int = 8):
    return nn.Sequential(
        nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dlcli.models import MODELS, plugins

    (tmp_path / "my_models.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DLCLI_PLUGINS", "my_models")
    assert plugins.load_plugins() == ["my_models"]
    yield tmp_path
    MODELS._entries.pop("tiny-external", None)
    plugins._loaded.discard("my_models")
    sys.modules.pop("my_models", None)


@pytest.mark.slow
def test_external_model_through_every_command(cli, plugin: Path) -> None:
    run = plugin / "run"
    trained = cli("train", "-m", "tiny-external", "-a", "width=4", *FAST_TRAIN, "--out", run, "--json")
    assert trained.code == 0, trained.err
    best = run / "best.pt"
    assert cli("eval", best, "--json").json()["metrics"]["accuracy"] == trained.json()["metrics"]["accuracy"]
    assert cli("info", best, "--json").json()["model"] == "tiny-external"
    assert cli("export", best, "--json").code == 0
    assert cli("quantize", best, "--data", "mnist-sample", "--json").code == 0
    pruned = cli("prune", best, "--method", "channel", "--amount", "0.5", "--finetune-epochs", "0", "--json")
    assert pruned.code == 0, pruned.err
    assert cli("finetune", best, *FAST_TRAIN, "--out", plugin / "ft").code == 0
    distilled = cli("distill", "--teacher", best, "--student", "tiny-external", *FAST_TRAIN, "--out", plugin / "d")
    assert distilled.code == 0, distilled.err
    assert cli("benchmark", best, run / "best.onnx", "--json").code == 0


@pytest.mark.slow
def test_plugins_load_in_a_fresh_process_and_bad_ones_fail_in_one_line(plugin: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(plugin), "DLCLI_PLUGINS": "my_models", "NO_COLOR": "1"}
    listed = subprocess.run([sys.executable, "-m", "dlcli", "models", "--json"], capture_output=True, text=True,
                            env=env)
    assert "tiny-external" in {m["name"] for m in json.loads(listed.stdout)["models"]}
    env["DLCLI_PLUGINS"] = "no_such_module"
    bad = subprocess.run([sys.executable, "-m", "dlcli", "models"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no_such_module" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
