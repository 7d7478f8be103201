"""`--resume PATH|auto`: which checkpoint to continue from, into which folder, with which config.

A resumed run is the saved run continued, so its configuration is the one saved in last.pt; flags
given again may only change what does not change the run's identity (how long it trains, where it
runs, how often it saves). Anything else (another model, dataset, batch size, seed, ...) would make
the continuation a different experiment, so it is refused with the difference named, as timm and
Ultralytics users learn the hard way when a silently mismatched resume trains garbage.
Kept free of torch: the CLI resolves all of this before any heavy import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlcli.errors import InputFileError, UsageError

# Options a resume may change: they alter how long or where the run goes, not what it is.
CHANGEABLE = frozenset({
    "epochs", "device", "data_dir", "patience", "save_every", "skip_nonfinite", "resume", "threads",
    "workers", "stream", "tensorboard",
})


def find_checkpoint(spec: str, command: str, out: Path | None) -> Path:
    """`auto`: last.pt of --out, else of the newest runs/<command>/* folder; a folder: its last.pt;
    a file: itself."""
    from dlcli.runs import runs_root

    if spec == "auto":
        if out is not None:
            candidates = [Path(out) / "last.pt"]
        else:
            candidates = sorted((runs_root() / command).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
        found = [p for p in candidates if p.is_file()]
        if not found:
            where = out if out is not None else runs_root() / command
            raise InputFileError(f"--resume auto found no last.pt under {where}; pass the checkpoint's path.")
        return found[-1]
    path = Path(spec)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise InputFileError(f"--resume: checkpoint not found: {path}")
    return path


def resumed_config(saved: dict[str, Any], explicit: dict[str, Any], path: Path) -> dict[str, Any]:
    """The saved config with the explicitly given values applied; refuses values that would change
    what the run is. `explicit` holds only options the user gave (flags or a --config file)."""
    values = dict(saved)
    for key, value in explicit.items():
        if value is None or key not in saved or saved[key] == value:
            continue
        if key not in CHANGEABLE:
            raise UsageError(
                f"cannot resume {path} with {key}={value!r}: it was trained with {key}={saved[key]!r}. "
                "Drop the option, or start a new run."
            )
        values[key] = value
    return values


def check_resumable(training_state: dict[str, Any], path: Path, epochs: float) -> None:
    """Refuse a checkpoint without training state (best.pt) or a run that has nothing left to do:
    `epochs` not beyond what it has trained (fractions counted, in optimizer steps, as the loop does)."""
    from dlcli.engine.budget import total_steps
    from dlcli.engine.state import TrainerState

    if not training_state:
        raise InputFileError(
            f"{path} holds weights only, not a training state to resume; resume from the run's last.pt."
        )
    state = TrainerState.from_dict(training_state["trainer"])
    done = state.epochs_done()
    if done is None:  # saved before steps_per_epoch was kept: whole epochs only
        finished = state.epoch >= epochs and not state.step
        done = float(state.epoch)
    else:
        finished = state.global_step >= total_steps(epochs, state.steps_per_epoch)
    if finished:
        raise UsageError(
            f"{path} has already trained {done:.3g} epochs ({state.global_step} steps), all that --epochs "
            f"{epochs:g} asks; pass a larger --epochs to train further."
        )
