"""Read IDX files (the MNIST-family format), gzip-compressed or raw, with validation.

The md5 of the *decompressed* content is computed while reading, because local copies of these
datasets are often recompressed (Debian does it): their `.gz` bytes differ from the original
download but their content does not, so the content is what we verify. Hashing the bytes we
already hold costs a fraction of the decompression itself.

Format: a 4-byte magic `0x00 0x00 <type> <ndim>`, then `ndim` big-endian uint32 dimensions, then the
values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dlcli.data.dataset import Split
from dlcli.errors import InputFileError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
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
    """Read one IDX file and return (array in native byte order, md5 hex of decompressed content)."""
    path = Path(path)
    try:
        with open_maybe_gzip(path) as f:
            return _read_stream(f, path)
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as e:
        # gzip raises BadGzipFile (an OSError) or EOFError on damaged or truncated streams.
        raise InputFileError(f"{path} is not a readable IDX file ({_one_line(e)})") from None


def open_maybe_gzip(path: Path) -> BinaryIO:
    """Open `path` for reading, decompressing when it starts with the gzip magic (whatever its name)."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def _read_stream(f: BinaryIO, path: Path) -> tuple[np.ndarray, str]:
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


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise InputFileError(f"{path} is truncated (file ends inside the {what})")
    return data


def _read_payload(f: BinaryIO, nbytes: int, path: Path) -> bytearray:
    """Read exactly `nbytes`, growing the buffer chunk by chunk: memory follows the data actually
    present, so a 12-byte file whose header announces a gigabyte is refused as truncated without a
    gigabyte being allocated first. gzip's read may return short counts, so loop."""
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
