"""Training progress on stderr: a Rich bar on a terminal, plain periodic lines in logs and pipes,
nothing with --quiet. The loop only calls this interface, so it never knows which one it has."""

from __future__ import annotations

import sys
import time
from typing import Any

from dlcli.console import Console


class ProgressSink:
    """Interface and no-op implementation."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def wants_update(self, step: int) -> bool:
        return False

    def update(self, step: int, loss: float) -> None: ...

    def epoch_end(self, summary: dict[str, Any], improved: bool) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


NullProgress = ProgressSink


def format_epoch(summary: dict[str, Any], improved: bool) -> str:
    parts = [f"epoch {summary['epoch']}", f"loss {summary['train_loss']:.4f}"]
    parts.append(f"train acc {summary['train_accuracy']:.2%}")
    if "val_accuracy" in summary:
        parts.append(f"val loss {summary['val_loss']:.4f}")
        parts.append(f"val acc {summary['val_accuracy']:.2%}" + (" *" if improved else ""))
    parts.append(f"{summary['seconds']:.1f}s")
    return "  ".join(parts)


class PlainProgress(ProgressSink):
    """One line every `interval` seconds and one per epoch: readable in CI logs, no control codes."""

    def __init__(self, console: Console, interval: float = 10.0) -> None:
        self.console = console
        self.interval = interval
        self._last = time.monotonic()
        self._epoch = (0, 0, 0)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epoch = (epoch, epochs, steps)

    def wants_update(self, step: int) -> bool:
        return time.monotonic() - self._last >= self.interval

    def update(self, step: int, loss: float) -> None:
        self._last = time.monotonic()
        epoch, epochs, steps = self._epoch
        self.console.info(f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:.4f}")

    def epoch_end(self, summary: dict[str, Any], improved: bool) -> None:
        self._last = time.monotonic()
        self.console.info(format_epoch(summary, improved))

    def message(self, text: str) -> None:
        self.console.info(text)


class RichProgress(ProgressSink):
    """A live bar with speed, loss and ETA; epoch summaries stay on screen above it."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console.rich,
            transient=True,
        )
        self._progress.start()
        self._task: Any = None
        self._epoch_start = time.perf_counter()
        self._last_step = 0

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task("train", total=steps, epoch=f"{epoch}/{epochs}", loss="-", speed="")
        self._epoch_start = time.perf_counter()
        self._last_step = 0

    def wants_update(self, step: int) -> bool:
        return step - self._last_step >= 5

    def update(self, step: int, loss: float) -> None:
        self._last_step = step
        rate = step / max(time.perf_counter() - self._epoch_start, 1e-9)
        self._progress.update(self._task, completed=step, loss=f"{loss:.4f}", speed=f"{rate:.0f} it/s")

    def epoch_end(self, summary: dict[str, Any], improved: bool) -> None:
        self._progress.console.print(format_epoch(summary, improved), highlight=False)

    def message(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)

    def close(self) -> None:
        self._progress.stop()


def make_progress(console: Console) -> ProgressSink:
    if console.quiet:
        return ProgressSink()
    if console.is_terminal and sys.stderr.isatty():
        return RichProgress(console)
    return PlainProgress(console)
