"""Where a training step of the default model goes, before and after issue #15's MNIST recipe:
torch.profiler over steady-state steps of the cnn with its plain arguments and with the recipe's, on
MNIST-shaped random input, the same layout (channels-last), loss, optimizer and batch size as `dlcli
train`, grouped by operator and input shape, plus the share of the step spent on the first block (the
only one at the full input resolution).

Random input rather than MNIST: per-operator time does not depend on the pixel values, and the
script then needs no data. CPU time per operator is robust to a busy machine; the step's wall time
is not.

Run:  python benchmarks/profile_step.py [--threads 2] [--batch-size 128] [--steps 20]
Prints the table and writes benchmarks/results/profile_step.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from dlcli.losses import make_loss
from dlcli.models import create_model
from dlcli.optim import make_optimizer, parameter_groups

RESULTS = Path(__file__).parent / "results" / "profile_step.json"


def variants() -> dict[str, dict[str, Any]]:
    """The default cnn before issue #15's recipe (its plain arguments) and after (MNIST's recipe)."""
    from dlcli.data.catalog import DATASETS

    return {"before: cnn defaults": {}, "after: MNIST recipe": DATASETS.get("mnist").recipes["cnn"].model_args}


def step_fn(args: dict[str, Any], batch_size: int) -> Any:
    """One training step of the default recipe, on fixed random input."""
    model = create_model("cnn", (1, 28, 28), 10, (0.1307,), (0.3081,), args).to(memory_format=torch.channels_last)
    optimizer = make_optimizer("sgd", parameter_groups(model.named_parameters(), 5e-4), None)
    loss_fn = make_loss("cross-entropy", label_smoothing=0.1)
    x = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def first_block(shapes: str, resolution: int) -> bool:
    """Whether an operator works at the full (input, after any crop) resolution: the first block."""
    return f"{resolution}, {resolution}]" in shapes


def profile_variant(args: dict[str, Any], batch_size: int, steps: int) -> dict[str, Any]:
    step = step_fn(args, batch_size)
    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = [
        {"op": e.key, "shapes": str(e.input_shapes), "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / steps}
        for e in prof.key_averages(group_by_input_shape=True)
    ]
    rows.sort(key=lambda r: -r["self_cpu_ms_per_step"])
    total = sum(r["self_cpu_ms_per_step"] for r in rows)
    resolution = 28 - 2 * int(args.get("crop", 0))
    first = sum(r["self_cpu_ms_per_step"] for r in rows if first_block(r["shapes"], resolution))
    return {"model_args": args, "self_cpu_ms_per_step": total, "first_block_share": first / total, "top": rows[:30]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {name: profile_variant(model_args, args.batch_size, args.steps)
               for name, model_args in variants().items()}
    for name, r in results.items():
        total = r["self_cpu_ms_per_step"]
        print(f"\n{name} {r['model_args']}")
        print(f"{'operator':34} {'input shapes':60} {'ms/step':>8} {'share':>6}")
        for row in r["top"][:12]:
            print(f"{row['op'][:34]:34} {row['shapes'][:60]:60} {row['self_cpu_ms_per_step']:8.2f} "
                  f"{row['self_cpu_ms_per_step'] / total:6.1%}")
        print(f"self CPU per step {total:.1f} ms (batch {args.batch_size}, {args.threads} threads); "
              f"first block (full resolution) {r['first_block_share']:.0%}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": args.threads, "batch_size": args.batch_size, "steps": args.steps,
                                   "variants": results}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
