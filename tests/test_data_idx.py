"""IDX reading: compressed or raw, content md5 that ignores recompression, and clear errors on damage."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from dlcli.data.idx import read_idx, read_idx_with_md5, read_labeled_images, write_idx
from dlcli.errors import InputFileError

IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def raw_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_raw_and_gzip_with_content_md5(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_idx(path, IMAGES)
    array, md5 = read_idx_with_md5(path)
    np.testing.assert_array_equal(array, IMAGES)
    assert array.flags.writeable
    assert md5 == hashlib.md5(raw_bytes(IMAGES)).hexdigest()


def test_recompressed_file_has_same_content_md5(tmp_path: Path) -> None:
    first, second = tmp_path / "a.gz", tmp_path / "b.gz"
    write_idx(first, IMAGES, compresslevel=9)
    with gzip.GzipFile(second, "wb", compresslevel=1, mtime=123) as f:  # different .gz bytes
        f.write(raw_bytes(IMAGES))
    assert first.read_bytes() != second.read_bytes()
    assert read_idx_with_md5(first)[1] == read_idx_with_md5(second)[1]
    read_idx(second, expect_md5=read_idx_with_md5(first)[1])


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, gzip content
    path.write_bytes(gzip.compress(raw_bytes(np.array([1, 2, 3], dtype=np.uint8))))
    np.testing.assert_array_equal(read_idx(path), [1, 2, 3])


def test_big_endian_types_come_back_native(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.0], [3.25, 1e6]], dtype=np.float32)
    write_idx(tmp_path / "f.gz", values)
    out = read_idx(tmp_path / "f.gz")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_md5_mismatch_names_the_file(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.gz", IMAGES)
    with pytest.raises(InputFileError, match=r"x\.gz is corrupt.*expected 0+"):
        read_idx(tmp_path / "x.gz", expect_md5="0" * 32)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00\x08", "truncated"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x02ab", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x02ab", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated"),
        (raw_bytes(IMAGES)[:-7], "truncated"),
        (raw_bytes(IMAGES) + b"extra", "data after"),
        (b"\x00\x00\x08\x03" + b"\xff" * 12, "implausible"),
    ],
)
def test_damaged_raw_files_raise_input_file_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_garbled_gzip_raise_input_file_error(tmp_path: Path) -> None:
    good = gzip.compress(raw_bytes(IMAGES))
    for name, content in {"cut.gz": good[: len(good) // 2], "garbled.gz": good[:12] + b"\x00" * 40}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputFileError, match=name):
            read_idx(tmp_path / name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_idx(tmp_path / "absent.gz")


def test_labeled_images_checks_pairing(tmp_path: Path) -> None:
    write_idx(tmp_path / "img", IMAGES)
    write_idx(tmp_path / "lab", np.array([0, 1, 2], dtype=np.uint8))
    split = read_labeled_images(tmp_path / "img", tmp_path / "lab", (None, None), 10)
    assert split.x.shape == (3, 1, 4, 5) and split.y.dtype == np.int64
    write_idx(tmp_path / "short", np.array([0, 1], dtype=np.uint8))
    with pytest.raises(InputFileError, match="one uint8 label per image"):
        read_labeled_images(tmp_path / "img", tmp_path / "short", (None, None), 10)
    with pytest.raises(InputFileError, match="has label 2"):
        read_labeled_images(tmp_path / "img", tmp_path / "lab", (None, None), 2)


def test_gzip_members_padding_and_checks_read_as_gzip_open_does(tmp_path: Path) -> None:
    """The one-call inflater (dlcli.data.idx._Inflated) takes and refuses what gzip.open does."""
    data = raw_bytes(IMAGES)
    good = gzip.compress(data)
    bad_crc = good[:-8] + bytes([good[-8] ^ 1]) + good[-7:]
    bad_length = good[:-4] + bytes([good[-4] ^ 1]) + good[-3:]
    readable = {"members.gz": gzip.compress(data[:7]) + b"\0" * 3 + gzip.compress(b"") + gzip.compress(data[7:]),
                "padded.gz": good + b"\0" * 8}
    damaged = {"crc.gz": bad_crc, "length.gz": bad_length, "no-trailer.gz": good[:-8], "junk-after.gz": good + b"junk",
               "padding-then-junk.gz": good + b"\0\0junk"}
    for name, content in {**readable, **damaged}.items():
        (tmp_path / name).write_bytes(content)
    for name in readable:
        with gzip.open(tmp_path / name) as f:
            assert f.read() == data
        np.testing.assert_array_equal(read_idx(tmp_path / name), IMAGES)
    for name in damaged:
        with pytest.raises((OSError, EOFError)), gzip.open(tmp_path / name) as f:
            f.read()
        with pytest.raises(InputFileError, match=name) as ours:
            read_idx(tmp_path / name)
        assert "\n" not in str(ours.value)


def test_incompressible_files_larger_than_a_window_read_whole(tmp_path: Path) -> None:
    """Random bytes compress to more than a read asks for: the inflater takes its input in windows."""
    values = np.random.default_rng(0).integers(0, 256, (600, 20, 20), dtype=np.uint8)  # 240 kB
    write_idx(tmp_path / "random.gz", values, compresslevel=1)
    np.testing.assert_array_equal(read_idx(tmp_path / "random.gz"), values)


def test_prefetched_file_is_read_once_and_a_changed_one_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcli.data import idx

    reads: list[Path] = []
    real = idx._read_file
    monkeypatch.setattr(idx, "_read_file", lambda p: reads.append(p) or real(p))
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    write_idx(a, IMAGES)
    write_idx(b, IMAGES)
    idx.prefetch([a, b, a])
    for item in list(idx._prefetched.values()):
        item.done.wait()
    assert reads == [a, b]  # on the thread, in the order asked, each once
    array, md5 = read_idx_with_md5(a)
    np.testing.assert_array_equal(array, IMAGES)
    assert array.flags.writeable and md5 == hashlib.md5(raw_bytes(IMAGES)).hexdigest()
    assert reads == [a, b]  # taken from the prefetch
    write_idx(b, IMAGES[:1])  # rewritten after the prefetch read it
    assert read_idx(b).shape == (1, 4, 5)
    assert reads == [a, b, b]
    assert not idx._prefetched  # each result is handed out once


def test_prefetch_errors_are_raised_by_the_callers_read(tmp_path: Path) -> None:
    from dlcli.data import idx

    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x12\x34\x08\x01"))
    idx.prefetch([bad, tmp_path / "absent.gz"])
    with pytest.raises(InputFileError, match="bad magic"):
        read_idx(bad)
    with pytest.raises(InputFileError, match="no such file"):
        read_idx(tmp_path / "absent.gz")
    assert not idx._prefetched
