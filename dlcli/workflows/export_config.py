"""`ExportConfig`, kept free of torch and onnx: `dlcli export`'s options take their help text and
shown default from these field declarations (dlcli.config.option), and `dlcli --help` must not import
either. dlcli.workflows.export's `run` takes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlcli.config import option
from dlcli.errors import UsageError

DEFAULT_ATOL = 1e-4
"""Largest |onnxruntime - PyTorch| logit difference an export may show (also prune's parity check)."""
# Oldest opset the export was tried at: cnn, resnet, mlp and vit pass the ONNX checker at 9 (a cnn
# export also the parity check); opset 5's BatchNormalization lacks what the exporter writes.
MIN_OPSET = 9


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    """The dlcli checkpoint (.pt) to export."""
    out: Path | None = option(None, help="Output file (default: next to the checkpoint, same name, .onnx).")
    opset: int | None = option(
        None, help="ONNX opset (default: the exporter's; below 18 uses the TorchScript exporter).")
    dynamic_batch: bool = option(True, show="dynamic",
                                 help="A dynamic batch axis, or the batch size fixed to 1 (--static-batch).")
    atol: float = option(DEFAULT_ATOL, help="Largest allowed |onnxruntime - PyTorch| logit difference.")
    data_dir: str | None = None
    force: bool = False
    threads: int | None = None
    """See dlcli.threads."""

    def __post_init__(self) -> None:
        if self.atol <= 0:
            raise UsageError(f"--atol must be positive, got {self.atol}.")
        if self.opset is not None and self.opset < MIN_OPSET:
            raise UsageError(f"--opset {self.opset} is older than dlcli exports to (at least {MIN_OPSET}; the "
                             "default is the exporter's own, currently 18 or newer).")

    @property
    def destination(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.checkpoint).with_suffix(".onnx")
