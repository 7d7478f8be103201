"""What every hardening test means by "refused": exit 2 and one error line, the last thing on stderr
(progress lines may come before it), naming what was wrong."""

from __future__ import annotations

from typing import Any


def refused(result: Any, *words: str) -> None:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.err
    for word in words:
        assert word in result.err, result.err
