"""The `activation` model argument of mlp, cnn and resnet: every activation builds, learns, exports
with matching outputs, and quantizes (tiny models, untrained or trained for a few steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAIN
from torch import nn

from dlcli.checkpoint import load_checkpoint
from dlcli.errors import UsageError
from dlcli.export.onnx_export import export_onnx
from dlcli.export.runtime import ort_session
from dlcli.models import create_model, model_args
from dlcli.models.activations import ACTIVATIONS

TINY = {"mlp": {"hidden": [16]}, "cnn": {"channels": [4, 8]}, "resnet": {"depth": 8, "width": 0.25}}
EXPECTED = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}


def _model(name: str, activation: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, (1, 28, 28), 10, [0.1], [0.3], {**TINY[name], "activation": activation})


def test_the_registry_offers_the_documented_activations() -> None:
    assert ACTIVATIONS.names() == list(EXPECTED)


@pytest.mark.parametrize("activation", list(EXPECTED))
@pytest.mark.parametrize("name", list(TINY))
def test_activation_is_used_and_the_model_learns(name: str, activation: str) -> None:
    model = _model(name, activation)
    kinds = {type(m) for m in model.modules()}
    assert EXPECTED[activation] in kinds
    assert not ({*EXPECTED.values()} - {EXPECTED[activation]}) & kinds  # no other activation left over
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0]  # it starts fitting 16 samples


@pytest.mark.slow
@pytest.mark.parametrize("activation", list(EXPECTED))
@pytest.mark.parametrize("name", ["mlp", "resnet"])  # cnn: end to end through the CLI below
def test_activation_exports_to_onnx_with_matching_outputs(name: str, activation: str) -> None:
    model = _model(name, activation).eval()
    exported = export_onnx(model, [1, 28, 28])
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    onnx_out = ort_session(exported.proto.SerializeToString(), threads=1).run(None, {"input": x})[0]
    with torch.inference_mode():
        torch_out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)


def test_default_is_relu_and_unknown_names_suggest() -> None:
    assert model_args("cnn", {})["activation"] == "relu"
    with pytest.raises(UsageError, match="unknown activation 'gelo'. Did you mean 'gelu'"):
        create_model("cnn", (1, 28, 28), 10, [0.1], [0.3], {"activation": "gelo"})


@pytest.mark.slow
@pytest.mark.parametrize("activation", list(EXPECTED))
def test_cnn_with_each_activation_trains_exports_and_quantizes(cli, tmp_path: Path, activation: str) -> None:
    trained = cli("train", *FAST_TRAIN, "--train-samples", "100", "-a", "channels=[4,8]",
                  "-a", f"activation={activation}", "--out", tmp_path / "run", "--json")
    assert trained.code == 0, trained.err
    checkpoint = trained.json()["artifact"]
    exported = cli("export", checkpoint, "--json", "-q")
    assert exported.code == 0, exported.err
    quantized = cli("quantize", checkpoint, "--iters", "1", "--calib-samples", "16", "--json")
    assert quantized.code == 0, quantized.err
    result = quantized.json()
    metrics = result["metrics"]  # the fp32 export scores what the checkpoint scored on the same test split
    assert metrics["accuracy_fp32"] == pytest.approx(load_checkpoint(checkpoint).metrics["test_accuracy"], abs=0.002)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["size_bytes"] == Path(result["artifact"]).stat().st_size
    # onnxruntime has int8 kernels for Relu (fused) and Sigmoid (SiLU = Sigmoid * x), none for Gelu or
    # Tanh: quantize names what it leaves in float rather than implying a speed-up.
    left_fp32 = {"gelu": ["Gelu"], "tanh": ["Tanh"]}.get(activation, [])
    assert result["fp32_activations"] == left_fp32
    assert ("runs in fp32 between the int8 layers" in quantized.err) == bool(left_fp32)
