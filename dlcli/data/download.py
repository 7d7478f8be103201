"""Download one file over HTTP(S): resumable, verified, atomic.

Bytes stream into `<dest>.part`; a later attempt continues it with a `Range` request, so an
interrupted 170 MB CIFAR download is not restarted from zero. The md5 covers every byte of the final
file, and only a verified file is renamed into place, so `dest` existing means `dest` is good.
Standard library only (urllib), because a dataset download must not need extra packages.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.client import HTTPResponse
from pathlib import Path
from typing import BinaryIO

from dlcli.errors import DataNotFoundError, WorkError

TIMEOUT_S = 30.0
_CHUNK = 1 << 16
_USER_AGENT = "dlcli"


def download(
    url: str, dest: Path, md5: str | None, progress: bool = False, timeout: float = TIMEOUT_S
) -> Path:
    """Fetch `url` into `dest` (verified against `md5` when given) and return `dest`.

    Raises DataNotFoundError when the server cannot be reached or refuses the file, and WorkError when
    the downloaded bytes do not match `md5` (the bad file is deleted so the next attempt starts clean).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fetch(url, part, progress, timeout)
    except _Interrupted as e:
        raise DataNotFoundError(
            f"the download of {dest.name} from {url} was interrupted ({e}); run the command again to "
            f"resume it, or put the file at {dest} by hand."
        ) from None
    except urllib.error.HTTPError as e:
        raise DataNotFoundError(
            f"cannot download {dest.name}: {url} answered HTTP {e.code} {e.reason}. "
            f"Put the file at {dest} by hand, or set DLCLI_MIRROR to a mirror that has it."
        ) from None
    except _Unreachable as e:
        resume = " (the partial download is kept and will be resumed)" if part.exists() else ""
        raise DataNotFoundError(
            f"cannot download {dest.name} from {url}: {e}{resume}. This machine seems to be offline; "
            f"put the file at {dest} by hand (or in <data-dir>/{dest.parent.name}/ and pass --data-dir "
            "or set DLCLI_DATA_DIR)."
        ) from None
    except OSError as e:  # writing, not the network: a full disk or a read-only cache
        raise WorkError(f"cannot write {part}: {e.strerror or e}") from None
    _verify(part, url, md5)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Stream `url` into `part`, continuing an existing partial file when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise
        # 416: our partial file is not a prefix the server can continue (stale or complete); restart.
        part.unlink()
        return _fetch(url, part, progress, timeout)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Unreachable(str(getattr(e, "reason", e)) or type(e).__name__) from None
    with response:
        _stream(response, part, have, progress)


def _stream(response: HTTPResponse, part: Path, have: int, progress: bool) -> None:
    """Append to `part` when the server continues at our offset (206), else rewrite it (200)."""
    resumed = have > 0 and response.status == 206 and _range_start(response) == have
    if not resumed:
        have = 0
    total = _total_size(response, have)
    with open(part, "ab" if resumed else "wb") as out, _progress_bar(progress, part, total) as advance:
        advance(have)
        _copy(response, out, advance)
    size = part.stat().st_size
    if total is not None and size != total:
        # http.client returns a short body silently when the server closes early.
        raise _Interrupted(f"the connection closed after {size} of {total} bytes")


class _Unreachable(Exception):
    """No answer from the server at all (refused, no route, DNS failure, timeout)."""


class _Interrupted(Exception):
    """The connection broke or stalled mid-transfer: the machine is online, the `.part` file resumable."""


def _copy(response: HTTPResponse, out: BinaryIO, advance: Callable[[int], None]) -> None:
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as e:  # timeouts, resets, IncompleteRead
            raise _Interrupted(str(e) or type(e).__name__) from None
        if not chunk:
            return
        out.write(chunk)
        advance(len(chunk))


def _range_start(response: HTTPResponse) -> int | None:
    """The first byte offset of a 206 answer (`Content-Range: bytes 100-199/200`)."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_size(response: HTTPResponse, have: int) -> int | None:
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _verify(part: Path, url: str, md5: str | None) -> None:
    if md5 is None:
        return
    digest = hashlib.md5()
    with open(part, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    got = digest.hexdigest()
    if got != md5:
        part.unlink()
        raise WorkError(
            f"checksum mismatch for {url}: expected md5 {md5}, got {got}; the download was deleted, "
            "run the command again to retry (if it keeps failing the mirror serves a different file)"
        )


@contextmanager
def _progress_bar(enabled: bool, part: Path, total: int | None) -> Iterator[Callable[[int], None]]:
    """A Rich bar on stderr when asked for and stderr is a terminal; otherwise a no-op counter."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"downloading {part.name.removesuffix('.part')}", total=total)
        yield lambda n: bar.advance(task, n)
