"""`dlcli export`: checkpoint -> verified, self-describing .onnx file.

The file is written to a temporary name next to the destination, checked there (ONNX checker,
shape inference, onnxruntime-vs-PyTorch parity) and only then renamed into place; any failure
deletes it, so a file at the destination is always a verified one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx

from dlcli.checkpoint import Checkpoint, file_sha256, lineage_entry, load_checkpoint
from dlcli.console import Console
from dlcli.data.dataset import Dataset
from dlcli.errors import DlcliError, InputFileError, UsageError, WorkError
from dlcli.export.metadata import export_metadata, parameter_count, write_metadata, written_by
from dlcli.export.onnx_export import export_onnx
from dlcli.export.runtime import ort_session
from dlcli.export.verify import (
    ParityReport,
    check_model_file,
    compare_outputs,
    inputs_needed,
    parity_inputs,
    random_inputs,
    require_parity,
)
from dlcli.runs import atomic_write, check_step_output
from dlcli.threads import use_threads
from dlcli.workflows.export_config import ExportConfig
from dlcli.workflows.result import CommandResult, not_in_json


@dataclass
class ExportResult(CommandResult):
    """`dlcli export --json`: command, artifact (the .onnx file), metrics (max_abs_diff, top1_agreement,
    verified_samples, atol, size_bytes), device, seconds, checkpoint, format, exporter, verification
    (the parity report and what it ran on), params, size_bytes, sha256."""

    command: ClassVar[str] = "export"
    checkpoint: str
    format: str
    exporter: dict[str, Any]
    verification: dict[str, Any]
    """`ParityReport.to_dict()` and inputs: "<dataset> inputs" or "random inputs"."""
    params: int
    size_bytes: int
    sha256: str
    parity: ParityReport = not_in_json()

    @classmethod
    def build(cls, artifact: Path, checkpoint: Path, exporter: dict[str, Any], parity: ParityReport, inputs: str,
              params: int, seconds: float) -> ExportResult:
        """The result of a written, verified export; the headline figures are its parity and size."""
        size = artifact.stat().st_size
        metrics = {"max_abs_diff": parity.max_abs_diff, "top1_agreement": parity.top1_agreement,
                   "verified_samples": parity.samples, "atol": parity.atol, "size_bytes": size}
        return cls(str(artifact), metrics, "cpu", seconds, str(checkpoint), "onnx", exporter,
                   {**parity.to_dict(), "inputs": inputs}, params, size, file_sha256(artifact), parity=parity)


def run(config: ExportConfig, console: Console) -> ExportResult:
    return export_verified(config, console, dataset=None)


def export_verified(config: ExportConfig, console: Console, dataset: Dataset | None) -> ExportResult:
    """`run`, with the verification inputs taken from `dataset` when the caller has it loaded already
    (quantize) instead of a second read of the checkpoint's dataset."""
    start = time.perf_counter()
    threads = use_threads(config.threads)
    checkpoint = Path(config.checkpoint)
    ckpt = load_checkpoint(checkpoint)
    out = _destination(config)
    model = ckpt.build_model()
    console.info(f"exporting {checkpoint} ({ckpt.model_name}, input {ckpt.input_shape}) to ONNX")
    exported = export_onnx(model, ckpt.input_shape, config.opset, config.dynamic_batch)
    if exported.fallback_reason:
        console.warn(f"used the TorchScript exporter instead of dynamo: {exported.fallback_reason}")
    step = lineage_entry("export", checkpoint, format="onnx", exporter=exported.exporter, opset=exported.opset)
    write_metadata(exported.proto, export_metadata(ckpt, step["source_sha256"], exported.info(),
                                                   config.dynamic_batch, step))
    pool, inputs = _verification_pool(ckpt, config.data_dir, config.dynamic_batch, console, dataset)
    reports: list[ParityReport] = []

    def write_and_verify(tmp: str) -> None:
        onnx.save_model(exported.proto, tmp)
        check_model_file(tmp, ckpt.num_classes, label=out)
        pair = parity_inputs(pool, config.dynamic_batch)
        reports.append(compare_outputs(model, _session(tmp, threads), pair, config.atol))
        require_parity(reports[0])

    atomic_write(out, write_and_verify)
    report = reports[0]
    sizes = sorted({r["batch_size"] for r in report.runs})
    console.info(f"verified: max |onnxruntime - pytorch| {report.max_abs_diff:.2g} (atol {config.atol:g}), top-1 "
                 f"agreement {report.top1_agreement:.2%} on {report.samples} {inputs} at batch sizes {sizes}")
    return ExportResult.build(out, checkpoint, exported.info(), report, inputs, parameter_count(exported.proto),
                              time.perf_counter() - start)


def _destination(config: ExportConfig) -> Path:
    out = config.destination
    if out.exists() and out.resolve() == Path(config.checkpoint).resolve():
        raise UsageError(f"--out {out} is the checkpoint itself; give another file name.")
    return check_step_output(out, config.force, "export", written_by)


def _session(path: str, threads: int) -> Any:
    try:
        return ort_session(path, threads, device="cpu")
    except InputFileError as exc:  # our own file: a failed export, not a bad user input
        raise WorkError(f"the exported model does not load in onnxruntime: {exc}") from None


def _verification_pool(
    ckpt: Checkpoint, data_dir: str | None, dynamic_batch: bool, console: Console, dataset: Dataset | None
) -> tuple[np.ndarray, str]:
    """Real inputs from `dataset`, or the checkpoint's dataset when it is available locally (never
    downloaded for this), else seeded random inputs of the recorded shape."""
    count = inputs_needed(dynamic_batch)
    try:
        from dlcli.data.catalog import load_dataset

        dataset = dataset or load_dataset(ckpt.dataset, data_dir=data_dir, download=False, test_only=True)
    except (DlcliError, OSError):
        console.info(f"verifying on seeded random inputs: {ckpt.dataset or 'the dataset'} is not available "
                     "locally (--data-dir or $DLCLI_DATA_DIR to verify on real inputs)")
        return random_inputs(ckpt.input_shape, count), "random inputs"
    if dataset.input_shape != list(ckpt.input_shape) or len(dataset.evaluation) == 0:
        console.info(f"verifying on seeded random inputs: {dataset.name} does not match the model's input")
        return random_inputs(ckpt.input_shape, count), "random inputs"
    return dataset.model_inputs(count), f"{dataset.name} inputs"
