"""Where dataset files live: data roots, system folders and the download cache.

Layout everywhere is `<root>/<dataset-name>/<file>`, e.g. `<root>/mnist/train-images-idx3-ubyte.gz`, so
one `--data-dir` (or `$DLCLI_DATA_DIR`) can hold several datasets, and a folder prepared for one machine
works on another. Files may be kept gzip-compressed or not: `x.gz` is also found as `x`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlcli.errors import UsageError

DATA_DIR_ENV = "DLCLI_DATA_DIR"
CACHE_DIR_ENV = "DLCLI_CACHE_DIR"

# Folders that distributions install datasets into (Debian: `apt-get install dataset-fashion-mnist`).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def cache_dir() -> Path:
    """dlcli's cache: `$DLCLI_CACHE_DIR`, else `$XDG_CACHE_HOME/dlcli`, else `~/.cache/dlcli`."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"${CACHE_DIR_ENV}={explicit} is not a folder; point it at a folder (or unset it).")
        return path
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dlcli"


def download_dir(name: str) -> Path:
    """Where a dataset is downloaded to (always the cache: the other roots may be read-only)."""
    return cache_dir() / "data" / name


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Roots searched in order: the `--data-dir` argument, `$DLCLI_DATA_DIR`, then the cache."""
    roots: list[Path] = []
    for candidate in (data_dir, os.environ.get(DATA_DIR_ENV)):
        if candidate:
            roots.append(Path(candidate).expanduser())
    roots.append(cache_dir() / "data")
    return _unique(roots)


def dataset_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every folder that may hold dataset `name`, in search order (roots first, then system folders)."""
    return _unique([root / name for root in data_roots(data_dir)] + list(SYSTEM_DIRS.get(name, ())))


def find_file(folder: Path, filename: str) -> Path | None:
    """`folder/filename`, or its uncompressed twin (`x.gz` -> `x`) or compressed twin (`x` -> `x.gz`)."""
    twin = filename[: -len(".gz")] if filename.endswith(".gz") else filename + ".gz"
    for candidate in (folder / filename, folder / twin):
        if candidate.is_file():
            return candidate
    return None


def _unique(paths: list[Path]) -> list[Path]:
    """Drop repeats (e.g. `--data-dir` equal to `$DLCLI_DATA_DIR`) so a folder is not checked twice."""
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.absolute()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
