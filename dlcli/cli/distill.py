"""`dlcli distill`."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import TrainingInvocation, config_option, given_values, parse_model_args, with_training_options
from dlcli.workflows.distill_config import DistillConfig


@with_training_options
def distill(
    teacher: Annotated[Path, config_option(DistillConfig, "teacher", "--teacher", "-t")],
    student: Annotated[str | None, config_option(DistillConfig, "student", "--student", "-s")] = None,
    student_arg: Annotated[list[str] | None, typer.Option(
        "--student-arg", "-a", help="Student model argument KEY=VALUE, e.g. -a width=0.5 (repeatable).")] = None,
    temperature: Annotated[float | None, config_option(DistillConfig, "temperature", "--temperature", "-T")] = None,
    alpha: Annotated[float | None, config_option(DistillConfig, "alpha", "--alpha")] = None,
    feature_loss: Annotated[float | None, config_option(DistillConfig, "feature_loss", "--feature-loss")] = None,
    cache_teacher: Annotated[bool | None, config_option(
        DistillConfig, "cache_teacher", "--cache-teacher/--no-cache-teacher")] = None,
    baseline: Annotated[bool | None, config_option(DistillConfig, "baseline", "--baseline")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/distill/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/distill/.")] = None,
    *,
    given: TrainingInvocation,
) -> None:
    """Distill a teacher checkpoint into a smaller student (Hinton et al., 2015).

    \b
    Examples:
      dlcli distill --teacher runs/train/exp/best.pt --student cnn -a width=0.5 --baseline
      dlcli distill -t resnet.pt -s mlp -a hidden=[64] --data mnist --epochs 5 -T 4 --alpha 0.9
    """
    train = given.train_config("distill", out)
    if train is None:
        return
    from dlcli.workflows.distill import describe, resumed_options, run

    student_args = parse_model_args(student_arg) or {}
    options = given_values(student=student, temperature=temperature, alpha=alpha, feature_loss=feature_loss,
                           cache_teacher=cache_teacher, baseline=baseline)
    if train.resume:
        if student is None and not student_args:  # the resumed run's own student
            options["student"], student_args = train.model, dict(train.model_args)
        options = resumed_options(Path(train.resume), options)
    # Validated when built: before the run folder is made.
    config = DistillConfig(teacher, train=train, student_args=student_args, **options)
    if given.print_config:
        return given.show(describe(config))
    given.emit(run(replace(config, out_dir=given.run_folder("distill", out, name, train)), given.console()))
