"""CIFAR-10 batches: real-format pickles load, and pickles that would run code are refused."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from dlcli.data.cifar import read_batch, read_cifar10, read_meta, safe_unpickle
from dlcli.errors import InputFileError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes `bytes` and `str` as Python 2 strings, as the real CIFAR batches (cPickle, protocol 2) do."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_string(self, obj: bytes | str) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 2 names its reconstructor numpy._core...; files written with numpy 1 say numpy.core.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar_folder(folder: Path, n: int = 4) -> dict[str, str]:
    """A `cifar-10-batches-py` folder in the real format; returns each file's md5."""
    folder.mkdir(parents=True, exist_ok=True)
    contents = {f"data_batch_{i}": py2_pickle(batch(n, i)) for i in range(1, 6)}
    contents["test_batch"] = py2_pickle(batch(n, 99))
    contents["batches.meta"] = py2_pickle(
        {b"label_names": [s.encode() for s in NAMES], b"num_cases_per_batch": n, b"num_vis": 3072}
    )
    for name, blob in contents.items():
        (folder / name).write_bytes(blob)
    return {name: hashlib.md5(blob).hexdigest() for name, blob in contents.items()}


def test_py2_format_batch_loads_as_nchw_uint8(tmp_path: Path) -> None:
    raw = batch(5, 0)
    (tmp_path / "b").write_bytes(py2_pickle(raw))
    assert b"numpy.core.multiarray" in (tmp_path / "b").read_bytes()
    x, y = read_batch(tmp_path / "b")
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x.reshape(5, -1), raw[b"data"])
    assert y.dtype == np.int64 and list(y) == raw[b"labels"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_batches_resaved_by_python3_load(tmp_path: Path, protocol: int) -> None:
    raw = {"data": np.zeros((2, 3072), np.uint8), "labels": [3, 4]}
    (tmp_path / "b").write_bytes(pickle.dumps(raw, protocol=protocol))
    x, y = read_batch(tmp_path / "b")
    assert x.shape == (2, 3, 32, 32) and list(y) == [3, 4]


def test_folder_loads_with_md5_checks(tmp_path: Path) -> None:
    md5s = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    train, test, classes = read_cifar10(tmp_path / "cifar-10-batches-py", md5s)
    assert (len(train), len(test)) == (20, 4) and classes == NAMES
    md5s["data_batch_3"] = "0" * 32
    with pytest.raises(InputFileError, match="data_batch_3 is corrupt"):
        read_cifar10(tmp_path / "cifar-10-batches-py", md5s)


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"data": RunsCode()}, protocol=2),
        pickle.dumps({"data": RunsCode()}, protocol=5),
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cnumpy\nload\n(S'x.npy'\ntR.",
    ],
)
def test_code_running_pickles_are_refused(tmp_path: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil").write_bytes(payload)
    with pytest.raises(InputFileError, match="refusing to load .*evil") as info:
        safe_unpickle(tmp_path / "evil")
    assert "system" in str(info.value) or "eval" in str(info.value) or "numpy.load" in str(info.value)
    assert not (tmp_path / "pwned").exists()


def test_codecs_encode_only_for_latin1(tmp_path: Path) -> None:
    (tmp_path / "p").write_bytes(b"c_codecs\nencode\n(X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13tR.")
    with pytest.raises(InputFileError, match="refusing"):
        safe_unpickle(tmp_path / "p")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1, 2], "holds a list"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one label per image"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "0..9"),
    ],
)
def test_wrong_structure_is_reported(tmp_path: Path, obj: object, message: str) -> None:
    (tmp_path / "b").write_bytes(py2_pickle(obj))
    with pytest.raises(InputFileError, match=message):
        read_batch(tmp_path / "b")


def test_garbage_and_meta_errors(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"\x80\x02not a pickle at all")
    with pytest.raises(InputFileError, match="not a readable CIFAR batch"):
        read_batch(tmp_path / "junk")
    (tmp_path / "meta").write_bytes(py2_pickle({b"label_names": [b"a"]}))
    with pytest.raises(InputFileError, match="10 names"):
        read_meta(tmp_path / "meta")
