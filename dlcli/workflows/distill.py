"""`dlcli distill`: train a small student from a large teacher (Hinton et al., 2015) on the one loop.

The student is a registry name (sized with model arguments) or a checkpoint; the teacher is a
checkpoint whose classes must be the data's. For non-augmented data the teacher's logits are
computed once and carried in the batches, so each step runs only the student. With --baseline the
same student is also trained alone with the same budget, seed and data order, which is the only
fair way to say what distillation bought.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dlcli.checkpoint import lineage_entry, load_checkpoint
from dlcli.config import TrainConfig
from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.data.tensors import TensorSplit
from dlcli.device import seed_everything
from dlcli.distributed import current as current_dist
from dlcli.engine import ClassificationTask, DistillationTask, predict
from dlcli.engine.tasks import FeatureDistillationTask
from dlcli.errors import UsageError
from dlcli.losses import make_loss
from dlcli.models import MODELS, create_model
from dlcli.resume import resumed_config
from dlcli.workflows.distill_config import DISTILL_SETTINGS, DistillConfig
from dlcli.workflows.distill_report import Compared, summarize
from dlcli.workflows.preparation import PreparedData, eval_batches, prepare_data, split_metrics
from dlcli.workflows.resolve import preview, start_run, with_data, with_defaults
from dlcli.workflows.result import CommandResult, omitted_when_none
from dlcli.workflows.train import resolved_model_args
from dlcli.workflows.training import TrainedRun, TrainingJob, train_and_save


@dataclass
class DistillResult(CommandResult):
    """`dlcli distill --json`: command, artifact (the student's best.pt), metrics (the student's
    training metrics, teacher_accuracy, teacher_params, student_params, param_ratio, latency_ratio and,
    with a baseline, baseline_accuracy), device, seconds, run_dir, and baseline_artifact with a
    baseline."""

    command: ClassVar[str] = "distill"
    run_dir: str = ""
    baseline_artifact: str | None = omitted_when_none()


def check_teacher(teacher_classes: list[str], teacher_shape: list[int], dataset: Dataset, path: Path) -> None:
    if teacher_classes != dataset.classes:
        raise UsageError(
            f"teacher {path} predicts classes {teacher_classes[:4]}... but {dataset.name} has "
            f"{dataset.classes[:4]}...; distillation needs the same classes in the same order."
        )
    if list(teacher_shape) != dataset.input_shape:
        raise UsageError(f"teacher {path} takes inputs {teacher_shape}; {dataset.name} has {dataset.input_shape}.")


def build_student(
    opts: DistillConfig, cfg: TrainConfig, dataset: Dataset
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


def make_task(cfg: TrainConfig, opts: DistillConfig, teacher: nn.Module, student: nn.Module) -> DistillationTask:
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
    return split_metrics(teacher, data.test, channels_last)


def student_identity(config: DistillConfig) -> tuple[str, dict[str, Any]]:
    """The student's model name and arguments, as its run's config records them."""
    if config.student in MODELS:
        return config.student, dict(config.student_args)
    student = load_checkpoint(Path(config.student))
    return student.model_name, student.model_args


def saved_settings(checkpoint: Path) -> dict[str, Any]:
    """The distillation settings a distill run's checkpoint records (its own, last lineage entry;
    {} for a checkpoint another step made last, such as a finetune of a distilled model)."""
    lineage = load_checkpoint(checkpoint).lineage
    last = lineage[-1] if lineage else {}
    if last.get("step") != "distill":
        return {}
    return {key: last[key] for key in DISTILL_SETTINGS if key in last}


def resumed_options(checkpoint: Path, given: dict[str, Any]) -> dict[str, Any]:
    """`dlcli distill --resume`'s options: the saved distillation settings where the user gave none;
    a given value that differs is refused, naming both, as `--resume` refuses other changes
    (dlcli.resume). Without this, resuming a `-T 2` run without repeating `-T` went on at the
    default 4.0: a different experiment, silently."""
    saved = saved_settings(checkpoint)
    return {**given, **resumed_config(saved, {k: v for k, v in given.items() if k in saved}, checkpoint)}


def check_resumed_settings(config: DistillConfig) -> None:
    """A resumed run's settings must be the saved ones (a Python caller passes them all; the CLI
    has filled them in from the checkpoint)."""
    if config.train.resume:
        current = {key: getattr(config, key) for key in DISTILL_SETTINGS}
        resumed_config(saved_settings(Path(config.train.resume)), current, Path(config.train.resume))


def run_config(config: DistillConfig, teacher_dataset: str) -> TrainConfig:
    """The training config with the student as its model and the teacher's dataset by default."""
    name, args = student_identity(config)
    return with_defaults(replace(config.train, model=name, model_args=args), teacher_dataset)


