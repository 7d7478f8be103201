"""Where output goes: human text and tables to stderr (Rich), results to stdout.

stdout carries either one JSON object (--json) or the main artifact's path, so that
`dlcli eval "$(dlcli train)"` and `dlcli train --json | jq` both work. Rich already honours NO_COLOR
and turns colour and animation off when stderr is not a terminal.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

LOG_WIDTH = 160


class Console:
    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console as RichConsole

        self.quiet = quiet
        self.rich = RichConsole(stderr=True, highlight=False, soft_wrap=True)
        if not self.rich.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            # Off a terminal Rich assumes 80 columns and folds wide tables cell by cell ("onnxr / untim
            # / e") in logs and CI output; a log has no width to fit, so give tables room.
            self.rich.width = LOG_WIDTH

    @property
    def is_terminal(self) -> bool:
        return self.rich.is_terminal

    def info(self, text: str) -> None:
        if not self.quiet:
            self.rich.print(text, markup=False)

    def warn(self, text: str) -> None:
        """Warnings are shown even with --quiet: they change what the result means."""
        self.rich.print(f"warning: {text}", markup=False, style="yellow")

    def table(self, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
        if self.quiet:
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(format_value(v) for v in row))
        self.rich.print(table)


def short_labels(paths: list[str]) -> dict[str, str]:
    """File names when they are unique (tables are narrow), else the last two path parts."""
    from pathlib import Path

    names = {p: Path(p).name for p in paths}
    unique = len(set(names.values())) == len(set(paths))
    return names if unique else {p: str(Path(*Path(p).parts[-2:])) for p in paths}


def signed(value: float, digits: int = 2) -> str:
    """A signed figure ("+0.12", "-0.30") that never reads "-0.00": a drop that rounds to nothing is
    not a loss."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def metric_value(name: str, value: Any) -> Any:
    """A recorded metric as tables show it: accuracies (fractions in --json) as percentages, like the
    headline "test accuracy 98.60%" beside them; anything else as it is."""
    if "accuracy" in name and isinstance(value, float) and 0.0 <= value <= 1.0:
        return f"{value:.2%}"
    return value


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: report them as null rather than emit invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit_result(result: dict[str, Any], json_mode: bool) -> None:
    """Print a command's result (a `CommandResult.to_json()`, dlcli.workflows.result) on stdout: the whole
    object with --json, else the artifact path."""
    if json_mode:
        write_stdout(json.dumps(_clean(result), default=str) + "\n")
    elif result.get("artifact"):
        write_stdout(f"{result['artifact']}\n")


def write_stdout(text: str) -> None:
    """Write and flush stdout. When the reader has closed it (`dlcli train | head -c0`) the work is
    already done and saved; only this line cannot be delivered. Then stdout is pointed at /dev/null,
    as the Python docs' note on SIGPIPE recommends, so that neither this nor the exit-time flush
    fails, and the command ends like a finished one (like Unix tools, quietly)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # not a real file descriptor (captured output in tests)
            pass
        finally:
            os.close(devnull)
