"""The README's command reference is generated from the CLI; it must not drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_in_readme_is_current() -> None:
    proc = subprocess.run([sys.executable, "-m", "scripts.cli_reference", "--check"], cwd=ROOT)
    assert proc.returncode == 0, "README.md's command reference is stale: run `python -m scripts.cli_reference`"


def test_readme_states_both_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert '-e . && dlcli train' in readme
    assert '-e ".[dev]" && python -m pytest -q' in readme
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
