"""ONNX export: every registered model exports and verifies; broken exports are caught and leave
nothing behind; .onnx files evaluate like their checkpoints; bad .onnx inputs fail with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from dlcli.checkpoint import Checkpoint, file_sha256, load_checkpoint, save_checkpoint
from dlcli.console import Console
from dlcli.errors import WorkError
from dlcli.export import onnx_export
from dlcli.export.metadata import read_metadata
from dlcli.export.runtime import ort_session
from dlcli.export.verify import check_model_file, compare_outputs, parity_inputs, random_inputs
from dlcli.models import MODELS, create_model
from dlcli.runs import record_latest
from dlcli.workflows import export
from dlcli.workflows.export_config import DEFAULT_ATOL, ExportConfig

SMALL_ARGS = {"mlp": {"hidden": [16]}, "cnn": {"channels": [4, 8]}, "resnet": {"depth": 8, "width": 0.5},
              "vit": {"dim": 16, "depth": 1, "heads": 2}}


def make_checkpoint(path: Path, name: str = "cnn", shape: tuple[int, ...] = (1, 28, 28),
                    dataset: str = "mnist-sample") -> Path:
    torch.manual_seed(0)
    model = create_model(name, shape, 10, [0.13] * shape[0], [0.31] * shape[0], SMALL_ARGS.get(name))
    ckpt = Checkpoint(name, SMALL_ARGS.get(name, {}), model.state_dict(), [str(i) for i in range(10)], list(shape),
                      [0.13] * shape[0], [0.31] * shape[0], dataset, metrics={"test_accuracy": 0.5})
    return save_checkpoint(ckpt, path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A small cnn checkpoint on the embedded MNIST sample and its verified export (shared)."""
    folder = tmp_path_factory.mktemp("exported")
    ckpt = make_checkpoint(folder / "best.pt")
    result = export.run(ExportConfig(ckpt), Console(quiet=True)).to_json()
    return ckpt, Path(result["artifact"]), result


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_exports_and_verifies(tmp_path: Path, name: str) -> None:
    ckpt = make_checkpoint(tmp_path / "model.pt", name, (1, 16, 16), dataset="not-a-dataset")  # random inputs
    result = export.run(ExportConfig(ckpt), Console(quiet=True)).to_json()
    out = tmp_path / "model.onnx"
    assert result["artifact"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pt"]  # no external data, no temp
    assert result["metrics"]["max_abs_diff"] <= DEFAULT_ATOL
    assert result["metrics"]["top1_agreement"] == 1.0
    assert {r["batch_size"] for r in result["verification"]["runs"]} == {1, 64}
    assert result["verification"]["inputs"] == "random inputs"
    assert result["exporter"]["name"] == "dynamo"
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis


def test_metadata_describes_the_model(exported: tuple[Path, Path, dict]) -> None:
    ckpt, out, result = exported
    meta = read_metadata(onnx.load(str(out)))
    assert meta["classes"] == [str(i) for i in range(10)]
    assert meta["input_shape"] == [1, 28, 28] and meta["input_layout"] == "NCHW"
    assert meta["input_range"] == [0.0, 1.0]
    assert meta["normalization"] == {"mean": [0.13], "std": [0.31], "in_graph": True}
    assert meta["source_sha256"] == file_sha256(ckpt)
    assert meta["metrics"] == {"test_accuracy": 0.5}
    assert meta["dataset"] == "mnist-sample"
    assert meta["version"] and meta["exporter"]["name"] == "dynamo"
    assert meta["lineage"][-1]["step"] == "export"
    assert result["verification"]["inputs"] == "mnist-sample inputs"  # real data when available


def test_falls_back_to_torchscript_exporter_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(onnx_export, "_export_dynamo", broken)
    ckpt = make_checkpoint(tmp_path / "m.pt")
    result = export.run(ExportConfig(ckpt), Console(quiet=True)).to_json()
    assert result["exporter"]["name"] == "torchscript"
    assert "frobnicate" in result["exporter"]["fallback_reason"]
    meta = read_metadata(onnx.load(result["artifact"]))
    assert meta["exporter"]["fallback_reason"] == result["exporter"]["fallback_reason"]
    assert result["metrics"]["max_abs_diff"] <= DEFAULT_ATOL


def test_old_opset_uses_the_torchscript_exporter(exported: tuple[Path, Path, dict]) -> None:
    ckpt = exported[0]
    model = load_checkpoint(ckpt).build_model()
    result = onnx_export.export_onnx(model, [1, 28, 28], opset=17)
    assert result.exporter == "torchscript" and result.opset == 17
    assert "opset 17" in (result.fallback_reason or "")


def _tamper(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Add 0.5 to the largest float initializer: still valid ONNX, different numbers."""
    tampered = onnx.ModelProto()
    tampered.CopyFrom(proto)
    init = max(tampered.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = onnx.numpy_helper.to_array(init) + np.float32(0.5)
    init.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), init.name))
    return tampered


def test_tampered_initializer_fails_parity(exported: tuple[Path, Path, dict]) -> None:
    ckpt, out, _ = exported
    model = load_checkpoint(ckpt).build_model()
    session = ort_session(_tamper(onnx.load(str(out))).SerializeToString())
    report = compare_outputs(model, session, parity_inputs(random_inputs([1, 28, 28], 68), True), DEFAULT_ATOL)
    assert not report.passed and report.max_abs_diff > DEFAULT_ATOL


@pytest.mark.slow
def test_failed_verification_fails_the_command_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    real_export = onnx_export.export_onnx

    def tampered_export(*args: object, **kwargs: object) -> onnx_export.ExportedModel:
        result = real_export(*args, **kwargs)
        result.proto = _tamper(result.proto)
        return result

    monkeypatch.setattr(export, "export_onnx", tampered_export)
    ckpt = make_checkpoint(tmp_path / "m.pt")
    result = cli("export", ckpt, "--onnx", "-q")
    assert result.code == 1
    assert result.err.startswith("error: ONNX verification failed") and result.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_corrupted_file_fails_the_checker(exported: tuple[Path, Path, dict], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported[1].read_bytes()[:2000])
    with pytest.raises(WorkError, match="ONNX checker"):
        check_model_file(truncated)
    broken = onnx.load(str(exported[1]))
    broken.graph.node[0].input[0] = "no_such_tensor"  # a dangling edge
    onnx.save_model(broken, tmp_path / "dangling.onnx")
    with pytest.raises(WorkError, match="ONNX checker"):
        check_model_file(tmp_path / "dangling.onnx")


@pytest.mark.slow
def test_cli_exports_latest_checkpoint_with_json(tmp_path: Path, cli) -> None:
    ckpt = make_checkpoint(tmp_path / "runs" / "train" / "exp" / "best.pt")
    record_latest(ckpt)
    result = cli("export", "--onnx", "--json", "--static-batch")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "export" and payload["artifact"] == str(ckpt.with_suffix(".onnx"))
    dim = onnx.load(payload["artifact"]).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 1  # --static-batch: compared over several batch-1 runs instead
    runs = payload["verification"]["runs"]
    assert len(runs) > 1 and {r["batch_size"] for r in runs} == {1}
    assert {"max_abs_diff", "top1_agreement"} <= set(payload["metrics"])
    assert {"device", "seconds"} <= set(payload)
    again = cli("export", ckpt, "-q")  # our own file: overwritten without --force
    assert again.code == 0 and again.out.strip() == str(ckpt.with_suffix(".onnx"))


def test_too_old_opset_is_bad_input(tmp_path: Path, cli) -> None:
    ckpt = make_checkpoint(tmp_path / "m.pt")
    result = cli("export", ckpt, "--opset", "5")
    assert result.code == 2 and result.err.strip() == (
        "error: --opset 5 is older than dlcli exports to (at least 9; the default is the exporter's own, "
        "currently 18 or newer).")
    assert not (tmp_path / "m.onnx").exists()


def test_export_refuses_to_overwrite_a_foreign_file(tmp_path: Path, cli) -> None:
    ckpt = make_checkpoint(tmp_path / "m.pt")
    foreign = tmp_path / "m.onnx"
    foreign.write_text("not ours")
    result = cli("export", ckpt)
    assert result.code == 2 and "--force" in result.err
    assert foreign.read_text() == "not ours"


def test_eval_onnx_matches_checkpoint(exported: tuple[Path, Path, dict], cli) -> None:
    ckpt, out, _ = exported
    from_onnx = cli("eval", out, "--json")  # data defaults to the dataset in the metadata
    from_pt = cli("eval", ckpt, "--json", "--device", "cpu")
    assert from_onnx.code == 0 and from_pt.code == 0, from_onnx.err + from_pt.err
    a, b = from_onnx.json()["metrics"], from_pt.json()["metrics"]
    assert a["samples"] == b["samples"] == 1000
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-3)
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="this onnxruntime can run on CUDA")
def test_eval_onnx_on_cuda_without_cuda_runtime_is_refused(exported: tuple[Path, Path, dict], cli) -> None:
    result = cli("eval", exported[1], "--device", "cuda")
    assert result.code != 0 and result.err.count("\n") == 1, result.err
    assert "CUDAExecutionProvider" in result.err
    assert cli("eval", exported[1], "--json", "--device", "cpu").json()["device"] == "cpu"


def test_onnxruntime_providers_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from dlcli.errors import DeviceError, UsageError
    from dlcli.export import runtime

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.providers_for("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert runtime.providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert runtime.providers_for("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(UsageError):
        runtime.providers_for("cuda:first")

    class CpuFallback:  # what onnxruntime-gpu hands back when its CUDA libraries fail to load
        def get_providers(self) -> list[str]:
            return ["CPUExecutionProvider"]

    with pytest.raises(DeviceError, match="could not start its CUDA provider"):
        runtime._require_cuda(CpuFallback(), "cuda")
    runtime._require_cuda(CpuFallback(), "auto")  # auto may run on CPU
    assert runtime.session_device(CpuFallback()) == "cpu"


def test_info_describes_onnx(exported: tuple[Path, Path, dict], cli) -> None:
    result = cli("info", exported[1], "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["model"] == "cnn" and payload["input_shape"] == [1, 28, 28]
    assert payload["inputs"][0]["name"] == "input" and payload["params"] > 0


@pytest.mark.parametrize("command", ["eval", "benchmark"])
@pytest.mark.parametrize("kind", ["truncated", "text", "missing"])
def test_bad_onnx_files_give_one_line_and_exit_2(
    exported: tuple[Path, Path, dict], tmp_path: Path, cli, command: str, kind: str
) -> None:
    path = tmp_path / "bad.onnx"
    if kind == "truncated":
        path.write_bytes(exported[1].read_bytes()[:3000])
    elif kind == "text":
        path.write_text(json.dumps({"hello": "world"}))
    result = cli(command, path, "--data", "mnist-sample")
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert "bad.onnx" in result.err
