"""`dlcli prune`: load a checkpoint, prune it (in rounds, with recovery training between them on the
one training loop), measure what changed, and save a self-describing checkpoint.

What is measured and how: accuracy on the test split before pruning, right after the last pruning
round and after recovery; parameters, non-zero parameters and MACs (torch-pruning's counter, batch 1);
file sizes; and, for channel pruning, the latency of the original and the pruned model exported to
ONNX and run by onnxruntime (fp32, CPU) with the same harness as `dlcli benchmark`. Unstructured
sparsity leaves every tensor dense, so no latency is claimed for it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli.checkpoint import Checkpoint, lineage_entry, load_checkpoint, save_checkpoint, written_by
from dlcli.compress import pruning
from dlcli.compress.pruning import PruneSpec
from dlcli.config import TrainConfig
from dlcli.console import Console, result
from dlcli.device import describe_device, resolve_device, seed_everything
from dlcli.distributed import current as current_dist
from dlcli.distributed import shared_run_dir
from dlcli.engine import ClassificationTask, DistillationTask, evaluate
from dlcli.errors import DataNotFoundError, UsageError, WorkError
from dlcli.losses import make_loss
from dlcli.optim import DEFAULT_LR
from dlcli.runs import check_step_output, new_run_dir
from dlcli.threads import use_threads
from dlcli.workflows.preparation import PreparedData, eval_batches, load_data, prepare_data, use_channels_last
from dlcli.workflows.prune_report import report, round_line
from dlcli.workflows.training import FitSetup, RunWriter, run_fit

# Recovery defaults (when --lr / --batch-size are not given), chosen by measurement on MNIST with the
# default cnn (channel 0.5 and global 0.9, one epoch): batch 64 with sgd 0.1 recovered 0.2-0.5 pp more
# than batch 128 with 0.02-0.05, and as much as batch 32 in half the steps.
RECOVERY_LR_FACTOR = 0.5  # recovery lr = this x the optimizer's from-scratch default (sgd: 0.1)
RECOVERY_BATCH_SIZE = 64
RECOVER_CHOICES = ("labels", "kd")
LATENCY_ROUNDS = 7  # alternating rounds: on a shared CPU, fewer gave ratios that moved by 0.1 between runs


@dataclass
class PruneOptions:
    spec: PruneSpec
    finetune_epochs: int | None = None
    """Recovery epochs after each round; None: 1 when the data can be loaded, else 0."""
    recover: str = "labels"
    """labels: train on the labels (--loss); kd: distil from the unpruned model."""
    out: Path | None = None
    force: bool = False
    latency: bool = True
    latency_batches: list[int] = field(default_factory=lambda: [32, 1])
    threads: int | None = None
    """onnxruntime intra-op threads for the latency measurement; None: all available cores."""

    def validate(self) -> PruneOptions:
        self.spec.validate()
        if self.finetune_epochs is not None and self.finetune_epochs < 0:
            raise UsageError(f"--finetune-epochs must be 0 or more, got {self.finetune_epochs}.")
        if self.recover not in RECOVER_CHOICES:
            raise UsageError(f"--recover must be one of {', '.join(RECOVER_CHOICES)}, got {self.recover!r}.")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be positive, got {self.threads}.")
        if self.recover == "kd" and self.finetune_epochs == 0:
            raise UsageError("--recover kd needs recovery training: --finetune-epochs must be at least 1.")
        return self


def default_output(checkpoint: Path, spec: PruneSpec) -> Path:
    return checkpoint.parent / f"pruned-{spec.method}-{spec.amount:g}.pt"


def output_path(checkpoint: Path, options: PruneOptions) -> Path:
    out = options.out or default_output(checkpoint, options.spec)
    if out.exists() and out.resolve() == checkpoint.resolve():
        raise UsageError(f"--out {out} is the checkpoint being pruned; write the pruned model to another file.")
    return check_step_output(out, options.force, "prune", written_by)


def recovery_config(cfg: TrainConfig, parent: Checkpoint, epochs: int) -> TrainConfig:
    """The parent's model and dataset, recovery epochs, and the recovery learning rate by default."""
    if cfg.dropout is not None:
        raise UsageError("--dropout changes the architecture; prune keeps the checkpoint's model as it is.")
    cfg.model, cfg.model_args = parent.model_name, dict(parent.model_args)
    cfg.data = cfg.data or parent.dataset
    cfg.epochs = max(epochs, 1)  # recorded in the config; 0 recovery epochs never calls the loop
    if cfg.lr is None:
        cfg.lr = DEFAULT_LR[cfg.optimizer] * RECOVERY_LR_FACTOR
    return cfg.validate()


