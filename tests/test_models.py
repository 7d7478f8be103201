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
