"""`dlcli distill`."""

from pathlib import Path
from typing import Annotated, Any

import typer

from dlcli.cli._options import (
    ConfigOpt,
    DataDirOpt,
    DataOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    PrintConfigOpt,
    QuietOpt,
    parse_model_args,
    with_training_options,
)
from dlcli.cli.common import emit, make_console, resolve_train_config, training_flag_values


@with_training_options
def distill(
    teacher: Annotated[Path, typer.Option("--teacher", "-t", help="Teacher checkpoint (.pt).")],
    student: Annotated[str, typer.Option(
        "--student", "-s", help="Student: a model name (sized with -a) or a student checkpoint.")] = "cnn",
    student_arg: Annotated[list[str] | None, typer.Option(
        "--student-arg", "-a", help="Student model argument KEY=VALUE, e.g. -a width=0.5 (repeatable).")] = None,
    data: DataOpt = None,
    data_dir: DataDirOpt = None,
    temperature: Annotated[float, typer.Option("--temperature", "-T", help="Softening temperature T.")] = 4.0,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Weight of the soft (teacher) term; 1-alpha on labels.")] = 0.9,
    feature_loss: Annotated[float, typer.Option(
        "--feature-loss", help="Weight of an MSE hint on the features before the head (needs equal widths).")] = 0.0,
    cache_teacher: Annotated[bool, typer.Option(
        "--cache-teacher/--no-cache-teacher", help="Compute teacher logits once (only without --augment).")] = True,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Also train the same student alone with the same budget, and compare.")] = False,
    device: DeviceOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/distill/expN).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name under runs/distill/.")] = None,
    force: ForceOpt = False,
    config: ConfigOpt = None,
    print_config: PrintConfigOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    training_flags: dict[str, Any] | None = None,
) -> None:
    """Distill a teacher checkpoint into a smaller student (Hinton et al., 2015).

    \b
    Examples:
      dlcli distill --teacher runs/train/exp/best.pt --student cnn -a width=0.5 --baseline
      dlcli distill -t resnet.pt -s mlp -a hidden=[64] --data mnist --epochs 5 -T 4 --alpha 0.9
    """
    flags = training_flag_values(training_flags, data, data_dir, device)
    cfg = resolve_train_config(config, flags, print_config)
    if cfg is None:
        return
    from dlcli.runs import prepare_out_dir
    from dlcli.workflows.distill import DistillOptions, run

    console = make_console(quiet)
    out_dir = prepare_out_dir(out, "distill", name, force)
    baseline_dir = out_dir / "baseline" if baseline else None
    if baseline_dir is not None:
        baseline_dir.mkdir(exist_ok=True)
    options = DistillOptions(
        teacher=teacher, student=student, student_args=parse_model_args(student_arg) or {}, temperature=temperature,
        alpha=alpha, cache_teacher=cache_teacher, baseline=baseline, feature_loss=feature_loss,
    )
    emit(run(cfg, options, out_dir, baseline_dir, console), json_output)
