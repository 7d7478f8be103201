"""Ending the `dlcli` process without CPython's interpreter teardown.

Why: once torch is loaded, the teardown that follows `sys.exit` (clearing thousands of module
dicts, running finalizers one by one) takes 0.3-0.5 s on the 2-core machine, 0.7-0.9 s with
torch._dynamo too (which export and torch.compile import): `python -c "import torch"` took 1.69-1.78
s whole and 1.21-1.40 s with `os._exit(0)` as its last line; with `import torch, torch._dynamo`,
3.1-3.2 s and 2.2-2.4 s. That is close to a tenth of a default training run (issue #15), spent
after the results are written. So the executable does what a normal exit does that anyone can observe
(stops thread pools and waits for non-daemon threads, runs the atexit callbacks, flushes logging and
the standard streams)
and then leaves with `os._exit`: only the freeing of memory, which the OS does anyway, is skipped.

Used only by the console script and `python -m dlcli`; `dlcli.cli.main` itself still raises
SystemExit, so tests and Python callers that run it in-process keep their interpreter.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import NoReturn


def exit_code(code: object) -> int:
    """SystemExit's code as the process's status: None is 0; a message is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def exit_process(code: object) -> NoReturn:
    """Leave with `code` (a SystemExit code); skip the interpreter teardown when torch was loaded."""
    status = exit_code(code)
    if "torch" not in sys.modules:  # nothing heavy to tear down: the ordinary exit costs nothing
        sys.exit(status)
    # What interpreter shutdown does first, in its order: threading's own exit hooks (they stop
    # concurrent.futures' worker threads) and the wait for non-daemon threads, then the atexit
    # callbacks (multiprocessing's clean-up among them). Both are CPython's private entry points to
    # exactly those steps; a hand-written join loop would wait forever on an open thread pool.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`dlcli ... | head`): nothing more can be written
            pass
    os._exit(status)
