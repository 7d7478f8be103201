"""`dlcli quantize` and `dlcli.compress.quantization`: the calibration data, the graph rewrites (exact),
static and dynamic end to end on tiny models trained on the embedded MNIST sample, the artifact's
metadata, its use by `dlcli eval`/`benchmark`, and the failure modes (no timing assertions)."""

from __future__ import annotations

import contextlib
import io
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FAST_TRAIN
from onnx import helper

from dlcli.checkpoint import file_sha256, load_checkpoint
from dlcli.cli import main
from dlcli.compress import int8_rewrites
from dlcli.compress import quantization as q
from dlcli.data.catalog import load_dataset
from dlcli.errors import UsageError
from dlcli.export.metadata import read_metadata
from dlcli.export.onnx_export import export_onnx
from dlcli.export.runtime import ort_session
from dlcli.measure.environment import cpu_info
from dlcli.models import create_model

FAST = ["--iters", "3", "--calib-samples", "64", "-q"]
METRIC_KEYS = ("accuracy", "accuracy_fp32", "size_bytes", "size_bytes_fp32", "latency_ms_b1", "latency_ms_b1_fp32",
               "latency_ms_b32", "latency_ms_b32_fp32", "speedup_b32")


def _main(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue()


class _Checkpoints(dict):
    """The module's checkpoints by model name; the mlp is trained on first use, since only slow tests
    need it and the fast tier should not pay for its training."""

    def __init__(self, folder: Path, cnn: Path) -> None:
        super().__init__(cnn=cnn)
        self.folder = folder

    def __missing__(self, name: str) -> Path:
        if name != "mlp":
            raise KeyError(name)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DLCLI_RUNS_DIR", str(self.folder / "runs"))
            code, out = _main("train", "-m", "mlp", *FAST_TRAIN, "--out", self.folder / "mlp")
            assert code == 0
        self[name] = Path(out.strip())
        return self[name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, _session_checkpoint: Path) -> dict[str, Path]:
    """The session's tiny cnn (copied: quantize writes next to it) and an mlp trained for one epoch on
    600 sample images (when a test first asks for it), shared by the module's tests."""
    folder = tmp_path_factory.mktemp("quantize")
    cnn = folder / "cnn" / "best.pt"
    cnn.parent.mkdir()
    shutil.copy(_session_checkpoint, cnn)
    return _Checkpoints(folder, cnn)


@pytest.fixture(scope="module")
def static_run(trained: dict[str, Path]) -> dict:
    """`dlcli quantize best.pt --json --report-layers` on the cnn (default: static)."""
    code, out = _main("quantize", trained["cnn"], "--report-layers", "--json", *FAST)
    assert code == 0
    return json.loads(out)


def test_calibration_samples_are_a_seeded_subset_of_train_in_unit_range() -> None:
    train_x = load_dataset("mnist-sample").train.x
    x = q.calibration_samples(train_x, 1 / 255, 100, seed=0)
    assert x.shape == (100, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    assert np.array_equal(x, q.calibration_samples(train_x, 1 / 255, 100, seed=0))
    assert not np.array_equal(x, q.calibration_samples(train_x, 1 / 255, 100, seed=1))
    rows = {r.tobytes() for r in train_x.astype(np.float32) * np.float32(1 / 255)}
    assert all(r.tobytes() in rows for r in x[:10])  # real training images, not synthetic ones
    assert len(q.calibration_samples(train_x[:30], 1 / 255, 512)) == 30  # capped at the split's size
    with pytest.raises(UsageError):
        q.calibration_samples(train_x, 1 / 255, 0)


def test_calibration_reader_feeds_every_sample_in_batches_and_rewinds() -> None:
    x = np.random.default_rng(0).random((150, 1, 28, 28), dtype=np.float32)
    reader = q.ArrayCalibrationReader(x, "input", batch_size=64)
    batches = list(iter(reader.get_next, None))
    assert [b["input"].shape[0] for b in batches] == [64, 64, 22]
    assert np.array_equal(np.concatenate([b["input"] for b in batches]), x)
    assert reader.get_next() is None
    reader.rewind()
    assert reader.get_next()["input"].shape == (64, 1, 28, 28)
    with pytest.raises(UsageError, match="calibration"):
        q.ArrayCalibrationReader(x[:0], "input")


def test_hardware_defaults_reduce_range_only_without_vnni_on_x86() -> None:
    assert q.hardware_defaults(["avx2", "avx512f", "avx512_vnni"], "x86_64")[0] is False
    assert q.hardware_defaults(["avx2", "avx_vnni"], "x86_64")[0] is False
    on, reason = q.hardware_defaults(["avx2", "fma"], "x86_64")
    assert on is True and "VNNI" in reason
    assert q.hardware_defaults(["asimd"], "aarch64")[0] is False


def _fp32_graph(name: str, args: dict) -> onnx.ModelProto:
    model = create_model(name, (1, 28, 28), 10, [0.13], [0.31], args)
    return export_onnx(model, (1, 28, 28)).proto


def _graph(*ops: str) -> onnx.ModelProto:
    nodes = [helper.make_node(op, ["x"], ["x"], name=f"n{i}") for i, op in enumerate(ops)]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, "g", [x], [x]))


