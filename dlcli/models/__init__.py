"""Models by name. Every model takes float pixels in [0, 1]; normalization is the first layer, so the
exported ONNX graph needs no preprocessing code from us.

`create_model(name, input_shape, num_classes, mean, std, **args)` is the one way to build a model,
both for training and when a checkpoint is loaded: the checkpoint stores `name` and `args`.
"""

from __future__ import annotations

# Importing the families registers them.
from dlcli.models import cnn, mlp, resnet, vit  # noqa: E402,F401,I001
from dlcli.models.plugins import load_plugins
from dlcli.models.registry import MODELS, ModelSpec, count_parameters, create_model, model_args, register_model

load_plugins()  # models registered from outside the package ($DLCLI_PLUGINS, entry points)

__all__ = ["MODELS", "ModelSpec", "count_parameters", "create_model", "load_plugins", "model_args",
           "register_model"]
