"""Shared fixtures: every test runs with its own runs/ and cache folders and no colour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcli.cli import main


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLCLI_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("DLCLI_DEBUG", raising=False)
    monkeypatch.setattr("dlcli.data.idx._prefetched", {})  # files read ahead (dlcli.data.idx.prefetch)
    return tmp_path


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> dict:
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout, got: {self.out!r}"
        return json.loads(lines[0])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the real entry point in-process; return exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# Small, fast training settings on the embedded sample (no download, no DLCLI_DATA_DIR needed). One
# thread: the default follows the machine's load, and results differ in their last bits by thread count.
FAST_TRAIN = ["--data", "mnist-sample", "--epochs", "1", "--train-samples", "600", "--val-split", "0.1", "-q",
              "--threads", "1"]


@pytest.fixture
def tiny_train(tmp_path: Path) -> list[str]:
    """`dlcli train` options for the cheapest real training: a tiny mlp on a 40-row, 2-feature table,
    for tests about run folders and files rather than about what is learnt."""
    table = tmp_path / "tiny.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 2 + i / 100},{i / 50},{i % 2}\n" for i in range(40)))
    return ["-m", "mlp", "-a", "hidden=[4]", "--data", f"csv:{table}", "--epochs", "1", "-q", "--threads", "1"]


@pytest.fixture(scope="session")
def _session_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the tiny model once per session; tests get their own copy (see trained_checkpoint)."""
    import os

    out = tmp_path_factory.mktemp("trained")
    saved = {k: os.environ.get(k) for k in ("DLCLI_RUNS_DIR", "DLCLI_CACHE_DIR")}
    os.environ["DLCLI_RUNS_DIR"] = str(out / "runs")
    os.environ["DLCLI_CACHE_DIR"] = str(out / "cache")
    try:
        main(["train", *FAST_TRAIN, "--out", str(out / "run")])
    except SystemExit as exc:
        assert exc.code in (0, None), f"training the shared test checkpoint failed with {exc.code}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out / "run" / "best.pt"


@pytest.fixture
def trained_checkpoint(_session_checkpoint: Path, tmp_path: Path) -> Path:
    """A trained checkpoint in this test's own folder, recorded as the latest run."""
    import shutil

    from dlcli.runs import record_latest

    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir(parents=True)
    shutil.copy(_session_checkpoint, path)
    record_latest(path)
    return path
