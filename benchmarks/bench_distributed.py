"""Distributed training on one machine: `dlcli train --data mnist` in one process against the same
command with `--nproc-per-node N` (torchrun, gloo, CPU), alternately, seed by seed.

What it measures: test accuracy of both (target: the N-process run within 0.3 pp), whether
`dlcli eval` of the distributed checkpoint reproduces the accuracy the run reported, and whole-process
wall time. On a 2-core machine two processes do not train faster: each gets one core (torchrun sets
OMP_NUM_THREADS=1), gradients are all-reduced every step through gloo over loopback, and every rank
still evaluates the full validation split. The point of the run is that the distributed path is
correct, not fast, here.

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_distributed.py [--seeds 0 1] [--nproc 2]
Prints a table and writes benchmarks/results/distributed.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import dlcli, require_data_dir

RESULTS = Path(__file__).parent / "results" / "distributed.json"


def train(out: Path, seed: int, nproc: int | None) -> dict:
    extra = ["--nproc-per-node", str(nproc)] if nproc else []
    start = time.perf_counter()
    result = dlcli("train", "--data", "mnist", "--seed", str(seed), "--out", str(out), *extra)
    result["wall_seconds"] = round(time.perf_counter() - start, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    require_data_dir("mnist")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DLCLI_RUNS_DIR"] = str(Path(tmp) / "runs")
        for seed in args.seeds:
            single = train(Path(tmp) / f"single-{seed}", seed, None)
            multi = train(Path(tmp) / f"ddp-{seed}", seed, args.nproc)
            evaluated = dlcli("eval", multi["artifact"])
            rows.append({
                "seed": seed,
                "single_accuracy": single["metrics"]["accuracy"],
                "ddp_accuracy": multi["metrics"]["accuracy"],
                "diff_pp": round(100 * (multi["metrics"]["accuracy"] - single["metrics"]["accuracy"]), 2),
                "eval_of_ddp_checkpoint": evaluated["metrics"]["accuracy"],
                "eval_agrees": evaluated["metrics"]["accuracy"] == multi["metrics"]["accuracy"],
                "single_wall_s": single["wall_seconds"],
                "ddp_wall_s": multi["wall_seconds"],
            })
    print(f"{'seed':>4} {'1 proc':>8} {f'{args.nproc} procs':>8} {'diff pp':>8} {'eval':>8} "
          f"{'1 proc s':>9} {f'{args.nproc} procs s':>10}")
    for r in rows:
        print(f"{r['seed']:>4} {r['single_accuracy']:>8.4f} {r['ddp_accuracy']:>8.4f} {r['diff_pp']:>8.2f} "
              f"{r['eval_of_ddp_checkpoint']:>8.4f} {r['single_wall_s']:>9.1f} {r['ddp_wall_s']:>10.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"nproc": args.nproc, "cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
