"""What `dlcli quantize` prints on stderr: the fp32-vs-int8 table, the per-layer error table
(--report-layers), and a warning with concrete advice when the int8 model is slower."""

from __future__ import annotations

import platform
import statistics
from typing import Any

import onnx

from dlcli.compress import quantization as q
from dlcli.console import Console
from dlcli.measure.timing import NOISE_BAND

BATCH_SIZES = (1, 32)
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


def slower_batches(m: dict[str, Any]) -> list[int]:
    """Batch sizes at which int8 measured slower than fp32 by more than the noise band."""
    return [b for b in BATCH_SIZES if m.get(f"speedup_b{b}", 1.0) < 1 - NOISE_BAND]


def report(m: dict[str, Any], console: Console) -> None:
    rows = [["size (bytes)", f"{m['size_bytes_fp32']:,}", f"{m['size_bytes']:,}", f"{m['size_ratio']:.0%} of fp32"]]
    if "accuracy" in m:
        rows.append(["test accuracy", f"{m['accuracy_fp32']:.2%}", f"{m['accuracy']:.2%}",
                     f"{-m['accuracy_drop_pp']:+.2f} pp"])
    for b in BATCH_SIZES:
        if f"speedup_b{b}" in m:
            speedup = m[f"speedup_b{b}"]
            change = f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"
            rows.append([f"latency batch {b} (p50 ms)", f"{m[f'latency_ms_b{b}_fp32']:.3f}",
                         f"{m[f'latency_ms_b{b}']:.3f}", change])
    console.table("fp32 vs int8 (onnxruntime, CPU)", ["", "fp32", "int8", "int8"], rows)


def warn_if_slower(
    m: dict[str, Any], plan: dict[str, Any], source_proto: onnx.ModelProto, method: str, console: Console
) -> None:
    """Never ship a slower artifact silently: say so, and what would help on this model and CPU."""
    slower = slower_batches(m)
    if not slower:
        return
    where = ", ".join(f"batch {b} ({m[f'latency_ms_b{b}']:.3f} vs {m[f'latency_ms_b{b}_fp32']:.3f} ms)"
                      for b in slower)
    hints = []
    if not q.has_vnni(plan["cpu"]["isa"]) and q.is_x86(platform.machine()):
        hints.append("this CPU has no VNNI, so int8 dot products are slow: a CPU with avx512_vnni, avx_vnni or "
                     "AMX runs int8 faster")
    if method == "dynamic" and q.has_op(plan["prepared"], "Conv"):
        hints.append("dynamic quantization re-quantizes activations at run time and runs Conv as ConvInteger: "
                     "try --method static")
    widths = q.conv_widths(source_proto)
    if widths and statistics.median(widths) < WIDE_CONV_CHANNELS:
        hints.append(f"the convolutions are narrow ({'/'.join(map(str, widths))} channels): the int8 kernels' "
                     "fixed costs "
                     "(quantize/requantize, NHWC transposes, 8-bit pooling) outweigh the cheaper multiply-adds; "
                     "a wider model (e.g. `dlcli train -a width=3`) quantizes to a faster artifact")
    hints.append(f"if speed matters more than size ({m['size_ratio']:.0%} of fp32), ship the fp32 ONNX instead")
    console.warn(f"the int8 model is SLOWER than fp32 at {where}. What would help: " + "; ".join(hints) + ".")
