"""What `dlcli quantize` prints on stderr: the fp32-vs-int8 table, the per-layer error table
(--report-layers), and a warning with concrete advice when the int8 model is slower."""

from __future__ import annotations

import platform
import statistics
from typing import Any

import onnx

from dlcli.compress import quantization as q
from dlcli.console import Console, signed
from dlcli.measure.timing import NOISE_BAND
from dlcli.workflows.quantize_measure import BATCH_SIZES, Comparison
from dlcli.workflows.quantize_plan import Plan

LAYER_REPORT_SAMPLES = 64
LAYER_REPORT_ROWS = 12
WIDE_CONV_CHANNELS = 64  # below this, int8 convolutions rarely beat fp32's NCHWc kernels (measured)


def layer_report(
    prepared: onnx.ModelProto, int8: onnx.ModelProto, reader: q.ArrayCalibrationReader | None, console: Console
) -> list[dict[str, Any]]:
    assert reader is not None
    sample = q.ArrayCalibrationReader(reader.x[:LAYER_REPORT_SAMPLES], reader.input_name)
    rows = q.layer_errors(prepared, int8, sample)
    lossy = [r for r in rows if r["sqnr_db"] is not None]
    console.table(
        f"quantized tensors by error, worst first (SQNR on {len(sample)} calibration samples; lower is worse)",
        ["tensor of", "op", "layer to --exclude", "SQNR dB", "vs fp32 model dB"],
        [[r["node"], r["op_type"], r["layer"], r["sqnr_db"], r["sqnr_vs_fp32_db"]] for r in lossy[:LAYER_REPORT_ROWS]],
    )
    console.info("keep a layer fp32 with --exclude NODE, or every layer of a type with --exclude OP_TYPE")
    return rows


def slower_batches(found: Comparison) -> list[int]:
    """Batch sizes at which int8 measured slower than fp32 by more than the noise band."""
    return [b for b in BATCH_SIZES if (found.speedup(b) or 1.0) < 1 - NOISE_BAND]


def report(found: Comparison, console: Console) -> None:
    fp32, int8 = found.fp32, found.int8
    rows = [["size (bytes)", f"{fp32.size_bytes:,}", f"{int8.size_bytes:,}", f"{found.size_ratio:.0%} of fp32"]]
    if found.accuracy_drop_pp is not None:
        rows.append(["test accuracy", f"{fp32.accuracy:.2%}", f"{int8.accuracy:.2%}",
                     f"{signed(-found.accuracy_drop_pp)} pp"])
    for b, p50 in int8.latency_ms.items():
        speedup = found.speedup(b) or 1.0
        change = f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"
        rows.append([f"latency batch {b} (p50 ms)", f"{fp32.latency_ms[b]:.3f}", f"{p50:.3f}", change])
    console.table("fp32 vs int8 (onnxruntime, CPU)", ["", "fp32", "int8", "int8"], rows)


def warn_if_slower(found: Comparison, plan: Plan, source_proto: onnx.ModelProto, console: Console) -> None:
    """Never ship a slower artifact silently: say so, and what would help on this model and CPU."""
    slower = slower_batches(found)
    if not slower:
        return
    where = ", ".join(f"batch {b} ({found.int8.latency_ms[b]:.3f} vs {found.fp32.latency_ms[b]:.3f} ms)"
                      for b in slower)
    method = plan.spec.method
    hints = []
    if not q.has_vnni(plan.cpu["isa"]) and q.is_x86(platform.machine()):
        hints.append("this CPU has no VNNI, so int8 dot products are slow: a CPU with avx512_vnni, avx_vnni or "
                     "AMX runs int8 faster")
    if method == "dynamic" and q.has_op(plan.prepared, "Conv"):
        hints.append("dynamic quantization re-quantizes activations at run time and runs Conv as ConvInteger: "
                     "try --method static")
    widths = q.conv_widths(source_proto)
    if widths and statistics.median(widths) < WIDE_CONV_CHANNELS:
        hints.append(f"the convolutions are narrow ({'/'.join(map(str, widths))} channels): the int8 kernels' "
                     "fixed costs "
                     "(quantize/requantize, NHWC transposes, 8-bit pooling) outweigh the cheaper multiply-adds; "
                     "a wider model (e.g. `dlcli train -a width=3`) quantizes to a faster artifact")
    hints.append(f"if speed matters more than size ({found.size_ratio:.0%} of fp32), ship the fp32 ONNX instead")
    console.warn(f"the int8 model is SLOWER than fp32 at {where}. What would help: " + "; ".join(hints) + ".")
