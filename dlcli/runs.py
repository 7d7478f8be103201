"""Run folders (runs/<command>/exp, exp2, ...) and the "latest run" pointer later commands default to.

Like Ultralytics' runs/ layout: a fresh folder per run so nothing earlier is overwritten, and
`dlcli eval` with no path evaluates what was trained last.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dlcli.errors import ArtifactExistsError, InputFileError

LATEST_FILE = "latest.json"


def runs_root() -> Path:
    return Path(os.environ.get("DLCLI_RUNS_DIR", "runs"))


def new_run_dir(command: str, name: str | None = None) -> Path:
    """A fresh runs/<command>/<name>[N] folder (created)."""
    parent = runs_root() / command
    base = name or "exp"
    for n in range(1, 10_000):
        candidate = parent / (base if n == 1 else f"{base}{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            continue
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
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def check_output_file(path: str | Path, force: bool, is_ours: bool) -> Path:
    """Refuse to overwrite a file dlcli did not write (unless --force)."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactExistsError(f"{path} is a folder; give a file path for --out.")
    if path.exists() and not is_ours and not force:
        raise ArtifactExistsError(f"{path} exists and was not written by dlcli; pass --force to overwrite it.")
    return path
