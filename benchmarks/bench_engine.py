"""Engine overhead (issue #15's target: >= 0.97x): samples/s of dlcli's training loop against a bare
PyTorch loop on the same model, tensors, batch size, optimizer, schedule and threads. The model is the
one `dlcli train` trains on the data (MNIST: the cnn with its recipe's arguments and lr).

Both train a fresh copy of the same initial model for one pass over the same data, in alternating
rounds (bare then engine, engine then bare, ...), so a noisy spell on a shared machine hits both alike; the
reported ratio is the median of the per-round ratios. Then the engine's own cost per step is measured
with a tiny model (CPU time, robust to a busy machine) and set against this model's step time. The
engine is called through `engine_epoch`
only: when the loop's API changes, that one function is what to adapt.

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_engine.py [--threads 2] [--rounds 5]
      [--samples 20000] [--batch-size 128]
Prints a table and writes benchmarks/results/engine.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

RESULTS = Path(__file__).parent / "results" / "engine.json"


def engine_epoch(model: nn.Module, batches: Any, optimizer: Any, scheduler: Any, loss_fn: Any) -> None:
    """One epoch through dlcli's loop (the one function to adapt when the engine's API changes)."""
    from dlcli.engine import ClassificationTask, LoopOptions, Trainer

    Trainer(model=model, task=ClassificationTask(loss_fn), train_batches=batches, val_batches=None,
            optimizer=optimizer, scheduler=scheduler, device=torch.device("cpu"), eval_loss=loss_fn,
            options=LoopOptions(epochs=1)).fit()


def bare_epoch(model: nn.Module, batches: Any, optimizer: Any, scheduler: Any, loss_fn: Any) -> None:
    """The same epoch written as the PyTorch tutorials do, on the same batches."""
    model.train()
    for x, y in batches.epoch(0):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def setup(model0: nn.Module, batches: Any, lr: float, torch_sgd: bool) -> tuple[nn.Module, Any, Any]:
    """A fresh copy of the initial model with dlcli's default optimizer and schedule, or with
    torch.optim.SGD itself (`torch_sgd`: what a bare PyTorch loop uses; dlcli's is the same update
    without the torch.compile guards)."""
    from dlcli.optim import make_optimizer, make_scheduler, parameter_groups

    model = copy.deepcopy(model0)
    groups = parameter_groups(model.named_parameters(), 5e-4)
    if torch_sgd:
        for group in groups:
            group["lr"] = lr
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    else:
        optimizer = make_optimizer("sgd", groups, lr)
    scheduler = make_scheduler("onecycle", optimizer, len(batches), len(batches))
    return model, optimizer, scheduler


def timed(fn: Any, model0: nn.Module, batches: Any, loss_fn: Any, lr: float,
          torch_sgd: bool | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of one pass; the bare loop gets torch.optim.SGD unless told otherwise."""
    model, optimizer, scheduler = setup(model0, batches, lr, fn is bare_epoch if torch_sgd is None else torch_sgd)
    wall, cpu = time.perf_counter(), time.process_time()
    fn(model, batches, optimizer, scheduler, loss_fn)
    return time.perf_counter() - wall, time.process_time() - cpu


def step_overhead(rounds: int) -> dict[str, float]:
    """CPU microseconds per step of both loops with a model so small that its compute is next to
    nothing: the engine's own cost per step, which a busy machine distorts far less than throughput."""
    from dlcli.data.tensors import Batches, TensorSplit
    from dlcli.losses import make_loss

    x = torch.randint(0, 255, (128 * 400, 1, 4, 4), dtype=torch.uint8)
    batches = Batches(TensorSplit(x, torch.randint(0, 10, (len(x),)), 1 / 255), 128, shuffle=True, seed=0)
    tiny, loss_fn = nn.Sequential(nn.Flatten(), nn.Linear(16, 10)), make_loss("cross-entropy", 0.1)
    per_step: dict[str, list[float]] = {"bare": [], "engine": []}
    for i in range(rounds + 1):  # round 0 warms up
        pair = [("bare", bare_epoch), ("engine", engine_epoch)]
        for name, fn in pair if i % 2 == 0 else pair[::-1]:
            # Both with dlcli's optimizer: this measures the loop's own cost, not the optimizers'.
            cpu = timed(fn, tiny, batches, loss_fn, 0.1, torch_sgd=False)[1]
            if i:
                per_step[name].append(cpu / len(batches) * 1e6)
    bare, engine = statistics.median(per_step["bare"]), statistics.median(per_step["engine"])
    return {"bare_us_per_step": bare, "engine_us_per_step": engine, "overhead_us_per_step": engine - bare}


