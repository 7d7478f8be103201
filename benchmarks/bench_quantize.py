"""Quantize benchmark: does `dlcli quantize` give int8 artifacts that keep their accuracy and are faster?

Three MNIST models, each quantized by the `dlcli quantize` workflow (static, QDQ, per-channel int8
weights, 512 calibration images from the training split); accuracy on the 10,000 test images and
onnxruntime latency at batch 1 and 32, fp32 and int8 timed in alternating rounds. Targets:

- cnn (the default, 8/16/32/64 channels, ~25k parameters): int8 within 0.3 pp of fp32; latency reported.
- wide (cnn -a width=3: 24/48/96/192 channels, ~220k parameters): int8 >= 2x faster than fp32 at
  batch 32, file <= 30 % of fp32's, within 0.3 pp.
- resnet (ResNet-8, 16/32/64 channels, residual adds): within 0.3 pp, not slower at batch 32.
- resnet20 (the default resnet, ResNet-20; only with --resnet20 PATH, it trains for ~17 minutes): the same.

An ablation then times, on the same fp32 ONNX file, what onnxruntime's quantizer gives with its own
defaults and with each of dlcli's choices, to show where the speed comes from.

Checkpoints (trained when missing, about 2, 5 and 6 minutes on 2 cores), with these commands:

    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -q --out runs/bench_quantize/cnn
    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -q -m cnn -a width=3 --out runs/bench_quantize/wide
    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -q -m resnet -a depth=8 --out runs/bench_quantize/resnet
    DLCLI_DATA_DIR=/work/shared/data dlcli train --data mnist -q -m resnet --out runs/bench_quantize/resnet20

Run:  DLCLI_DATA_DIR=/work/shared/data python benchmarks/bench_quantize.py [--cnn P] [--wide P] [--resnet P]
Prints tables on stderr and writes benchmarks/results/quantize.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import dlcli, require_data_dir

from dlcli.compress import int8_rewrites
from dlcli.compress import quantization as q
from dlcli.console import Console
from dlcli.export.runtime import load_onnx, ort_session
from dlcli.measure.environment import available_cores, environment, fingerprint
from dlcli.measure.runners import alternating_p50, onnx_runner
from dlcli.runs import atomic_write
from dlcli.workflows import export
from dlcli.workflows.evaluate import evaluation_split
from dlcli.workflows.evaluate_onnx import onnx_metrics
from dlcli.workflows.export_config import ExportConfig
from dlcli.workflows.preparation import load_data
from dlcli.workflows.quantize import run as quantize
from dlcli.workflows.quantize_config import QuantizeConfig

RESULTS = Path(__file__).parent / "results" / "quantize.json"
RUNS = Path("runs/bench_quantize")
MODELS = {  # name: (train arguments, targets)
    "cnn": ([], {"max_drop_pp": 0.3}),
    "wide": (["-m", "cnn", "-a", "width=3"], {"max_drop_pp": 0.3, "min_speedup_b32": 2.0, "max_size_ratio": 0.30}),
    "resnet": (["-m", "resnet", "-a", "depth=8"], {"max_drop_pp": 0.3, "min_speedup_b32": 1.0}),
    "resnet20": (["-m", "resnet"], {"max_drop_pp": 0.3, "min_speedup_b32": 1.0}),  # only with --resnet20 PATH
}
OPTIONAL = ("resnet20",)


def checkpoint(name: str, given: Path | None, console: Console) -> Path:
    """The given checkpoint, or runs/bench_quantize/<name>/best.pt, trained first if missing."""
    path = given or RUNS / name / "best.pt"
    if path.exists():
        return path
    args = ["train", "--data", "mnist", *MODELS[name][0], "--out", str(path.parent), "--force"]
    console.info(f"training {name}: dlcli {' '.join(args)}")
    return Path(dlcli(*args)["artifact"])


def check(metrics: dict[str, Any], targets: dict[str, float]) -> dict[str, bool]:
    """accuracy: |drop| <= max_drop_pp; speed: batch-32 speedup >= min_speedup_b32; size: int8/fp32 <= max."""
    found = {"accuracy": abs(metrics["accuracy_drop_pp"]) <= targets["max_drop_pp"]}
    if "min_speedup_b32" in targets:
        found["speed"] = metrics["speedup_b32"] >= targets["min_speedup_b32"]
    if "max_size_ratio" in targets:
        found["size"] = metrics["size_ratio"] <= targets["max_size_ratio"]
    return found


ABLATION = {  # name: (rewrites, QuantSpec arguments); every variant is static, minmax, 512 calibration images
    "ort: QDQ u8s8 per-channel": (None, {}),  # onnxruntime's quantize_static after quant_pre_process
    "+ GlobalAveragePool": ("pool", {}),
    "+ fp32 stem, channel padding (dlcli)": ("all", {}),
    "dlcli, per-tensor": ("all", {"per_channel": False}),
    "dlcli, s8s8": ("all", {"activations": "int8"}),
    "dlcli, QOperator": ("all", {"quant_format": "qoperator"}),
}


def ablation(fp32_path: Path, data: str, threads: int, iters: int, rounds: int, console: Console) -> list[dict]:
    """fp32 and each ABLATION variant, timed in alternating rounds, with test accuracy."""
    dataset = load_data(data, None, console)
    calib = q.ArrayCalibrationReader(q.calibration_samples(dataset.train.x, dataset.input_scale(), 512), "input")
    pre = q.preprocess(load_onnx(fp32_path))
    protos = {"fp32": load_onnx(fp32_path)}
    for name, (rewrites, kwargs) in ABLATION.items():
        rewritten = int8_rewrites.rewrite_for_int8(pre, x86_kernels=rewrites == "all") if rewrites else None
        graph, fp32_nodes = (rewritten.proto, rewritten.fp32_nodes) if rewritten else (pre, [])
        protos[name] = q.quantize(graph, q.QuantSpec(exclude_nodes=fp32_nodes, **kwargs), calib)
    sessions = {k: ort_session(p.SerializeToString(), threads) for k, p in protos.items()}
    split = evaluation_split(dataset, torch.device("cpu"), console)
    pool = dataset.test.x[:512].astype("float32") * dataset.input_scale()
    rows = {k: {"variant": k, "accuracy": onnx_metrics(s, split)["accuracy"], "size_bytes": protos[k].ByteSize()}
            for k, s in sessions.items()}
    runners = {k: onnx_runner(s) for k, s in sessions.items()}
    latency = alternating_p50(runners, list(pool.shape[1:]), [1, 32], rounds, iters=iters, pool=pool)
    for k in sessions:
        for batch in (1, 32):
            rows[k][f"latency_ms_b{batch}"] = latency[f"latency_ms_b{batch}{k}"]
    for row in rows.values():
        for batch in (1, 32):
            row[f"speedup_b{batch}"] = rows["fp32"][f"latency_ms_b{batch}"] / row[f"latency_ms_b{batch}"]
    return list(rows.values())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in MODELS:
        default = "skipped" if name in OPTIONAL else "train one"
        parser.add_argument(f"--{name}", type=Path, default=None, help=f"{name} checkpoint (default: {default})")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--iters", type=int, default=100, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating fp32/int8 rounds (p50 over all their calls)")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    require_data_dir("mnist")

    console = Console()
    threads = args.threads or available_cores()
    report: dict[str, Any] = {"environment": fingerprint(environment(threads)), "models": {}, "ablation": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, targets) in MODELS.items():
            if name in OPTIONAL and getattr(args, name) is None:
                continue
            ckpt = checkpoint(name, getattr(args, name), console)
            console.info(f"--- {name}: dlcli quantize {ckpt}")
            result = quantize(QuantizeConfig(model=ckpt, out=Path(tmp) / f"{name}.int8.onnx", threads=threads,
                                             iters=args.iters, rounds=args.rounds), console).to_json()
            m = result["metrics"]
            report["models"][name] = {"checkpoint": str(ckpt), "metrics": m, "quantization": result["quantization"],
                                      "targets": check(m, targets), "target_values": targets}
            if not args.no_ablation:
                exported = export.run(ExportConfig(ckpt, Path(tmp) / f"{name}.onnx"), Console(quiet=True))
                fp32 = Path(exported.artifact)
                report["ablation"][name] = ablation(fp32, result["data"], threads, args.iters, args.rounds, console)
    show(report, console)
    atomic_write(args.out, lambda path: Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n"))
    console.info(f"wrote {args.out}")
    return report


def show(report: dict[str, Any], console: Console) -> None:
    def latency(m: dict[str, Any], b: int) -> str:
        return f"{m[f'latency_ms_b{b}_fp32']:.3f} -> {m[f'latency_ms_b{b}']:.3f} ({m[f'speedup_b{b}']:.2f}x)"

    rows = [[name, f"{e['metrics']['accuracy_fp32']:.2%} -> {e['metrics']['accuracy']:.2%}",
             f"{e['metrics']['size_ratio']:.0%}", latency(e["metrics"], 1), latency(e["metrics"], 32),
             ", ".join(f"{k} {'PASS' if ok else 'FAIL'}" for k, ok in e["targets"].items())]
            for name, e in report["models"].items()]
    env = report["environment"]
    console.table(f"dlcli quantize, MNIST test split ({env['cpu']}, {env['threads']} threads, load "
                  f"{env['load_avg_1m']}, onnxruntime {env['onnxruntime']})",
                  ["model", "accuracy fp32 -> int8", "size", "batch 1 ms (speedup)", "batch 32 ms (speedup)",
                   "targets"], rows)
    columns = ["variant", "accuracy", "KB", "batch 1 ms", "speedup", "batch 32 ms", "speedup"]
    for name, variants in report["ablation"].items():
        console.table(f"ablation: {name}", columns, [
            [v["variant"], f"{v['accuracy']:.2%}", f"{v['size_bytes'] / 1e3:.0f}", f"{v['latency_ms_b1']:.3f}",
             f"{v['speedup_b1']:.2f}x", f"{v['latency_ms_b32']:.3f}", f"{v['speedup_b32']:.2f}x"]
            for v in variants])


if __name__ == "__main__":
    main()