def test_default_method_static_for_conv_graphs_dynamic_otherwise() -> None:
    assert q.default_method(_graph("Sub", "Conv", "Relu", "Gemm")) == "static"
    assert q.default_method(_graph("Sub", "Gemm", "Relu", "Gemm")) == "dynamic"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "args"), [("cnn", {"channels": [8, 16]}), ("resnet", {"depth": 8, "width": 0.5})])
def test_int8_rewrites_keep_the_function(name: str, args: dict) -> None:
    """The GlobalAveragePool rewrite, the fp32 stem (cnn: conv-pool-relu) and channel padding (resnet's
    stem has no pool) change the graph, never its outputs."""
    source = q.preprocess(_fp32_graph(name, args))
    rewritten = int8_rewrites.rewrite_for_int8(source)
    ops = [n.op_type for n in rewritten.proto.graph.node]
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    before = ort_session(source.SerializeToString()).run(None, {"input": x})[0]
    after = ort_session(rewritten.proto.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-5)
    convs = [n for n in rewritten.proto.graph.node if n.op_type == "Conv"]
    inits = {t.name: t for t in rewritten.proto.graph.initializer}
    if name == "cnn":
        kinds = {n.name: n.op_type for n in rewritten.proto.graph.node}
        assert [kinds[n] for n in rewritten.fp32_nodes[-3:]] == ["Conv", "MaxPool", "Relu"] and "Pad" not in ops
        assert rewritten.fp32_nodes[-3] == convs[0].name
        assert any("kept fp32" in n for n in rewritten.notes)
    else:
        assert rewritten.fp32_nodes == [] and "Pad" in ops
        assert any("input channels 1 -> 4" in n for n in rewritten.notes)
    for node in convs:  # every int8 Conv has input channels the fast int8 kernels take
        if node.name not in rewritten.fp32_nodes:
            assert inits[node.input[1]].dims[1] % int8_rewrites.ALIGN == 0


@pytest.mark.slow
def test_static_quantize_reports_before_and_after(static_run: dict, trained: dict[str, Path]) -> None:
    r = static_run
    out = trained["cnn"].with_name("best.int8.onnx")
    assert r["command"] == "quantize" and r["artifact"] == str(out) and out.exists()
    assert r["method"] == "static" and r["data"] == "mnist-sample"
    m = r["metrics"]
    assert all(m[k] > 0 for k in METRIC_KEYS) and 0 < m["accuracy"] <= 1  # every figure measured
    assert m["size_bytes"] == out.stat().st_size < 0.6 * m["size_bytes_fp32"]
    assert abs(m["accuracy"] - m["accuracy_fp32"]) < 0.05
    assert m["speedup_b32"] == pytest.approx(m["latency_ms_b32_fp32"] / m["latency_ms_b32"])
    assert r["quantization"]["per_channel"] is True and r["quantization"]["format"] == "QDQ"
    graph_ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= graph_ops


