"""Issue "prune": the two targets, measured through the real commands.

- default cnn on MNIST, `--method channel --amount 0.5` with one recovery epoch: test accuracy within
  0.5 pp of the unpruned model, and ONNX latency at batch 32 (fp32, onnxruntime) <= 0.6x the unpruned one;
- `--method global-unstructured --amount 0.9` with one recovery epoch: accuracy within 0.5 pp.

Run (real MNIST needed):
    DLCLI_DATA_DIR=../shared/data python benchmarks/bench_prune.py [--checkpoint CKPT | --epochs N --width W]
        [--threads 1,2] [--processes 5] [--results benchmarks/results/prune.json] [-- extra dlcli prune flags]
Without --checkpoint it first trains the unpruned model (`dlcli train --data mnist`, defaults; or
`--epochs N`, and `--width W` for the cnn's width multiplier: `--width 3` is the 220k-parameter cnn
whose compute outweighs onnxruntime's fixed per-operator costs). Prints two tables and writes the
results JSON. A measurement, not a test: nothing asserts.

Latency is measured twice. `dlcli prune` itself times both exported models in alternating rounds
(all cores), as a user sees it. Then, because on a small shared machine one process's figure can be
off by a third (where its memory landed, what else ran on its cores), both exported models are timed
by `dlcli benchmark --rounds 5` (the two models alternate) in --processes fresh processes per thread
count (default: 1 and all cores), and the median ratio is the figure compared with the target; the
range is kept beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import dlcli, require_data_dir

RESULTS = Path(__file__).parent / "results" / "prune.json"
MAX_DROP_PP = 0.5
MAX_LATENCY_RATIO = 0.6
BATCH_SIZES = (32, 1)
ROUNDS = 5  # per process: `dlcli benchmark --rounds`, alternating the two models
CASES = [
    ("channel", "0.5", ["--finetune-epochs", "1"]),
    ("global-unstructured", "0.9", ["--finetune-epochs", "1"]),
]


def prune_case(checkpoint: str, method: str, amount: str, flags: list[str], seed: str, extra: list[str],
               out: str, env: dict[str, str]) -> dict[str, Any]:
    cmd = ["prune", checkpoint, "--method", method, "--amount", amount, *flags, "--seed", seed, *extra]
    result = dlcli(*cmd, "--out", out, "--force", env=env)
    m = result["metrics"]
    drop_pp = (m["accuracy_before"] - m["accuracy"]) * 100
    return {"method": method, "amount": float(amount), "artifact": result["artifact"],
            "command": "dlcli " + " ".join(cmd).replace(checkpoint, "CHECKPOINT"),
            "metrics": m, "accuracy_drop_pp": drop_pp, "accuracy_ok": drop_pp <= MAX_DROP_PP,
            "seconds": result["seconds"]}


def repeated_latency(original: str, pruned: str, threads: int, processes: int, env: dict[str, str],
                     plot: str) -> dict[str, Any]:
    """Both ONNX files timed by `dlcli benchmark` in `processes` fresh processes; per batch size the
    p50 of each and their ratio per process, with medians and the ratio's range."""
    ratios: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    p50s: dict[int, list[tuple[float, float]]] = {b: [] for b in BATCH_SIZES}
    for _ in range(processes):
        result = dlcli("benchmark", original, pruned, "--threads", str(threads), "--rounds", str(ROUNDS),
                       "--batch-size", ",".join(map(str, BATCH_SIZES)), "--plot", plot, env=env)
        by_key = {(Path(r["artifact"]).name, r["batch_size"]): r["p50_ms"] for r in result["rows"]}
        for b in BATCH_SIZES:
            before, after = by_key[(Path(original).name, b)], by_key[(Path(pruned).name, b)]
            p50s[b].append((before, after))
            ratios[b].append(after / before)
    out: dict[str, Any] = {"threads": threads, "processes": processes}
    for b in BATCH_SIZES:
        out[f"b{b}"] = {
            "p50_ms_before": statistics.median(p[0] for p in p50s[b]),
            "p50_ms": statistics.median(p[1] for p in p50s[b]),
            "ratio_median": statistics.median(ratios[b]), "ratio_min": min(ratios[b]), "ratio_max": max(ratios[b]),
            "ratios": ratios[b],
        }
    out["latency_ok"] = out["b32"]["ratio_median"] <= MAX_LATENCY_RATIO
    return out


