"""The timing harness and `dlcli benchmark`: sane, positive figures and valid JSON/CSV/PNG on tiny
iteration counts (no timing assertions: the machine is shared)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from dlcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dlcli.console import Console
from dlcli.errors import UsageError
from dlcli.export.onnx_export import export_onnx
from dlcli.measure import environment as environment_module
from dlcli.measure import timing
from dlcli.measure.environment import busy_warning, cpu_info, cpu_usage, environment, fingerprint
from dlcli.measure.timing import describe_method, input_batches, measure, measure_interleaved
from dlcli.models import create_model
from dlcli.workflows import export
from dlcli.workflows.export_config import ExportConfig

FAST = ["--warmup", "1", "--iters", "3", "-q"]


def make_checkpoint(path: Path) -> Path:
    """A small cnn for the embedded MNIST sample (untrained: only speed and parity matter here)."""
    torch.manual_seed(0)
    args = {"channels": [4, 8]}
    model = create_model("cnn", (1, 28, 28), 10, [0.13], [0.31], args)
    return save_checkpoint(Checkpoint("cnn", args, model.state_dict(), [str(i) for i in range(10)], [1, 28, 28],
                                      [0.13], [0.31], "mnist-sample"), path)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bench")
    ckpt = make_checkpoint(folder / "best.pt")
    return ckpt, Path(export.run(ExportConfig(ckpt), Console(quiet=True)).to_json()["artifact"])


def test_measure_times_each_call_and_rotates_inputs() -> None:
    seen: list[int] = []
    batches = [np.full((4, 2), i, dtype=np.float32) for i in range(3)]
    stats = measure(lambda b: seen.append(int(b[0, 0])), batches, warmup=2, iters=7)
    assert seen == [0, 1, 0, 1, 2, 0, 1, 2, 0]  # 2 warm-up calls, then 7 timed, rotating
    assert stats.runs == 7 and stats.batch_size == 4
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.throughput > 0


def test_measure_stops_at_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"ns": 0}  # a fake clock that only the measured call moves: 5 ms per call
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter_ns=lambda: clock["ns"]))

    def five_ms(batch: np.ndarray) -> None:
        clock["ns"] += 5_000_000

    stats = measure(five_ms, [np.zeros((1, 1))], warmup=0, seconds=0.02)
    assert stats.runs == 4  # the 4th call ends at the 20 ms budget
    assert stats.p50_ms == stats.p99_ms == 5.0 and stats.throughput == pytest.approx(200.0)
    monkeypatch.undo()
    assert measure(lambda b: None, [np.zeros((1, 1))], warmup=0, iters=5, seconds=60).runs == 5
    with pytest.raises(UsageError):
        measure(lambda b: None, [np.zeros((1, 1))], iters=0)
    assert "whichever ends first" in describe_method(10, 100, 2.0)


def test_interleaved_rounds_alternate_and_pool_every_call() -> None:
    order: list[str] = []
    calls = {key: (lambda b, key=key: order.append(key), [np.zeros((2, 1))], None) for key in ("a", "b")}
    stats = measure_interleaved(calls, rounds=3, warmup=1, iters=2)
    assert order == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3  # warm-up + 2, per round
    assert stats["a"].runs == stats["b"].runs == 6 and stats["a"].batch_size == 2
    with pytest.raises(UsageError):
        measure_interleaved(calls, rounds=0)


def test_input_batches_are_distinct_and_shaped() -> None:
    batches = input_batches([1, 4, 4], 3, count=5)
    assert len(batches) == 5 and all(b.shape == (3, 1, 4, 4) and b.dtype == np.float32 for b in batches)
    assert not np.array_equal(batches[0], batches[1])
    pool = np.arange(4, dtype=np.float32).reshape(4, 1)
    assert [b[:, 0].tolist() for b in input_batches([1], 3, count=2, pool=pool)] == [[0, 1, 2], [3, 0, 1]]


def test_environment_fingerprint(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text("model name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni amx_tile\n")
    assert cpu_info(fake) == {"cpu": "Test CPU 9000", "isa": ["sse4_2", "avx2", "avx512f", "avx512_vnni", "amx_tile"]}
    env = environment(3)
    assert env["threads"] == 3 and env["torch"] and env["onnxruntime"] and env["python"] and env["os"]
    assert set(fingerprint(env)) >= {"cpu", "isa", "gpu", "threads", "torch", "onnxruntime", "python", "os"}


def test_cpu_usage_counts_busy_and_stolen_time_not_io_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 10 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")

    def later(_seconds: float) -> None:  # +30 user, +10 system, +40 idle, +100 iowait, +10 steal
        stat.write_text("cpu  130 0 60 1040 110 0 0 10 0 0\n")

    monkeypatch.setattr(environment_module.time, "sleep", later)
    assert cpu_usage(0.01, stat) == pytest.approx({"busy": 40 / 190, "steal": 10 / 190}, abs=0.02)
    assert cpu_usage(0.01, tmp_path / "missing") is None
    stat.write_text("cpu  100 0 50 1000\n")  # an old kernel's four columns

    def later_short(_seconds: float) -> None:
        stat.write_text("cpu  110 0 60 1080\n")

    monkeypatch.setattr(environment_module.time, "sleep", later_short)
    assert cpu_usage(0.01, stat) == pytest.approx({"busy": 20 / 100, "steal": 0.0}, abs=0.02)


@pytest.mark.parametrize(("usage", "warned"), [({"busy": 0.5, "steal": 0.1}, True),
                                               ({"busy": 0.05, "steal": 0.0}, False)])
def test_busy_warning(monkeypatch: pytest.MonkeyPatch, usage: dict[str, float], warned: bool) -> None:
    monkeypatch.setattr(environment_module, "cpu_usage", lambda: usage)
    warning = busy_warning()
    assert (warning is not None) == warned
    if warned:
        assert "50% of its CPU time in use by other work, 10% taken by the hypervisor" in warning


@pytest.mark.slow
def test_benchmark_checkpoint_and_onnx(artifacts: tuple[Path, Path], tmp_path: Path, cli) -> None:
    ckpt, onnx_path = artifacts
    out_csv, out_png = tmp_path / "rows.csv", tmp_path / "plot.png"
    result = cli("benchmark", ckpt, onnx_path, "--batch-size", "1,4", "--threads", "1", "--device", "cpu",
                 "--csv", out_csv, "--plot", out_png, "--rounds", "2", "--json", *FAST)
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "benchmark" and payload["artifact"] == str(out_csv)
    assert {"metrics", "device", "seconds", "environment", "rows"} <= set(payload)
    rows = payload["rows"]
    metrics = payload["metrics"]  # the headline figures, the rows' own, keyed by label and batch size
    for row in rows:
        label, batch = Path(row["artifact"]).name, row["batch_size"]
        assert metrics[f"{label}:p50_ms_b{batch}"] == row["p50_ms"]
        assert metrics[f"{label}:throughput_b{batch}"] == row["throughput"]
    for batch in (1, 4):  # the second artifact against the first
        assert metrics[f"{onnx_path.name}:speedup_b{batch}"] == pytest.approx(
            metrics[f"{ckpt.name}:p50_ms_b{batch}"] / metrics[f"{onnx_path.name}:p50_ms_b{batch}"])
    assert f"{ckpt.name}:speedup_b1" not in metrics
    assert [(Path(r["artifact"]).suffix, r["runtime"], r["batch_size"]) for r in rows] == [
        (".pt", "pytorch", 1), (".pt", "pytorch", 4), (".onnx", "onnxruntime", 1), (".onnx", "onnxruntime", 4)]
    assert "2 rounds that alternate the artifacts" in payload["method"]
    for row in rows:
        assert row["runs"] == 2 * 3 and row["threads"] == 1  # --iters per round
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["throughput"] > 0
        assert row["size_bytes"] > 0 and row["params"] > 0 and row["accuracy"] is None
        assert row["cpu"] and row["torch"]
    with out_csv.open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    # Our own outputs are overwritten without --force; someone else's are not.
    assert cli("benchmark", onnx_path, "--batch-size", "1", "--csv", out_csv, "--plot", out_png, *FAST).code == 0
    foreign = tmp_path / "mine.csv"
    foreign.write_text("precious\n")
    assert cli("benchmark", onnx_path, "--batch-size", "1", "--csv", foreign, *FAST).code == 2
    assert foreign.read_text() == "precious\n"
    jpg = cli("benchmark", onnx_path, "--batch-size", "1", "--plot", tmp_path / "b.jpg", *FAST)
    assert jpg.code == 2 and "ending in .png" in jpg.err and "p50" not in jpg.err  # refused before timing


def test_benchmark_with_data_reports_accuracy_and_writes_no_plot_unasked(
    artifacts: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("benchmark", *artifacts, "--batch-size", "2", "--data", "mnist-sample", "--json", *FAST)
    assert result.code == 0, result.err
    payload = result.json()
    accuracy = [r["accuracy"] for r in payload["rows"]]
    assert len(accuracy) == 2 and accuracy[0] == pytest.approx(accuracy[1], abs=1e-3)
    assert payload["plot"] is None and list(tmp_path.glob("*.png")) == []


def test_static_onnx_skips_other_batch_sizes(artifacts: tuple[Path, Path], tmp_path: Path, cli) -> None:
    static = tmp_path / "static.onnx"  # the fast TorchScript exporter: this test is about the benchmark
    model = load_checkpoint(artifacts[0]).build_model()
    onnx.save_model(export_onnx(model, [1, 28, 28], opset=17, dynamic_batch=False).proto, static)
    result = cli("benchmark", static, "--batch-size", "1,8", "--json", "--warmup", "0", "--iters", "2")
    assert result.code == 0, result.err
    assert [(r["batch_size"], r["runs"]) for r in result.json()["rows"]] == [(1, 2)]  # one artifact: one round
    assert "fixed batch size of 1" in result.err
    # Beside a dynamic model: rows stay grouped by artifact, and comparing defaults to 3 rounds.
    result = cli("benchmark", static, artifacts[1], "--batch-size", "1,8", "--json", "--warmup", "0", "--iters", "2",
                 "--plot", tmp_path / "both.png")
    assert result.code == 0, result.err
    rows = [(Path(r["artifact"]).name, r["batch_size"], r["runs"]) for r in result.json()["rows"]]
    assert rows == [("static.onnx", 1, 6), (artifacts[1].name, 1, 6), (artifacts[1].name, 8, 6)]


def test_a_failing_runtime_is_named_in_one_line(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    from dlcli.workflows import benchmark_artifacts as benchmark

    def broken(session):
        runner = real(session)
        runner.call = lambda batch: (_ for _ in ()).throw(RuntimeError("kernel not found\nstack..."))
        return runner

    real = benchmark.onnx_runner
    monkeypatch.setattr(benchmark, "onnx_runner", broken)
    result = cli("benchmark", *artifacts, "--batch-size", "2", *FAST)
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == (
        f"error: onnxruntime failed to run {artifacts[1]} at batch 2: kernel not found")


@pytest.mark.parametrize("args", [["--batch-size", "0"], ["--batch-size", "a,b"], ["--compile"], ["--iters", "0"],
                                  ["--rounds", "0"]])
def test_bad_options_exit_2(artifacts: tuple[Path, Path], cli, args: list[str]) -> None:
    result = cli("benchmark", artifacts[1], *args, "-q")
    assert result.code == 2 and result.err.startswith("error: "), result.err


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from dlcli.cli import main\n"
            "for cmd in (['export', '--help'], ['benchmark', '--help'], ['quantize', '--help'], ['info', '--help'],\n"
            "            ['compare', '--help'], ['predict', '--help']):\n"
            "    try: main(cmd)\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
