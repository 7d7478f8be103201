"""Read the CIFAR-10 "python version" batches without letting the pickles run code.

The batches (`data_batch_1`..`5`, `test_batch`, `batches.meta`) are Python 2 pickles, and unpickling
can call any importable function. `_BatchUnpickler` therefore resolves only the few globals that
numpy needs to rebuild an array; anything else (`os.system`, `builtins.eval` ...) is refused before
it can run. Dicts, lists, bytes, strings and ints need no globals at all.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlcli.data.dataset import Split
from dlcli.errors import InputFileError

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle asked for a global outside the numpy allow-list."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for `_codecs.encode`, which Python 3 writes for bytes in protocol-2 pickles
    (a CIFAR batch re-saved by Python 3); only the harmless latin-1 form is accepted."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedGlobalError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The array-rebuilding globals, under their numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`)
    module names; resolved here directly so that old names do not import numpy's deprecated shims."""
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array reconstruction globals."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise RefusedGlobalError(f"{module}.{name}") from None


def safe_unpickle(path: Path, expect_md5: str | None = None) -> Any:
    """Unpickle `path` allowing only plain containers and numpy arrays; InputFileError otherwise.

    With `expect_md5`, the file is checked first (hashing the bytes already read costs little)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}") from None
    if expect_md5 is not None and (got := hashlib.md5(data).hexdigest()) != expect_md5:
        raise InputFileError(
            f"{path} is corrupt: its md5 is {got}, expected {expect_md5}; delete it and download it again"
        )
    try:
        # encoding="bytes": Python 2 `str` objects (keys, names, array bytes) load as bytes.
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobalError as e:
        raise InputFileError(
            f"refusing to load {path}: it references {e}, which a CIFAR batch never contains "
            "(the file may be malicious)"
        ) from None
    except Exception as e:  # a damaged pickle fails in many ways; all of them mean bad input
        raise InputFileError(
            f"{path} is not a readable CIFAR batch ({type(e).__name__}: {' '.join(str(e).split())})"  # one line
        ) from None


def read_cifar10(folder: Path, md5s: dict[str, str | None] | None = None) -> tuple[Split, Split, list[str]]:
    """A `cifar-10-batches-py` folder -> (train, test, class names); `md5s` maps file names to checks."""
    md5s = md5s or {}
    splits = []
    for files in (TRAIN_FILES, (TEST_FILE,)):
        parts = [read_batch(folder / name, md5s.get(name)) for name in files]
        splits.append(Split(np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])))
    return splits[0], splits[1], read_meta(folder / META_FILE, md5s.get(META_FILE))


def read_batch(path: Path, expect_md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    batch = _text_keys(safe_unpickle(path, expect_md5), path)
    data, labels = batch.get("data"), batch.get("labels")
    pixels = int(np.prod(IMAGE_SHAPE))
    is_array = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    if not is_array or data.shape[1] != pixels:
        raise InputFileError(f"{path} is not a CIFAR-10 batch: 'data' must be a uint8 array (N, {pixels})")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise InputFileError(f"{path} is not a CIFAR-10 batch: 'labels' must list one label per image")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() > 9)):
        raise InputFileError(f"{path} is not a CIFAR-10 batch: labels must be integers 0..9")
    return np.ascontiguousarray(data.reshape(-1, *IMAGE_SHAPE)), y.astype(np.int64)


def read_meta(path: Path, expect_md5: str | None = None) -> list[str]:
    """`batches.meta` -> the 10 class names in label order."""
    names = _text_keys(safe_unpickle(path, expect_md5), path).get("label_names")
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, bytes | str) for n in names):
        raise InputFileError(f"{path} is not CIFAR-10 metadata: 'label_names' must list 10 names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def _text_keys(obj: Any, path: Path) -> dict[str, Any]:
    """Batches pickled by Python 2 have bytes keys, re-saved ones str keys: accept both."""
    if not isinstance(obj, dict):
        raise InputFileError(f"{path} is not a CIFAR batch: it holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
