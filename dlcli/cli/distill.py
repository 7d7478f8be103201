"""`dlcli distill`."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli._options import TrainingInvocation, parse_model_args, with_training_options


@with_training_options
def distill(
    teacher: Annotated[Path, typer.Option("--teacher", "-t", help="Teacher checkpoint (.pt).")],
    student: Annotated[str, typer.Option(
        "--student", "-s", help="Student: a model name (sized with -a) or a student checkpoint.")] = "cnn",
    student_arg: Annotated[list[str] | None, typer.Option(
        "--student-arg", "-a", help="Student model argument KEY=VALUE, e.g. -a width=0.5 (repeatable).")] = None,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="Softening temperature T.")] = 4.0,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Weight of the soft (teacher) term; 1-alpha on labels.")] = 0.9,
    feature_loss: Annotated[float, typer.Option(
        "--feature-loss", help="Weight of an MSE hint on the features before the head (needs equal widths).")] = 0.0,
    cache_teacher: Annotated[bool, typer.Option(
        "--cache-teacher/--no-cache-teacher", help="Compute teacher logits once (only without --augment).")] = True,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Also train the same student alone with the same budget, and compare.")] = False,
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
    from dlcli.workflows.distill import DistillConfig, describe, run

    config = DistillConfig(  # validates, before the run folder is made
        teacher=teacher, student=student, student_args=parse_model_args(student_arg) or {}, train=train,
        temperature=temperature, alpha=alpha, feature_loss=feature_loss, cache_teacher=cache_teacher,
        baseline=baseline,
    )
    if given.print_config:
        return given.show(describe(config))
    given.emit(run(replace(config, out_dir=given.run_folder("distill", out, name, train)), given.console()))
