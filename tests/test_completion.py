"""Shell completion (Typer's): commands and options complete, and completing imports no torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys


def _complete(words: str) -> tuple[str, list[str]]:
    code = (
        "import sys\nfrom dlcli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(repr(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'matplotlib') if m in sys.modules)))"
    )
    env = {**os.environ, "_DLCLI_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return done.stdout, ast.literal_eval(done.stderr.strip().splitlines()[-1])  # a list of module names


def test_commands_and_options_complete_without_importing_torch() -> None:
    out, heavy = _complete("dlcli pre")
    assert out.split() == ["predict"] and heavy == []
    out, _ = _complete("dlcli train --tensor")
    assert out.split() == ["--tensorboard"]


def test_help_lists_the_completion_options(cli) -> None:
    result = cli("--help")
    assert "--install-completion" in result.out and "--show-completion" in result.out
