"""The shape every command's result shares: what `--json` prints, typed.

Each workflow's `run(config, console)` returns a subclass of `CommandResult`; its `to_json()` is the
one object `--json` prints: `command`, `artifact` (what the command made, a path, or null),
`metrics` (the headline figures), `device`, `seconds`, then the subclass's own fields in declaration
order. So a result's JSON contract is its field list, read top to bottom. Three field markers cover
what a plain field cannot say:

- `omitted_when_none()`: left out while None, so optional keys (distill's `baseline_artifact`, eval's
  `plot`) appear only when there is something to say;
- `inlined()`: a dict whose keys are printed at the top level (info's fields, which depend on the
  kind of artifact described);
- `not_in_json()`: a typed object kept for Python callers only (export's `ParityReport`, quantize's
  `Comparison`); what `--json` shows of it is a plain field computed when the result is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

OMIT_KEY = "dlcli.omit_when_none"
INLINE_KEY = "dlcli.inline"
HIDDEN_KEY = "dlcli.not_in_json"


def omitted_when_none(default: Any = None) -> Any:
    """A result field that `to_json()` leaves out while it is None."""
    return field(default=default, metadata={OMIT_KEY: True})


def inlined() -> Any:
    """A dict field whose items `to_json()` prints at the top level, in their order, instead of the field."""
    return field(default_factory=dict, metadata={INLINE_KEY: True})


def not_in_json() -> Any:
    """A field for Python callers that `to_json()` leaves out: a required keyword argument."""
    return field(kw_only=True, metadata={HIDDEN_KEY: True})


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
            if f.metadata.get(HIDDEN_KEY) or (value is None and f.metadata.get(OMIT_KEY)):
                continue
            if f.metadata.get(INLINE_KEY):
                out.update(value)
            else:
                out[f.name] = value
        return out
