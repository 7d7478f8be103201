"""Find a named dataset's folder, or download (and for archives, extract) it into the cache.

A folder counts only when it holds *all* of a dataset's files, so a half-filled data root is skipped
rather than mixed with files from elsewhere. Downloads go to the cache folder, fetching only the files
still missing there, so an interrupted multi-file download continues where it stopped.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from dlcli.data import locate
from dlcli.errors import DataNotFoundError, InputFileError

if TYPE_CHECKING:
    from dlcli.data.catalog import DataFile, DatasetSpec

MIRROR_ENV = "DLCLI_MIRROR"


def candidate_folders(spec: DatasetSpec, data_dir: str | Path | None) -> list[Path]:
    """Folders searched for `spec`, in order."""
    if spec.builtin_dir is not None:
        return [spec.builtin_dir]
    return locate.dataset_dirs(spec.name, data_dir)


def file_paths(spec: DatasetSpec, folder: Path) -> list[Path] | None:
    """The paths of all of `spec`'s files in `folder` (compressed or not); None if any is missing."""
    paths = [locate.find_file(folder, f.name) for f in spec.files]
    return None if any(p is None for p in paths) else paths  # type: ignore[return-value]


def find_complete_folder(spec: DatasetSpec, data_dir: str | Path | None) -> Path | None:
    """The first folder holding every file of `spec`; nothing is read or hashed."""
    for folder in candidate_folders(spec, data_dir):
        if file_paths(spec, folder) is not None:
            return folder
    return None


def folder_size(spec: DatasetSpec, folder: Path) -> int:
    """Bytes on disk of `spec`'s files in `folder`."""
    return sum(p.stat().st_size for p in file_paths(spec, folder) or [])


def locate_or_download(
    spec: DatasetSpec, data_dir: str | Path | None, download: bool, progress: bool
) -> Path:
    """A folder holding all of `spec`'s files: found, extracted from a local archive, or downloaded."""
    folder = find_complete_folder(spec, data_dir)
    if folder is not None:
        return folder
    searched = candidate_folders(spec, data_dir)
    if spec.archive is not None:
        archive = _find_archive(spec, searched)
        if archive is not None:
            return _extract(spec, archive)
    if not download or spec.builtin_dir is not None:
        raise DataNotFoundError(_missing_message(spec, searched, download))
    try:
        return _download(spec, progress)
    except DataNotFoundError as e:
        raise DataNotFoundError(f"{e} Searched: {', '.join(map(str, searched))}.") from None


def mirror_url(spec: DatasetSpec, file: DataFile) -> str | None:
    """`file`'s download URL, redirected to `$DLCLI_MIRROR/<dataset>/<file>` when that is set."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and file.url:
        return f"{mirror.rstrip('/')}/{spec.name}/{file.url.rsplit('/', 1)[-1]}"
    return file.url


def _download(spec: DatasetSpec, progress: bool) -> Path:
    from dlcli.data.download import download

    target = locate.download_dir(spec.name)
    if spec.archive is not None:
        archive = download(_url(spec, spec.archive), target / spec.archive.name,
                           spec.archive.download_md5, progress)
        folder = _extract(spec, archive)
        archive.unlink()  # the extracted files are what we keep; the tarball only doubles the space
        return folder
    for file in spec.files:
        if locate.find_file(target, file.name) is None:
            download(_url(spec, file), target / file.name, file.download_md5, progress)
    return target


def _url(spec: DatasetSpec, file: DataFile) -> str:
    url = mirror_url(spec, file)
    if url is None:
        raise DataNotFoundError(f"{spec.name}: {file.name} cannot be downloaded")
    return url


def _find_archive(spec: DatasetSpec, folders: list[Path]) -> Path | None:
    """A tarball the user put in a dataset folder by hand (e.g. after an offline error)."""
    assert spec.archive is not None
    for folder in folders:
        if (folder / spec.archive.name).is_file():
            return folder / spec.archive.name
    return None


def _extract(spec: DatasetSpec, archive: Path) -> Path:
    """Extract `archive` into the cache; tar's 'data' filter refuses links and paths leaving the target."""
    target = locate.download_dir(spec.name)
    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4: no safe extraction built in
        raise InputFileError(f"extracting {archive} safely needs Python >= 3.10.12; extract it by hand")
    staging = target / ".extracting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter="data")
        for top in staging.iterdir():  # move into place only once everything is out
            shutil.rmtree(target / top.name, ignore_errors=True)
            os.replace(top, target / top.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise InputFileError(f"cannot extract {archive} ({e}); delete it and download it again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if file_paths(spec, target) is None:
        raise InputFileError(f"{archive} lacks some {spec.name} files; delete it and download it again")
    return target


def _missing_message(spec: DatasetSpec, searched: list[Path], download: bool) -> str:
    if spec.archive is not None:
        names = spec.archive.name
    else:
        names = ", ".join(f.name for f in spec.files) + " (.gz or uncompressed)"
    where = locate.download_dir(spec.name)
    why = "it cannot be downloaded" if spec.builtin_dir is not None else "downloading is turned off"
    return (
        f"dataset {spec.name!r} not found and {why}. Put {names} in "
        f"{where} or in <data-dir>/{spec.name}/ with --data-dir or $DLCLI_DATA_DIR. "
        f"Searched: {', '.join(map(str, searched))}."
    )
