"""What the benchmark scripts share: running dlcli as a user would and reading its --json result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def dlcli(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m dlcli ARGS --json -q` in a subprocess (a real process, as timed by users) and
    return its JSON result; a failure stops the benchmark with dlcli's own error line. `env` adds to
    (or overrides) this process's environment."""
    proc = subprocess.run([sys.executable, "-m", "dlcli", *args, "--json", "-q"], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"dlcli {' '.join(args)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def require_data_dir(*names: str) -> None:
    if not os.environ.get("DLCLI_DATA_DIR"):
        raise SystemExit(f"set DLCLI_DATA_DIR to a folder holding {', '.join(n + '/' for n in names)}")
