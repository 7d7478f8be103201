"""`--threads` and its default (dlcli.threads): the free cores when a command starts, at least one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN

from dlcli import threads
from dlcli.errors import UsageError


def _loadavg(tmp_path: Path, running: int) -> Path:
    path = tmp_path / "loadavg"
    path.write_text(f"3.10 2.50 1.20 {running}/412 31337\n")
    return path


@pytest.mark.parametrize(("running", "others"), [(1, 0), (2, 1), (5, 4)])
def test_other_running_does_not_count_the_reader(tmp_path: Path, running: int, others: int) -> None:
    assert threads.other_running(_loadavg(tmp_path, running)) == others


def test_default_is_the_free_cores_and_at_least_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads.default_threads(_loadavg(tmp_path, 1)) == 8  # only us: every core
    assert threads.default_threads(_loadavg(tmp_path, 4)) == 5  # three others busy
    assert threads.default_threads(_loadavg(tmp_path, 30)) == 1  # oversubscribed: one thread, never zero


def test_unreadable_load_means_no_one_else(tmp_path: Path) -> None:
    assert threads.other_running(tmp_path / "missing") == 0
    (tmp_path / "garbled").write_text("nonsense\n")
    assert threads.other_running(tmp_path / "garbled") == 0


def test_given_threads_win_and_must_be_positive() -> None:
    assert threads.resolve_threads(3) == 3
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        threads.resolve_threads(0)


@pytest.mark.slow
def test_commands_set_the_threads_they_are_given(cli, tmp_path: Path) -> None:
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        trained = cli("train", *FAST_TRAIN, "--train-samples", "100", "-a", "channels=[4,8]", "--threads", "1",
                      "--out", tmp_path / "run", "--json")
        assert trained.code == 0, trained.err
        assert torch.get_num_threads() == 1
        assert trained.json()["artifact"]
        torch.set_num_threads(2)
        assert cli("eval", trained.json()["artifact"], "--threads", "1", "-q").code == 0
        assert torch.get_num_threads() == 1
        bad = cli("train", *FAST_TRAIN, "--threads", "0", "--out", tmp_path / "bad")
        assert bad.code == 2 and "--threads must be" in bad.err
    finally:
        torch.set_num_threads(previous)
