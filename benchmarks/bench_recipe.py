"""The default recipe's target (issue #15): `dlcli train --data mnist` reaches >= 99.0 % test accuracy in
<= 10 s whole-process wall time on 2 CPU cores, for seeds 0, 1 and 2 (median of the three).

Each seed runs as a fresh process, `python benchmarks/bench_recipe.py --child ...`, which times the
real CLI's phases by wrapping the functions that do them (wall and CPU seconds each) and then runs
`dlcli train` unchanged: `import torch` where the CLI does it, data loading (gzip IDX decoding), the
optimizer set-up, the training loop (validation and per-epoch checkpoints inside it), the test
evaluation, curves.png. Functions it cannot find are left out of the breakdown.

`--skip test curves` replaces those two phases with nothing: an experiment, not the product, which
shows what the rest of a run costs outside the loop (issue #15's other target, at most 2 s there).

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_recipe.py [--seeds 0 1 2] [--skip ...] [-- extra flags]
Prints a table and writes benchmarks/results/recipe.json, with the machine's load before and after:
wall-clock seconds from a busy machine are not the recipe's.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.abc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START = time.perf_counter()  # the child's clock starts at its first line
RESULTS = Path(__file__).parent / "results" / "recipe.json"

# (phase, module, attribute path): wrapped as the module is imported. Validation and checkpoint
# saves happen inside the loop: indented, counted in it too, and counted only there (the test
# evaluation calls the same `evaluate`).
PHASES = [
    ("data", "dlcli.workflows.preparation", "load_data"),
    ("optimizer set-up", "dlcli.workflows.fit", "build_optimizer"),
    ("training loop", "dlcli.engine.loop", "Trainer.fit"),
    ("  validation", "dlcli.engine.loop", "evaluate"),
    ("  checkpoint saves", "dlcli.workflows.run_writer", "RunWriter.epoch_end"),
    ("test evaluation", "dlcli.workflows.fit", "finish_run"),
    ("curves.png (waiting for its helper)", "dlcli.workflows.fit", "draw_curves"),
]
LOOP = "training loop"
SKIPPABLE = {"test": ("test evaluation", {}), "curves": ("curves.png (waiting for its helper)", None)}
"""--skip NAME: the phase left out, and what its function returns instead."""
SKIP_ENV = "BENCH_RECIPE_SKIP"
_active: set[str] = set()


def _wrap(owner: Any, name: str, phase: str, totals: dict[str, list[float]]) -> None:
    original = getattr(owner, name)

    skipped = {SKIPPABLE[k][0]: SKIPPABLE[k][1] for k in os.environ.get(SKIP_ENV, "").split(",") if k}

    def timed(*args: Any, **kwargs: Any) -> Any:
        if phase in skipped:
            return skipped[phase]
        if phase.startswith(" ") and LOOP not in _active:
            return original(*args, **kwargs)
        wall, cpu = time.perf_counter(), time.process_time()
        _active.add(phase)
        try:
            return original(*args, **kwargs)
        finally:
            _active.discard(phase)
            spent = totals.setdefault(phase, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    setattr(owner, name, timed)


def _install(module: Any, totals: dict[str, list[float]]) -> None:
    """Wrap the phases' functions that live in `module`."""
    for phase, module_name, path in PHASES:
        if module_name != module.__name__:
            continue
        owner: Any = module
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is not None and hasattr(owner, name):
            _wrap(owner, name, phase, totals)


class _PhaseHooks(importlib.abc.MetaPathFinder):
    """Wraps each phase's functions as the CLI itself imports their module, and times `import torch`
    where the CLI does it. Importing those modules here first would import torch before the CLI's
    own start-up work (the curves helper) and so time a different program."""

    def __init__(self, totals: dict[str, list[float]]) -> None:
        self.totals = totals
        self.wanted = {"torch"} | {module for _, module, _ in PHASES}

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in self.wanted:
            return None
        self.wanted.discard(name)
        spec = importlib.util.find_spec(name)  # the ordinary finders (this one no longer wants it)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            wall, cpu = time.perf_counter(), time.process_time()
            original(module)
            if name == "torch":
                self.totals["import torch"] = [time.perf_counter() - wall, time.process_time() - cpu]
            else:
                _install(module, self.totals)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def child(argv: list[str], report: Path) -> None:
    """Run `dlcli ARGV` in this process as the executable runs it (`console_main`: its start-up, its
    exit), with its phases timed; the phases are written to `report` as the process exits."""
    totals: dict[str, list[float]] = {}
    sys.meta_path.insert(0, _PhaseHooks(totals))

    def write_report() -> None:
        totals["whole process (from python start)"] = [time.perf_counter() - START, time.process_time()]
        report.write_text(json.dumps({"phases": {k: [round(w, 3), round(c, 3)] for k, (w, c) in totals.items()}}))

    atexit.register(write_report)  # the executable's exit runs atexit callbacks (dlcli.process_exit)
    from dlcli.cli import console_main

    console_main(argv)


