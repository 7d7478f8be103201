"""Issue "prune": the two targets, measured through the real command.

- default cnn on MNIST, `--method channel --amount 0.5` with one recovery epoch: test accuracy within
  0.5 pp of the unpruned model, and ONNX latency at batch 32 (fp32, onnxruntime) <= 0.6x the unpruned one;
- `--method global-unstructured --amount 0.9` with one recovery epoch: accuracy within 0.5 pp.

Run (real MNIST needed):
    DLCLI_DATA_DIR=/work/shared/data python benchmarks/bench_prune.py [--checkpoint runs/train/expN/best.pt]
        [--threads 1] [-- extra dlcli prune flags, e.g. --finetune-epochs 2]
Without --checkpoint it first trains the unpruned model (`dlcli train --data mnist`, defaults). Latency
uses onnxruntime with all available cores unless --threads is given (then the results file is
prune_<N>thread.json). Prints a table and writes benchmarks/results/prune.json. A measurement, not a
test: nothing asserts.

Threads matter for this model: its pruned convolutions are so small that splitting them across
threads costs about what it saves, while the unpruned ones still gain, so the batch-32 ratio measured
with several threads is worse than with one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "prune.json"
MAX_DROP_PP = 0.5
MAX_LATENCY_RATIO = 0.6
CASES = [
    ("channel", "0.5", ["--finetune-epochs", "1"]),
    ("global-unstructured", "0.9", ["--finetune-epochs", "1"]),
]


def dlcli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "dlcli", *args, "--json", "-q"], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"dlcli {' '.join(args)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def evaluate_targets(method: str, m: dict[str, Any]) -> dict[str, Any]:
    drop_pp = (m["accuracy_before"] - m["accuracy"]) * 100
    verdict: dict[str, Any] = {"accuracy_drop_pp": drop_pp, "accuracy_ok": drop_pp <= MAX_DROP_PP}
    if method == "channel":
        ratio = m["latency_ms_b32"] / m["latency_ms_b32_before"]
        verdict.update({"latency_ratio_b32": ratio, "latency_ok": ratio <= MAX_LATENCY_RATIO,
                        "latency_ratio_b1": m["latency_ms_b1"] / m["latency_ms_b1_before"]})
    return verdict


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'method':<20} {'amount':>6} {'params':>15} {'MACs':>7} {'acc before':>10} {'pruned':>7} "
            f"{'recovered':>9} {'drop pp':>7} {'b32 ms (ratio)':>22} {'b1 ms (ratio)':>22}  targets")
    print(head)
    for row in rows:
        m, v = row["metrics"], row["targets"]
        lat32 = lat1 = "-"
        if "latency_ms_b32" in m:
            lat32 = f"{m['latency_ms_b32_before']:.3f}->{m['latency_ms_b32']:.3f} ({v['latency_ratio_b32']:.2f}x)"
            lat1 = f"{m['latency_ms_b1_before']:.3f}->{m['latency_ms_b1']:.3f} ({v['latency_ratio_b1']:.2f}x)"
        ok = all(val for key, val in v.items() if key.endswith("_ok"))
        print(f"{row['method']:<20} {row['amount']:>6} {m['params']:>7,} ({m['params_ratio']:.2f}x) "
              f"{m['macs'] / m['macs_before']:>6.2f}x {m['accuracy_before']:>10.2%} {m['accuracy_pruned']:>7.2%} "
              f"{m['accuracy']:>9.2%} {v['accuracy_drop_pp']:>7.2f} {lat32:>22} {lat1:>22}  "
              f"{'met' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="unpruned checkpoint (default: train the default cnn on mnist)")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("extra", nargs="*", help="flags passed to every `dlcli prune` (after --)")
    args = parser.parse_args()
    if not os.environ.get("DLCLI_DATA_DIR"):
        raise SystemExit("set DLCLI_DATA_DIR to a folder holding mnist/")
    from dlcli.export.environment import available_cores, environment

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NO_COLOR": "1", "DLCLI_RUNS_DIR": f"{tmp}/runs"}
        train_cmd = ["train", "--data", "mnist", "--seed", args.seed, "--out", f"{tmp}/train"]
        checkpoint = args.checkpoint or dlcli(train_cmd, env)["artifact"]
        rows = []
        for method, amount, flags in CASES:
            threads = ["--threads", str(args.threads)] if args.threads else []
            cmd = ["prune", checkpoint, "--method", method, "--amount", amount, *flags, "--seed", args.seed,
                   *threads, *args.extra, "--out", f"{tmp}/pruned-{method}.pt"]
            result = dlcli(cmd, env)
            rows.append({"method": method, "amount": float(amount),
                         "command": "dlcli " + " ".join(c for c in cmd[:-2] if c != checkpoint).replace(
                             "prune", "prune CHECKPOINT", 1),
                         "metrics": result["metrics"], "targets": evaluate_targets(method, result["metrics"]),
                         "seconds": result["seconds"]})
    print_table(rows)
    results = RESULTS.with_name(f"prune_{args.threads}thread.json") if args.threads else RESULTS
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({
        "unpruned": {"command": None if args.checkpoint else "dlcli " + " ".join(train_cmd[:-2]),
                     "checkpoint": args.checkpoint},
        "targets": {"max_accuracy_drop_pp": MAX_DROP_PP, "max_latency_ratio_b32": MAX_LATENCY_RATIO},
        "rows": rows, "environment": environment(args.threads or available_cores()),
    }, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