def print_tables(cases: list[dict[str, Any]], latency: list[dict[str, Any]]) -> None:
    print(f"{'method':<20} {'amount':>6} {'params':>15} {'MACs':>6} {'acc before':>10} {'pruned':>7} "
          f"{'recovered':>9} {'drop pp':>7} {'in-command b32 ratio':>21}  accuracy target")
    for row in cases:
        m = row["metrics"]
        ratio = (f"{m['latency_ms_b32'] / m['latency_ms_b32_before']:.2f}x ({m['latency_threads']} thr)"
                 if "latency_ms_b32" in m else "-")
        print(f"{row['method']:<20} {row['amount']:>6} {m['params']:>7,} ({m['params_ratio']:.2f}x) "
              f"{m['macs'] / m['macs_before']:>5.2f}x {m['accuracy_before']:>10.2%} {m['accuracy_pruned']:>7.2%} "
              f"{m['accuracy']:>9.2%} {row['accuracy_drop_pp']:>7.2f} {ratio:>21}  "
              f"{'met' if row['accuracy_ok'] else 'MISSED'}")
    print()
    print(f"channel 0.5, ONNX p50 across fresh processes: {'threads':>7} {'batch':>5} {'unpruned ms':>11} "
          f"{'pruned ms':>9} {'median ratio':>12} {'range':>11}")
    for entry in latency:
        for b in BATCH_SIZES:
            e = entry[f"b{b}"]
            verdict = ("  target " + ("met" if entry["latency_ok"] else "MISSED")) if b == 32 else ""
            print(f"{'':<46}{entry['threads']:>7} {b:>5} {e['p50_ms_before']:>11.3f} {e['p50_ms']:>9.3f} "
                  f"{e['ratio_median']:>11.2f}x {e['ratio_min']:.2f}-{e['ratio_max']:.2f}x{verdict}")


def machine() -> dict[str, Any]:
    """The environment minus its thread count: every latency entry records its own."""
    from dlcli.measure.environment import environment

    return {k: v for k, v in environment().items() if k != "threads"}


def thread_counts(text: str | None) -> list[int]:
    from dlcli.measure.environment import available_cores

    if text:
        return [int(t) for t in text.split(",")]
    return sorted({1, available_cores()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="unpruned checkpoint (default: train the default cnn on mnist)")
    parser.add_argument("--epochs", help="epochs for the unpruned model it trains (default: the dataset's)")
    parser.add_argument("--width", help="cnn width multiplier of the unpruned model it trains (default: 1)")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--threads", help="comma list of onnxruntime thread counts (default: 1 and all cores)")
    parser.add_argument("--processes", type=int, default=5, help="fresh benchmark processes per thread count")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"results JSON (default: {RESULTS})")
    parser.add_argument("extra", nargs="*", help="flags passed to every `dlcli prune` (after --)")
    args = parser.parse_args()
    require_data_dir("mnist")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DLCLI_RUNS_DIR": f"{tmp}/runs"}
        epochs = ["--epochs", args.epochs] if args.epochs else []
        width = ["--model-arg", f"width={args.width}"] if args.width else []
        train_cmd = ["train", "--data", "mnist", "--seed", args.seed, *epochs, *width]
        checkpoint = args.checkpoint or dlcli(*train_cmd, "--out", f"{tmp}/train", env=env)["artifact"]
        cases = [prune_case(checkpoint, method, amount, flags, args.seed, args.extra, f"{tmp}/{method}.pt", env)
                 for method, amount, flags in CASES]
        onnx = {}
        for name, path in (("unpruned", checkpoint), ("pruned", cases[0]["artifact"])):
            onnx[name] = dlcli("export", path, "--out", f"{tmp}/{name}.onnx", "--force", env=env)["artifact"]
        latency = [repeated_latency(onnx["unpruned"], onnx["pruned"], n, args.processes, env, f"{tmp}/b.png")
                   for n in thread_counts(args.threads)]
    print_tables(cases, latency)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "unpruned": {"command": None if args.checkpoint else "dlcli " + " ".join(train_cmd),
                     "checkpoint": args.checkpoint},
        "targets": {"max_accuracy_drop_pp": MAX_DROP_PP, "max_latency_ratio_b32": MAX_LATENCY_RATIO},
        "cases": cases, "channel_latency_across_processes": latency, "environment": machine(),
    }, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
