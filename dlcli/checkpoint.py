"""The one artifact format: a `.pt` file holding only tensors and plain data.

Self-describing, so every later command needs only the path: format version, model name and
constructor arguments, class names, input shape, normalization, metrics, the resolved config and a
lineage list. Loading always uses `torch.load(weights_only=True)`, which refuses anything but
tensors and plain containers, so opening a checkpoint never runs code from it. Writes go to a
temporary file in the same folder and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcli import __version__
from dlcli.errors import InputFileError, UsageError
from dlcli.runs import atomic_write
from dlcli.validation import Range, coerce

FORMAT = "dlcli.checkpoint"
# Refuse to load models above this many parameter and buffer values (8 GiB of float32): far above
# anything dlcli trains, and the weights must be in the file anyway.
MAX_ELEMENTS = 1 << 31
FORMAT_VERSION = 1


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give a model built on the meta device the stored weights, strictly, on the CPU.

    The stored tensors replace the meta ones (assign=True), as copies in the model's dtypes, rather
    than `to_empty` then copying in: `empty_like` on meta tensors runs PyTorch's Python reference
    kernels, whose first call imports sympy (0.7 s of a 10 s training run). Names that share one
    tensor in the model (tied weights, possible in a plugin) get one shared copy, so they stay tied
    (`to_empty` gave each module its own), unless the file holds different values for them (saved
    from such an untied copy): then each keeps its own.
    """
    targets = model.state_dict(keep_vars=True)
    shared: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(model's tensor) -> (stored, copy)
    weights = {}
    for name, tensor in state.items():
        target = targets.get(name)
        if target is None:  # unexpected: load_state_dict names it
            weights[name] = tensor
            continue
        first = shared.get(id(target))
        if first is not None and torch.equal(first[0], tensor):
            weights[name] = first[1]
            continue
        copy = tensor.to(device="cpu", dtype=target.dtype, copy=True)
        if isinstance(target, nn.Parameter):
            copy = nn.Parameter(copy, requires_grad=target.requires_grad)
        shared.setdefault(id(target), (tensor, copy))
        weights[name] = copy
    model.load_state_dict(weights, strict=True, assign=True)
    missing = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:  # a buffer kept out of state_dict (persistent=False) has no stored value to take
        raise InputFileError(f"model {type(model).__name__} holds tensors its checkpoint cannot restore "
                             f"({', '.join(missing[:3])}): non-persistent buffers are not supported")


@dataclass
class Checkpoint:
    model_name: str
    model_args: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    input_shape: list[int]
    mean: list[float]
    std: list[float]
    dataset: str
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    dlcli_version: str = __version__
    training_state: dict[str, Any] = field(default_factory=dict)
    """last.pt only: optimizer, schedule position, RNG states and loop progress for --resume
    (dlcli.engine.state); empty in best.pt and derived artifacts, which hold weights only."""

    def build_model(self) -> nn.Module:
        """Rebuild the model from its name and arguments and load the weights (strictly).

        The model is first built on the meta device (no memory), so a checkpoint whose arguments
        describe a bigger model than its weights (a crafted `channels=[10**9]`) is refused before
        anything is allocated. Stored shapes may differ from the arguments' only when the checkpoint
        records structured pruning; otherwise the first differing tensor is named (exit 2).
        """
        from dlcli.models import create_model
        from dlcli.models.reshape import match_state_dict_shapes

        try:
            with torch.device("meta"):
                model = create_model(self.model_name, self.input_shape, len(self.classes), self.mean, self.std,
                                     self.model_args)
        except UsageError as exc:
            raise InputFileError(f"checkpoint records an invalid model: {exc}") from None
        if self.records_structured_pruning:
            match_state_dict_shapes(model, self.state_dict)
        self._check_fits(model)
        try:
            _load_weights(model, self.state_dict)
        except RuntimeError as exc:
            raise InputFileError(f"checkpoint weights do not fit model {self.model_name!r}: {exc}") from None
        return model

    @property
    def records_structured_pruning(self) -> bool:
        """Whether channel pruning changed this model's shapes (a `prune` lineage step or pruning
        record with method channel): only then may stored shapes override the constructor arguments."""
        records = [*self.lineage, self.extra.get("pruning")]
        return any(isinstance(r, dict) and r.get("method") == "channel" and r.get("step", "prune") == "prune"
                   for r in records)

    def _check_fits(self, model: nn.Module) -> None:
        """Same tensor names and shapes as the (meta) model, and a sane total size; else one line."""
        expected = model.state_dict()
        for name, tensor in expected.items():
            stored = self.state_dict.get(name)
            if stored is None:
                raise InputFileError(f"checkpoint has no tensor {name!r} that model {self.model_name!r} "
                                     f"{self.model_args} needs.")
            if tuple(stored.shape) != tuple(tensor.shape):
                raise InputFileError(
                    f"checkpoint tensor {name!r} has shape {list(stored.shape)} but model {self.model_name!r} with "
                    f"its recorded arguments {self.model_args} needs {list(tensor.shape)} (only channel-pruned "
                    "checkpoints may differ).")
        extra = sorted(set(self.state_dict) - set(expected))
        if extra:
            raise InputFileError(f"checkpoint tensor {extra[0]!r} is not part of model {self.model_name!r}.")
        total = sum(t.numel() for t in expected.values())
        if total > MAX_ELEMENTS:
            raise InputFileError(f"checkpoint describes a model of {total:,} values; dlcli loads at most "
                                 f"{MAX_ELEMENTS:,}.")

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def derived_checkpoint(parent: Checkpoint, state_dict: dict[str, torch.Tensor], **changes: Any) -> Checkpoint:
    """A checkpoint made from `parent` by a later step (pruning, its recovery): the parent's architecture,
    classes and normalization with new weights and the given changes (dataset, metrics, config, lineage,
    extra); never the parent's training state, and this dlcli's version."""
    return dataclasses.replace(parent, state_dict=state_dict, training_state={}, dlcli_version=__version__,
                               **changes)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lineage_entry(step: str, source: str | Path | None = None, **details: Any) -> dict[str, Any]:
    """One step of an artifact's history; `source` is hashed so a parent can be identified later."""
    entry: dict[str, Any] = {"step": step, "time": now(), "dlcli_version": __version__}
    if source is not None:
        entry["source"] = str(source)
        entry["source_sha256"] = file_sha256(source)
    entry.update(details)
    return entry


def lineage_rows(lineage: list[dict[str, Any]]) -> list[list[Any]]:
    """The lineage as table rows (step, time, the step's other details), for `info` and `compare`."""
    return [[e.get("step"), e.get("time"), {k: v for k, v in e.items() if k not in ("step", "time")}]
            for e in lineage]


def _payload(ckpt: Checkpoint) -> dict[str, Any]:
    data = asdict(ckpt)
    state = {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()}
    data["state_dict"] = state
    data["format"] = FORMAT
    data["format_version"] = FORMAT_VERSION
    return data


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    payload = _payload(ckpt)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a dlcli checkpoint; every failure is one clear line (InputFileError)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise InputFileError(f"{path} is a folder; give a checkpoint file such as {path / 'best.pt'}")
    if path.suffix.lower() == ".onnx":
        raise InputFileError(f"{path} is an ONNX file; this command needs a .pt checkpoint.")
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"{path} is not a readable checkpoint (corrupt, truncated or not a .pt file).")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise InputFileError(
            f"{path} is not a safe dlcli checkpoint: refused to load Python objects{what}; "
            "dlcli checkpoints hold only tensors and plain data."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{path} is not a readable checkpoint (corrupt or truncated): {first}") from None
    return _from_payload(path, data)


def written_by(path: str | Path) -> str | None:
    """The dlcli step that wrote an existing checkpoint (its last lineage step: train, finetune,
    prune ...); None for a file that is not a dlcli checkpoint."""
    try:
        ckpt = load_checkpoint(path)
    except InputFileError:
        return None
    last = ckpt.lineage[-1] if ckpt.lineage else {}
    return str(last.get("step") or "train")


def _from_payload(path: Path, data: Any) -> Checkpoint:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputFileError(f"{path} is a PyTorch file but not a dlcli checkpoint (no '{FORMAT}' header).")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputFileError(
            f"{path} has checkpoint format version {version}; this dlcli reads up to {FORMAT_VERSION}. "
            "Upgrade dlcli."
        )
    names = {f for f in Checkpoint.__dataclass_fields__}
    try:
        ckpt = Checkpoint(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise InputFileError(f"{path} is an incomplete dlcli checkpoint: {exc}") from None
    _check_fields(path, ckpt)
    return ckpt


# The type of each recorded field a later command relies on, checked on load so a crafted or
# damaged file fails as one line naming the field (exit 2), not as a TypeError deep inside a command.
_FIELD_TYPES: dict[str, Any] = {
    "model_name": str, "model_args": dict[str, Any], "classes": list[str], "input_shape": list[int],
    "mean": list[float], "std": list[float], "dataset": str | None, "metrics": dict[str, Any],
    "config": dict[str, Any], "lineage": list[dict[str, Any]], "extra": dict[str, Any],
}


def _check_fields(path: Path, ckpt: Checkpoint) -> None:
    try:
        for name, hint in _FIELD_TYPES.items():
            bounds = Range(ge=1, le=1 << 16, min_items=1) if name == "input_shape" else None
            bounds = Range(min_items=1) if name == "classes" else bounds
            setattr(ckpt, name, coerce(f"field {name}", getattr(ckpt, name), hint, bounds))
        if len(ckpt.mean) != ckpt.input_shape[0] or len(ckpt.std) != ckpt.input_shape[0]:
            raise UsageError("fields mean and std must have one value per input channel.")
        if not isinstance(ckpt.state_dict, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt.state_dict.items()):
            raise UsageError("field state_dict must map names to tensors.")
    except UsageError as exc:
        raise InputFileError(f"{path} is a damaged dlcli checkpoint: {exc}") from None
