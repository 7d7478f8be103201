"""Export benchmark: is the fp32 ONNX export of a checkpoint as accurate as the checkpoint, and is
onnxruntime at least as fast as PyTorch eager?

It trains nothing. Produce a checkpoint first (the default cnn on full MNIST, about a minute on 2 cores):

    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -q        # prints runs/train/expN/best.pt

then:

    DLCLI_DATA_DIR=/work/shared/data python benchmarks/bench_export.py runs/train/expN/best.pt [--threads 1]

It exports to a temporary folder (verification included), evaluates both artifacts on the test split,
compares their top-1 predictions on every test image, times batch 1 and 32 with the same harness as
`dlcli benchmark`, prints a table on stderr and writes benchmarks/results/export.json (plus a plot).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from dlcli.checkpoint import load_checkpoint
from dlcli.console import Console
from dlcli.engine import predict
from dlcli.export.runtime import ort_session
from dlcli.runs import atomic_write
from dlcli.workflows import evaluate, evaluate_onnx, export
from dlcli.workflows.benchmark import run as run_benchmark
from dlcli.workflows.benchmark_config import BenchmarkConfig
from dlcli.workflows.export_config import ExportConfig
from dlcli.workflows.preparation import eval_batches, load_data

RESULTS = Path(__file__).parent / "results"


def full_test_agreement(checkpoint: Path, onnx_path: Path, data: str, console: Console) -> dict[str, Any]:
    """Top-1 agreement and max |logit difference| between PyTorch and onnxruntime on the whole test split."""
    dataset = load_data(data, None, console)
    split = evaluate.evaluation_split(dataset, torch.device("cpu"), console)
    torch_logits, _ = predict(load_checkpoint(checkpoint).build_model(), eval_batches(split, False))
    onnx_logits, _ = predict(evaluate_onnx.OnnxModule(ort_session(onnx_path)), eval_batches(split, False))
    return {
        "samples": len(split),
        "top1_agreement": float((torch_logits.argmax(1) == onnx_logits.argmax(1)).float().mean()),
        "max_abs_diff": float((torch_logits - onnx_logits).abs().max()),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(Path(r["artifact"]).suffix, r["batch_size"]): r for r in rows}
    out = {}
    for batch in sorted({r["batch_size"] for r in rows}):
        pt, ox = by[(".pt", batch)], by[(".onnx", batch)]
        out[f"batch_{batch}"] = {
            "pytorch_p50_ms": pt["p50_ms"], "onnxruntime_p50_ms": ox["p50_ms"],
            "speedup_p50": pt["p50_ms"] / ox["p50_ms"],
            "pytorch_throughput": pt["throughput"], "onnxruntime_throughput": ox["throughput"],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", default=None, help="default: the checkpoint's dataset")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--iters", type=int, default=100, help="timed calls per batch size and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds alternating PyTorch and onnxruntime")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS / "export.json")
    args = parser.parse_args(argv)

    console = Console()
    data = args.data or load_checkpoint(args.checkpoint).dataset
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{args.checkpoint.stem}.onnx"
        exported = export.run(ExportConfig(args.checkpoint, onnx_path), console).to_json()
        eval_pt = evaluate.run(evaluate.EvalConfig(args.checkpoint, data, device="cpu"), console).to_json()
        eval_onnx = evaluate_onnx.run(evaluate.EvalConfig(onnx_path, data, device="cpu"), console).to_json()
        agreement = full_test_agreement(args.checkpoint, onnx_path, data, console)
        bench = run_benchmark(BenchmarkConfig(
            [args.checkpoint, onnx_path], [1, 32], threads=args.threads, warmup=args.warmup, iters=args.iters,
            rounds=args.rounds, device="cpu", data=data, plot=args.out.with_suffix(".png"), force=True,
        ), console).to_json()
    speed = summarize(bench["rows"])
    report = {
        "checkpoint": str(args.checkpoint), "data": data, "environment": bench["environment"],
        "method": bench["method"], "export": {**exported["metrics"], "exporter": exported["exporter"],
                                              "size_bytes": exported["size_bytes"]},
        "eval": {"pytorch": eval_pt["metrics"], "onnxruntime": eval_onnx["metrics"]},
        "full_test_parity": agreement, "speed": speed, "rows": bench["rows"],
        "targets": {
            "onnxruntime_batch1_not_slower": speed["batch_1"]["speedup_p50"] >= 1.0,
            "accuracy_identical": eval_pt["metrics"]["accuracy"] == eval_onnx["metrics"]["accuracy"],
            "top1_agreement_at_least_99.9%": agreement["top1_agreement"] >= 0.999,
        },
    }
    console.table("export benchmark", ["measure", "value"], [
        ["accuracy pytorch / onnxruntime",
         f"{eval_pt['metrics']['accuracy']:.4%} / {eval_onnx['metrics']['accuracy']:.4%}"],
        ["top-1 agreement (full test)", f"{agreement['top1_agreement']:.4%} of {agreement['samples']}"],
        ["max |logit diff| (full test)", agreement["max_abs_diff"]],
        *[[f"{k} p50 ms pytorch / ort", f"{v['pytorch_p50_ms']:.4f} / {v['onnxruntime_p50_ms']:.4f}"]
          for k, v in speed.items()],
        *[[f"{k} speedup (pytorch p50 / ort p50)", v["speedup_p50"]] for k, v in speed.items()],
        *[[name, ok] for name, ok in report["targets"].items()],
    ])
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2, default=str) + "\n"))
    console.info(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
