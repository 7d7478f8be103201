"""curves.png drawn by a helper process, so that importing matplotlib overlaps the trainer's own imports.

Why: a training command spends its first seconds importing torch on one core while
the other is idle, and its last ones importing matplotlib (0.46 s) and drawing (0.25 s) after the
loop, in series. A default MNIST run is meant to take 10 s whole (issue #15), so the curves are drawn
by a child Python started before torch is imported: it imports matplotlib on the idle core, then waits
on its stdin for the history, which the trainer sends once the loop has ended and the best checkpoint
is tested, and the trainer waits for it before reporting, so curves.png exists when the command
returns, as before.

The helper is started only while torch is not imported yet (the executable's case: the overlap is
the point); in-process callers that already hold torch (tests, Python users) draw in-process. A
helper that cannot start or fails falls back to drawing in-process too (which shows the error, if
there is one: the helper's own output is discarded). A trainer that stops early
(an error, Ctrl-C, SIGTERM) closes the pipe unwritten, and the helper exits without drawing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from dlcli.plots import plot_curves

_helper: subprocess.Popen[bytes] | None = None
EXAMPLE = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.9, "val_loss": 1.0 / e, "val_accuracy": 0.9,
            "lr": 0.1} for e in (1, 2)]
"""A history to warm the helper's drawing with, shaped like a real one."""
WAIT_SECONDS = 120
"""How long the trainer waits for the helper's drawing before drawing in-process itself."""


def start() -> None:
    """Start the helper when it can still overlap the torch import (not yet imported; rank 0 or no
    distributed run); a second call does nothing."""
    global _helper
    if _helper is None and "torch" not in sys.modules and os.environ.get("RANK", "0") == "0":
        _helper = spawn()


def spawn() -> subprocess.Popen[bytes] | None:
    """A helper process, waiting for its request on stdin; None when it cannot be started."""
    try:
        return subprocess.Popen([sys.executable, "-c", "from dlcli.plot_process import serve; serve()"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def draw_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """curves.png, as `dlcli.plots.plot_curves` draws it: by the helper when one was started (and
    works), else here."""
    global _helper
    helper, _helper = _helper, None
    if helper is not None and _drawn_by(helper, history, path):
        return path if history else None
    return plot_curves(history, path)


def _drawn_by(helper: subprocess.Popen[bytes], history: list[dict[str, Any]], path: Path) -> bool:
    """Send the request and wait; False (the helper stopped) when it could not draw."""
    try:
        assert helper.stdin is not None
        # One line, read with readline: the helper must not wait for end-of-file, which a process
        # forked meanwhile (a DataLoader worker) would hold back by inheriting the pipe.
        helper.stdin.write(json.dumps({"history": history, "path": str(path)}).encode() + b"\n")
        helper.stdin.close()
        helper.wait(timeout=WAIT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):  # it died (no matplotlib, say) or hangs: draw here
        pass
    if helper.returncode == 0:
        return True
    helper.kill()
    helper.wait()
    return False


def serve() -> None:
    """The helper's body: import matplotlib, then draw the one request read from stdin, if any."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle; EOF ends us
    from dlcli.plots import curves_figure, pyplot

    warm = curves_figure(EXAMPLE)  # the import this process exists to do early, and a first drawing:
    warm.canvas.draw()  # fonts and text layout are then cached (0.30 s for a first figure, 0.22 s after)
    pyplot().close(warm)
    raw = sys.stdin.buffer.readline()
    if not raw.strip():  # end-of-file: the trainer stopped before the curves
        return
    request = json.loads(raw)
    plot_curves(request["history"], Path(request["path"]))
    os._exit(0)  # the file is written and closed; matplotlib's teardown would keep the trainer waiting
