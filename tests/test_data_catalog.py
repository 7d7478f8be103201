"""Named datasets: where files are found (and in what order), verification, status, the embedded sample."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FAST_TRAIN

from dlcli.data import DATASETS, Dataset, dataset_status, load_dataset, locate
from dlcli.data import catalog as catalog_module
from dlcli.data.catalog import DatasetSpec
from dlcli.data.idx import read_idx_with_md5, write_idx
from dlcli.errors import DataNotFoundError, InputFileError, UsageError
from dlcli.registry import Registry


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read the user's cache or data folders, or reach a mirror."""
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("DLCLI_DATA_DIR", "DLCLI_MIRROR"):
        monkeypatch.delenv(var, raising=False)


def write_tiny(folder: Path, n: int = 6, fill: int = 0, gz: bool = True) -> tuple[str, ...]:
    """Four tiny MNIST-named IDX files in `folder`; returns their content md5s."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    labels = (np.arange(n) % 3).astype(np.uint8)
    arrays = [np.full((n, 2, 2), fill, np.uint8), labels, np.full((2, 2, 2), fill, np.uint8), labels[:2]]
    names = [f.name.removesuffix(".gz") + suffix for f in DATASETS.get("mnist").files]
    for name, array in zip(names, arrays, strict=True):
        write_idx(folder / name, array)
    return tuple(read_idx_with_md5(folder / name)[1] for name in names)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DatasetSpec:
    """Registers `tiny`, an MNIST-like dataset whose files the test writes (fill value 0)."""
    md5s = write_tiny(tmp_path / "reference")
    spec = dataclasses.replace(
        DATASETS.get("mnist"), name="tiny", classes=("a", "b", "c"), train_size=6, test_size=2,
        files=tuple(dataclasses.replace(f, md5=m) for f, m in zip(DATASETS.get("mnist").files, md5s, strict=True)),
    )
    registry: Registry[DatasetSpec] = Registry("dataset")
    registry.add("tiny", spec)
    monkeypatch.setattr(catalog_module, "DATASETS", registry)
    return spec


def test_test_only_load_needs_and_reads_only_the_test_files(tiny: DatasetSpec, tmp_path: Path) -> None:
    folder = tmp_path / "root" / "tiny"
    write_tiny(folder)
    train_images = next(folder.glob("train-images*"))
    train_images.write_bytes(b"not read")  # a test-only load never opens it
    ds = load_dataset("tiny", data_dir=tmp_path / "root", download=False, test_only=True)
    assert len(ds.train) == 0 and len(ds.test) == 2
    assert ds.input_shape == [1, 2, 2] and ds.train.x.dtype == np.uint8 and ds.is_image
    with pytest.raises(InputFileError):  # a whole load reads, and checks, the train files
        load_dataset("tiny", data_dir=tmp_path / "root", download=False)
    for train_file in folder.glob("train-*"):
        train_file.unlink()
    assert len(load_dataset("tiny", data_dir=tmp_path / "root", download=False, test_only=True).test) == 2
    with pytest.raises(DataNotFoundError, match="train-images"):
        load_dataset("tiny", data_dir=tmp_path / "root", download=False)


def test_test_only_is_a_whole_load_where_the_test_split_cannot_stand_alone() -> None:
    cifar, mnist = DATASETS.get("cifar10"), DATASETS.get("mnist")
    assert cifar.test_only() is cifar  # one archive holds every split
    assert dataclasses.replace(mnist, mean=(), std=()).test_only().splits == ("train", "test")  # stats need train
    narrowed = mnist.test_only()
    assert narrowed.splits == ("test",) and [f.name for f in narrowed.files] == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_embedded_sample_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCLI_MIRROR", "http://127.0.0.1:9")  # would fail if anything were fetched
    ds = load_dataset("mnist-sample", download=False)
    assert isinstance(ds, Dataset) and ds.num_classes == 10 and ds.classes[0] == "0"
    assert ds.train.x.shape == (4000, 1, 28, 28) and ds.test.x.shape == (1000, 1, 28, 28)
    assert ds.train.x.dtype == np.uint8 and ds.train.y.dtype == np.int64
    assert np.bincount(ds.train.y).tolist() == [400] * 10
    assert np.bincount(ds.test.y).tolist() == [100] * 10
    assert (ds.mean, ds.std) == ([0.1307], [0.3081])
    embedded = catalog_module.EMBEDDED_DIR
    assert sum(p.stat().st_size for p in embedded.iterdir()) < 1_000_000
    assert "CC BY-SA 3.0" in (embedded / "LICENSE.txt").read_text()


def test_registry_entries_are_complete() -> None:
    assert {"mnist", "fashion-mnist", "cifar10", "mnist-sample"} <= set(DATASETS.names())
    for name in DATASETS:
        spec = DATASETS.get(name)
        assert spec.summary and spec.default_epochs > 0 and len(spec.classes) == 10
        assert all(f.md5 and len(f.md5) == 32 for f in spec.files)
        downloads = [spec.archive] if spec.archive else list(spec.files)
        if spec.builtin_dir is None:
            assert all(f.url and f.download_md5 for f in downloads)
    assert DATASETS.get("fashion-mnist").classes[-1] == "Ankle boot"


def test_unknown_name_suggests() -> None:
    with pytest.raises(UsageError, match="Did you mean 'mnist'") as info:
        load_dataset("minst")
    assert "fashion-mnist" in str(info.value)
    assert load_dataset("MNIST-Sample").name == "mnist-sample"  # names are case-insensitive


def test_existing_path_hints_at_prefix(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,label\n1,x\n")
    with pytest.raises(UsageError, match="write csv:"):
        load_dataset(str(tmp_path / "data.csv"))


def test_data_dir_env_root(tiny: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny(tmp_path / "env" / "tiny")
    monkeypatch.setenv("DLCLI_DATA_DIR", str(tmp_path / "env"))
    ds = load_dataset("tiny", download=False)
    assert (len(ds.train), len(ds.test)) == (6, 2) and ds.classes == ["a", "b", "c"]
    assert str(tmp_path / "env" / "tiny") in ds.source


def test_root_precedence(tiny: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data-dir beats $DLCLI_DATA_DIR beats the cache; an incomplete folder is skipped."""
    write_tiny(tmp_path / "cache" / "data" / "tiny")
    write_tiny(tmp_path / "env" / "tiny")
    write_tiny(tmp_path / "arg" / "tiny")
    (tmp_path / "partial" / "tiny").mkdir(parents=True)
    (tmp_path / "partial" / "tiny" / "train-images-idx3-ubyte.gz").write_bytes(b"junk")
    monkeypatch.setenv("DLCLI_DATA_DIR", str(tmp_path / "env"))
    assert str(tmp_path / "arg") in load_dataset("tiny", data_dir=str(tmp_path / "arg")).source
    assert str(tmp_path / "env") in load_dataset("tiny", data_dir=str(tmp_path / "partial")).source
    monkeypatch.delenv("DLCLI_DATA_DIR")
    assert str(tmp_path / "cache") in load_dataset("tiny", download=False).source
    assert locate.data_roots(str(tmp_path / "arg"))[0] == tmp_path / "arg"


