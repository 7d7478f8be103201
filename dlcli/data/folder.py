"""`folder:PATH` datasets: one sub-folder per class, holding images.

    PATH/cat/001.png  PATH/dog/7.jpg ...                       -> train only (test=None)
    PATH/train/cat/001.png ... PATH/test/cat/002.png ...       -> train and test splits

Every image is converted to one mode (L when all images are grayscale, else RGB) and one size (the
most common one; the others are resized and `Dataset.source` says how many), because a model needs
one input shape. Pillow is imported only here, and only when a folder dataset is used.

Building the index reads only image headers (Pillow opens files lazily). A folder whose decoded
pixels would exceed `STREAM_THRESHOLD_BYTES` (or any folder with `stream=True`) is not decoded here:
its splits hold `LazyImages`, which decode on indexing, and training streams them from disk
(`dlcli.data.streaming`); smaller folders are decoded into memory, the fast path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from dlcli.data.dataset import Dataset, Split
from dlcli.errors import InputFileError, UsageError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


@dataclass(frozen=True)
class _Entry:
    path: Path
    label: int
    mode: str
    size: tuple[int, int]  # (width, height), as Pillow reports it


STREAM_THRESHOLD_BYTES = 256 * 2**20
"""Folders above this many decoded bytes (images x channels x height x width, uint8) stream by default.
Below it, decoding once takes seconds and every epoch then slices memory; above it, memory grows with
the folder (a photo folder does not fit) while streaming's cost per epoch stays a fraction of training."""


def read_folder(root: Path, name: str, stream: bool | None = None) -> Dataset:
    """Read a class-per-sub-folder image tree (see the module docstring for the layout).

    `stream` True keeps the images on disk (`LazyImages`), False decodes them into memory, None
    decides by size (`STREAM_THRESHOLD_BYTES`)."""
    if not root.is_dir():
        raise InputFileError(f"folder dataset {root} is not a directory")
    split_roots = {"train": root / "train", "test": root / "test"}
    if not all(p.is_dir() for p in split_roots.values()):
        split_roots = {"train": root}
    classes = _class_names(split_roots["train"])
    # Every class must have training images; a test split may lack some classes.
    entries = {split: _scan(folder, classes, split == "train") for split, folder in split_roots.items()}
    everything = [e for split in entries.values() for e in split]
    mode = "L" if all(e.mode in _GRAY_MODES for e in everything) else "RGB"
    size = Counter(e.size for e in everything).most_common(1)[0][0]
    lazy = {s: LazyImages(np.array([str(e.path) for e in es]), mode, size) for s, es in entries.items()}
    if stream is None:
        stream = sum(x.nbytes for x in lazy.values()) > STREAM_THRESHOLD_BYTES
    labels = {s: np.array([e.label for e in es], dtype=np.int64) for s, es in entries.items()}
    splits = {s: Split(x if stream else x[:], labels[s]) for s, x in lazy.items()}
    resized = sum(e.size != size for e in everything)
    summary = f"folder {root} ({len(everything)} images, {mode} {size[0]}x{size[1]}"
    summary += f", {resized} resized to the most common size" if resized else ""
    summary += ", streamed from disk)" if stream else ")"
    return Dataset(name, splits["train"], splits.get("test"), classes, summary)


class LazyImages:
    """Image files that look like a uint8 (N, C, H, W) array and decode on indexing.

    `x[i]`, `x[a:b]` and `x[index_array]` return numpy arrays of just those images, so code written
    for in-memory splits (`Dataset.model_inputs`, quantization's calibration sample) reads only the
    samples it needs; `take` narrows to a subset without decoding anything. Paths are a numpy string
    array rather than a list of str: forked DataLoader workers then share it without the copy-on-write
    growth that touching Python objects' reference counts causes.
    """

    lazy = True
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, paths: np.ndarray, mode: str, size: tuple[int, int]) -> None:
        self.paths, self.mode, self.size = paths, mode, size
        self.shape = (len(paths), 1 if mode == "L" else 3, size[1], size[0])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def take(self, index: np.ndarray) -> LazyImages:
        return LazyImages(self.paths[np.asarray(index, dtype=np.int64)], self.mode, self.size)

    def decode(self, i: int) -> np.ndarray:
        """Image `i` as uint8 (C, H, W)."""
        return decode_image(Path(self.paths[i]), self.mode, self.size)

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.decode(int(key))
        index = np.arange(len(self))[key]
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        for row, i in enumerate(index):
            out[row] = self.decode(int(i))
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


def _pillow() -> ModuleType:
    """PIL.Image, imported on first use so that other datasets never pay for it."""
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("folder datasets need Pillow: pip install pillow") from None
    return Image


def _class_names(folder: Path) -> list[str]:
    names = sorted(_subfolders(folder))
    if not names:
        raise InputFileError(
            f"folder dataset {folder} has no class sub-folders; expected {folder}/<class>/<image files>"
        )
    return names


def _subfolders(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _scan(folder: Path, classes: list[str], every_class: bool) -> list[_Entry]:
    """List a split's images with their mode and size (Pillow reads only the headers here)."""
    extra = sorted(set(_subfolders(folder)) - set(classes))
    if extra:
        raise InputFileError(f"{folder} has class folders that the train split lacks: {', '.join(extra)}")
    entries = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        files = sorted(p for p in class_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files and every_class:
            suffixes = " ".join(sorted(IMAGE_SUFFIXES))
            raise InputFileError(f"class folder {class_dir} has no images (looked for {suffixes})")
        for path in files:
            with _guard(path), _pillow().open(path) as img:
                entries.append(_Entry(path, label, img.mode, img.size))
    if not entries:
        raise InputFileError(f"{folder} holds no images")
    return entries


def decode_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode, convert and resize one image into uint8 (C, H, W): the one decoder of both the
    in-memory and the streaming path, so both see identical pixels."""
    image = _pillow()
    with _guard(path), image.open(path) as img:
        converted = img.convert(mode)
        if converted.size != size:
            converted = converted.resize(size, image.Resampling.BILINEAR)
        pixels = np.array(converted, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on read-only
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Turn Pillow's failures on one file (unknown format, truncated data) into a message naming it."""
    try:
        yield
    except (OSError, ValueError, SyntaxError) as e:  # Pillow raises SyntaxError for some broken headers
        raise InputFileError(f"cannot read image {path}: {e}") from None
