"""Issue "finetune and distill": the point of transfer, measured.

A cnn trained on MNIST is finetuned on Fashion-MNIST with a small labelled budget and compared with
the same architecture trained from scratch on the same budget (same seed, epochs, optimizer).

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_transfer.py [--budgets 500,2000] [--epochs 10]
Prints a table and writes benchmarks/results/transfer.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import dlcli, require_data_dir

RESULTS = Path(__file__).parent / "results" / "transfer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="500,2000", help="labelled Fashion-MNIST samples, comma list")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    require_data_dir("mnist", "fashion-mnist")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        parent = dlcli("train", "--data", "mnist", "--out", f"{tmp}/mnist", "--seed", str(args.seed))
        print(f"MNIST parent: test accuracy {parent['metrics']['accuracy']:.2%}", file=sys.stderr)
        for budget in (int(b) for b in args.budgets.split(",")):
            common = ["--data", "fashion-mnist", "--train-samples", str(budget), "--epochs", str(args.epochs),
                      "--seed", str(args.seed)]
            scratch = dlcli("train", *common, "--out", f"{tmp}/scratch{budget}")
            tuned = dlcli("finetune", parent["artifact"], *common, "--out", f"{tmp}/ft{budget}")
            rows.append({"budget": budget, "scratch_accuracy": scratch["metrics"]["accuracy"],
                         "finetune_accuracy": tuned["metrics"]["accuracy"]})
    print(f"{'labels':>7}  {'scratch':>8}  {'finetune':>8}  {'gain pp':>7}")
    for r in rows:
        gain = (r["finetune_accuracy"] - r["scratch_accuracy"]) * 100
        print(f"{r['budget']:>7}  {r['scratch_accuracy']:>8.2%}  {r['finetune_accuracy']:>8.2%}  {gain:>+7.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "parent": {"command": f"dlcli train --data mnist --seed {args.seed}",
                   "accuracy": parent["metrics"]["accuracy"]},
        "epochs": args.epochs, "rows": rows,
        "commands": ["dlcli train --data fashion-mnist --train-samples N --epochs E",
                     "dlcli finetune MNIST.pt --data fashion-mnist --train-samples N --epochs E"],
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