def _load_recovery_data(
    cfg: TrainConfig, data_given: bool, options: PruneOptions, parent: Checkpoint, checkpoint: Path,
    device: torch.device, generator: torch.Generator, console: Console,
) -> PreparedData | None:
    """The data for recovery and accuracy; None (with a warning) when the checkpoint's own dataset is
    unavailable and neither --data nor --finetune-epochs asked for it."""
    from dlcli.workflows.evaluate import check_compatible

    try:
        dataset = load_data(cfg.data, cfg.data_dir, console)
    except DataNotFoundError as exc:
        if data_given or options.finetune_epochs:
            raise
        console.warn(f"{exc} Pruning without recovery training or accuracy; pass --data to add them.")
        return None
    check_compatible(dataset, parent.input_shape, parent.classes, checkpoint)
    return prepare_data(cfg, device, generator, console, dataset)


def accuracy_on_test(model: nn.Module, data: PreparedData | None, channels_last: bool) -> float | None:
    if data is None or data.test is None:
        return None
    return evaluate(model, eval_batches(data.test, channels_last), make_loss("cross-entropy"))["accuracy"]


def model_stats(model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    macs, params = pruning.macs_and_params(model, example)
    nonzero = sum(int((p.detach() != 0).sum()) for p in model.parameters())
    return {"macs": macs, "params": params, "nonzero_params": nonzero, "layers": pruning.layer_stats(model)}


def run(checkpoint: Path, options: PruneOptions, cfg: TrainConfig, console: Console) -> dict[str, Any]:
    start = time.perf_counter()
    spec = options.validate().spec
    parent = load_checkpoint(checkpoint)
    out = output_path(checkpoint, options)
    data_given = cfg.data is not None
    cfg = recovery_config(cfg, parent, options.finetune_epochs if options.finetune_epochs is not None else 1)
    device = resolve_device(cfg.device)
    cfg.threads = use_threads(cfg.threads)  # recorded: results differ in the last bits by thread count
    generator = seed_everything(cfg.seed)
    console.info(f"device: {describe_device(device)}")
    model = parent.build_model().to(device).eval()
    example = torch.rand(1, *parent.input_shape, device=device)  # inputs are pixels in [0, 1]
    original = copy.deepcopy(model)  # the KD teacher and the latency baseline
    pruner = pruning.make_pruner(model, spec, example)  # refuses inapplicable methods before any data work
    data = _load_recovery_data(cfg, data_given, options, parent, checkpoint, device, generator, console)
    epochs = options.finetune_epochs if options.finetune_epochs is not None else (1 if data else 0)
    channels_last = data is not None and use_channels_last(cfg, device, data.dataset)
    before = model_stats(model, example)
    accuracy_before = accuracy_on_test(model, data, channels_last)
    teacher = original if options.recover == "kd" else None
    if teacher is not None and not epochs:
        raise UsageError("--recover kd needs recovery training: --finetune-epochs must be at least 1.")
    run_dir = shared_run_dir(lambda: new_run_dir("prune")) if epochs else None
    rounds = _prune_rounds(pruner, model, spec, cfg, data, epochs, teacher, run_dir, parent, device,
                           generator, channels_last, console)
    pruner.finalize()
    after = model_stats(model, example)
    accuracy = accuracy_on_test(model, data, channels_last)
    latency = {}
    if not current_dist().is_main:  # the other ranks of a distributed recovery are done
        return {}
    if options.latency and spec.method == "channel":
        latency = compare_onnx_latency(original, model, parent.input_shape, options.latency_batches,
                                       options.threads, console)
    metrics = _metrics(spec, list(pruner.targets), before, after, accuracy_before, rounds, accuracy, latency)
    metrics["size_bytes_before"] = checkpoint.stat().st_size
    record = _pruning_record(spec, options, before, after, rounds, epochs, cfg, metrics)
    ckpt = _checkpoint(model, parent, checkpoint, cfg, epochs, metrics, record, spec, options)
    verify_rebuild(ckpt, model, example)
    save_checkpoint(ckpt, out)
    metrics["size_bytes"] = out.stat().st_size
    report(spec, before, after, metrics, console)
    return result("prune", str(out), metrics, str(device), time.perf_counter() - start, parent=str(checkpoint),
                  run_dir=str(run_dir) if run_dir else None, pruning=record)


def _prune_rounds(
    pruner: pruning.Pruner, model: nn.Module, spec: PruneSpec, cfg: TrainConfig, data: PreparedData | None,
    epochs: int, teacher: nn.Module | None, run_dir: Path | None, parent: Checkpoint, device: torch.device,
    generator: torch.Generator, channels_last: bool, console: Console,
) -> list[dict[str, Any]]:
    """Each round: prune to the next amount, test, recover (when epochs > 0), test again."""
    rounds = []
    start = pruning.layer_stats(model)
    for k in range(1, spec.steps + 1):
        amount = pruner.step()
        entry: dict[str, Any] = {"round": k, "amount": amount, "achieved": _achieved(spec, start, model, pruner),
                                 "accuracy_pruned": accuracy_on_test(model, data, channels_last)}
        if epochs and data is not None and run_dir is not None:
            folder = run_dir if spec.steps == 1 else run_dir / f"round{k}"
            folder.mkdir(parents=True, exist_ok=True)
            outcome = recover(model, teacher, cfg, data, epochs, folder, parent, console, device, generator,
                              spec.method)
            entry.update({"accuracy_recovered": outcome.test_metrics.get("accuracy"),
                          "best_epoch": outcome.fit.best_epoch, "train_seconds": round(outcome.fit.seconds, 3)})
        rounds.append(entry)
        console.info(round_line(entry, spec.steps))
    return rounds


def _achieved(spec: PruneSpec, start: dict[str, Any], model: nn.Module, pruner: pruning.Pruner) -> float:
    """What a round actually removed, measured as the final table measures it (channels removed or
    sparsity over the target layers): rounding to --round-to and layers kept whole make it differ
    from the scheduled `amount`, and the per-round line must agree with the table."""
    targets = list(pruner.targets)
    if spec.method == "channel":
        return pruning.channel_fraction_removed(start, pruning.layer_stats(model), targets)
    return pruning.sparsity(pruning.layer_stats(model), targets)


def recover(
    model: nn.Module, teacher: nn.Module | None, cfg: TrainConfig, data: PreparedData, epochs: int,
    out_dir: Path, parent: Checkpoint, console: Console, device: torch.device, generator: torch.Generator,
    method: str,
) -> Any:
    """Recovery training with the one loop (`run_fit`); masks stay applied, so pruned weights stay zero.
    The best epoch's weights (by validation accuracy) are loaded back into `model`."""
    loss = make_loss(cfg.loss, cfg.label_smoothing)
    task = DistillationTask(loss, teacher, l1=cfg.l1) if teacher is not None else ClassificationTask(loss, cfg.l1)

    def make_checkpoint(metrics: dict[str, Any]) -> Checkpoint:
        return Checkpoint(
            model_name=parent.model_name, model_args=parent.model_args, state_dict=pruning.dense_state_dict(model),
            classes=parent.classes, input_shape=parent.input_shape, mean=parent.mean, std=parent.std,
            dataset=cfg.data, metrics=metrics, config=cfg.to_dict(), lineage=parent.lineage,
            extra={**parent.extra, "pruning": {"method": method, "recovering": True}},  # its shapes may differ
        )

    writer = RunWriter(out_dir, make_checkpoint)
    run_config = {**cfg.to_dict(), "epochs": epochs}
    writer.write_config(run_config)
    console.info(f"recovery: {epochs} epoch(s) on {len(data.train)} samples, lr {cfg.lr:g} ({cfg.optimizer}, "
                 f"{cfg.scheduler}){', distilling from the unpruned model' if teacher is not None else ''}")
    outcome = run_fit(cfg, FitSetup(model, task), data, epochs, writer, console, device)
    pruning.load_dense_state_dict(model, load_checkpoint(outcome.best_path).state_dict)
    return outcome


def compare_onnx_latency(
    original: nn.Module, pruned: nn.Module, input_shape: list[int], batch_sizes: list[int], threads: int | None,
    console: Console,
) -> dict[str, Any]:
    """Export both models to ONNX (each checked against PyTorch), then time them with onnxruntime on
    the CPU in alternating rounds, so that a machine getting busier mid-way affects both alike.
    Returns latency_ms_b{N} and latency_ms_b{N}_before: p50 over all rounds' timed calls."""
    from dlcli.export.onnx_export import export_onnx
    from dlcli.export.runtime import ort_session
    from dlcli.export.verify import (
        DEFAULT_ATOL,
        compare_outputs,
        inputs_needed,
        parity_inputs,
        random_inputs,
        require_parity,
    )
    from dlcli.measure.environment import available_cores, busy_warning
    from dlcli.measure.runners import alternating_p50, onnx_runner

    threads = threads or available_cores()
    warning = busy_warning()
    if warning:
        console.warn(warning)
    console.info(f"latency: ONNX fp32 on onnxruntime (CPU, {threads} threads), batches "
                 f"{', '.join(map(str, batch_sizes))}; p50 over {LATENCY_ROUNDS} rounds alternating the two models")
    runners = {}
    for key, model in (("_before", original), ("", pruned)):
        model = copy.deepcopy(model).cpu()  # export_onnx moves its model to the CPU in place
        session = ort_session(export_onnx(model, input_shape).proto.SerializeToString(), threads)
        pool = random_inputs(input_shape, inputs_needed(True))
        require_parity(compare_outputs(model, session, parity_inputs(pool, True), DEFAULT_ATOL))
        runners[key] = onnx_runner(session)
    return {"latency_threads": threads, **alternating_p50(runners, input_shape, batch_sizes, LATENCY_ROUNDS)}


def _metrics(
    spec: PruneSpec, targets: list[str], before: dict[str, Any], after: dict[str, Any],
    accuracy_before: float | None, rounds: list[dict[str, Any]], accuracy: float | None, latency: dict[str, Any],
) -> dict[str, Any]:
    """`targets`: the layers the amount applies to (channel: their output channels; else their weights)."""
    if spec.method == "channel":
        sparsity = pruning.channel_fraction_removed(before["layers"], after["layers"], targets)
    else:
        sparsity = pruning.sparsity(after["layers"], targets)
    return {
        "accuracy": accuracy, "accuracy_before": accuracy_before,
        "accuracy_pruned": rounds[-1]["accuracy_pruned"] if rounds else None,
        "sparsity": sparsity, "params": after["params"], "params_before": before["params"],
        "params_ratio": after["params"] / before["params"], "nonzero_params": after["nonzero_params"],
        "nonzero_params_before": before["nonzero_params"], "macs": after["macs"], "macs_before": before["macs"],
        **latency,
    }


def _pruning_record(
    spec: PruneSpec, options: PruneOptions, before: dict[str, Any], after: dict[str, Any],
    rounds: list[dict[str, Any]], epochs: int, cfg: TrainConfig, metrics: dict[str, Any],
) -> dict[str, Any]:
    """What `extra["pruning"]` stores: enough to know exactly what was done to every layer."""
    layers = {}
    for name, stats in after["layers"].items():
        old = before["layers"][name]
        layers[name] = {"shape_before": old["shape"], "shape": stats["shape"],
                        "sparsity": stats["zeros"] / stats["params"] if stats["params"] else 0.0}
    recovery = {"epochs_per_round": epochs, "recover": options.recover}
    if epochs:
        recovery.update({"data": cfg.data, "lr": cfg.lr, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer,
                         "scheduler": cfg.scheduler, "train_samples": cfg.train_samples, "seed": cfg.seed})
    return {
        "method": spec.method, "amount": spec.amount, "steps": spec.steps, "schedule": spec.schedule(),
        "round_to": spec.channel_multiple, "ignore": list(spec.ignore), "importance": "l1-magnitude",
        "sparsity": metrics["sparsity"], "params": metrics["params"], "params_before": metrics["params_before"],
        "macs": metrics["macs"], "macs_before": metrics["macs_before"], "layers": layers, "rounds": rounds,
        "recovery": recovery,
    }


def _checkpoint(
    model: nn.Module, parent: Checkpoint, checkpoint: Path, cfg: TrainConfig, epochs: int,
    metrics: dict[str, Any], record: dict[str, Any], spec: PruneSpec, options: PruneOptions,
) -> Checkpoint:
    step = lineage_entry("prune", source=checkpoint, method=spec.method, amount=spec.amount, steps=spec.steps,
                         finetune_epochs=epochs, recover=options.recover, dataset=cfg.data if epochs else None)
    return Checkpoint(
        model_name=parent.model_name, model_args=parent.model_args, state_dict=pruning.dense_state_dict(model),
        classes=parent.classes, input_shape=parent.input_shape, mean=parent.mean, std=parent.std,
        dataset=cfg.data if epochs else parent.dataset,
        metrics={k: v for k, v in metrics.items() if v is not None},
        config=cfg.to_dict() if epochs else parent.config, lineage=[*parent.lineage, step],
        extra={**parent.extra, "pruning": record},
    )


def verify_rebuild(ckpt: Checkpoint, model: nn.Module, example: torch.Tensor) -> None:
    """The saved weights must rebuild (from the architecture's name and arguments alone) into a model
    that computes what the pruned one does; otherwise nothing is written."""
    rebuilt = ckpt.build_model().to(example.device).eval()
    model.eval()
    x = torch.rand(4, *example.shape[1:], generator=torch.Generator().manual_seed(0)).to(example.device)
    with torch.no_grad():
        diff = float((rebuilt(x) - model(x)).abs().max())
    if not diff <= 1e-4:
        raise WorkError(f"the pruned model does not rebuild from its checkpoint (outputs differ by {diff:.3g}); "
                        "nothing was written.")