def test_system_dir_after_roots(tiny: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny(tmp_path / "usr-share" / "tiny")
    monkeypatch.setitem(locate.SYSTEM_DIRS, "tiny", (tmp_path / "usr-share" / "tiny",))
    assert "usr-share" in load_dataset("tiny", download=False).source
    write_tiny(tmp_path / "cache" / "data" / "tiny")
    assert "cache" in load_dataset("tiny", download=False).source


def test_recompressed_and_uncompressed_files_accepted(tiny: DatasetSpec, tmp_path: Path) -> None:
    folder = tmp_path / "root" / "tiny"
    write_tiny(folder, gz=False)
    assert load_dataset("tiny", data_dir=str(tmp_path / "root"), download=False).train.x.shape == (6, 1, 2, 2)
    raw = (folder / "train-images-idx3-ubyte").read_bytes()
    (folder / "train-images-idx3-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=7))
    assert len(load_dataset("tiny", data_dir=str(tmp_path / "root"), download=False).train) == 6


def test_corrupt_local_file_is_named(tiny: DatasetSpec, tmp_path: Path) -> None:
    write_tiny(tmp_path / "root" / "tiny", fill=9)  # same shapes, different content
    with pytest.raises(InputFileError, match=r"train-images-idx3-ubyte\.gz is corrupt"):
        load_dataset("tiny", data_dir=str(tmp_path / "root"), download=False)


def test_missing_without_download_says_where(tiny: DatasetSpec, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("tiny", data_dir=str(tmp_path / "nowhere"), download=False)
    message = str(info.value)
    assert "downloading is turned off" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "cache" / "data" / "tiny") in message and str(tmp_path / "nowhere") in message


def test_dataset_status(tiny: DatasetSpec, tmp_path: Path) -> None:
    missing = dataset_status("tiny", str(tmp_path / "root"))
    assert missing["present"] is False and missing["path"] is None and missing["size_bytes"] == 0
    write_tiny(tmp_path / "root" / "tiny")
    status = dataset_status("tiny", str(tmp_path / "root"))
    assert status["present"] and status["path"] == str(tmp_path / "root" / "tiny")
    assert status["size_bytes"] > 0 and status["classes"] == 3
    assert (status["train_size"], status["test_size"]) == (6, 2)


def test_real_names_status_without_files() -> None:
    status = dataset_status("mnist-sample")
    assert status["present"] and status["train_size"] == 4000 and status["downloadable"] is False
    # The recipe `dlcli train` applies is listed with what it sets (issue #15).
    recipe = dataset_status("mnist")["recipes"]["cnn"]
    assert recipe["epochs"] == DATASETS.get("mnist").recipes["cnn"].epochs
    assert recipe["lr"]["sgd"] > 0 and recipe["model_args"]["crop"] == 2
    assert dataset_status("fashion-mnist")["recipes"] == {}
    assert dataset_status("cifar10")["present"] is False
    with pytest.raises(UsageError, match="Did you mean"):
        dataset_status("cifar")


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert locate.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DLCLI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert locate.cache_dir() == tmp_path / "xdg" / "dlcli"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert locate.cache_dir() == Path.home() / ".cache" / "dlcli"


def test_listing_datasets_imports_neither_torch_nor_numpy() -> None:
    code = (
        "import dlcli.data as d, sys; d.dataset_status('mnist'); print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"



@pytest.fixture
def idx_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every IDX file read from disk, as (file name, reading thread's name)."""
    import threading

    from dlcli.data import idx

    reads: list[tuple[str, str]] = []
    real = idx._read_file
    monkeypatch.setattr(idx, "_read_file",
                        lambda p: reads.append((p.name, threading.current_thread().name)) or real(p))
    return reads


def test_prefetch_reads_a_local_named_dataset_ahead_and_nothing_else(
    tiny: DatasetSpec, tmp_path: Path, idx_reads: list[tuple[str, str]]
) -> None:
    from dlcli.data import idx

    table = tmp_path / "t.csv"
    table.write_text("a,label\n1,0\n2,1\n")
    for spec in (f"csv:{table}", "no-such-dataset", "tiny", "cifar10"):  # tiny: not on disk yet
        catalog_module.prefetch(spec, tmp_path / "root")
    assert not idx._prefetched
    write_tiny(tmp_path / "root" / "tiny")
    idx_reads.clear()  # write_tiny reads its files back for their md5s
    catalog_module.prefetch(" Tiny ", tmp_path / "root")
    ds = load_dataset("tiny", data_dir=tmp_path / "root", download=False)
    assert len(ds.train) == 6 and len(ds.test) == 2
    assert sorted(name for name, _ in idx_reads) == sorted(f.name for f in tiny.files)
    assert {thread for _, thread in idx_reads} == {"dlcli-idx-prefetch"}


def test_training_commands_read_their_data_on_the_prefetch_thread(
    cli: Any, tmp_path: Path, idx_reads: list[tuple[str, str]]
) -> None:
    """`dlcli train` starts reading its dataset between the config's value and name checks (the names'
    import torch; in this in-process test torch is already loaded), and the load takes each file from
    there, read once; --print-config reads nothing."""
    from dlcli.data import idx

    assert cli("train", *FAST_TRAIN, "--print-config").code == 0
    assert idx_reads == [] and not idx._prefetched
    assert cli("train", *FAST_TRAIN, "--out", tmp_path / "run").code == 0
    sample = DATASETS.get("mnist-sample")
    assert sorted(name for name, _ in idx_reads) == sorted(f.name for f in sample.files)
    assert {thread for _, thread in idx_reads} == {"dlcli-idx-prefetch"}
