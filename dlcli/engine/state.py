"""Where a training run is, as plain data: what a resumable checkpoint carries besides the weights.

Everything here must survive `torch.load(weights_only=True)`, so it holds only numbers, strings,
lists, dicts and tensors. Together with the model, optimizer and grad-scaler state it is enough to
continue a run so that it ends with bitwise the same weights as a run that was never stopped: the
data order and augmentation are functions of (seed, epoch, step) (`dlcli.data.tensors`), and the
random number generators that dropout and friends draw from are captured here.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch


@dataclass
class TrainerState:
    """Progress of one run. `epoch` counts finished epochs; `step` counts the finished batches of the
    epoch under way (0 at an epoch boundary), so (epoch, step) names the next batch to train on."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    steps_per_epoch: int = 0
    """Set when training starts; with global_step it tells how many epochs (fractions too) are done."""
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    stale_epochs: int = 0
    stopped_early: bool = False
    skipped_batches: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, Any] = field(default_factory=dict)
    """Running sums of the unfinished epoch (loss_sum, correct, seen), so a mid-epoch resume reports
    the same epoch metrics as the uninterrupted run."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def epochs_done(self) -> float | None:
        """Epochs trained, fractions included; None for a state saved before steps_per_epoch was kept."""
        return self.global_step / self.steps_per_epoch if self.steps_per_epoch else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def capture_rng() -> dict[str, Any]:
    """Every global generator a training step may draw from (Python, NumPy, torch CPU and CUDA)."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": _to_plain(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_plain(value: Any) -> Any:
    """Tuples become lists: weights_only loading accepts both, but lists round-trip through YAML/JSON
    tools too."""
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value