def describe(config: DistillConfig) -> dict[str, Any]:
    """What `distill --print-config` prints: the student's run config as resolved, then the teacher
    and the distillation settings."""
    teacher_dataset = load_checkpoint(config.teacher).dataset
    train = preview(run_config(config, teacher_dataset), teacher_dataset)
    return {**train.to_dict(), "teacher": str(config.teacher), "student": config.student,
            "student_args": config.student_args, "temperature": config.temperature, "alpha": config.alpha,
            "feature_loss": config.feature_loss, "cache_teacher": config.cache_teacher, "baseline": config.baseline}


def run(config: DistillConfig, console: Console) -> DistillResult:
    from dlcli.runs import prepare_out_dir

    start = time.perf_counter()
    check_resumed_settings(config)
    teacher_ckpt = load_checkpoint(config.teacher)
    cfg, device, generator = start_run(run_config(config, teacher_ckpt.dataset), console)
    data = prepare_data(cfg, device, generator, console)
    check_teacher(teacher_ckpt.classes, teacher_ckpt.input_shape, data.dataset, config.teacher)
    cfg = with_data(cfg, device, len(data.dataset.train), data.dataset.input_shape, console)
    teacher = teacher_ckpt.build_model().to(device).eval()
    if cfg.channels_last:  # the student's rule: --no-channels-last holds for the teacher too
        teacher = teacher.to(memory_format=torch.channels_last)
    teacher_test = teacher_metrics(teacher, data, cfg.channels_last)
    student, student_name, student_args, history = build_student(config, cfg, data.dataset)
    student = student.to(device)
    if config.cache_teacher and not cfg.augment and not config.feature_loss:
        console.info("caching teacher logits for the training split (no augmentation: they never change)")
        data = replace(data, train=cache_teacher_logits(teacher, data.train, cfg.channels_last))
    job = TrainingJob(
        model=student, model_name=student_name, model_args=student_args,
        task=make_task(cfg, config, teacher, student),
        lineage=[*history, lineage_entry("distill", source=config.teacher, dataset=cfg.data,
                                         temperature=config.temperature, alpha=config.alpha,
                                         feature_loss=config.feature_loss, teacher_model=teacher_ckpt.model_name)],
    )
    out_dir = config.out_dir or prepare_out_dir(None, "distill", None, False)
    distilled = train_and_save(cfg, job, data, out_dir, console, device)
    baseline = train_baseline(cfg, config, data, out_dir / "baseline", console, device) if config.baseline else None
    if not current_dist().is_main:  # the other ranks of a distributed run report nothing
        return DistillResult(str(distilled.best), distilled.metrics, str(device), time.perf_counter() - start)
    metrics = summarize(distilled, baseline, Compared(teacher, teacher_test, student, data.dataset.input_shape),
                        console, device)
    return DistillResult(str(distilled.best), metrics, str(device), time.perf_counter() - start,
                         run_dir=str(out_dir), baseline_artifact=str(baseline.best) if baseline else None)


def train_baseline(cfg: TrainConfig, opts: DistillConfig, data: PreparedData, out_dir: Path, console: Console,
                   device: torch.device) -> TrainedRun:
    """The same student, seed, data order and budget, trained without the teacher."""
    console.info("baseline: the same student trained alone with the same budget")
    seed_everything(cfg.seed)
    cfg = replace(cfg, resume=None)  # --resume continues the distilled run, not this one
    plain = replace(data, train=replace(data.train, extras=()))  # in memory or streamed
    student, name, args, history = build_student(opts, cfg, data.dataset)
    job = TrainingJob(model=student.to(device), model_name=name, model_args=args,
                      task=ClassificationTask(make_loss(cfg.loss, cfg.label_smoothing), cfg.l1),
                      lineage=[*history, lineage_entry("train", dataset=cfg.data, baseline_for="distill")],
                      remember=False)
    return train_and_save(cfg, job, plain, out_dir, console, device)
