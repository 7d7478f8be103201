"""The decisions `dlcli frontier` makes, as small pure functions (no torch, no files): which variants a
name asks for, which rows are Pareto-optimal, which pass the gates, which one `--pick` returns, what
a distilled student looks like, and whether a built artifact can be reused.

Kept apart from the workflow so each rule is tested on plain numbers, and so the CLI can validate
`--variants` without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dlcli.config import option
from dlcli.errors import UsageError

DEFAULT_VARIANTS = ("fp32", "int8", "channel-50", "global-90", "distilled", "channel-50-int8")
REFERENCE = "fp32"
"""The parent exported to ONNX: always built and measured, every drop and speedup is against it."""
PRUNE_METHODS = {"channel": "channel", "global": "global-unstructured", "l1": "l1-unstructured"}
VARIANT_FORMS = ("fp32, int8, channel-N, global-N, l1-N (N: percent removed), distilled, and any of these but fp32 "
                 "with -int8")
_PRUNED = re.compile(r"^(channel|global|l1)-(\d{1,2})$")


@dataclass(frozen=True)
class Variant:
    """One requested variant: a base model (the parent, a pruned copy or a distilled student),
    optionally quantized to int8. Its name is also its file name in the output folder."""

    name: str
    base: str
    """"fp32" (the parent itself), "prune" or "distill"."""
    method: str | None = None
    """prune: the `dlcli prune --method` name."""
    amount: float | None = None
    int8: bool = False

    @property
    def base_name(self) -> str:
        """The name of the fp32 model this variant is (or is quantized from)."""
        return REFERENCE if self.name == "int8" else self.name.removesuffix("-int8")


def parse_variant(text: str) -> Variant:
    name = text.strip().lower()
    if name == "fp32":
        return Variant("fp32", "fp32")
    if name == "int8":
        return Variant("int8", "fp32", int8=True)
    int8 = name.endswith("-int8")
    base = name.removesuffix("-int8")
    if base == "distilled":
        return Variant(name, "distill", int8=int8)
    found = _PRUNED.match(base)
    if found and 0 < int(found.group(2)) < 100:
        return Variant(name, "prune", PRUNE_METHODS[found.group(1)], int(found.group(2)) / 100, int8)
    raise UsageError(f"unknown variant {text.strip()!r}; variants are {VARIANT_FORMS}, e.g. "
                     f"--variants {','.join(DEFAULT_VARIANTS)}.")


def parse_variants(names: Sequence[str]) -> list[Variant]:
    """The variants asked for, the reference first and always, duplicates dropped, order kept."""
    parsed = [parse_variant(n) for n in names if n.strip()]
    seen: dict[str, Variant] = {REFERENCE: Variant(REFERENCE, "fp32")}
    for variant in parsed:
        seen.setdefault(variant.name, variant)
    return list(seen.values())


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Gates:
    """Limits a shippable variant must meet; None: no limit."""

    max_accuracy_drop: float | None = option(
        None, help="Gate: at most X percentage points below the parent's test accuracy.")
    max_latency_ms: float | None = option(None, help="Gate: p50 latency at --latency-batch of at most X ms.")
    max_size_mb: float | None = option(None, help="Gate: file size of at most X MB (10^6 bytes).")

    def __post_init__(self) -> None:
        for flag, value in (("--max-accuracy-drop", self.max_accuracy_drop), ("--max-latency-ms", self.max_latency_ms),
                            ("--max-size-mb", self.max_size_mb)):
            if value is not None and value < 0:
                raise UsageError(f"{flag} cannot be negative, got {value}.")

    def to_dict(self) -> dict[str, float | None]:
        return {"max_accuracy_drop": self.max_accuracy_drop, "max_latency_ms": self.max_latency_ms,
                "max_size_mb": self.max_size_mb}


def gate_failures(drop_pp: float | None, latency_ms: float, size_bytes: int, gates: Gates) -> list[str]:
    """Why a variant fails the gates (empty: it passes). A variant whose accuracy could not be
    measured fails an accuracy gate rather than passing it unseen."""
    failures = []
    if gates.max_accuracy_drop is not None and (drop_pp is None or drop_pp > gates.max_accuracy_drop):
        found = "unknown" if drop_pp is None else f"{drop_pp:.2f}"
        failures.append(f"drop {found} pp > {gates.max_accuracy_drop:g}")
    if gates.max_latency_ms is not None and latency_ms > gates.max_latency_ms:
        failures.append(f"latency {latency_ms:.3g} ms > {gates.max_latency_ms:g}")
    if gates.max_size_mb is not None and size_bytes / 1e6 > gates.max_size_mb:
        failures.append(f"size {size_bytes / 1e6:.3g} MB > {gates.max_size_mb:g}")
    return failures


@dataclass(frozen=True)
class Point:
    """A variant as the frontier sees it: accuracy (higher is better), latency and size (lower)."""

    accuracy: float
    latency_ms: float
    size_bytes: int

    def dominates(self, other: Point) -> bool:
        """At least as good in every objective and strictly better in one."""
        at_least = (self.accuracy >= other.accuracy and self.latency_ms <= other.latency_ms
                    and self.size_bytes <= other.size_bytes)
        better = (self.accuracy > other.accuracy or self.latency_ms < other.latency_ms
                  or self.size_bytes < other.size_bytes)
        return at_least and better


def pareto_flags(points: Sequence[Point]) -> list[bool]:
    """True for each point no other point dominates (identical points are all kept). O(n^2): a
    frontier has a handful of variants."""
    return [not any(other.dominates(p) for other in points) for p in points]


def pick(points: Sequence[Point], passing: Sequence[bool]) -> int | None:
    """The index `--pick` returns: the highest accuracy among passing variants, ties broken by the
    lower latency, then the smaller file, then the order given; None when nothing passes."""
    candidates = [i for i, ok in enumerate(passing) if ok]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (-points[i].accuracy, points[i].latency_ms, points[i].size_bytes, i))


def student_args(model_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The distilled student: the parent's own architecture at about half its width, so it keeps
    what suits the data (input size, patching) and only capacity changes."""
    if "width" in args:
        return {**args, "width": float(args["width"]) / 2}
    if "hidden" in args:
        return {**args, "hidden": [max(1, int(h) // 2) for h in args["hidden"]]}
    if "dim" in args and "heads" in args:
        heads = int(args["heads"])
        return {**args, "dim": max(heads, int(args["dim"]) // 2 // heads * heads)}
    raise UsageError(f"the distilled variant halves the parent's width, and {model_name!r} has no width, hidden "
                     "or dim argument; drop `distilled` from --variants.")


def step_key(action: str, source_sha256: str, options: dict[str, Any]) -> str:
    """What identifies a built artifact: the step, its input's sha256 and every option that shapes it."""
    text = json.dumps({"action": action, "source_sha256": source_sha256, "options": options}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def reusable(entry: dict[str, Any] | None, key: str, current_sha256: str | None) -> bool:
    """An artifact is reused when the manifest recorded this exact step (same input hash and options)
    and the file is still the one it wrote (its sha256 unchanged; None: the file is missing)."""
    return bool(entry) and entry.get("key") == key and current_sha256 is not None \
        and entry.get("sha256") == current_sha256
