"""Every registered model, on every input kind it claims to support."""

from __future__ import annotations

import pytest
import torch

from dlcli.errors import UsageError
from dlcli.models import MODELS, count_parameters, create_model, model_args
from dlcli.models.reshape import match_state_dict_shapes


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_builds_and_runs(name: str, shape: tuple[int, ...]) -> None:
    model = create_model(name, shape, 7, [0.5] * shape[0], [0.25] * shape[0])
    logits = model(torch.rand(3, *shape))
    assert logits.shape == (3, 7)
    assert count_parameters(model) > 0


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_trains_one_step(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, (1, 28, 28), 10, [0.1], [0.3])
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, "no parameter moved"


def test_normalization_is_inside_the_model() -> None:
    model = create_model("mlp", (4,), 2, [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0])
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(model.normalize(x), torch.zeros(1, 4))


def test_mlp_takes_tabular_inputs_and_conv_models_refuse_them() -> None:
    assert create_model("mlp", (5,), 3, [0.0] * 5, [1.0] * 5)(torch.rand(2, 5)).shape == (2, 3)
    with pytest.raises(UsageError, match="image inputs"):
        create_model("cnn", (5,), 3, [0.0] * 5, [1.0] * 5)


def test_model_args_are_checked_and_completed() -> None:
    args = model_args("cnn", {"width": 2})
    assert args["width"] == 2 and args["channels"] == [8, 16, 32, 64]
    with pytest.raises(UsageError, match="has no argument 'depth'"):
        model_args("cnn", {"depth": 3})
    with pytest.raises(UsageError, match="6n\\+2"):
        create_model("resnet", (1, 28, 28), 10, [0.1], [0.3], {"depth": 9})


def test_width_scales_parameters() -> None:
    small = count_parameters(create_model("cnn", (1, 28, 28), 10, [0.1], [0.3]))
    wide = count_parameters(create_model("cnn", (1, 28, 28), 10, [0.1], [0.3], {"width": 3}))
    assert wide > 5 * small


def test_reshape_rebuilds_a_narrower_model_from_its_state_dict() -> None:
    narrow = create_model("cnn", (1, 28, 28), 10, [0.1], [0.3], {"channels": [4, 16, 32, 64]})
    full = create_model("cnn", (1, 28, 28), 10, [0.1], [0.3], {"channels": [8, 16, 32, 64]})
    changed = match_state_dict_shapes(full, narrow.state_dict())
    assert "body.0.weight" in changed and "body.1.running_mean" in changed
    full.load_state_dict(narrow.state_dict())
    x = torch.rand(2, 1, 28, 28)
    narrow.eval()
    full.eval()
    assert torch.allclose(full(x), narrow(x))
    assert full.body[0].out_channels == 4 and full.body[4].in_channels == 4


def test_unknown_model_name_suggests() -> None:
    with pytest.raises(UsageError, match="Did you mean 'resnet'"):
        MODELS.get("resnt")


def _cnn(**args: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("cnn", (1, 28, 28), 10, [0.1], [0.3], args).eval()


def test_cnn_crop_is_the_same_net_on_the_centre_of_the_image() -> None:
    cropped, whole = _cnn(crop=2), _cnn()
    whole.load_state_dict(cropped.state_dict())  # same layers, same names: the crop is no layer
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(cropped(x), whole.body(whole.normalize(x)[:, :, 2:-2, 2:-2]), atol=1e-6)
    assert isinstance(cropped.body[0], torch.nn.Conv2d)  # body.0 is the first convolution either way


def test_cnn_crop_must_leave_an_image() -> None:
    with pytest.raises(UsageError, match="crop=14 leaves nothing"):
        _cnn(crop=14)


def test_cnn_without_stem_norm_has_no_batchnorm_at_full_resolution() -> None:
    body = _cnn(stem_norm=False).body
    assert body[0].bias is not None and isinstance(body[1], torch.nn.MaxPool2d)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in body) == 3  # the other blocks keep theirs


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "silu"])
def test_cnn_pools_before_a_monotonic_activation_and_computes_the_same(activation: str) -> None:
    """max(f(a), f(b)) = f(max(a, b)) for a non-decreasing f: pooling first is the same function, on a
    quarter of the values. GELU and SiLU are not monotonic and keep activation-then-pool."""
    model = _cnn(activation=activation)
    layers = list(model.body)
    pool = next(i for i, m in enumerate(layers) if isinstance(m, torch.nn.MaxPool2d))
    monotonic = activation in ("relu", "tanh", "sigmoid")
    assert isinstance(layers[pool - 1], torch.nn.BatchNorm2d) == monotonic
    swapped = list(layers)
    for i, m in enumerate(layers):  # the textbook order: activation, then pool
        if isinstance(m, torch.nn.MaxPool2d) and monotonic:
            swapped[i], swapped[i + 1] = layers[i + 1], m
    x = model.normalize(torch.rand(4, 1, 28, 28))
    assert torch.allclose(torch.nn.Sequential(*swapped)(x), model.body(x), atol=1e-6)
