"""One exception family: core code raises these, the CLI maps them to one line and an exit code.

Exit codes: 2 for bad input (paths, names, options, corrupt files), 1 for failures during work,
130 for Ctrl-C, 143 for SIGTERM (128 + the signal's number, the shell's convention).
Messages say how to fix the problem, because the CLI prints nothing else.
"""

from __future__ import annotations

EXIT_WORK = 1
EXIT_USAGE = 2
EXIT_INTERRUPT = 130


class DlcliError(Exception):
    """Base error; `exit_code` is what the CLI returns."""

    exit_code = EXIT_WORK


class UsageError(DlcliError):
    """The user's input is wrong: an unknown name, a bad option combination, an out-of-range value."""

    exit_code = EXIT_USAGE


class InputFileError(UsageError):
    """A file the user pointed at is missing, of the wrong type, or corrupt."""


class DataNotFoundError(UsageError):
    """A dataset is neither present locally nor downloadable (offline)."""


class DeviceError(UsageError):
    """The requested device is not available on this machine."""


class ArtifactExistsError(UsageError):
    """Refusing to overwrite something dlcli did not write (use --force)."""


class WorkError(DlcliError):
    """The work itself failed (diverged training, failed verification, accuracy gate)."""

    exit_code = EXIT_WORK


class Interrupted(DlcliError):
    """A run stopped on a signal after saving what a resume needs; exits 128 + the signal number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
