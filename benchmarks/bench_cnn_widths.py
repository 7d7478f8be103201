"""How the cnn's ONNX latency depends on its widths: the architecture alone (random weights), exported
as `dlcli export` does and timed with onnxruntime in interleaved rounds at 1 and all threads.

Why: channel pruning chooses widths, and on onnxruntime's CPU kernels latency does not follow MACs
(channels are padded to SIMD blocks; small layers gain little from more threads). This shows what a
pruned shape can gain before any pruning is run. Widths needing no data, it runs without MNIST.

Run:
    python benchmarks/bench_cnn_widths.py [--widths 8,16,32,64 4,8,16,32 ...] [--rounds 15]
Prints a table (latency at batch 32 and ratio to the first widths, per thread count) and writes
benchmarks/results/cnn_widths.json. A measurement, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlcli.export.onnx_export import export_onnx
from dlcli.export.runtime import ort_session
from dlcli.measure.environment import available_cores, environment
from dlcli.measure.runners import alternating_p50, onnx_runner
from dlcli.models import create_model

RESULTS = Path(__file__).parent / "results" / "cnn_widths.json"
SHAPE = [1, 28, 28]
DEFAULT_WIDTHS = ["8,16,32,64", "4,8,16,32", "8,8,16,32", "4,8,16,64", "6,11,22,45", "4,12,24,44", "2,4,8,16"]
BATCH = 32


def onnx_bytes(widths: list[int]) -> bytes:
    model = create_model("cnn", SHAPE, 10, [0.1307], [0.3081], {"channels": widths})
    return export_onnx(model, SHAPE).proto.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", default=DEFAULT_WIDTHS, help="comma lists; the first is the base")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iters", type=int, default=100, help="timed calls per model and round")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = {w: onnx_bytes([int(c) for c in w.split(",")]) for w in args.widths}
    rows = []
    for threads in sorted({1, available_cores()}):
        runners = {w: onnx_runner(ort_session(data, threads)) for w, data in models.items()}
        p50 = alternating_p50(runners, SHAPE, [BATCH], args.rounds, iters=args.iters)
        base = p50[f"latency_ms_b{BATCH}{args.widths[0]}"]
        for w in args.widths:
            ms = p50[f"latency_ms_b{BATCH}{w}"]
            rows.append({"widths": w, "threads": threads, "latency_ms_b32": ms, "ratio": ms / base})
    print(f"{'widths':<14} {'threads':>7} {'b32 p50 ms':>10} {'ratio':>6}")
    for row in rows:
        print(f"{row['widths']:<14} {row['threads']:>7} {row['latency_ms_b32']:>10.3f} {row['ratio']:>5.2f}x")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"rounds": args.rounds, "iters": args.iters, "batch_size": BATCH,
                                        "rows": rows, "environment": environment()}, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
