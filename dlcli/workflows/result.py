"""The shape every command's result shares: what `--json` prints, typed.

Each workflow's `run(config, console)` returns a subclass of `CommandResult`; its `to_json()` is the
one object `--json` prints: `command`, `artifact` (what the command made, a path, or null),
`metrics` (the headline figures), `device`, `seconds`, then the subclass's own fields in declaration
order. A field declared with `omitted_when_none()` is left out while it is None, so optional keys
(distill's `baseline_artifact`, eval's `plot`) appear only when there is something to say.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

OMIT_KEY = "dlcli.omit_when_none"


def omitted_when_none(default: Any = None) -> Any:
    """A result field that `to_json()` leaves out while it is None."""
    return field(default=default, metadata={OMIT_KEY: True})


@dataclass
class CommandResult:
    command: ClassVar[str] = ""
    """The command name `to_json()` reports (a class constant of each subclass)."""
    artifact: str | None
    """The main file the command wrote (as a string), or None when it wrote none."""
    metrics: dict[str, Any]
    """The headline figures: accuracy, loss, sizes, latencies, ratios."""
    device: str | None
    seconds: float
    """Wall-clock time of the whole command."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": self.command, "artifact": self.artifact, "metrics": self.metrics,
                               "device": self.device, "seconds": round(self.seconds, 3)}
        for f in dataclasses.fields(self)[4:]:
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get(OMIT_KEY):
                out[f.name] = value
        return out
