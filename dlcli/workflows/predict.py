"""`dlcli predict`: top-k classes per input for image files, folders of images and CSV rows.

Inputs are read exactly as the model's training data was: images through the folder-dataset reader
(`dlcli.data.folder.decode_image`: grey or RGB by the model's channel count, bilinear resize to its
input size, pixels scaled to [0, 1]); CSV rows through the csv-dataset rules (numeric features in
file order, the label column dropped when present). Normalization is inside the model (checkpoint and
ONNX alike), so nothing else is applied. Results stream: each input is reported as soon as it is done.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlcli.console import Console
from dlcli.errors import InputFileError, UsageError

Model = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PredictConfig:
    model: Path
    """A dlcli checkpoint (.pt) or ONNX file (one that records its input shape and classes)."""
    inputs: tuple[Path, ...]
    """Image files, folders of images (searched recursively) and/or .csv files (one input per row)."""
    top_k: int = 5
    device: str = "auto"
    threads: int | None = None
    """PyTorch's and onnxruntime's CPU threads (see dlcli.threads); None: the free cores."""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UsageError("give at least one input: image files, a folder of images or a .csv file.")
        if self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}.")


@dataclass(frozen=True)
class Loaded:
    call: Model
    """float32 batch (N, *input_shape) -> logits (N, classes)."""
    input_shape: list[int]
    classes: list[str]


def load_model(path: Path, device: str, threads: int | None = None) -> Loaded:
    """The model as a numpy-in, logits-out function; `threads` CPU threads for its runtime (PyTorch
    for a checkpoint, onnxruntime for an ONNX file)."""
    from dlcli.threads import resolve_threads, use_threads

    if path.suffix.lower() == ".onnx":
        from dlcli.export.metadata import read_metadata
        from dlcli.export.runtime import load_onnx, ort_session, predict
        from dlcli.workflows.evaluate_onnx import signature

        proto = load_onnx(path)
        shape, classes = signature(proto, read_metadata(proto))
        if shape is None or classes is None:
            raise InputFileError(f"{path} records no input shape or classes (not exported by dlcli).")
        session = ort_session(path, resolve_threads(threads), device=device)
        return Loaded(lambda x: predict(session, x), list(shape), list(classes))
    import torch

    from dlcli.checkpoint import load_checkpoint
    from dlcli.device import resolve_device

    use_threads(threads)
    ckpt = load_checkpoint(path)
    torch_device = resolve_device(device)
    model = ckpt.build_model().to(torch_device).eval()

    def call(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).to(torch_device)).float().cpu().numpy()

    return Loaded(call, list(ckpt.input_shape), list(ckpt.classes))


def check_inputs(paths: Sequence[Path]) -> None:
    """Every path exists and is a folder, a .csv or an image file: checked before the model loads, so
    a typo fails at once rather than after the first results (file contents are checked as read)."""
    from dlcli.data.folder import IMAGE_SUFFIXES

    for path in paths:
        if not path.exists():
            raise InputFileError(f"{path}: no such file or folder.")
        if path.is_file() and path.suffix.lower() not in {".csv", *IMAGE_SUFFIXES}:
            raise InputFileError(f"{path}: not an image ({' '.join(sorted(IMAGE_SUFFIXES))}) or .csv file.")


def read_inputs(paths: Sequence[Path], input_shape: list[int]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 model input without the batch axis), one at a time, in the order given
    (a folder's images sorted by path)."""
    from dlcli.data.folder import IMAGE_SUFFIXES

    for path in paths:
        if path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise InputFileError(f"{path} holds no images ({' '.join(sorted(IMAGE_SUFFIXES))}).")
            for image in images:
                yield str(image), _image(image, input_shape)
        elif path.suffix.lower() == ".csv":
            yield from _csv_rows(path, input_shape)
        else:
            yield str(path), _image(path, input_shape)


def _image(path: Path, input_shape: list[int]) -> np.ndarray:
    from dlcli.data.folder import decode_image

    if len(input_shape) != 3:
        raise UsageError(f"the model takes {input_shape[0]} features per row, not images; give a .csv file.")
    channels, height, width = input_shape
    pixels = decode_image(path, "L" if channels == 1 else "RGB", (width, height))
    return pixels.astype(np.float32) / np.float32(255.0)


def _csv_rows(path: Path, input_shape: list[int]) -> Iterator[tuple[str, np.ndarray]]:
    """Rows of a CSV with a header: all columns are features, or one more than the model takes and
    the label column (named label/target/class, else the last) is dropped, as training did."""
    from dlcli.data.tabular import label_column

    if len(input_shape) != 1:
        raise UsageError(f"the model takes images of shape {input_shape}; give image files or a folder, not {path}.")
    features = input_shape[0]
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if len(header) not in (features, features + 1):
            raise InputFileError(f"{path} has {len(header)} columns; the model takes {features} features "
                                 f"(plus an optional label column).")
        drop = label_column(header) if len(header) == features + 1 else None
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            cells = [c.strip() for i, c in enumerate(row) if i != drop]
            try:
                values = np.array(cells, dtype=np.float32)
            except ValueError:
                raise InputFileError(f"{path} line {reader.line_num}: features must be numbers, got {cells}") from None
            if values.shape != (features,) or not np.isfinite(values).all():
                raise InputFileError(f"{path} line {reader.line_num}: expected {features} finite numbers.")
            yield f"{path}:{reader.line_num}", values


def top_k(logits: np.ndarray, classes: list[str], k: int) -> list[dict[str, Any]]:
    """The k most probable classes (softmax of the logits), most probable first."""
    shifted = logits - logits.max()
    probabilities = np.exp(shifted) / np.exp(shifted).sum()
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"class": classes[i], "index": int(i), "probability": float(probabilities[i])} for i in order]


@dataclass(frozen=True)
class Prediction:
    """One input's result: `dlcli predict --json` prints one `to_json()` per line (JSON Lines), not one
    object per command, so that results stream while a folder is still being read."""

    input: str
    """The file, or `file.csv:LINE` for a CSV row."""
    predictions: list[dict[str, Any]]
    """The top-k classes, most probable first: {"class", "index", "probability"}."""

    @property
    def top(self) -> str:
        return str(self.predictions[0]["class"])

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "predictions": self.predictions}


def run(cfg: PredictConfig, console: Console) -> Iterator[Prediction]:
    """One result per input, yielded as soon as it is computed (and its line shown on stderr)."""
    check_inputs(cfg.inputs)
    loaded = load_model(cfg.model, cfg.device, cfg.threads)
    k = min(cfg.top_k, len(loaded.classes))
    console.info(f"{cfg.model}: input {loaded.input_shape}, {len(loaded.classes)} classes; top {k} per input")
    for name, x in read_inputs(cfg.inputs, loaded.input_shape):
        predictions = top_k(loaded.call(x[None])[0], loaded.classes, k)
        console.info(f"{name}  " + "  ".join(f"{p['class']} {p['probability']:.1%}" for p in predictions))
        yield Prediction(name, predictions)
