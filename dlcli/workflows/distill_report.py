"""What `dlcli distill` reports once the student is trained: teacher against student (and the student
trained alone, with --baseline) in accuracy, test errors, parameters and PyTorch latency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlcli.console import Console
from dlcli.models import count_parameters
from dlcli.workflows.training import TrainedRun


@dataclass
class Compared:
    """The two models distillation relates, and the teacher's test metrics."""

    teacher: nn.Module
    teacher_test: dict[str, float]
    student: nn.Module
    input_shape: list[int]


def pytorch_latency_ms(model: nn.Module, input_shape: list[int], device: torch.device, batch: int = 32) -> float:
    """Median PyTorch eager latency at `batch`, through the same harness as `dlcli benchmark`."""
    from dlcli.measure.runners import torch_runner
    from dlcli.measure.timing import input_batches, measure

    runner = torch_runner(model, device, channels_last=len(input_shape) == 3)
    batches = [runner.prepare(b) for b in input_batches(input_shape, batch)]
    with torch.inference_mode():
        return measure(runner.call, batches, warmup=5, iters=50, sync=runner.sync).p50_ms


def summarize(distilled: TrainedRun, baseline: TrainedRun | None, compared: Compared, console: Console,
              device: torch.device) -> dict[str, Any]:
    """The distill command's metrics (the student's, plus the comparison), shown as a table."""
    teacher, student, teacher_test = compared.teacher, compared.student, compared.teacher_test
    samples = teacher_test.get("samples", 0)
    metrics = dict(distilled.metrics)
    metrics.update({
        "teacher_accuracy": teacher_test.get("accuracy"),
        "teacher_params": count_parameters(teacher),
        "student_params": count_parameters(student),
        "param_ratio": count_parameters(student) / count_parameters(teacher),
        "latency_ratio": (pytorch_latency_ms(student, compared.input_shape, device)
                          / pytorch_latency_ms(teacher, compared.input_shape, device)),
    })
    rows = [
        ["teacher", metrics["teacher_params"], teacher_test.get("accuracy"),
         errors(teacher_test.get("accuracy"), samples)],
        ["student (distilled)", metrics["student_params"], metrics.get("accuracy"),
         errors(metrics.get("accuracy"), samples)],
    ]
    if baseline is not None:
        metrics["baseline_accuracy"] = baseline.metrics.get("accuracy")
        rows.append(["student (alone)", metrics["student_params"], metrics["baseline_accuracy"],
                     errors(metrics["baseline_accuracy"], samples)])
    console.table("distillation (test split)", ["model", "params", "accuracy", "test errors"], rows)
    console.info(f"student/teacher: {metrics['param_ratio']:.1%} of the parameters, "
                 f"{metrics['latency_ratio']:.2f}x the latency (PyTorch, batch 32)")
    return metrics


def errors(accuracy: float | None, samples: int) -> int | None:
    return None if accuracy is None or not samples else round((1 - accuracy) * samples)
