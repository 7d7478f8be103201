"""The executable's quiet torch import (dlcli.process_start), fast exit (dlcli.process_exit) and the
curves helper process (dlcli.plot_process): they change how the process starts, ends or draws, never
what it leaves behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlcli import plot_process
from dlcli.plots import is_dlcli_png
from dlcli.process_exit import exit_code

HISTORY = [{"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "val_loss": 0.8, "val_accuracy": 0.75, "lr": 0.1},
           {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.85, "val_loss": 0.6, "val_accuracy": 0.8, "lr": 0.0}]


def test_torch_is_imported_without_collections_and_then_frozen() -> None:
    """No garbage collection runs during the import (the "on" case shows it: with the collector off
    beforehand none would run anyway); afterwards the collector is as it was and torch's objects are
    frozen. A lookup of torch before the import does not use the hook up."""
    code = (
        "import gc, importlib.util, sys\n"
        "from dlcli.process_start import import_torch_quietly\n"
        "off = sys.argv[1] == 'off'\n"
        "if off: gc.disable()\n"
        "import_torch_quietly(); import_torch_quietly()  # a second call adds nothing\n"
        "assert importlib.util.find_spec('torch') is not None\n"
        "runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(info['generation']) if phase == 'start' else None)\n"
        "import torch\n"
        "finders = [type(f).__name__ for f in sys.meta_path]\n"
        "print(len(runs), gc.isenabled(), gc.get_freeze_count() > 100_000, *finders)\n"
    )
    for state, enabled in (("on", "True"), ("off", "False")):
        out = subprocess.run([sys.executable, "-c", code, state], capture_output=True, text=True, check=True).stdout
        assert out.split()[:3] == ["0", enabled, "True"]
        assert "_QuietTorchImport" not in out  # its finder is gone once torch is imported


def test_exit_code_follows_system_exit() -> None:
    assert exit_code(None) == 0 and exit_code(3) == 3


def test_a_message_exits_1_and_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code("bad thing") == 1
    assert capsys.readouterr().err == "bad thing\n"


def test_fast_exit_still_does_what_a_normal_exit_does(tmp_path: Path) -> None:
    """With torch loaded: threads are waited for, atexit callbacks run, buffered output is flushed,
    and the status is kept."""
    code = (
        "import atexit, concurrent.futures, pathlib, sys, threading, time, torch\n"
        "from dlcli.process_exit import exit_process\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "atexit.register(lambda: (d / 'atexit').write_text('ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), (d / 'thread').write_text('done'))).start()\n"
        "pool = concurrent.futures.ThreadPoolExecutor(2)  # left open, as a library may leave one\n"
        "pool.submit(lambda: (d / 'pool').write_text('done'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "exit_process(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered, no newline"
    assert [(tmp_path / f).read_text() for f in ("atexit", "thread", "pool")] == ["ran", "done", "done"]


def test_the_executable_reports_failures_with_their_code() -> None:
    """A refused option after torch is loaded: one line, exit 2, and with --json one object on stdout."""
    done = subprocess.run([sys.executable, "-m", "dlcli", "train", "--data", "nope", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout.strip().startswith('{"error": ') and done.stdout.endswith("\n")


def test_without_torch_it_is_an_ordinary_exit() -> None:
    code = ("import sys\nfrom dlcli.process_exit import exit_process\ntry:\n    exit_process(4)\n"
            "except SystemExit as e:\n    print('SystemExit', e.code)\n    raise\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and "SystemExit 4" in done.stdout


def test_the_helper_draws_the_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = plot_process.spawn()
    assert helper is not None
    monkeypatch.setattr(plot_process, "_helper", helper)
    drawn = []
    monkeypatch.setattr(plot_process, "plot_curves", lambda *a: drawn.append(a))  # in-process drawing
    path = tmp_path / "curves.png"
    assert plot_process.draw_curves(HISTORY, path) == path
    assert helper.returncode == 0 and is_dlcli_png(path) and drawn == []  # the helper drew it


def test_a_failed_helper_falls_back_to_drawing_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(1)"],
                              stdin=subprocess.PIPE)
    monkeypatch.setattr(plot_process, "_helper", broken)
    path = tmp_path / "curves.png"
    assert plot_process.draw_curves(HISTORY, path) == path
    assert broken.returncode == 1 and is_dlcli_png(path)


def test_a_helper_whose_trainer_stops_early_exits_cleanly() -> None:
    helper = plot_process.spawn()
    assert helper is not None and helper.stdin is not None
    helper.stdin.close()  # what a trainer that fails or is interrupted leaves it: end-of-file
    assert helper.wait(timeout=60) == 0  # no traceback (that would be 1), no hang


def test_no_helper_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process callers (tests, Python users) already hold torch: nothing to overlap, no process."""
    import torch  # noqa: F401

    monkeypatch.setattr(plot_process, "_helper", None)
    plot_process.start()
    assert plot_process._helper is None


@pytest.mark.slow
def test_the_executable_trains_and_writes_every_file(tmp_path: Path) -> None:
    """`python -m dlcli train`: helper-drawn curves, then the fast exit, with the result on stdout."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "dlcli", "train", "--epochs", "1", "--train-samples", "500", "--threads", "1",
         "--out", str(out), "--json", "-q"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"command": "train"' in done.stdout and done.stdout.endswith("\n")
    assert is_dlcli_png(out / "curves.png") and (out / "best.pt").is_file()