def test_artifact_records_its_lineage(static_run: dict, trained: dict[str, Path]) -> None:
    meta = read_metadata(onnx.load(static_run["artifact"]))
    step = meta["lineage"][-1]
    assert [s["step"] for s in meta["lineage"]][-2:] == ["export", "quantize"]
    assert step["source_sha256"] == meta["source_sha256"] == file_sha256(trained["cnn"])
    assert step["method"] == "static" and step["calibration_set"] == "mnist-sample"
    assert step["calibration_samples"] == 64 and step["calibration_method"] == "minmax"
    on_this_cpu = q.hardware_defaults(cpu_info()["isa"], platform.machine())
    assert step["per_channel"] is True and step["reduce_range"] is on_this_cpu[0]
    assert static_run["quantization"]["reduce_range_reason"] == on_this_cpu[1]
    stem, *others = exported_nodes(trained["cnn"], "Conv")
    assert stem in step["excluded_nodes"] and step["excluded_op_types"] == []  # the fp32 stem ...
    assert not set(others) & set(step["excluded_nodes"])  # ... and no other convolution
    assert meta["quantization"]["calibration"] == {"dataset": "mnist-sample", "split": "train", "samples": 64,
                                                   "seed": 0, "method": "minmax"}
    assert meta["classes"] == [str(i) for i in range(10)] and meta["dataset"] == "mnist-sample"


def test_layer_report_ranks_quantized_tensors(static_run: dict) -> None:
    layers = static_run["layers"]
    graph = onnx.load(static_run["artifact"]).graph
    names = {n.name for n in graph.node}
    lossy = [r for r in layers if r["sqnr_db"] is not None]
    assert lossy and [r["sqnr_db"] for r in lossy] == sorted(r["sqnr_db"] for r in lossy)
    assert all(r["layer"] in names for r in lossy if r["layer"])
    assert any(r["op_type"] == "Relu" and r["layer"] != r["node"] for r in lossy)  # conv + fused relu


def test_int8_artifact_evaluates_and_benchmarks(cli, static_run: dict) -> None:
    artifact = static_run["artifact"]
    ev = cli("eval", artifact, "--json", "-q")
    assert ev.code == 0, ev.err
    assert ev.json()["metrics"]["accuracy"] == pytest.approx(static_run["metrics"]["accuracy"])
    bench = cli("benchmark", artifact, "-b", "1,4", "--warmup", "1", "--iters", "3", "--json", "-q")
    assert bench.code == 0, bench.err
    assert [r["batch_size"] for r in bench.json()["rows"]] == [1, 4]


