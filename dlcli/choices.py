"""The names the registries hold (training, pruning, int8 quantization), importable without torch.

`dlcli --help` lists these choices and must not import torch (or onnx), while the registries that
build the objects (dlcli.optim, dlcli.losses, dlcli.device, dlcli.compress.quantization) live beside
torch code. So the names are declared here once; each registry registers exactly these
(tests/test_options.py and tests/test_contract_compress.py check they agree), and the CLI's choices,
the config's checks and the `--lr` help all read them from here.
"""

from __future__ import annotations

DEFAULT_LR: dict[str, float] = {"sgd": 0.2, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 1e-3}
"""Each optimizer's from-scratch peak learning rate (measured on MNIST with the default cnn)."""
OPTIMIZERS: tuple[str, ...] = tuple(DEFAULT_LR)
SCHEDULERS: tuple[str, ...] = ("none", "step", "cosine", "onecycle")
LOSSES: tuple[str, ...] = ("cross-entropy", "mse")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
PRUNE_METHODS: tuple[str, ...] = ("l1-unstructured", "global-unstructured", "channel")
"""dlcli.compress.pruning.PRUNERS: per-layer or one global magnitude threshold, or whole channels."""
RECOVER_MODES: tuple[str, ...] = ("labels", "kd")
"""How prune recovers accuracy: train on the labels, or distil from the unpruned model."""
FREEZE_MODES: tuple[str, ...] = ("none", "backbone", "all-but-head")
"""finetune --freeze: train all, the head (+ BatchNorm statistics), or the head alone."""
QUANTIZE_METHODS: tuple[str, ...] = ("static", "dynamic")
"""dlcli.compress.quantization: static (calibrated activation ranges, QDQ) or dynamic (int8 weights,
activations quantized at run time)."""
CALIBRATIONS: tuple[str, ...] = ("minmax", "entropy", "percentile")
"""How static quantization picks activation ranges from the calibration data."""
