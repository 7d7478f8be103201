"""Stop a training run cleanly on SIGTERM or SIGINT: finish the current step, save, exit 143 / 130.

Schedulers (Slurm, Kubernetes, spot instances) send SIGTERM some seconds before they kill a job; the
default action would end the process mid-step and lose the epoch. Inside `GracefulStop` the first
signal only sets a flag that the loop polls at each step boundary; a second one restores the default
behaviour and re-delivers itself, so an impatient user still gets out at once. Written by hand
because it is a dozen lines around the standard `signal` module; no library adds anything here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Context manager: while active, `requested` is the first stop signal received (or None)."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:  # the second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.requested = signum
        name = signal.Signals(signum).name
        sys.stderr.write(f"{name} received: stopping after the current step and saving last.pt "
                         "(send it again to stop at once)\n")
        sys.stderr.flush()


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (130, 143)."""
    return 128 + signum
