"""Where a training step of the default model goes (issue #15 asks to profile before changing the
recipe): torch.profiler over steady-state steps of the default cnn on MNIST-shaped random input, the
same layout (channels-last), loss, optimizer and batch size as `dlcli train`, grouped by operator and
input shape, plus the share of the step spent on the first block (the only one at full 28x28
resolution).

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
FIRST_BLOCK_CHANNELS = 8  # the default cnn's first block: channels[0] at the input's resolution


def step_fn(batch_size: int) -> Any:
    """One training step of the default recipe, on fixed random input."""
    model = create_model("cnn", (1, 28, 28), 10, (0.1307,), (0.3081,)).to(memory_format=torch.channels_last)
    optimizer = make_optimizer("sgd", parameter_groups(model.named_parameters(), 5e-4), None)
    loss_fn = make_loss("cross-entropy", label_smoothing=0.1)
    x = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def first_block(shapes: str, batch_size: int) -> bool:
    """Whether an operator's input shapes are the full-resolution first block's."""
    return f"[{batch_size}, {FIRST_BLOCK_CHANNELS}, 28, 28]" in shapes or f"[{batch_size}, 1, 28, 28]" in shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    step = step_fn(args.batch_size)
    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    rows = [
        {"op": e.key, "shapes": str(e.input_shapes), "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / args.steps}
        for e in prof.key_averages(group_by_input_shape=True)
    ]
    rows.sort(key=lambda r: -r["self_cpu_ms_per_step"])
    total = sum(r["self_cpu_ms_per_step"] for r in rows)
    first = sum(r["self_cpu_ms_per_step"] for r in rows if first_block(r["shapes"], args.batch_size))
    print(f"{'operator':34} {'input shapes':60} {'ms/step':>8} {'share':>6}")
    for r in rows[:15]:
        print(f"{r['op'][:34]:34} {r['shapes'][:60]:60} {r['self_cpu_ms_per_step']:8.2f} "
              f"{r['self_cpu_ms_per_step'] / total:6.1%}")
    print(f"self CPU per step {total:.1f} ms (batch {args.batch_size}, {args.threads} threads); "
          f"first block (28x28) {first:.1f} ms = {first / total:.0%}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": args.threads, "batch_size": args.batch_size, "steps": args.steps,
                                   "metrics": {"self_cpu_ms_per_step": total, "first_block_share": first / total},
                                   "top": rows[:30]}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
