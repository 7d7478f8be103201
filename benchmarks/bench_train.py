"""Measure the spine's targets: `dlcli train --model cnn --data mnist` (defaults) reaches >= 99.0 %
test accuracy in <= 20 s wall-clock for the whole process with < 1.5 GB peak memory, and
`dlcli --help` answers in < 0.3 s.

Run (real MNIST needed):  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_train.py [--repeats 3]
Prints a table and writes benchmarks/results/train.json. A measurement, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "train.json"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def child_peak_rss_mb() -> float:
    """Peak RSS of the largest child process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_help(env: dict[str, str], repeats: int = 7) -> float:
    times = [timed([sys.executable, "-m", "dlcli", "--help"], env)[0] for _ in range(repeats)]
    return statistics.median(times)


def bench_train(env: dict[str, str], repeats: int, extra: list[str]) -> list[dict]:
    runs = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "dlcli", "train", "--model", "cnn", "--data", "mnist",
                   "--out", str(Path(tmp) / "run"), "--json", "-q", *extra]
            seconds, proc = timed(cmd, env)
            if proc.returncode != 0:
                raise SystemExit(f"training failed: {proc.stderr.strip()}")
            payload = json.loads(proc.stdout)
            runs.append({
                "run": i + 1, "wall_seconds": round(seconds, 2),
                "train_seconds": payload["metrics"]["train_seconds"],
                "test_accuracy": payload["metrics"]["accuracy"],
                "peak_rss_mb": round(child_peak_rss_mb(), 1),
            })
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="extra flags passed to dlcli train")
    args = parser.parse_args()
    if not os.environ.get("DLCLI_DATA_DIR"):
        raise SystemExit("set DLCLI_DATA_DIR to a folder holding mnist/ (e.g. ../shared/data)")
    env = {**os.environ, "NO_COLOR": "1"}
    help_s = bench_help(env)
    runs = bench_train(env, args.repeats, args.extra)
    print(f"{'run':>3}  {'wall s':>7}  {'train s':>7}  {'test acc':>8}  {'peak MB':>8}")
    for r in runs:
        print(f"{r['run']:>3}  {r['wall_seconds']:>7.2f}  {r['train_seconds']:>7.2f}  "
              f"{r['test_accuracy']:>8.2%}  {r['peak_rss_mb']:>8.0f}")
    print(f"dlcli --help: {help_s * 1000:.0f} ms (median of 7)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "dlcli train --model cnn --data mnist " + " ".join(args.extra),
        "runs": runs, "help_seconds": round(help_s, 3),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
