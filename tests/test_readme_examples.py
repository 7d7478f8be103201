"""Every shell example in README.md runs verbatim, in order, as a new user would paste it.

The README's ```bash/```sh/```shell blocks are run one after another with bash (`-e -o pipefail`:
every line must succeed) in one fresh directory holding a copy of `examples/`, as a checkout would,
with this environment's `dlcli` first on PATH. A ```python block whose first line is `# NAME.py` is
written to NAME.py first (the plugin example imports it). A block whose first line starts with
NOT_RUN is skipped: it installs packages, starts a server or needs several machines, and says so.
After each block, every file it names as made (`-> PATH` in comments, `--out`/`-o`, `--plot`, `--csv`
arguments) must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_RUN = "# not run by the README test:"
FENCE = re.compile(r"^```(bash|sh|shell|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
REAL_DATA = re.compile(r"--data (mnist|fashion-mnist|cifar10)\b")
MADE_OPTIONS = {"--out", "-o", "--plot", "--csv"}


@dataclass(frozen=True)
class Block:
    line: int      # README line of the opening fence, for messages
    language: str
    text: str

    @property
    def runnable(self) -> bool:
        return self.language != "python" and not self.text.startswith(NOT_RUN)


def readme_blocks(readme: str) -> list[Block]:
    """The fenced shell and python blocks of a README, in order."""
    return [Block(readme.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(readme)]


def claimed_outputs(script: str) -> list[str]:
    """Files a block says it makes: `-> PATH` in comments and the values of --out/-o/--plot/--csv."""
    claimed = re.findall(r"\s-> (\S+)", script)
    for line in script.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote inside a comment; the line's claims are in its comment
            continue
        claimed += [value for option, value in zip(words, words[1:], strict=False) if option in MADE_OPTIONS]
    return [path.rstrip("/") for path in claimed if "$" not in path]


def test_claimed_outputs_reads_comments_and_options() -> None:
    script = ('dlcli export a.pt   # -> runs/a.onnx\n'
              'dlcli train --out runs/x \\\n  --plot "c p.png"\necho "$x" --csv $f\n')
    assert claimed_outputs(script) == ["runs/a.onnx", "runs/x", "c p.png"]


def test_readme_blocks_keep_the_not_run_list_short() -> None:
    blocks = readme_blocks((ROOT / "README.md").read_text())
    shell = [b for b in blocks if b.language != "python"]
    skipped = [b for b in shell if not b.runnable]
    assert len(shell) >= 10, "the README's shell examples were not found"
    assert len(skipped) <= 4, f"too many README blocks are marked not runnable: lines {[b.line for b in skipped]}"
    assert all(b.text.split("\n", 1)[0] != NOT_RUN for b in skipped), "a not-run mark must say why"


@pytest.mark.slow
def test_readme_shell_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = readme_blocks((ROOT / "README.md").read_text())
    runnable = [b for b in blocks if b.runnable]
    if any(REAL_DATA.search(b.text) for b in runnable) and not os.environ.get("DLCLI_DATA_DIR"):
        pytest.skip("README examples train on MNIST/Fashion-MNIST: set DLCLI_DATA_DIR to run them")
    if any(re.search(r"\| *jq\b", b.text) for b in runnable) and shutil.which("jq") is None:
        pytest.skip("a README example pipes into jq, which is not installed")
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", work / "examples")
    monkeypatch.delenv("DLCLI_RUNS_DIR")  # runs/ under the working directory, as for a user
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in blocks:
        first = block.text.split("\n", 1)[0]
        if block.language == "python" and re.fullmatch(r"# [\w/]+\.py", first):
            (work / first[2:]).write_text(block.text)
        if not block.runnable:
            continue
        started = time.monotonic()
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=work, env=env,
                              capture_output=True, text=True, timeout=1500)
        took = time.monotonic() - started
        assert done.returncode == 0, (f"README block at line {block.line} exited {done.returncode} after "
                                      f"{took:.0f} s:\n{block.text}\nstderr:\n{done.stderr[-4000:]}")
        missing = [path for path in claimed_outputs(block.text) if not (work / path).exists()]
        assert not missing, f"README block at line {block.line} did not make {missing}:\n{block.text}"