@pytest.mark.slow
def test_dynamic_quantization_of_an_mlp(cli, trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mlp.int8.onnx"
    r = cli("quantize", trained["mlp"], "--out", out, "--json", "--iters", "3")
    assert r.code == 0, r.err
    assert "method: dynamic (no Conv layers" in r.err and "reduce_range" in r.err  # says what it chose
    result = r.json()
    assert result["method"] == "dynamic" and result["artifact"] == str(out)
    assert all(result["metrics"][k] > 0 for k in METRIC_KEYS)  # every figure measured
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert read_metadata(onnx.load(str(out)))["lineage"][-1]["calibration_set"] is None


@pytest.mark.slow
def test_checkpoint_data_is_read_once_and_missing_data_fails_before_export(
    cli, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from dlcli.checkpoint import load_checkpoint, save_checkpoint
    from dlcli.data import catalog

    reads: list[str] = []
    real = catalog.load_dataset
    monkeypatch.setattr(catalog, "load_dataset", lambda spec, *a, **k: reads.append(spec) or real(spec, *a, **k))
    r = cli("quantize", trained["cnn"], "--out", tmp_path / "once.onnx", *FAST[:-1])
    assert r.code == 0, r.err
    assert reads == ["mnist-sample"] and "verified:" in r.err and "mnist-sample inputs" in r.err

    elsewhere = save_checkpoint(dataclasses.replace(load_checkpoint(trained["cnn"]), dataset="mnist"),
                                tmp_path / "mnist.pt")
    monkeypatch.delenv("DLCLI_DATA_DIR", raising=False)
    monkeypatch.setenv("DLCLI_MIRROR", "http://127.0.0.1:9")  # nothing listens: the download fails
    missing = cli("quantize", elsewhere, *FAST[:-1])  # not quiet: an export would announce itself
    assert missing.code == 2 and "error: " in missing.err and "train-images" in missing.err
    assert "exporting" not in missing.err and not (tmp_path / "mnist.int8.onnx").exists()


def _foreign(trained: dict[str, Path], folder: Path) -> Path:
    """The cnn exported, with its dlcli metadata removed: an ONNX file from elsewhere."""
    code, out = _main("export", trained["cnn"], "--out", folder / "exported.onnx", "-q")
    assert code == 0
    proto = onnx.load(out.strip())
    del proto.metadata_props[:]
    path = folder / "foreign.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.mark.slow
def test_static_without_calibration_data_is_a_usage_error(cli, trained: dict[str, Path], tmp_path: Path) -> None:
    foreign = _foreign(trained, tmp_path)
    r = cli("quantize", foreign, *FAST)
    assert r.code == 2 and "--data" in r.err and "calibration" in r.err
    assert not (tmp_path / "foreign.int8.onnx").exists()
    ok = cli("quantize", foreign, "--data", "mnist-sample", "--json", *FAST)  # shapes fit: accepted
    assert ok.code == 0, ok.err
    metrics = ok.json()["metrics"]  # evaluated on the --data it was given: its fp32 accuracy is the parent's
    assert metrics["accuracy_fp32"] == pytest.approx(load_checkpoint(trained["cnn"]).metrics["test_accuracy"],
                                                  abs=0.002)  # onnxruntime may flip one of 1,000 argmax ties
    assert abs(metrics["accuracy"] - metrics["accuracy_fp32"]) < 0.05


@pytest.mark.slow
def test_accuracy_gate_fails_with_exit_1_and_writes_nothing(
    cli, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlcli.workflows import quantize_measure

    real = quantize_measure.accuracies

    def worse(*args, **kwargs):  # the real evaluation, with the int8 model 2 points worse
        found = real(*args, **kwargs)
        return {**found, "int8": {**found["int8"], "accuracy": found["fp32"]["accuracy"] - 0.02}}

    monkeypatch.setattr(quantize_measure, "accuracies", worse)
    out = tmp_path / "gated.onnx"
    r = cli("quantize", trained["cnn"], "--max-accuracy-drop", "0.3", "--out", out, *FAST)
    assert r.code == 1 and "percentage points" in r.err and "nothing was written" in r.err
    assert not out.exists()
    assert cli("quantize", trained["cnn"], "--max-accuracy-drop", "5", "--out", out, *FAST).code == 0
    assert out.exists()


@pytest.mark.slow
def test_int8_stem_rewrite_takes_the_textbook_order_too() -> None:
    """Conv -> Relu -> MaxPool (checkpoints from before the cnn pooled first, other models) is kept fp32
    with a barrier Relu after the pool, and still computes the same."""
    import torch

    from dlcli.models.registry import Classifier

    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(16, 10))
    source = q.preprocess(export_onnx(Classifier(body, [0.13], [0.31], 3).eval(), (1, 28, 28)).proto)
    rewritten = int8_rewrites.rewrite_for_int8(source)
    kinds = {n.name: n.op_type for n in rewritten.proto.graph.node}
    assert [kinds[n] for n in rewritten.fp32_nodes[-4:]] == ["Conv", "Relu", "MaxPool", "Relu"]
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    before = ort_session(source.SerializeToString()).run(None, {"input": x})[0]
    after = ort_session(rewritten.proto.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_allclose(after, before, atol=1e-5)


def exported_nodes(checkpoint: Path, op_type: str) -> list[str]:
    """The `op_type` node names of the checkpoint's ONNX export, in graph order, as quantize sees them
    (names are the exporter's, so they are looked up, never written down)."""
    ckpt = load_checkpoint(checkpoint)
    return q.nodes_of_type(export_onnx(ckpt.build_model(), ckpt.input_shape).proto, op_type)


@pytest.mark.slow
def test_exclude_keeps_op_types_and_nodes_fp32(cli, trained: dict[str, Path], tmp_path: Path) -> None:
    stem, second, third, *_, last = exported_nodes(trained["cnn"], "Conv")
    [gemm] = exported_nodes(trained["cnn"], "Gemm")
    out = tmp_path / "excluded.onnx"
    r = cli("quantize", trained["cnn"], "--exclude", "Gemm", "--exclude", second, "--out", out, "--json", *FAST)
    assert r.code == 0, r.err
    graph = onnx.load(str(out)).graph
    inits = {t.name for t in graph.initializer}
    fp32_weights = {n.name for n in graph.node if n.op_type in ("Gemm", "Conv") and n.input[1] in inits}
    assert gemm in fp32_weights and second in fp32_weights  # weights not dequantized
    assert third not in fp32_weights  # the others are int8
    step = read_metadata(onnx.load(str(out)))["lineage"][-1]
    assert step["excluded_op_types"] == ["Gemm"] and {stem, second} <= set(step["excluded_nodes"])
    assert third not in step["excluded_nodes"]
    assert r.json()["quantization"]["excluded_but_int8_in_onnxruntime"] == []
    # A conv between int8 layers (int8 input, int8 consumer: the last one, before the global pool) is
    # re-quantized by onnxruntime at load time: said, never hidden.
    again = cli("quantize", trained["cnn"], "--exclude", last, "--out", out, "--json", "--iters", "3",
                "--calib-samples", "64")
    assert again.code == 0 and f"{last} in int8 anyway" in again.err
    assert again.json()["quantization"]["excluded_but_int8_in_onnxruntime"] == [last]
    bad = cli("quantize", trained["cnn"], "--exclude", f"{second}x", "--out", out, *FAST)
    assert bad.code == 2 and f"Did you mean '{second}'" in bad.err


@pytest.mark.slow
def test_usage_errors(cli, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("quantize", trained["mlp"], "--report-layers", *FAST).code == 2  # its default method is dynamic
    assert cli("quantize", trained["cnn"], *FAST, "--calib-samples", "0").code == 2
    assert cli("quantize", tmp_path / "missing.pt", *FAST).code == 2
    foreign_file = tmp_path / "notes.onnx"
    foreign_file.write_text("not mine")
    r = cli("quantize", trained["cnn"], "--out", foreign_file, *FAST)
    assert r.code == 2 and "--force" in r.err and foreign_file.read_text() == "not mine"
    monkeypatch.delenv("DLCLI_DATA_DIR", raising=False)
    monkeypatch.setenv("DLCLI_MIRROR", "http://127.0.0.1:9")  # data that would have to be downloaded
    r = cli("quantize", trained["mlp"], "--method", "dynamic", "--report-layers", "--data", "mnist", *FAST)
    assert r.code == 2 and "--report-layers" in r.err and "download" not in r.err  # refused before any data


def test_info_of_an_int8_file_shows_how_it_was_made_and_its_own_metrics(cli, static_run: dict) -> None:
    artifact = static_run["artifact"]
    shown = cli("info", artifact)
    assert shown.code == 0, shown.err
    kept_fp32 = static_run["quantization"]["exclude_nodes"]  # e.g. the stem conv on x86 (int8_rewrites)
    for text in ("precision", "int8", "how it was quantized", "static (QDQ)", "64 train samples of mnist-sample",
                 *kept_fp32, "metrics (of this int8 file", "lineage", "quantize"):
        assert text in shown.err, text
    payload = cli("info", artifact, "--json").json()
    assert payload["precision"] == "int8" and payload["quantization"]["method"] == "static"
    assert payload["metrics"]["accuracy"] == pytest.approx(static_run["metrics"]["accuracy"])  # not fp32's
    assert payload["metrics"]["size_bytes_fp32"] == static_run["metrics"]["size_bytes_fp32"]
    assert payload["source_metrics"]["test_accuracy"] == pytest.approx(static_run["metrics"]["accuracy_fp32"],
                                                                      abs=1e-6)
