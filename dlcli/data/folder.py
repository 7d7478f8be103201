"""`folder:PATH` datasets: one sub-folder per class, holding images.

    PATH/cat/001.png  PATH/dog/7.jpg ...                       -> train only (test=None)
    PATH/train/cat/001.png ... PATH/test/cat/002.png ...       -> train and test splits

Every image is converted to one mode (L when all images are grayscale, else RGB) and one size (the
most common one; the others are resized and `Dataset.source` says how many), because a model needs
one input shape. Pillow is imported only here, and only when a folder dataset is used.
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


def read_folder(root: Path, name: str) -> Dataset:
    """Read a class-per-sub-folder image tree (see the module docstring for the layout)."""
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
    arrays = {split: _load(split_entries, mode, size) for split, split_entries in entries.items()}
    resized = sum(e.size != size for e in everything)
    summary = f"folder {root} ({len(everything)} images, {mode} {size[0]}x{size[1]}"
    summary += f", {resized} resized to the most common size)" if resized else ")"
    return Dataset(name, arrays["train"], arrays.get("test"), classes, summary)


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


def _load(entries: list[_Entry], mode: str, size: tuple[int, int]) -> Split:
    """Decode, convert and resize a split into uint8 (N, C, H, W) plus int64 labels."""
    channels = 1 if mode == "L" else 3
    x = np.empty((len(entries), channels, size[1], size[0]), dtype=np.uint8)
    for i, entry in enumerate(entries):
        x[i] = read_image(entry.path, mode, size)
    return Split(x, np.array([e.label for e in entries], dtype=np.int64))


def read_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (C, H, W) in `mode` (L or RGB), bilinearly resized to `size` (width, height)
    when it differs: how every folder-dataset image is read, and so how `dlcli predict` reads one."""
    image = _pillow()
    with _guard(path), image.open(path) as img:
        converted = img.convert(mode)
        if converted.size != size:
            converted = converted.resize(size, image.Resampling.BILINEAR)
        pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)


@contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Turn Pillow's failures on one file (unknown format, truncated data) into a message naming it."""
    try:
        yield
    except (OSError, ValueError, SyntaxError) as e:  # Pillow raises SyntaxError for some broken headers
        raise InputFileError(f"cannot read image {path}: {e}") from None
