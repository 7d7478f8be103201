"""Read IDX files (the MNIST-family format), gzip-compressed or raw, with validation.

The md5 of the *decompressed* content is computed while reading, because local copies of these
datasets are often recompressed (Debian does it): their `.gz` bytes differ from the original
download but their content does not, so the content is what we verify. Hashing the bytes we
already hold costs a fraction of the decompression itself.

Format: a 4-byte magic `0x00 0x00 <type> <ndim>`, then `ndim` big-endian uint32 dimensions, then the
values in C order, big-endian.

A `.gz` is read whole and inflated by zlib in few, large calls (MNIST's 47 MB of images in one), not
through `gzip.open`: zlib and hashlib let go of the GIL for the whole of one call, so a read on
another thread (`prefetch`) runs beside the main thread's `import torch` instead of taking turns with
it. gzip.open inflates 8-128 KB per call, and its many GIL hand-offs ate the overlap. `import torch`
and then the four MNIST files: median 1.79 s; the files read on a thread during the import: 1.58 s;
the same thread through gzip.open: 1.80 s (`python benchmarks/bench_startup.py --rounds 10`, fresh
processes, alternating).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np

from dlcli.data.dataset import Split
from dlcli.errors import InputFileError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 << 20
"""Largest single read: big enough that a dataset file is one zlib call (MNIST's train images are 47 MB),
small enough that a header announcing gigabytes does not allocate them before the data is seen."""
_WINDOW_SLACK = 64 << 10
"""Compressed bytes given to zlib beyond a read's size: a read of n bytes rarely needs more than n."""
_MAX_DIMS = 8
# Datasets live in memory; a header announcing more than this is corruption, not data.
_MAX_BYTES = 1 << 31
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path | str, expect_md5: str | None = None) -> np.ndarray:
    """Read one IDX file; when `expect_md5` is given, the decompressed content must match it."""
    array, md5 = read_idx_with_md5(path)
    if expect_md5 is not None and md5 != expect_md5:
        raise InputFileError(
            f"{path} is corrupt: md5 of its content is {md5}, expected {expect_md5}; "
            "delete it and download it again"
        )
    return array


def empty_split(sample_shape: tuple[int, ...]) -> Split:
    """A split with no samples that still carries the image shape and dtype (a test-only load's
    train split, shaped like its test split)."""
    return Split(np.zeros((0, *sample_shape), dtype=np.uint8), np.zeros(0, dtype=np.int64))