def load_batches(samples: int, batch_size: int, seed: int) -> tuple[Any, Any]:
    from dlcli.data.catalog import load_dataset
    from dlcli.data.streaming import device_splits
    from dlcli.data.tensors import Batches, limit_samples

    dataset = load_dataset("mnist" if os.environ.get("DLCLI_DATA_DIR") else "mnist-sample")
    train, _ = device_splits(dataset, torch.device("cpu"), workers=0)
    generator = torch.Generator().manual_seed(seed)
    train = limit_samples(train, samples, generator)
    return dataset, Batches(train, batch_size, shuffle=True, seed=seed, channels_last=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="default: the recipe's (sgd), else dlcli's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from dlcli.choices import DEFAULT_LR
    from dlcli.data.catalog import DATASETS
    from dlcli.losses import make_loss
    from dlcli.measure.environment import environment
    from dlcli.models import create_model

    dataset, batches = load_batches(args.samples, args.batch_size, seed=0)
    torch.manual_seed(0)
    # The model `dlcli train` trains on this dataset: the cnn with the dataset's recipe, if it has one.
    recipe = DATASETS.get(dataset.name).recipes.get("cnn")
    model_args = recipe.model_args if recipe else {}
    lr = args.lr or (recipe.lr.get("sgd") if recipe else None) or DEFAULT_LR["sgd"]
    model0 = create_model("cnn", dataset.input_shape, dataset.num_classes, dataset.mean, dataset.std, model_args)
    model0 = model0.to(memory_format=torch.channels_last)
    loss_fn = make_loss("cross-entropy", 0.1)
    timed(bare_epoch, model0, batches, loss_fn, lr)  # warm-up: first-call costs (imports, allocator)
    timed(engine_epoch, model0, batches, loss_fn, lr)
    rounds = []
    for i in range(args.rounds):
        if i % 2:  # which goes first alternates too, so an order effect (allocator, caches) cancels out
            engine = timed(engine_epoch, model0, batches, loss_fn, lr)
            bare = timed(bare_epoch, model0, batches, loss_fn, lr)
        else:
            bare = timed(bare_epoch, model0, batches, loss_fn, lr)
            engine = timed(engine_epoch, model0, batches, loss_fn, lr)
        n = len(batches.split)
        rounds.append({"round": i + 1, "bare_samples_per_s": n / bare[0], "engine_samples_per_s": n / engine[0],
                       "ratio_wall": bare[0] / engine[0], "ratio_cpu": bare[1] / engine[1]})
    ratios = [r["ratio_wall"] for r in rounds]
    print(f"{'round':>5s} {'bare samples/s':>15s} {'engine samples/s':>17s} {'engine/bare (wall)':>19s} "
          f"{'(cpu)':>7s}")
    for r in rounds:
        print(f"{r['round']:5d} {r['bare_samples_per_s']:15.0f} {r['engine_samples_per_s']:17.0f} "
              f"{r['ratio_wall']:19.3f} {r['ratio_cpu']:7.3f}")
    summary = {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
               "ratio_cpu_median": statistics.median(r["ratio_cpu"] for r in rounds)}
    print(f"engine / bare throughput: median {summary['ratio_median']:.3f} "
          f"(range {summary['ratio_min']:.3f}-{summary['ratio_max']:.3f}), {args.threads} threads, "
          f"{len(batches.split)} samples, batch {args.batch_size}")
    overhead = step_overhead(args.rounds)
    step_us = statistics.median(1e6 * args.batch_size / r["bare_samples_per_s"] for r in rounds)
    summary.update(overhead)
    summary["ratio_implied_by_overhead"] = step_us / (step_us + overhead["overhead_us_per_step"])
    print(f"engine overhead: {overhead['overhead_us_per_step']:.0f} us per step (tiny model, CPU time); against "
          f"a {step_us / 1000:.1f} ms step of this model that is {summary['ratio_implied_by_overhead']:.3f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": f"python benchmarks/bench_engine.py --threads {args.threads} --rounds {args.rounds} "
                   f"--samples {args.samples} --batch-size {args.batch_size}",
        "model": {"name": "cnn", "args": model_args, "lr": lr}, "summary": summary, "rounds": rounds,
        "environment": environment(args.threads)}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
