"""Every command's result is a `CommandResult`: its `to_json()` keys, in order, are the documented
`--json` contract. Built from placeholder values, so no work runs; the end-to-end tests check the
values (test_contract_compress, test_options, test_cli)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dlcli.workflows import (
    benchmark,
    compare,
    distill,
    evaluate,
    export,
    finetune,
    frontier,
    inspect,
    prune,
    quantize,
    train,
)
from dlcli.workflows.result import CommandResult

SHARED = ["command", "artifact", "metrics", "device", "seconds"]
CONTRACT: list[tuple[type[CommandResult], list[str]]] = [
    (train.TrainResult, ["run_dir", "stopped_early"]),
    (finetune.FinetuneResult, ["run_dir", "stopped_early", "parent"]),
    (distill.DistillResult, ["run_dir", "baseline_artifact"]),
    (prune.PruneResult, ["parent", "run_dir", "pruning"]),
    (evaluate.EvalResult, ["checkpoint", "data", "runtime", "per_class", "confusion_matrix", "plot"]),
    (export.ExportResult, ["checkpoint", "format", "exporter", "verification", "params", "size_bytes", "sha256"]),
    (quantize.QuantizeResult, ["source", "method", "quantization", "data", "slower_than_fp32", "fp32_activations",
                               "threads", "layers"]),
    (benchmark.BenchmarkResult, ["rows", "environment", "method", "csv", "plot"]),
    (inspect.InfoResult, ["path", "format", "opset"]),  # with details {"format": ..., "opset": ...}
    (inspect.ModelsResult, ["models"]),
    (inspect.DatasetsResult, ["datasets", "cache_dir"]),
    (compare.CompareResult, ["artifacts", "config_differences"]),
    (frontier.FrontierResult, ["parent", "out", "pick", "pick_variant", "gates", "latency_batch", "threads",
                               "method", "environment", "files", "variants"]),
]


def placeholder(cls: type[CommandResult]) -> CommandResult:
    """An instance with a non-None value in every field (`details` holds two keys, as info's would)."""
    values: dict[str, Any] = {f.name: 1 for f in dataclasses.fields(cls)}
    if "details" in values:
        values["details"] = {"format": "onnx", "opset": 18}
    return cls(**values)


@pytest.mark.parametrize(("cls", "own"), CONTRACT, ids=lambda c: getattr(c, "__name__", ""))
def test_to_json_keys_are_the_documented_contract(cls: type[CommandResult], own: list[str]) -> None:
    payload = placeholder(cls).to_json()
    assert list(payload) == SHARED + own
    assert payload["command"] == cls.command != ""


def test_markers_leave_out_none_and_python_only_fields() -> None:
    evaluated = evaluate.EvalResult(None, {}, "cpu", 1.0, "a.pt", "mnist")  # runtime and plot unset: omitted
    assert "runtime" not in evaluated.to_json() and "plot" not in evaluated.to_json()
    found = placeholder(quantize.QuantizeResult)
    assert found.found == 1 and "found" not in found.to_json()  # the Comparison: Python callers only
    with pytest.raises(TypeError):  # a not_in_json field is still required
        quantize.QuantizeResult(None, {}, "cpu", 0.0, "a.pt", "static", {}, None, [], [], 1, [])


@pytest.mark.parametrize("value, text", [(-0.0, "+0.00"), (-0.001, "+0.00"), (0.004, "+0.00"), (-0.3, "-0.30"),
                                         (1.234, "+1.23")])
def test_signed_figures_never_read_minus_zero(value: float, text: str) -> None:
    """quantize's and frontier's accuracy change: a drop that rounds to nothing reads +0.00."""
    from dlcli.console import signed

    assert signed(value) == text
