"""Building the variants of `dlcli frontier`: each is made by the workflow of the single command that
makes it (export, quantize, prune, distill), with that command's defaults, into one folder. Nothing
here prunes, quantizes or trains by itself.

A manifest in the folder records, per file, the step that wrote it (its input's sha256 and options)
and the file's own sha256, so a re-run rebuilds only what changed (`frontier_rules.reusable`).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli import __version__
from dlcli.checkpoint import file_sha256
from dlcli.console import Console
from dlcli.errors import ArtifactExistsError
from dlcli.runs import atomic_write
from dlcli.workflows.frontier_rules import Variant, reusable, step_key

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dlcli.frontier-manifest"


@dataclass(frozen=True)
class Recipe:
    """What shapes the built files (all part of each step's reuse key)."""

    data: str | None
    data_dir: str | None
    recover_epochs: float
    train_samples: int | None
    seed: int
    threads: int
    student: tuple[str, dict[str, Any]] | None = None
    """The distilled variant's student (model name, arguments); None when it is not asked for."""


@dataclass(frozen=True)
class Step:
    output: str
    """The file written, relative to the output folder."""
    action: str
    """export | quantize | prune | distill: the command whose workflow runs."""
    source: str | None
    """The output of the step this one reads; None: the parent checkpoint."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Built:
    """A variant's artifact and how it came to be."""

    artifact: Path
    parent: Path
    """The file the last step read (the checkpoint, or a pruned/distilled checkpoint)."""
    reused: bool
    command: str
    """The single dlcli command that makes the artifact from its parent."""


def plan(variants: list[Variant], recipe: Recipe) -> tuple[dict[str, Step], dict[str, str]]:
    """The steps (in build order, shared ones once) and, per variant, the output that is its artifact.
    An int8 variant quantizes its base model's fp32 ONNX file (built even when that is not asked for),
    so each model is exported once and the int8 file's lineage runs through its fp32 parent."""
    steps: dict[str, Step] = {}
    artifacts: dict[str, str] = {}
    for variant in variants:
        fp32 = _add(steps, Step(f"{variant.base_name}.onnx", "export", _base_model(variant, recipe, steps)))
        if variant.int8:
            options = {"data": recipe.data, "seed": recipe.seed}
            artifacts[variant.name] = _add(steps, Step(f"{variant.name}.onnx", "quantize", fp32, options))
        else:
            artifacts[variant.name] = fp32
    return steps, artifacts


def _base_model(variant: Variant, recipe: Recipe, steps: dict[str, Step]) -> str | None:
    """The fp32 checkpoint the variant is exported or quantized from (None: the parent)."""
    training = {"epochs": recipe.recover_epochs, "train_samples": recipe.train_samples, "seed": recipe.seed,
                "data": recipe.data}
    if variant.base == "prune":
        options = {"method": variant.method, "amount": variant.amount, **training}
        return _add(steps, Step(f"{variant.base_name}.pt", "prune", None, options))
    if variant.base == "distill":
        assert recipe.student is not None  # set by the caller whenever `distilled` is asked for
        name, args = recipe.student
        options = {**training, "student": name, "student_args": args}
        return _add(steps, Step(f"{variant.base_name}/best.pt", "distill", None, options))
    return None


def _add(steps: dict[str, Step], step: Step) -> str:
    steps.setdefault(step.output, step)
    return step.output


def build(
    variants: list[Variant], checkpoint: Path, out_dir: Path, recipe: Recipe, console: Console, verbose: bool,
) -> dict[str, Built]:
    """Run (or reuse) every step in order; the manifest is rewritten after each, so an interrupted
    run keeps what it finished."""
    steps, artifacts = plan(variants, recipe)
    manifest = read_manifest(out_dir)
    inner = console if verbose else Console(quiet=True)  # warnings still show: they change what a result means
    done: dict[str, tuple[bool, str]] = {}
    with _keep_latest_run():
        for step in steps.values():
            done[step.output] = _run_step(step, checkpoint, out_dir, recipe, manifest, console, inner)
    return {name: Built(out_dir / output, checkpoint if steps[output].source is None
                        else out_dir / str(steps[output].source), *done[output])
            for name, output in artifacts.items()}


def _run_step(
    step: Step, checkpoint: Path, out_dir: Path, recipe: Recipe, manifest: dict[str, Any], console: Console,
    inner: Console,
) -> tuple[bool, str]:
    """Reuse the step's file when up to date, else run its workflow and record it; (reused, command)."""
    source = checkpoint if step.source is None else out_dir / step.source
    target = out_dir / step.output
    key = step_key(step.action, file_sha256(source), {**step.options, "dlcli": __version__})
    command = single_command(step, source, target)
    if reusable(manifest["steps"].get(step.output), key, file_sha256(target) if target.is_file() else None):
        console.info(f"reused  {step.output}  (up to date: same parent sha256 and options)")
        return True, command
    console.info(f"building {step.output}: {command}")
    started = time.perf_counter()
    RUNNERS[step.action](step, source, target, recipe, inner)
    manifest["steps"][step.output] = {"key": key, "sha256": file_sha256(target), "command": command,
                                      "source": str(source), "seconds": round(time.perf_counter() - started, 3)}
    write_manifest(out_dir, manifest)
    return False, command


@contextlib.contextmanager
def _keep_latest_run() -> Iterator[None]:
    """prune and distill record what they write as the latest run, which later commands default to;
    the frontier's intermediate checkpoints should not become that, so the pointer is put back."""
    from dlcli.runs import LATEST_FILE, runs_root

    pointer = runs_root() / LATEST_FILE
    saved = pointer.read_bytes() if pointer.is_file() else None
    try:
        yield
    finally:
        if saved is None:
            pointer.unlink(missing_ok=True)
        else:
            atomic_write(pointer, lambda tmp: Path(tmp).write_bytes(saved))


def single_command(step: Step, source: Path, target: Path) -> str:
    """The `dlcli` command line a user would type for this step (recorded as the artifact's recipe)."""
    o = step.options
    args: list[str] = [step.action, str(source)]
    if step.action == "prune":
        args += ["--method", o["method"], "--amount", f"{o['amount']:g}", "--finetune-epochs", str(o["epochs"])]
    if step.action == "distill":
        model_args = [item for k, v in o["student_args"].items() for item in ("-a", f"{k}={json.dumps(v)}")]
        args = ["distill", "--teacher", str(source), "-s", o["student"], *model_args, "--epochs", str(o["epochs"])]
    if step.action in ("prune", "distill"):
        subset = ["--train-samples", str(o["train_samples"])] if o["train_samples"] else []
        args += [*subset, "--seed", str(o["seed"])]
    if o.get("data"):
        args += ["--data", o["data"]]
    args += ["--out", str(target.parent if step.action == "distill" else target)]
    return "dlcli " + shlex.join(args)


def _training_config(recipe: Recipe, **values: Any) -> Any:
    from dlcli.config import TrainConfig

    return TrainConfig(data=recipe.data, data_dir=recipe.data_dir, train_samples=recipe.train_samples,
                       seed=recipe.seed, **values)


def _export(step: Step, source: Path, target: Path, recipe: Recipe, console: Console) -> dict[str, Any]:
    from dlcli.workflows.export import run
    from dlcli.workflows.export_config import ExportConfig

    return run(ExportConfig(source, target, data_dir=recipe.data_dir, force=True), console).to_json()


def _quantize(step: Step, source: Path, target: Path, recipe: Recipe, console: Console) -> dict[str, Any]:
    from dlcli.workflows.quantize import run
    from dlcli.workflows.quantize_config import QuantizeConfig

    # quantize times fp32 against int8 itself; one round suffices: the frontier measures all variants again.
    return run(QuantizeConfig(model=source, data=recipe.data, data_dir=recipe.data_dir, out=target, force=True,
                              seed=recipe.seed, threads=recipe.threads, rounds=1), console).to_json()


def _prune(step: Step, source: Path, target: Path, recipe: Recipe, console: Console) -> dict[str, Any]:
    from dlcli.compress.pruning import PruneSpec
    from dlcli.workflows.prune import RECOVERY_BATCH_SIZE, PruneConfig, run

    spec = PruneSpec(step.options["method"], step.options["amount"])
    # --no-latency: the frontier times every variant together, in one session.
    config = PruneConfig(source, spec, _training_config(recipe, batch_size=RECOVERY_BATCH_SIZE),
                         step.options["epochs"], out=target, force=True, latency=False)
    return run(config, console).to_json()


def _distill(step: Step, source: Path, target: Path, recipe: Recipe, console: Console) -> dict[str, Any]:
    from dlcli.workflows.distill import DistillConfig, run

    config = DistillConfig(teacher=source, student=step.options["student"], student_args=step.options["student_args"],
                           train=_training_config(recipe, epochs=step.options["epochs"]), out_dir=target.parent)
    return run(config, console).to_json()


RUNNERS = {"export": _export, "quantize": _quantize, "prune": _prune, "distill": _distill}


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"format": MANIFEST_FORMAT, "steps": {}}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("steps"), dict):
        return {"format": MANIFEST_FORMAT, "steps": {}}
    return data


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    atomic_write(out_dir / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def prepare_out_dir(out_dir: Path, force: bool) -> Path:
    """A frontier folder (with our manifest) is reused; any other non-empty folder needs --force."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactExistsError(f"--out {out_dir} is a file; give a folder.")
    ours = (out_dir / MANIFEST).is_file()
    if out_dir.is_dir() and any(out_dir.iterdir()) and not ours and not force:
        raise ArtifactExistsError(f"--out {out_dir} already has files that dlcli frontier did not write; pass --force "
                                  "to write into it anyway, or give another folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
