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
from dlcli.config import DATA_HELP, TrainConfig, field_help, shown_default
from dlcli.console import Console
from dlcli.models import create_model
from dlcli.workflows import benchmark, compare, export, inspect, predict, quantize
from dlcli.workflows.benchmark_config import BenchmarkConfig
from dlcli.workflows.export_config import ExportConfig
from dlcli.workflows.frontier_config import FrontierConfig
from dlcli.workflows.frontier_rules import Gates
from dlcli.workflows.quantize_config import QuantizeConfig

SHARED = {"command", "artifact", "metrics", "device", "seconds"}
CONFIGS = [
    ExportConfig(Path("a.pt")),
    QuantizeConfig(Path("a.pt")),
    BenchmarkConfig((Path("a.onnx"),)),
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
     ExportConfig(Path("m.pt"), Path("x.onnx"), opset=17, dynamic_batch=False, atol=0.01)),
    (quantize, ["quantize", "m.pt", "--method", "dynamic", "--exclude", "Gemm", "--exclude", "MatMul",
                "--calibration", "entropy", "--per-tensor", "--no-reduce-range", "--iters", "7"],
     QuantizeConfig(Path("m.pt"), method="dynamic", exclude=("Gemm", "MatMul"), calibration="entropy",
                             per_channel=False, reduce_range=False, iters=7)),
    (benchmark, ["benchmark", "a.pt", "b.onnx", "-b", "1,8", "--rounds", "2", "--device", "cpu"],
     BenchmarkConfig((Path("a.pt"), Path("b.onnx")), (1, 8), rounds=2, device="cpu")),
    (export, ["export", "m.pt"], ExportConfig(Path("m.pt"))),  # no option given: the config's defaults
    (quantize, ["quantize", "m.pt"], QuantizeConfig(Path("m.pt"))),
    (benchmark, ["benchmark", "a.pt"], BenchmarkConfig((Path("a.pt"),))),
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
    from dlcli.choices import CALIBRATIONS, QUANTIZE_METHODS
    from dlcli.compress import quantization

    assert tuple(quantization._CALIBRATORS) == CALIBRATIONS  # the quantizer knows exactly the offered names
    text = cli("quantize", "--help").out
    assert f"<{'|'.join(QUANTIZE_METHODS)}>" in text and f"<{'|'.join(CALIBRATIONS)}>" in text
    assert cli("quantize", "m.pt", "--method", "statik").code == 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> export.ExportResult:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("contract")
    args = {"channels": [4, 8]}
    model = create_model("cnn", (1, 28, 28), 10, [0.13], [0.31], args)
    ckpt = save_checkpoint(Checkpoint("cnn", args, model.state_dict(), [str(i) for i in range(10)], [1, 28, 28],
                                      [0.13], [0.31], "mnist-sample"), folder / "best.pt")
    return export.run(ExportConfig(ckpt), Console(quiet=True))


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
    bench = benchmark.run(BenchmarkConfig((ckpt, onnx_path), (2,), warmup=0, iters=2), Console(quiet=True))
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


@pytest.mark.parametrize(("args", "expected"), [
    ([], {}),
    (["--variants", "int8", "--recover-epochs", "0", "--seed", "3", "--latency-batch", "1", "--iters", "5",
      "--rounds", "2", "--threads", "1", "--max-size-mb", "0.5", "-v", "-o", "f"],
     {"variants": ("int8",), "recover_epochs": 0, "seed": 3, "latency_batch": 1, "iters": 5, "rounds": 2,
      "threads": 1, "gates": Gates(max_size_mb=0.5), "verbose": True, "out": Path("f")}),
])
def test_frontier_builds_the_config_the_options_say(
    cli, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: dict[str, Any]
) -> None:
    from dlcli.cli import frontier as frontier_cli
    from dlcli.workflows import frontier

    captured = Captured()
    monkeypatch.setattr(frontier, "run", captured)
    monkeypatch.setattr(frontier_cli, "report", lambda *_: None)
    assert cli("frontier", "m.pt", *args).code == 0
    assert captured.config == FrontierConfig(Path("m.pt"), **expected)


def declared_options() -> list[tuple[str, str, type, str]]:
    """(command, parameter, config class, field) for every option a command takes from a config field."""
    fields = {"export": [ExportConfig], "quantize": [QuantizeConfig], "benchmark": [BenchmarkConfig],
              "frontier": [FrontierConfig, Gates], "eval": [], "predict": [], "info": [], "train": [],
              "finetune": [], "distill": [], "prune": []}
    renamed = {("benchmark", "batch_size"): "batch_sizes"}
    rows = []
    for command, params in command_params().items():
        for param in params:
            name = renamed.get((command, param.name), param.name)
            owner = next((c for c in fields.get(command, []) if name in {f.name for f in dataclasses.fields(c)}
                          and field_help(c, name)), None)
            if owner is None and name in ("device", "data_dir", "threads", "resume") and command not in (
                    "benchmark", "quantize", "frontier"):
                owner = TrainConfig  # the shared aliases: TrainConfig declares them
            if owner is not None:
                rows.append((command, param.name, owner, name))
    return rows


def command_params() -> dict[str, list[Any]]:
    import typer

    from dlcli.cli import app

    return {name: cmd.params for name, cmd in typer.main.get_command(app).commands.items()}


def test_options_take_help_and_default_from_one_declaration() -> None:
    """Each option declared by a config field shows that field's help and shown default, and is None
    unless given, so the config's default is the only one."""
    rows = declared_options()
    assert {(c, p) for c, p, *_ in rows} >= {("export", "atol"), ("quantize", "calib_samples"),
                                              ("benchmark", "warmup"), ("frontier", "max_size_mb"),
                                              ("eval", "device"), ("train", "threads"), ("train", "resume")}
    params = {(command, p.name): p for command, ps in command_params().items() for p in ps}
    for command, name, owner, field in rows:
        param = params[(command, name)]
        assert param.help == field_help(owner, field), (command, name)
        assert param.show_default == (shown_default(owner, field) or False), (command, name)
        assert param.default is None, (command, name)
    for command in ("eval", "benchmark", "quantize", "frontier", "train"):
        assert params[(command, "data")].help.startswith(DATA_HELP)
