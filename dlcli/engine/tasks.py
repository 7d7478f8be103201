"""Tasks turn a batch into a loss. The loop calls `task(model, x, y)` and gets (loss, logits);
distillation is another task, not another loop (timm's `timm/task/` does the same)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from dlcli.losses import LossFn, distillation_loss


class Task(Protocol):
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of |w| over weight matrices and kernels (biases and norm scales are left alone)."""
    terms = [p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim > 1]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class ClassificationTask:
    """Supervised classification: loss(model(x), y) plus an optional L1 penalty."""

    def __init__(self, loss_fn: LossFn, l1: float = 0.0) -> None:
        self.loss_fn = loss_fn
        self.l1 = l1

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        loss = self.loss_fn(logits, y)
        if self.l1:
            loss = loss + self.l1 * l1_penalty(model)
        return loss, logits


class DistillationTask(ClassificationTask):
    """Hinton-style logit distillation from a frozen teacher, mixed with the hard-label loss.

    When the batches carry cached teacher logits (an extra tensor after x and y, see
    `cache_teacher_logits`), the teacher is not run at all: for non-augmented data its outputs never
    change, so computing them once saves a teacher forward pass per step.
    """

    def __init__(
        self,
        loss_fn: LossFn,
        teacher: nn.Module,
        temperature: float = 4.0,
        alpha: float = 0.9,
        l1: float = 0.0,
    ) -> None:
        super().__init__(loss_fn, l1)
        self.teacher = teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hard, logits = super().__call__(model, x, y)
        if extra:
            teacher_logits = extra[0]
        else:
            self.teacher.eval()  # the loop puts the student in train mode each epoch; never the teacher
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        loss = distillation_loss(logits, teacher_logits.float(), hard, self.temperature, self.alpha)
        return loss, logits


class FeatureDistillationTask(DistillationTask):
    """Logit distillation plus MSE between the penultimate features (the head's inputs) of student
    and teacher, when both have the same width (FitNets-style hint without a regressor)."""

    def __init__(self, *args: Any, feature_weight: float, student: nn.Module, **kw: Any) -> None:
        super().__init__(*args, **kw)
        from dlcli.models.surgery import head_name

        self.weight = feature_weight
        self._features: dict[str, torch.Tensor] = {}
        for key, model in (("student", student), ("teacher", self.teacher)):
            head = dict(model.named_modules())[head_name(model)]
            head.register_forward_pre_hook(self._capture(key))

    def _capture(self, key: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self._features[key] = inputs[0]

        return hook

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *extra: torch.Tensor):
        loss, logits = super().__call__(model, x, y)  # runs the teacher: features are not cached
        hint = nn.functional.mse_loss(self._features["student"], self._features["teacher"].detach())
        return loss + self.weight * hint, logits