def read_labeled_images(
    images: Path, labels: Path, md5s: tuple[str | None, str | None], num_classes: int
) -> Split:
    """An images file (N, H, W) and a labels file (N,) -> a Split with images as (N, 1, H, W)."""
    x = read_idx(images, md5s[0])
    y = read_idx(labels, md5s[1])
    if x.ndim != 3 or x.dtype != np.uint8:
        raise InputFileError(f"{images} does not hold uint8 images (N, H, W): it holds {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8 or len(y) != len(x):
        raise InputFileError(f"{labels} does not hold one uint8 label per image of {images} ({len(x)})")
    if len(y) and int(y.max()) >= num_classes:
        raise InputFileError(f"{labels} has label {int(y.max())}, but the dataset has {num_classes} classes")
    return Split(x[:, None], y.astype(np.int64))


def read_idx_with_md5(path: Path | str) -> tuple[np.ndarray, str]:
    """Read one IDX file and return (array in native byte order, md5 hex of decompressed content).

    A file `prefetch` has read, unchanged since, is taken from there; anything else (a failed or
    changed prefetch too) is read here, so errors are raised in the caller's thread as always."""
    path = Path(path)
    early = _take_prefetched(path)
    return early if early is not None else _read_file(path)


def _read_file(path: Path) -> tuple[np.ndarray, str]:
    try:
        with path.open("rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
            f.seek(0)
            return _read_stream(_Inflated(f.read()) if compressed else f, path)
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as e:
        # zlib.error for damaged streams, EOFError for truncated ones.
        raise InputFileError(f"{path} is not a readable IDX file ({_one_line(e)})") from None


class _Reader(Protocol):
    """An open raw file or an `_Inflated` gzip file: all `_read_stream` needs."""

    def read(self, n: int, /) -> bytes: ...


class _Inflated:
    """A gzip file's bytes (read whole: datasets live in memory anyway), decompressed on demand, each
    read in as few zlib calls as it can (the module docstring says why). Several members read as one
    stream and zero padding after a member is skipped, as gzip.open does; zlib checks each member's
    CRC-32 and length itself (wbits=31)."""

    def __init__(self, compressed: bytes) -> None:
        self._input = memoryview(compressed)
        self._at = 0  # the first input byte zlib has not consumed
        self._inflater = zlib.decompressobj(wbits=31)

    def read(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            if self._inflater.eof:
                self._skip_padding()
                if self._at == len(self._input):
                    break
                self._inflater = zlib.decompressobj(wbits=31)
            # zlib copies what a call leaves unread (unconsumed_tail, unused_data): giving it about as
            # much input as the read can use bounds that copy; the whole rest would be copied on each
            # of the header's small reads.
            window = self._input[self._at:self._at + n + _WINDOW_SLACK]
            chunk = self._inflater.decompress(window, n)  # output grows with the data: no n-byte buffer
            # What zlib left: past the member's end (unused_data) once it ended, where unconsumed_tail
            # may hold the same bytes again; else what the read's limit left (unconsumed_tail).
            rest = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
            used = len(window) - len(rest)
            self._at += used
            if not chunk and not self._inflater.eof and not used:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            parts.append(chunk)
            n -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _skip_padding(self) -> None:
        while self._at < len(self._input):
            block = bytes(self._input[self._at:self._at + 4096])
            data = block.lstrip(b"\0")
            self._at += len(block) - len(data)
            if data:
                return


class _Prefetched:
    """One file being read on the prefetch thread: its identity when the read began, then the result."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = _identity(path)
        self.result: tuple[np.ndarray, str] | None = None
        self.done = threading.Event()


_prefetched: dict[Path, _Prefetched] = {}
_prefetch_lock = threading.Lock()


def prefetch(paths: list[Path]) -> None:
    """Start reading `paths` on a daemon thread; `read_idx_with_md5` then takes each result.

    Why: a training command's first second is `import torch` on one core; the MNIST files take
    0.25 s more to inflate and hash, and here that happens beside the import (the module docstring
    has the measurements). Nothing is raised here or on the thread: a file that fails is read again by
    its caller, who reports it."""
    with _prefetch_lock:
        keys = dict.fromkeys(k for k in map(_key, paths) if k is not None and k not in _prefetched)
        items = [_Prefetched(k) for k in keys]
        for item in items:
            _prefetched[item.path] = item
    if items:
        threading.Thread(target=_read_ahead, args=(items,), name="dlcli-idx-prefetch", daemon=True).start()


def _read_ahead(items: list[_Prefetched]) -> None:
    for item in items:
        try:
            item.result = _read_file(item.path) if item.identity is not None else None
        except Exception:  # the caller's own read raises it, in its thread
            item.result = None
        finally:
            item.done.set()


def _take_prefetched(path: Path) -> tuple[np.ndarray, str] | None:
    """The prefetched read of `path` (waiting for it), if one was started and the file is unchanged."""
    if not _prefetched:
        return None
    key = _key(path)
    with _prefetch_lock:
        item = _prefetched.pop(key, None) if key is not None else None
    if item is None:
        return None
    item.done.wait()
    return item.result if item.identity is not None and item.identity == _identity(path) else None


def _key(path: Path) -> Path | None:
    """The name both sides of a prefetch agree on: the resolved path (None for a symlink loop, which
    the caller's own read reports)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """Which file `path` is: a replaced or rewritten file is read again, not taken from the prefetch.
    (A rewrite at the same size within the file system's timestamp resolution would pass, and the run
    use the content of a moment before: still checked against the dataset's md5.)"""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read_stream(f: _Reader, path: Path) -> tuple[np.ndarray, str]:
    digest = hashlib.md5()
    header = _read_exact(f, 4, path, "header")
    digest.update(header)
    dtype, ndim = _parse_magic(header, path)
    dims_raw = _read_exact(f, 4 * ndim, path, "dimensions")
    digest.update(dims_raw)
    shape = struct.unpack(f">{ndim}I", dims_raw)
    nbytes = math.prod(shape) * dtype.itemsize
    # Zero-size dimensions count as 1 here: numpy refuses (ValueError) a shape like (2**31, 0, 2**31)
    # whose other dimensions overflow, although it holds no values (found by Hypothesis).
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_BYTES:
        raise InputFileError(f"{path} is corrupt: its header announces an implausible shape {shape}")
    payload = _read_payload(f, nbytes, path)
    digest.update(payload)
    if f.read(1):
        raise InputFileError(f"{path} is corrupt: it has data after the {shape} values its header announces")
    # A bytearray keeps the array writable (torch.from_numpy warns on read-only arrays).
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array, digest.hexdigest()


def _parse_magic(header: bytes, path: Path) -> tuple[np.dtype, int]:
    zero, type_code, ndim = header[:2], header[2], header[3]
    if zero != b"\x00\x00" or type_code not in _DTYPES or not 1 <= ndim <= _MAX_DIMS:
        raise InputFileError(f"{path} is not an IDX file (bad magic number {header.hex()})")
    return _DTYPES[type_code], ndim


def _read_exact(f: _Reader, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise InputFileError(f"{path} is truncated (file ends inside the {what})")
    return data


def _read_payload(f: _Reader, nbytes: int, path: Path) -> bytearray:
    """Read exactly `nbytes`, growing the buffer chunk by chunk: memory follows the data actually
    present (give or take one `_CHUNK`), so a 12-byte file whose header announces a gigabyte is refused
    as truncated without a gigabyte being allocated first. Reads may return short counts, so loop."""
    payload = bytearray()
    while len(payload) < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - len(payload)))
        if not chunk:
            raise InputFileError(
                f"{path} is truncated: {len(payload)} of {nbytes} data bytes present; download it again"
            )
        payload += chunk
    return payload


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def write_idx(path: Path, array: np.ndarray, compresslevel: int = 9) -> None:
    """Write `array` as IDX (gzip when `path` ends in .gz, with mtime 0 so output is reproducible)."""
    codes = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: c for c, dt in _DTYPES.items()}
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[big], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=big).tobytes()
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile("", "wb", compresslevel, raw, mtime=0) as f:
            f.write(data)
    else:
        path.write_bytes(data)
