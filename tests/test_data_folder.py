"""`folder:PATH` datasets of tiny PNGs: classes from sub-folders, one mode, one size, optional splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcli.data import load_dataset
from dlcli.errors import InputFileError


def save(path: Path, mode: str = "L", size: tuple[int, int] = (6, 4), value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_grayscale_folder_without_splits(tmp_path: Path) -> None:
    for i in range(3):
        save(tmp_path / "cat" / f"{i}.png", value=10 * i)
    save(tmp_path / "dog" / "a.PNG", value=200)
    (tmp_path / "dog" / "notes.txt").write_text("not an image, ignored")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["cat", "dog"] and ds.test is None
    assert ds.train.x.shape == (4, 1, 4, 6) and ds.train.x.dtype == np.uint8
    assert list(ds.train.y) == [0, 0, 0, 1]
    assert ds.train.x[3].min() == 200
    assert ds.name == f"folder:{tmp_path}" and len(ds.mean) == 1


def test_mixed_modes_become_rgb_and_odd_sizes_are_resized(tmp_path: Path) -> None:
    save(tmp_path / "a" / "1.png")
    save(tmp_path / "a" / "2.png")
    save(tmp_path / "b" / "3.png", mode="RGB", size=(12, 8))
    save(tmp_path / "b" / "4.bmp", mode="RGB")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.train.x.shape == (4, 3, 4, 6)
    assert "1 resized" in ds.source and "RGB 6x4" in ds.source
    assert list(ds.train.x[0, :, 0, 0]) == [100, 100, 100]  # gray replicated into three channels


def test_train_and_test_subfolders(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("x", "y"):
            for i in range(n):
                save(tmp_path / split / cls / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["x", "y"]
    assert (len(ds.train), len(ds.test)) == (4, 2)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    save(tmp_path / "a" / "ok.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputFileError, match=r"broken\.png"):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no class sub-folders"),
        ({"a/ok.png": True, "b/readme.txt": False}, "has no images"),
        ({"train/a/1.png": True, "test/zzz/1.png": True}, "train split lacks: zzz"),
    ],
)
def test_layout_errors(tmp_path: Path, layout: dict[str, bool], message: str) -> None:
    for rel, is_image in layout.items():
        if is_image:
            save(tmp_path / rel)
        else:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
    with pytest.raises(InputFileError, match=message):
        load_dataset(f"folder:{tmp_path}")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
