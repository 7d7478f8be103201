"""Declarative checks for configuration values and model arguments: type from the annotation, range
from a `Range` declared beside the field (dataclass field metadata) or the model argument.

One place for "is this value acceptable", so a config file, a flag, a model argument and a value read
back from a checkpoint are refused the same way: exit 2 with the field's name, before any file or
folder is made. Hand-written rather than pydantic because the rules are few (int, float, str, bool,
lists, dicts, optional) and dlcli's startup must stay torch- and import-light.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from dlcli.errors import UsageError

CHECK_KEY = "dlcli.check"


@dataclass(frozen=True)
class Range:
    """Bounds on a number (or on every item of a list of numbers); `choices` for strings.

    `gt`/`ge`/`lt`/`le` follow the usual meaning; `min_items` bounds a list's length."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    min_items: int | None = None

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low = f"{'(' if self.gt is not None else '['}{_num(self.gt if self.gt is not None else self.ge)}"
        high = f"{_num(self.lt if self.lt is not None else self.le)}{')' if self.lt is not None else ']'}"
        if (self.ge, self.gt) == (None, None):
            return f"< {_num(self.lt)}" if self.lt is not None else (f"<= {_num(self.le)}" if self.le is not None
                                                                    else "any value")
        if (self.le, self.lt) == (None, None):
            return f"> {_num(self.gt)}" if self.gt is not None else f">= {_num(self.ge)}"
        return f"in {low}, {high}"

    def admits(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                    and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        return True


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def check(**bounds: Any) -> dict[str, Range]:
    """Field metadata: `field(default=128, metadata=check(ge=1))`."""
    return {CHECK_KEY: Range(**bounds)}


def type_name(hint: Any) -> str:
    """`int | None` -> "an integer (or null)", for messages and `dlcli models`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(type_name(a) for a in inner) + (" (or null)" if type(None) in args else "")
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {type_name(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def coerce(name: str, value: Any, hint: Any, bounds: Range | None = None) -> Any:
    """`value` checked against the type `hint` and `bounds`; ints are accepted where floats are
    expected (and converted). Raises UsageError naming `name`."""
    fitted = _fit(value, hint)
    if fitted is _BAD:
        raise UsageError(f"{name} must be {type_name(hint)}, got {_show(value)}.")
    if bounds is not None and fitted is not None:
        items = fitted if isinstance(fitted, list) else [fitted]
        if bounds.min_items is not None and isinstance(fitted, list) and len(fitted) < bounds.min_items:
            raise UsageError(f"{name} needs at least {bounds.min_items} item(s), got {_show(value)}.")
        if not all(bounds.admits(v) for v in items):
            what = "every item of " + name if isinstance(fitted, list) else name
            raise UsageError(f"{what} must be {bounds.describe()}, got {_show(value)}.")
    return fitted


_BAD = object()


def _fit(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None if type(None) in args else _BAD
        for arg in (a for a in args if a is not type(None)):
            fitted = _fit(value, arg)
            if fitted is not _BAD:
                return fitted
        return _BAD
    if origin in (list, tuple, collections.abc.Sequence) or hint is list:
        if not isinstance(value, (list, tuple)):
            return _BAD
        items = [_fit(v, args[0]) if args else v for v in value]
        return _BAD if any(v is _BAD for v in items) else items
    if origin is dict or hint is dict:
        return dict(value) if isinstance(value, dict) and all(isinstance(k, str) for k in value) else _BAD
    if hint is bool:
        return value if isinstance(value, bool) else _BAD
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _BAD
    if hint is str:
        return value if isinstance(value, str) else _BAD
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """A config class's evaluated annotations (read-only). Cached: evaluating them compiles every
    string annotation, and the CLI asked once per training flag (28 times: 26 ms of each start)."""
    return typing.get_type_hints(cls)


def validate_fields(instance: Any, label: Any = None) -> None:
    """Check every field of a dataclass instance against its annotation and `check(...)` metadata,
    writing the coerced values back. `label(name)` turns a field name into what the user typed."""
    hints = field_hints(type(instance))
    for f in dataclasses.fields(instance):
        name = label(f.name) if label else f.name
        value = coerce(name, getattr(instance, f.name), hints[f.name], f.metadata.get(CHECK_KEY))
        object.__setattr__(instance, f.name, value)


def describe_field(hint: Any, bounds: Range | None) -> str:
    """"an integer >= 1" for `dlcli models` and help texts."""
    return type_name(hint) + (f", {bounds.describe()}" if bounds is not None else "")
