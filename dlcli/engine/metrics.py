"""Per-class figures of a classifier: the confusion matrix and precision, recall and F1 per class.

Computed from the logits the engine's `predict` returns, in one pass with the overall loss and
accuracy (the same figures as `evaluate`), so `dlcli eval` runs the model once for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from dlcli.engine.loop import predict


def evaluate_by_class(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], classes: list[str],
) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, report): loss, accuracy and samples as `evaluate` gives them plus macro averages;
    the report holds the confusion matrix (rows: true class, columns: predicted) and per-class rows."""
    logits, labels = predict(model, batches)
    matrix = confusion_matrix(logits.argmax(1), labels, len(classes))
    rows = per_class(matrix, classes)
    metrics = {
        "loss": float(loss_fn(logits, labels)),
        "accuracy": int(matrix.diagonal().sum()) / max(1, labels.numel()),
        "samples": int(labels.numel()),
        **{f"macro_{k}": sum(r[k] for r in rows) / max(1, len(rows)) for k in ("precision", "recall", "f1")},
    }
    return metrics, {"per_class": rows, "confusion_matrix": matrix.tolist()}


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[true, predicted] as int64 (one bincount, not a Python loop over samples)."""
    index = labels.long().cpu() * num_classes + predicted.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(matrix: torch.Tensor, classes: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class; a class never predicted (or absent) scores 0
    rather than NaN, as scikit-learn's `zero_division=0` does."""
    true_positive = matrix.diagonal().double()
    predicted = matrix.sum(0).double()
    support = matrix.sum(1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), 0.0)
    recall = torch.where(support > 0, true_positive / support.double().clamp(min=1), 0.0)
    both = precision + recall
    f1 = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-12), 0.0)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    ]
