"""Frontier benchmark: does `dlcli frontier` answer "which variant should ship?" in minutes?

Runs the real command (a subprocess, as a user would) with the default variants on a width-3 MNIST cnn,
from an empty output folder, then once more to time the reuse of up-to-date variants. Targets: the
first run finishes in under 5 minutes, and at least one variant is at least 2x faster than the parent
at batch 32 (p50, onnxruntime CPU) within 0.5 pp of its test accuracy. Speedups are ratios measured in
one interleaved timing session, so they hold on a busy machine better than absolute times do; the
wall-clock time does not, so the load and the busiest other processes are recorded beside it.

The checkpoint (trained when missing; 2 epochs, about 5 minutes on 2 idle cores):

    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -a width=3 --out runs/bench_frontier/wide

Run:  DLCLI_DATA_DIR=/work/shared/data python benchmarks/bench_frontier.py [--checkpoint PATH] [--reuse]
      [any `dlcli frontier` option, e.g. --variants int8,channel-50 --threads 1]
--reuse keeps what an earlier run built in runs/bench_frontier/frontier (the time is then not a
from-scratch time, and the 5-minute verdict is left out). Prints the frontier table on stderr and
writes benchmarks/results/frontier.json (--out to change). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import dlcli, require_data_dir

from dlcli.console import Console
from dlcli.runs import atomic_write

RESULTS = Path(__file__).parent / "results" / "frontier.json"
RUNS = Path("runs/bench_frontier")
TARGETS = {"max_seconds": 300.0, "min_speedup_b32": 2.0, "max_drop_pp": 0.5}


def machine_load() -> dict[str, Any]:
    """The load average and the busiest processes (what else was running while we measured)."""
    ps = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    busiest = [" ".join(line.split()[:4])[:120] for line in ps.splitlines()[1:7]]
    return {"load_avg": list(os.getloadavg()), "busiest": busiest}


def timed_frontier(checkpoint: Path, out: Path, extra: list[str]) -> tuple[dict[str, Any], float, float]:
    """The result, the wall-clock seconds and the CPU seconds (user + system) the command used: on a
    busy machine the wall clock says as much about the others as about us, the CPU time does not."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    found = dlcli("frontier", str(checkpoint), "--out", str(out), *extra)
    seconds = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return found, seconds, (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)


def check(found: dict[str, Any], seconds: float, from_scratch: bool) -> dict[str, Any]:
    """`under_5_minutes` is None (not measured) when the run reused what an earlier one built."""
    winners = [r["variant"] for r in found["variants"] if r["variant"] != "fp32"
               and r["speedup_b32"] >= TARGETS["min_speedup_b32"] and r["accuracy_drop_pp"] <= TARGETS["max_drop_pp"]]
    return {"under_5_minutes": seconds < TARGETS["max_seconds"] if from_scratch else None,
            "fast_and_accurate_variants": winners,
            "speed_within_accuracy": bool(winners)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="width-3 cnn (default: train one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--reuse", action="store_true",
                        help="keep what an earlier run built (the first run's time then is not from scratch)")
    args, extra = parser.parse_known_args(argv)  # anything else goes to `dlcli frontier`
    require_data_dir("mnist")
    console = Console()
    checkpoint = args.checkpoint or RUNS / "wide" / "best.pt"
    if not checkpoint.exists():
        console.info("training the width-3 cnn (dlcli train --data mnist -a width=3)")
        dlcli("train", "--data", "mnist", "-a", "width=3", "--out", str(checkpoint.parent), "--force")
    folder = RUNS / "frontier"
    if not args.reuse:
        shutil.rmtree(folder, ignore_errors=True)  # the first run builds everything
    before = machine_load()
    found, seconds, cpu_seconds = timed_frontier(checkpoint, folder, extra)
    after = machine_load()
    rerun, rerun_seconds, _ = timed_frontier(checkpoint, folder, extra)
    steps = json.loads((folder / "manifest.json").read_text())["steps"]
    report = {"command": f"dlcli frontier {checkpoint} --out {folder} {' '.join(extra)}".strip(),
              "from_scratch": not args.reuse, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
              "rerun_seconds": round(rerun_seconds, 1),
              "rerun_reused": [r["variant"] for r in rerun["variants"] if r["reused"]], "targets": TARGETS,
              "result": check(found, seconds, not args.reuse), "load_before": before, "load_after": after,
              "step_seconds": {name: step["seconds"] for name, step in steps.items()}, "frontier": found}
    show(report, console)
    atomic_write(args.out, lambda path: Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n"))
    console.info(f"wrote {args.out}")
    return report


def show(report: dict[str, Any], console: Console) -> None:
    found = report["frontier"]
    env = found["environment"]
    console.table(
        f"dlcli frontier, MNIST test split ({env['cpu']}, {found['threads']} threads; * Pareto-optimal)",
        ["variant", "accuracy", "drop pp", "params", "KB", "b1 p50 / p90 ms", "b32 p50 / p90 ms", "speedup b32",
         "artifact"],
        [[("* " if r["pareto"] else "") + r["variant"], f"{r['accuracy']:.2%}", f"{r['accuracy_drop_pp']:+.2f}",
          f"{r['params']:,}", f"{r['size_bytes'] / 1e3:.0f}", f"{r['p50_ms_b1']:.3f} / {r['p90_ms_b1']:.3f}",
          f"{r['p50_ms_b32']:.3f} / {r['p90_ms_b32']:.3f}", f"{r['speedup_b32']:.2f}x",
          "reused" if r["reused"] else "built"] for r in found["variants"]])
    result = report["result"]
    verdicts = {True: "PASS", False: "FAIL", None: "not measured: --reuse kept earlier builds"}
    verdict = verdicts[result["under_5_minutes"]]
    console.info(f"first run {report['seconds']} s wall clock, {report['cpu_seconds']} s of CPU time (target < "
                 f"{TARGETS['max_seconds']:.0f} s from scratch: {verdict}); re-run {report['rerun_seconds']} s, "
                 f"reusing {', '.join(report['rerun_reused']) or 'nothing'}")
    console.info(f">= {TARGETS['min_speedup_b32']:g}x at batch 32 within {TARGETS['max_drop_pp']} pp: "
                 f"{', '.join(result['fast_and_accurate_variants']) or 'none'} "
                 f"({'PASS' if result['speed_within_accuracy'] else 'FAIL'})")
    console.info(f"load average before {report['load_before']['load_avg']}, after {report['load_after']['load_avg']}")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
