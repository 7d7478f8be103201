"""Downloads against a local HTTP server: verify, cache, resume, fail cleanly; archives extracted safely."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dlcli.data import DATASETS, load_dataset
from dlcli.data import catalog as catalog_module
from dlcli.data.catalog import DataFile, DatasetSpec
from dlcli.data.download import download
from dlcli.data.idx import read_idx_with_md5, write_idx
from dlcli.errors import DataNotFoundError, InputFileError, WorkError
from dlcli.registry import Registry


class FileServer(ThreadingHTTPServer):
    """Serves `files` (URL path -> bytes), honouring `Range: bytes=N-` when `ranges` is set."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ranges = True
        self.cut_after: int | None = None  # send only this many body bytes, then hang up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        wanted = self.headers.get("Range")
        self.server.requests.append((self.path, wanted))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted and self.server.ranges else 0
        if start >= len(body) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        end = len(body) if self.server.cut_after is None else start + self.server.cut_after
        self.wfile.write(body[start:end])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("DLCLI_DATA_DIR", "DLCLI_MIRROR"):
        monkeypatch.delenv(var, raising=False)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


BLOB = bytes(range(256)) * 400  # 100 KB, several read chunks


def test_download_verifies_and_renames(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    dest = download(f"{server.url}/f.bin", tmp_path / "sub" / "f.bin", md5(BLOB), progress=True)
    assert dest.read_bytes() == BLOB
    assert not (tmp_path / "sub" / "f.bin.part").exists()


def test_checksum_mismatch_deletes_and_raises(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    with pytest.raises(WorkError, match=f"checksum mismatch.*expected md5 {'0' * 32}, got {md5(BLOB)}"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resumes_partial_file_with_range(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    (tmp_path / "f.bin.part").write_bytes(BLOB[:30000])
    download(f"{server.url}/f.bin", tmp_path / "f.bin", md5(BLOB), progress=False)
    assert server.requests == [("/f.bin", "bytes=30000-")]
    assert (tmp_path / "f.bin").read_bytes() == BLOB


def test_broken_connection_keeps_part_for_resume(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    server.cut_after = 40000
    with pytest.raises(DataNotFoundError, match="interrupted.*run the command again to resume"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", md5(BLOB), progress=False)
    assert (tmp_path / "f.bin.part").stat().st_size == 40000 and not (tmp_path / "f.bin").exists()
    server.cut_after = None
    download(f"{server.url}/f.bin", tmp_path / "f.bin", md5(BLOB), progress=False)
    assert server.requests[-1] == ("/f.bin", "bytes=40000-")
    assert (tmp_path / "f.bin").read_bytes() == BLOB


def test_restarts_when_server_ignores_range(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    server.ranges = False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from another file")
    download(f"{server.url}/f.bin", tmp_path / "f.bin", md5(BLOB), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BLOB


def test_restarts_when_partial_file_is_too_long(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.bin"] = BLOB
    (tmp_path / "f.bin.part").write_bytes(BLOB + b"more")  # server answers 416
    download(f"{server.url}/f.bin", tmp_path / "f.bin", md5(BLOB), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BLOB
    assert [r[1] for r in server.requests] == [f"bytes={len(BLOB) + 4}-", None]


def test_http_error_is_data_not_found(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="HTTP 404") as info:
        download(f"{server.url}/missing.gz", tmp_path / "missing.gz", None, progress=False)
    assert str(tmp_path / "missing.gz") in str(info.value)


def test_offline_is_data_not_found_with_instructions(tmp_path: Path) -> None:
    dest = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    with pytest.raises(DataNotFoundError) as info:
        download(f"http://127.0.0.1:{unused_port()}/x.gz", dest, "0" * 32, progress=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(dest) in message and "offline" in message
    assert "\n" not in message


# --- through load_dataset, with $DLCLI_MIRROR pointing at the local server -------------------------

def tiny_idx_spec(server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DatasetSpec:
    """Register `tiny` (MNIST-named IDX files) and serve its files under /tiny/ on `server`."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 8).astype(np.uint8)
    arrays = [rng.integers(0, 256, (8, 4, 4), dtype=np.uint8), labels, np.zeros((2, 4, 4), np.uint8), labels[:2]]
    files = []
    for template, array in zip(DATASETS.get("mnist").files, arrays, strict=True):
        path = tmp_path / "made" / template.name
        path.parent.mkdir(exist_ok=True)
        write_idx(path, array)
        server.files[f"/tiny/{template.name}"] = path.read_bytes()
        files.append(dataclasses.replace(template, md5=read_idx_with_md5(path)[1],
                                         download_md5=md5(path.read_bytes())))
    spec = dataclasses.replace(DATASETS.get("mnist"), name="tiny", files=tuple(files), mean=(), std=())
    install(monkeypatch, spec)
    monkeypatch.setenv("DLCLI_MIRROR", server.url + "/")
    return spec


def install(monkeypatch: pytest.MonkeyPatch, spec: DatasetSpec) -> None:
    registry: Registry[DatasetSpec] = Registry("dataset")
    registry.add(spec.name, spec)
    monkeypatch.setattr(catalog_module, "DATASETS", registry)


def test_named_download_then_cache_reuse(server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tiny_idx_spec(server, monkeypatch, tmp_path)
    ds = load_dataset("tiny")
    assert (len(ds.train), len(ds.test)) == (8, 2) and ds.train.x.shape == (8, 1, 4, 4)
    assert len(server.requests) == 4 and all(path.startswith("/tiny/") for path, _ in server.requests)
    assert str(tmp_path / "cache" / "data" / "tiny") in ds.source
    again = load_dataset("tiny")
    assert len(server.requests) == 4  # second load: no request at all
    np.testing.assert_array_equal(again.train.x, ds.train.x)


def test_named_download_fetches_only_missing_files(
    server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = tiny_idx_spec(server, monkeypatch, tmp_path)
    cached = tmp_path / "cache" / "data" / "tiny"
    cached.mkdir(parents=True)
    for f in spec.files[:3]:
        (cached / f.name).write_bytes(server.files[f"/tiny/{f.name}"])
    load_dataset("tiny")
    assert [p for p, _ in server.requests] == ["/tiny/t10k-labels-idx1-ubyte.gz"]


def test_test_only_download_fetches_the_test_files_and_a_later_whole_load_the_rest(
    server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = tiny_idx_spec(server, monkeypatch, tmp_path)
    install(monkeypatch, dataclasses.replace(spec, mean=(0.5,), std=(0.25,)))  # known stats: test can stand alone
    ds = load_dataset("tiny", test_only=True)
    assert (len(ds.train), len(ds.test)) == (0, 2)
    assert [p for p, _ in server.requests] == ["/tiny/t10k-images-idx3-ubyte.gz", "/tiny/t10k-labels-idx1-ubyte.gz"]
    whole = load_dataset("tiny")
    assert (len(whole.train), len(whole.test)) == (8, 2)
    assert [p for p, _ in server.requests[2:]] == ["/tiny/train-images-idx3-ubyte.gz",
                                                    "/tiny/train-labels-idx1-ubyte.gz"]


def test_named_download_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: FileServer) -> None:
    tiny_idx_spec(server, monkeypatch, tmp_path)
    monkeypatch.setenv("DLCLI_MIRROR", f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("tiny", data_dir=str(tmp_path / "mine"))
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "offline" in message
    assert str(tmp_path / "cache" / "data" / "tiny") in message and str(tmp_path / "mine" / "tiny") in message


def cifar_tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tiny_cifar_spec(monkeypatch: pytest.MonkeyPatch, members: dict[str, bytes]) -> tuple[DatasetSpec, bytes]:
    archive = cifar_tarball(members)
    real = DATASETS.get("cifar10")
    files = tuple(dataclasses.replace(f, md5=md5(members[f.name])) for f in real.files)
    spec = dataclasses.replace(real, files=files, archive=dataclasses.replace(real.archive, download_md5=md5(archive)))
    install(monkeypatch, spec)
    return spec, archive


def cifar_members() -> dict[str, bytes]:
    import pickle

    def batch(n: int) -> bytes:
        return pickle.dumps({b"data": np.full((n, 3072), n, np.uint8), b"labels": list(range(n))}, protocol=2)

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(2) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(3)
    names = [n.encode() for n in DATASETS.get("cifar10").classes]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names}, protocol=2)
    return members


def test_cifar_archive_downloaded_extracted_and_removed(
    server: FileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, archive = tiny_cifar_spec(monkeypatch, cifar_members())
    server.files["/cifar10/cifar-10-python.tar.gz"] = archive
    monkeypatch.setenv("DLCLI_MIRROR", server.url)
    ds = load_dataset("cifar10")
    assert ds.train.x.shape == (10, 3, 32, 32) and len(ds.test) == 3 and ds.classes[0] == "airplane"
    assert len(ds.mean) == 3  # computed: CIFAR-10 has no stored stats
    cached = tmp_path / "cache" / "data" / "cifar10"
    assert sorted(p.name for p in cached.iterdir()) == ["cifar-10-batches-py"]
    load_dataset("cifar10")
    assert len(server.requests) == 1


def test_cifar_archive_put_by_hand_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _, archive = tiny_cifar_spec(monkeypatch, cifar_members())
    (tmp_path / "root" / "cifar10").mkdir(parents=True)
    (tmp_path / "root" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(archive)
    ds = load_dataset("cifar10", data_dir=str(tmp_path / "root"), download=False)
    assert len(ds.train) == 10
    assert (tmp_path / "root" / "cifar10" / "cifar-10-python.tar.gz").exists()  # the user's file stays


def test_archive_escaping_its_folder_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    members = cifar_members()
    members["../../escaped.txt"] = b"x"
    _, archive = tiny_cifar_spec(monkeypatch, members)
    (tmp_path / "cache" / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "cache" / "data" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(archive)
    with pytest.raises(InputFileError, match="cannot extract"):
        load_dataset("cifar10", download=False)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_datafile_urls_are_redirected_by_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcli.data.resolve import mirror_url

    spec = DATASETS.get("mnist")
    assert mirror_url(spec, spec.files[0]) == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    monkeypatch.setenv("DLCLI_MIRROR", "http://example.invalid/data/")
    assert mirror_url(spec, spec.files[0]) == "http://example.invalid/data/mnist/train-images-idx3-ubyte.gz"
    assert mirror_url(spec, DataFile("x", None)) is None
