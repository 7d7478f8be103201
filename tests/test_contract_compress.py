"""The typed contract of export, quantize, benchmark, info, models, datasets, compare and predict:
`run(XConfig, console) -> XResult`. The CLI builds the config the options say (checked here without
running the work), configs are frozen, and each result's `to_json()` has the documented keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from dlcli.checkpoint import Checkpoint, save_checkpoint
from dlcli.console import Console
from dlcli.models import create_model
from dlcli.workflows import benchmark, compare, export, inspect, predict, quantize

SHARED = {"command", "artifact", "metrics", "device", "seconds"}
CONFIGS = [
    export.ExportConfig(Path("a.pt")),
    quantize.QuantizeConfig(Path("a.pt")),
    benchmark.BenchmarkConfig((Path("a.onnx"),)),
    inspect.InfoConfig(Path("a.pt")),
    inspect.ModelsConfig(),
    inspect.DatasetsConfig(),
    compare.CompareConfig((Path("a.pt"),)),
    predict.PredictConfig(Path("a.pt"), (Path("x.png"),)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_configs_are_frozen(config: Any) -> None:
    first = dataclasses.fields(config)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, first, None)


class Captured:
    """Stands in for a workflow's `run`: records the config the CLI built, returns a minimal result."""

    def __init__(self) -> None:
        self.config: Any = None

    def __call__(self, config: Any, console: Console) -> Any:
        self.config = config
        return self

    def to_json(self) -> dict[str, Any]:
        return {"command": "captured", "artifact": None}


@pytest.mark.parametrize(("module", "args", "expected"), [
    (export, ["export", "m.pt", "--out", "x.onnx", "--static-batch", "--opset", "17", "--atol", "0.01"],
     export.ExportConfig(Path("m.pt"), Path("x.onnx"), opset=17, dynamic_batch=False, atol=0.01)),
    (quantize, ["quantize", "m.pt", "--method", "dynamic", "--exclude", "Gemm", "--exclude", "MatMul",
                "--calibration", "entropy", "--per-tensor", "--no-reduce-range", "--iters", "7"],
     quantize.QuantizeConfig(Path("m.pt"), method="dynamic", exclude=("Gemm", "MatMul"), calibration="entropy",
                             per_channel=False, reduce_range=False, iters=7)),
    (benchmark, ["benchmark", "a.pt", "b.onnx", "-b", "1,8", "--rounds", "2", "--device", "cpu"],
     benchmark.BenchmarkConfig((Path("a.pt"), Path("b.onnx")), (1, 8), rounds=2, device="cpu")),
    (inspect, ["info", "m.onnx"], inspect.InfoConfig(Path("m.onnx"))),
    (compare, ["compare", "a", "b.onnx", "--all-config"], compare.CompareConfig((Path("a"), Path("b.onnx")), True)),
])
def test_the_cli_builds_the_config_the_options_say(
    cli, monkeypatch: pytest.MonkeyPatch, module: Any, args: list[str], expected: Any
) -> None:
    captured = Captured()
    monkeypatch.setattr(module, "run", captured)
    result = cli(*args, "--json")
    assert result.code == 0, result.err
    assert captured.config == expected
    assert result.json() == {"command": "captured", "artifact": None}  # what run returned, printed as is


def test_quantize_choices_are_the_quantizer_names(cli) -> None:
    from dlcli.compress import quantization

    text = cli("quantize", "--help").out
    assert f"<{'|'.join(quantization.METHODS)}>" in text and f"<{'|'.join(quantization.CALIBRATIONS)}>" in text
    assert cli("quantize", "m.pt", "--method", "statik").code == 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> export.ExportResult:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("contract")
    args = {"channels": [4, 8]}
    model = create_model("cnn", (1, 28, 28), 10, [0.13], [0.31], args)
    ckpt = save_checkpoint(Checkpoint("cnn", args, model.state_dict(), [str(i) for i in range(10)], [1, 28, 28],
                                      [0.13], [0.31], "mnist-sample"), folder / "best.pt")
    return export.run(export.ExportConfig(ckpt), Console(quiet=True))


@pytest.mark.slow  # an export and a benchmark: the end-to-end tier
def test_export_result(exported: export.ExportResult) -> None:
    payload = exported.to_json()
    assert set(payload) == SHARED | {"checkpoint", "format", "exporter", "verification", "params", "size_bytes",
                                     "sha256"}
    assert payload["metrics"]["size_bytes"] == Path(exported.artifact).stat().st_size == payload["size_bytes"]
    assert payload["metrics"]["max_abs_diff"] == exported.parity.max_abs_diff <= exported.parity.atol


@pytest.mark.slow
def test_benchmark_info_and_compare_results(exported: export.ExportResult) -> None:
    onnx_path, ckpt = Path(exported.artifact), Path(exported.checkpoint)
    bench = benchmark.run(benchmark.BenchmarkConfig((ckpt, onnx_path), (2,), warmup=0, iters=2), Console(quiet=True))
    assert set(bench.to_json()) == SHARED | {"rows", "environment", "method", "csv", "plot"}
    assert set(bench.metrics) == {"best.pt:p50_ms_b2", "best.pt:throughput_b2", "best.onnx:p50_ms_b2",
                                  "best.onnx:throughput_b2", "best.onnx:speedup_b2"}
    info = inspect.run(inspect.InfoConfig(onnx_path), Console(quiet=True)).to_json()
    assert {"path", "format", "precision", "params", "opset", "inputs", "outputs", "lineage"} <= set(info)
    assert info["metrics"] == {} and info["lineage"][-1]["step"] == "export"
    found = compare.run(compare.CompareConfig((ckpt, onnx_path)), Console(quiet=True))
    assert set(found.to_json()) == SHARED | {"artifacts", "config_differences"}
    run_label = ckpt.parent.name  # a best.pt is labelled by its run folder, as in the table
    assert found.metrics == {f"{run_label}:size_bytes": ckpt.stat().st_size,
                             "best.onnx:size_bytes": exported.size_bytes}