def one_run(seed: int, extra: list[str], folder: Path, skip: list[str]) -> dict[str, Any]:
    report = folder / f"phases-{seed}.json"
    cmd = [sys.executable, __file__, "--child", str(report), "--", "train", "--data", "mnist", "--seed", str(seed),
           "--out", str(folder / f"run-{seed}"), "--json", "-q", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", SKIP_ENV: ",".join(skip)})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"training failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    phases = json.loads(report.read_text())["phases"]
    accuracy = result["metrics"].get("accuracy", float("nan"))  # none with --skip test
    return {"seed": seed, "wall_seconds": round(wall, 2), "test_accuracy": accuracy,
            "epochs": result["metrics"].get("epochs"), "train_seconds": result["metrics"].get("train_seconds"),
            "phases_wall_cpu": phases}


def machine_load() -> dict[str, Any]:
    from dlcli.measure.environment import cpu_usage, load_average
    from dlcli.threads import available_cores, other_running

    return {"load_avg_1m": load_average(), "cpu_busy_share": cpu_usage(), "other_running": other_running(),
            "cores": available_cores()}


def print_table(runs: list[dict[str, Any]]) -> None:
    print(f"{'':36s}" + "".join(f"{'seed ' + str(r['seed']):>16s}" for r in runs) + f"{'median':>10s}")
    print(f"{'test accuracy':36s}" + "".join(f"{r['test_accuracy']:16.2%}" for r in runs)
          + f"{statistics.median(r['test_accuracy'] for r in runs):10.2%}")
    print(f"{'whole process, wall s (parent)':36s}" + "".join(f"{r['wall_seconds']:16.2f}" for r in runs)
          + f"{statistics.median(r['wall_seconds'] for r in runs):10.2f}")
    names = list(dict.fromkeys(k for r in runs for k in r["phases_wall_cpu"]))
    for name in names:
        cells = [r["phases_wall_cpu"].get(name) for r in runs]
        text = "".join(f"{c[0]:7.2f} / {c[1]:5.2f} " if c else f"{'-':>16s}" for c in cells)
        print(f"{name + ', wall / cpu s':36s}{text}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[sys.argv.index("--") + 1:], Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--skip", nargs="+", choices=sorted(SKIPPABLE), default=[],
                        help="leave these phases out (an experiment: what the rest costs)")
    parser.add_argument("extra", nargs="*", help="extra dlcli train flags, after --")
    args = parser.parse_args()
    if not os.environ.get("DLCLI_DATA_DIR"):
        raise SystemExit("set DLCLI_DATA_DIR to a folder holding mnist/")
    before = machine_load()
    with tempfile.TemporaryDirectory(prefix="dlcli-recipe-") as tmp:
        runs = [one_run(seed, args.extra, Path(tmp), args.skip) for seed in args.seeds]
    after = machine_load()
    print_table(runs)
    walls = [r["wall_seconds"] for r in runs]
    summary = {"median_wall_seconds": statistics.median(walls), "min_wall_seconds": min(walls),
               "max_wall_seconds": max(walls), "min_accuracy": min(r["test_accuracy"] for r in runs),
               "median_accuracy": statistics.median(r["test_accuracy"] for r in runs)}
    print(f"machine before: {before}\nmachine after:  {after}")
    command = "DLCLI_DATA_DIR=... python benchmarks/bench_recipe.py --seeds " + " ".join(map(str, args.seeds))
    if args.skip:
        command += " --skip " + " ".join(args.skip)
    if args.extra:
        command += " -- " + " ".join(args.extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command, "summary": summary, "runs": runs,
                                    "machine_before": before, "machine_after": after}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
