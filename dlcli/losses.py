"""Losses by name, and the distillation loss that the distill task and KD recovery share."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlcli.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[Callable[..., LossFn]] = Registry("loss")


@LOSSES.register("cross-entropy")
def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)

    return loss


@LOSSES.register("mse")
def mse(label_smoothing: float = 0.0) -> LossFn:
    """Squared error between logits and (optionally smoothed) one-hot targets (Hui & Belkin, 2021)."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        if label_smoothing:
            one_hot = one_hot * (1 - label_smoothing) + label_smoothing / logits.shape[1]
        return F.mse_loss(logits, one_hot)

    return loss


def make_loss(name: str, label_smoothing: float = 0.0) -> LossFn:
    return LOSSES.get(name)(label_smoothing=label_smoothing)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    hard_loss: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Hinton et al. (2015): alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * hard loss.

    The T^2 factor keeps the soft term's gradients on the same scale as the hard term's when T changes.
    """
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * temperature**2 * soft + (1 - alpha) * hard_loss
