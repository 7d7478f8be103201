"""Run folders (runs/<command>/exp, exp2, ...) and the "latest run" pointer later commands default to.

Like Ultralytics' runs/ layout: a fresh folder per run so nothing earlier is overwritten, and
`dlcli eval` with no path evaluates what was trained last.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dlcli.errors import ArtifactExistsError, InputFileError, UsageError

LATEST_FILE = "latest.json"

# Run folders this process created: a command that fails removes those it left empty (see
# `remove_empty_created`), so a refused or crashed run leaves no runs/train/expN behind.
_created: list[Path] = []


def runs_root() -> Path:
    return Path(os.environ.get("DLCLI_RUNS_DIR", "runs"))


def new_run_dir(command: str, name: str | None = None) -> Path:
    """A fresh runs/<command>/<name>[N] folder (created)."""
    parent = runs_root() / command
    base = name or "exp"
    for n in range(1, 10_000):
        candidate = parent / (base if n == 1 else f"{base}{n}")
        missing = _missing_folders(candidate)
        try:
            candidate.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create the run folder {candidate}: {exc.strerror or exc}; "
                             "set DLCLI_RUNS_DIR or pass --out.") from None
        _created.extend(missing)
        return candidate
    raise ArtifactExistsError(f"too many runs named {base!r} in {parent}; pass --name or --out.")


def prepare_out_dir(out: str | Path | None, command: str, name: str | None, force: bool) -> Path:
    """Use --out if given (refusing a non-empty folder unless --force), else a fresh run folder."""
    if out is None:
        return new_run_dir(command, name)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ArtifactExistsError(f"--out {path} is a file; give a folder.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ArtifactExistsError(f"--out {path} already has files; pass --force to write into it anyway.")
    if path.is_dir():
        remove_stale_temporaries(path)
        return path
    missing = _missing_folders(path)
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"--out {path} cannot be created: {exc.strerror or exc}.") from None
    _created.extend(missing)
    return path


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, outermost first."""
    return [p for p in reversed([path, *path.parents]) if not p.exists()]


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the hidden `.<name>.<random>.tmp` files an interrupted `atomic_write` (SIGKILL, power
    loss) left in a run folder that is now being reused; the files they were replacing are intact."""
    removed = []
    for tmp in folder.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_empty_created() -> None:
    """After a failed command: remove the run folders it created and left empty (innermost first)."""
    while _created:
        folder = _created.pop()
        # Everything under a folder this command made is its own: empty sub-folders go first.
        inner = sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for path in [*inner, folder]:
            try:
                path.rmdir()  # only succeeds when empty
            except OSError:
                pass


def record_latest(checkpoint: Path) -> None:
    """Remember the newest checkpoint for commands given no path. Best effort: a read-only folder
    must not fail a finished training run."""
    root = runs_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{LATEST_FILE}.tmp"
        tmp.write_text(json.dumps({"checkpoint": str(checkpoint.resolve())}) + "\n")
        os.replace(tmp, root / LATEST_FILE)
    except OSError:
        pass


def latest_checkpoint() -> Path:
    """The checkpoint the last training run saved, or a clear error saying how to give one."""
    pointer = runs_root() / LATEST_FILE
    try:
        path = Path(json.loads(pointer.read_text())["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputFileError(
            f"no checkpoint given and no latest run recorded in {runs_root()}/; "
            "pass a checkpoint path or run `dlcli train` first."
        ) from None
    if not path.exists():
        raise InputFileError(f"the latest run's checkpoint {path} no longer exists; pass a checkpoint path.")
    return path


def checkpoint_argument(path: Path | None) -> Path:
    """What a command's checkpoint argument names: omitted, the latest run's checkpoint; a run
    folder, its best.pt (as `compare` reads folders); anything else as given, checked where read."""
    if path is None:
        return latest_checkpoint()
    if path.is_dir():
        best = path / "best.pt"
        if not best.is_file():
            raise InputFileError(f"{path} is a folder without best.pt; give a run folder, a .pt or an .onnx file.")
        return best
    return path


def check_output_file(path: str | Path, force: bool, is_ours: bool, written_by: str | None = None) -> Path:
    """Refuse to overwrite a file that the same kind of step did not write (unless --force), and an
    output that cannot be created; both before any work.

    `is_ours`: the existing file is this step's own kind of output (a re-run replaces it).
    `written_by`: the dlcli step that wrote it otherwise (for the message), None for a foreign file.
    """
    path = Path(path)
    if path.is_dir():
        raise ArtifactExistsError(f"{path} is a folder; give a file path for --out.")
    if path.exists() and not is_ours and not force:
        if written_by:
            raise ArtifactExistsError(f"{path} was written by `dlcli {written_by}` for another purpose; pass "
                                      "--force to replace it, or choose another --out.")
        raise ArtifactExistsError(f"{path} exists and was not written by dlcli; pass --force to overwrite it.")
    check_writable(path)
    return path


def check_step_output(path: str | Path, force: bool, step: str, written_by: Callable[[Path], str | None]) -> Path:
    """`check_output_file` for a step's artifact: an existing file is "ours" only when the same kind
    of step wrote it, as its own metadata says (`written_by(path)`: the last lineage step, None for a
    file dlcli did not write). So `dlcli quantize --out best.onnx` does not replace an export."""
    path = Path(path)
    owner = written_by(path) if path.is_file() else None
    return check_output_file(path, force, is_ours=owner == step, written_by=owner)


def check_writable(path: Path) -> None:
    """Fail now, not after the work, when `path`'s folder cannot be made or written (a parent that is
    a file, /proc, a read-only mount): the nearest existing ancestor must accept a new file."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"--out {path} cannot be written: {exc.strerror or exc}.") from None


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
