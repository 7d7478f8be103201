"""`dlcli distill`: train a small student from a large teacher (Hinton et al., 2015) on the one loop.

The student is a registry name (sized with model arguments) or a checkpoint; the teacher is a
checkpoint whose classes must be the data's. For non-augmented data the teacher's logits are
computed once and carried in the batches, so each step runs only the student. With --baseline the
same student is also trained alone with the same budget, seed and data order, which is the only
fair way to say what distillation bought.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import lineage_entry, load_checkpoint
from dlcli.config import TrainConfig, flag_name
from dlcli.console import Console, result
from dlcli.data.dataset import Dataset
from dlcli.data.tensors import TensorSplit
from dlcli.device import describe_device, resolve_device, seed_everything
from dlcli.engine import ClassificationTask, DistillationTask, evaluate, predict
from dlcli.engine.tasks import FeatureDistillationTask
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.models import MODELS, count_parameters, create_model, model_args
from dlcli.threads import use_threads
from dlcli.validation import check, validate_fields
from dlcli.workflows.preparation import eval_batches, prepare_data, use_channels_last
from dlcli.workflows.train import resolved_model_args
from dlcli.workflows.training import TrainingJob, train_and_save


@dataclass
class DistillOptions:
    teacher: Path
    student: str
    student_args: dict[str, Any]
    temperature: float = field(default=4.0, metadata=check(gt=0))
    alpha: float = field(default=0.9, metadata=check(ge=0, le=1))
    cache_teacher: bool = True
    baseline: bool = False
    feature_loss: float = field(default=0.0, metadata=check(ge=0))

    def __post_init__(self) -> None:
        """Checked when built, before the command makes its run folder."""
        validate_fields(self, flag_name)
        if self.student in MODELS:
            model_args(self.student, self.student_args)


def check_teacher(teacher_classes: list[str], teacher_shape: list[int], dataset: Dataset, path: Path) -> None:
    if teacher_classes != dataset.classes:
        raise UsageError(
            f"teacher {path} predicts classes {teacher_classes[:4]}... but {dataset.name} has "
            f"{dataset.classes[:4]}...; distillation needs the same classes in the same order."
        )
    if list(teacher_shape) != dataset.input_shape:
        raise UsageError(f"teacher {path} takes inputs {teacher_shape}; {dataset.name} has {dataset.input_shape}.")


def build_student(
    opts: DistillOptions, cfg: TrainConfig, dataset: Dataset
) -> tuple[nn.Module, str, dict[str, Any], list[dict[str, Any]]]:
    """A fresh registered model, or a trained student checkpoint to continue from; with the student's
    lineage (a pruned student's shapes are rebuilt only because its history says it was pruned)."""
    if opts.student in MODELS:
        args = resolved_model_args(opts.student, opts.student_args, cfg.dropout)
        model = create_model(opts.student, dataset.input_shape, dataset.num_classes, dataset.mean, dataset.std, args)
        return model, opts.student, args, []
    path = Path(opts.student)
    if not path.exists() and path.suffix != ".pt":
        MODELS.get(opts.student)  # raises "unknown model ... did you mean"
    student = load_checkpoint(path)
    check_teacher(student.classes, student.input_shape, dataset, path)
    return student.build_model(), student.model_name, student.model_args, student.lineage


def cache_teacher_logits(teacher: nn.Module, split: TensorSplit, channels_last: bool) -> TensorSplit:
    """Run the teacher once over the split and attach its logits as an extra per-sample tensor."""
    logits, _ = predict(teacher, eval_batches(split, channels_last))
    return split.with_extra(logits)


def feature_width(model: nn.Module) -> int:
    from dlcli.models.surgery import head_name

    return dict(model.named_modules())[head_name(model)].in_features


def make_task(cfg: TrainConfig, opts: DistillOptions, teacher: nn.Module, student: nn.Module) -> DistillationTask:
    loss = make_loss(cfg.loss, cfg.label_smoothing)
    if not opts.feature_loss:
        return DistillationTask(loss, teacher, opts.temperature, opts.alpha, cfg.l1)
    if feature_width(student) != feature_width(teacher):
        raise UsageError(
            f"--feature-loss needs equal feature widths before the head (student {feature_width(student)}, "
            f"teacher {feature_width(teacher)}); choose a student width that matches or drop --feature-loss."
        )
    return FeatureDistillationTask(loss, teacher, opts.temperature, opts.alpha, cfg.l1,
                                   feature_weight=opts.feature_loss, student=student)


def teacher_metrics(teacher: nn.Module, data, channels_last: bool) -> dict[str, float]:
    if data.test is None:
        return {}
    return evaluate(teacher, eval_batches(data.test, channels_last), make_loss("cross-entropy"))


def run(cfg: TrainConfig, opts: DistillOptions, out_dir: Path, baseline_dir: Path | None,
        console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    teacher_ckpt = load_checkpoint(opts.teacher)
    cfg.data = cfg.data or teacher_ckpt.dataset
    cfg.validate()
    device = resolve_device(cfg.device)
    cfg.threads = use_threads(cfg.threads)  # recorded: results differ in the last bits by thread count
    console.info(f"device: {describe_device(device)}")
    generator = seed_everything(cfg.seed)
    data = prepare_data(cfg, device, generator, console)
    check_teacher(teacher_ckpt.classes, teacher_ckpt.input_shape, data.dataset, opts.teacher)
    channels_last = use_channels_last(cfg, device, data.dataset)  # the student's rule: --no-channels-last holds
    teacher = teacher_ckpt.build_model().to(device).eval()
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    teacher_test = teacher_metrics(teacher, data, channels_last)
    student, student_name, student_args, history = build_student(opts, cfg, data.dataset)
    student = student.to(device)
    if opts.cache_teacher and not cfg.augment and not opts.feature_loss:
        console.info("caching teacher logits for the training split (no augmentation: they never change)")
        data.train = cache_teacher_logits(teacher, data.train, channels_last)
    job = TrainingJob(
        command="distill", model=student, model_name=student_name, model_args=student_args,
        task=make_task(cfg, opts, teacher, student),
        lineage=[*history, lineage_entry("distill", source=opts.teacher, dataset=cfg.data, temperature=opts.temperature,
                               alpha=opts.alpha, teacher_model=teacher_ckpt.model_name)],
    )
    distilled = train_and_save(cfg, job, data, out_dir, console, device, start)
    baseline = train_baseline(cfg, opts, data, baseline_dir, console, device) if baseline_dir else None
    return summarize(distilled, baseline, teacher, teacher_test, student, data.dataset.input_shape, console,
                     device, start)


def train_baseline(cfg: TrainConfig, opts: DistillOptions, data, out_dir: Path, console: Console,
                   device: torch.device) -> dict[str, Any]:
    """The same student, seed, data order and budget, trained without the teacher."""
    console.info("baseline: the same student trained alone with the same budget")
    seed_everything(cfg.seed)
    cfg = replace(cfg, resume=None)  # --resume continues the distilled run, not this one
    plain = type(data)(data.dataset, replace(data.train, extras=()), data.val, data.test)  # in memory or streamed
    student, name, args, history = build_student(opts, cfg, data.dataset)
    job = TrainingJob(command="train", model=student.to(device), model_name=name, model_args=args,
                      task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
                      lineage=[*history, lineage_entry("train", dataset=cfg.data, baseline_for="distill")],
                      remember=False)
    return train_and_save(cfg, job, plain, out_dir, console, device, time.perf_counter())


def pytorch_latency_ms(model: nn.Module, input_shape: list[int], device: torch.device, batch: int = 32) -> float:
    """Median PyTorch eager latency at `batch`, through the same harness as `dlcli benchmark`."""
    from dlcli.measure.runners import torch_runner
    from dlcli.measure.timing import input_batches, measure

    runner = torch_runner(model, device, channels_last=len(input_shape) == 3)
    batches = [runner.prepare(b) for b in input_batches(input_shape, batch)]
    with torch.inference_mode():
        return measure(runner.call, batches, warmup=5, iters=50, sync=runner.sync).p50_ms


def summarize(distilled: dict[str, Any], baseline: dict[str, Any] | None, teacher: nn.Module,
              teacher_test: dict[str, float], student: nn.Module, input_shape: list[int], console: Console,
              device: torch.device, start: float) -> dict[str, Any]:
    samples = teacher_test.get("samples", 0)
    metrics = dict(distilled["metrics"])
    metrics.update({
        "teacher_accuracy": teacher_test.get("accuracy"),
        "teacher_params": count_parameters(teacher),
        "student_params": count_parameters(student),
        "param_ratio": count_parameters(student) / count_parameters(teacher),
        "latency_ratio": (pytorch_latency_ms(student, input_shape, device)
                          / pytorch_latency_ms(teacher, input_shape, device)),
    })
    rows = [
        ["teacher", metrics["teacher_params"], teacher_test.get("accuracy"),
         errors(teacher_test.get("accuracy"), samples)],
        ["student (distilled)", metrics["student_params"], metrics.get("accuracy"),
         errors(metrics.get("accuracy"), samples)],
    ]
    if baseline is not None:
        metrics["baseline_accuracy"] = baseline["metrics"].get("accuracy")
        rows.append(["student (alone)", metrics["student_params"], metrics["baseline_accuracy"],
                     errors(metrics["baseline_accuracy"], samples)])
    console.table("distillation (test split)", ["model", "params", "accuracy", "test errors"], rows)
    console.info(f"student/teacher: {metrics['param_ratio']:.1%} of the parameters, "
                 f"{metrics['latency_ratio']:.2f}x the latency (PyTorch, batch 32)")
    out = result("distill", distilled["artifact"], metrics, str(device), time.perf_counter() - start,
                 run_dir=distilled["run_dir"])
    if baseline is not None:
        out["baseline_artifact"] = baseline["artifact"]
    return out


def errors(accuracy: float | None, samples: int) -> int | None:
    return None if accuracy is None or not samples else round((1 - accuracy) * samples)
