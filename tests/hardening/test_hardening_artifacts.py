"""Issue #13, defects 1, 3, 4, 5, 6 (files), 8, 11, 12: artifacts are never silently replaced or
trusted beyond what they record, a closed stdout keeps the work, and reports agree with themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN
from refusal import refused


def crafted(source: Path, dest: Path, **changes: object) -> Path:
    """A copy of a real checkpoint with some recorded fields changed (torch.save of plain data)."""
    payload = torch.load(source, weights_only=True)
    for key, value in changes.items():
        if key == "model_args":
            payload["model_args"] = {**payload["model_args"], **value}  # type: ignore[dict-item]
        else:
            payload[key] = value
    torch.save(payload, dest)
    return dest


# ---- 1: a file another command wrote is not replaced without --force ----------------------------

@pytest.mark.slow
def test_quantize_does_not_replace_an_export_without_force(cli, trained_checkpoint: Path) -> None:
    exported = trained_checkpoint.with_suffix(".onnx")
    assert cli("export", trained_checkpoint, "-q").code == 0
    before = exported.read_bytes()
    result = cli("quantize", trained_checkpoint, "--out", exported, "--iters", "2", "-q")
    refused(result, "dlcli export", "--force")
    assert exported.read_bytes() == before


def test_export_and_prune_do_not_replace_other_steps_outputs(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    other.write_bytes(trained_checkpoint.read_bytes())  # a training run's checkpoint
    before = other.read_bytes()
    refused(cli("prune", trained_checkpoint, "--method", "channel", "--amount", "0.5", "--finetune-epochs", "0",
                "--no-latency", "--out", other, "-q"), "dlcli train")
    assert other.read_bytes() == before


@pytest.mark.slow
def test_same_step_may_replace_its_own_output(cli, trained_checkpoint: Path) -> None:
    assert cli("export", trained_checkpoint, "-q").code == 0
    assert cli("export", trained_checkpoint, "-q").code == 0


# ---- 3, 4: checkpoints load only as what they record ---------------------------------------------

def test_unpruned_checkpoint_with_other_shapes_is_refused(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    """Before: width-1 weights under width=2 arguments loaded as a reshaped model without a word."""
    bad = crafted(trained_checkpoint, tmp_path / "w2.pt", model_args={"width": 2.0})
    for command in ("info", "export", "eval"):
        refused(cli(command, bad), "body.0.weight")


def test_channel_pruned_checkpoint_still_rebuilds(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned.pt"
    result = cli("prune", trained_checkpoint, "--method", "channel", "--amount", "0.5", "--finetune-epochs", "1",
                 "--no-latency", "--out", out, "-q", "--train-samples", "300", "--data", "mnist-sample")
    assert result.code == 0, result.err
    assert cli("info", out, "-q").code == 0


def test_huge_recorded_model_is_refused_before_allocating(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    """Before: channels=[10**9] in a 110 kB file made `dlcli info` try to allocate 36 GB."""
    bad = crafted(trained_checkpoint, tmp_path / "big.pt", model_args={"channels": [10**9]})
    refused(cli("info", bad), "channels")


def test_meta_build_refuses_mismatch_without_allocating(trained_checkpoint: Path, tmp_path: Path) -> None:
    from dlcli.checkpoint import load_checkpoint
    from dlcli.errors import InputFileError

    ckpt = load_checkpoint(crafted(trained_checkpoint, tmp_path / "big.pt", model_args={"channels": [60000] * 3}))
    with pytest.raises(InputFileError, match="body.0.weight"):
        ckpt.build_model()  # 60000-wide convs: ~65 GB if allocated; refused from the meta build


@pytest.mark.parametrize(("field", "value"), [("classes", "abc"), ("input_shape", ["a"]), ("model_args", "x"),
                                              ("mean", [0.1, 0.2]), ("lineage", 5)])
def test_wrongly_typed_checkpoint_fields_are_input_errors(cli, trained_checkpoint: Path, tmp_path: Path,
                                                          field: str, value: object) -> None:
    bad = tmp_path / "bad.pt"
    payload = torch.load(trained_checkpoint, weights_only=True)
    payload[field] = value
    torch.save(payload, bad)
    for command in ("info", "export"):
        refused(cli(command, bad), field)


# ---- 6: ONNX metadata that disagrees with the graph ----------------------------------------------

@pytest.mark.parametrize(("key", "value", "word"), [("input_shape", [3, 32, 32], "input shape"),
                                                    ("classes", ["a", "b"], "classes")])
@pytest.mark.slow
def test_onnx_metadata_disagreeing_with_graph_is_refused(cli, trained_checkpoint: Path, tmp_path: Path,
                                                         key: str, value: object, word: str) -> None:
    import onnx

    from dlcli.export.metadata import read_metadata, write_metadata

    exported = trained_checkpoint.with_suffix(".onnx")
    assert cli("export", trained_checkpoint, "-q").code == 0
    proto = onnx.load(exported)
    meta = read_metadata(proto)
    meta[key] = value
    write_metadata(proto, meta)
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, bad)
    refused(cli("info", bad), word)
    refused(cli("eval", bad, "--data", "mnist-sample"), word)


# ---- 5: quantize of a fixed-batch export ---------------------------------------------------------

@pytest.mark.slow
def test_quantize_of_static_batch_export(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    """Before: exit 1 and a multi-line onnxruntime error (calibration fed batches of 64 to a batch-1 graph)."""
    fixed = tmp_path / "fixed.onnx"
    assert cli("export", trained_checkpoint, "--static-batch", "--out", fixed, "-q").code == 0
    result = cli("quantize", fixed, "--iters", "2", "--calib-samples", "64", "--json", "-q")
    assert result.code == 0, result.err
    assert Path(result.json()["artifact"]).exists()


# ---- 8: closed stdout ----------------------------------------------------------------------------

@pytest.mark.slow
def test_closed_stdout_keeps_the_work_and_exits_quietly(tmp_path: Path) -> None:
    """`dlcli train ... | head -c0`: before, exit 1 with no message although every artifact was written."""
    env = {**os.environ, "DLCLI_RUNS_DIR": str(tmp_path / "runs"), "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dlcli", "train", *FAST_TRAIN, "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the result line is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert err == ""
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


# ---- 11: stale temporaries from a killed save ------------------------------------------------------

def test_reused_run_folder_loses_stale_temporaries(cli, tmp_path: Path, tiny_train: list[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".best.pt.abc123.tmp", run / ".last.pt.x9.tmp"]
    for path in stale:
        path.write_bytes(b"")  # what SIGKILL during atomic_write leaves
    keep = run / "notes.txt"
    keep.write_text("mine")
    assert cli("train", *tiny_train, "--out", run, "--force").code == 0
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"
    assert not list(run.glob(".*.tmp"))


# ---- 12: reports that agree with themselves and the flags ------------------------------------------

@pytest.mark.slow
def test_quiet_silences_onnxruntime_calibration_prints(cli, trained_checkpoint: Path) -> None:
    result = cli("quantize", trained_checkpoint, "--calibration", "percentile", "--calib-samples", "64",
                 "--iters", "2", "-q")
    assert result.code == 0, result.err
    assert "histogram" not in result.err and "Percentile" not in result.err, result.err


def test_prune_round_lines_agree_with_the_table(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("prune", trained_checkpoint, "--method", "channel", "--amount", "0.6", "--round-to", "8",
                 "--steps", "3", "--finetune-epochs", "0", "--no-latency", "--out", tmp_path / "p.pt", "--json")
    assert result.code == 0, result.err
    record = result.json()
    last = [line for line in result.err.splitlines() if line.startswith("round 3/3")][0]
    assert f"pruned to {record['metrics']['sparsity']:.2%}" in last
    assert record["pruning"]["rounds"][-1]["achieved"] == pytest.approx(record["metrics"]["sparsity"])


@pytest.mark.slow
def test_int8_and_fp32_onnx_count_parameters_alike(cli, trained_checkpoint: Path) -> None:
    """Before: int8 25,538 vs fp32 25,040 (scales and zero points counted as parameters)."""
    assert cli("export", trained_checkpoint, "-q").code == 0
    assert cli("quantize", trained_checkpoint, "--iters", "2", "--calib-samples", "64", "-q").code == 0
    fp32 = cli("info", trained_checkpoint.with_suffix(".onnx"), "--json").json()
    int8 = cli("info", trained_checkpoint.with_name("best.int8.onnx"), "--json").json()
    assert int8["params"] == fp32["params"]
    assert int8["quantization_params"] > 0 == fp32["quantization_params"]
    assert "BatchNorm" in fp32["params_note"]


@pytest.mark.slow
def test_sigkill_during_saves_never_destroys_the_checkpoint(tmp_path: Path) -> None:
    """SIGKILL a process that keeps re-saving a checkpoint: the file on disk is always a complete
    previous version (atomic rename); what the kill leaves is a hidden temporary, which reusing the
    folder removes."""
    import signal
    import time

    from dlcli.checkpoint import load_checkpoint
    from dlcli.runs import prepare_out_dir

    path = tmp_path / "run" / "last.pt"
    script = (
        "import sys, torch\n"
        "from dlcli.checkpoint import Checkpoint, save_checkpoint\n"
        "state = {'w': torch.zeros(2_000_000)}\n"
        "ckpt = Checkpoint('cnn', {}, state, ['a', 'b'], [1, 28, 28], [0.5], [0.5], 'x')\n"
        "i = 0\n"
        "while True:\n"
        "    state['w'].fill_(i); save_checkpoint(ckpt, sys.argv[1]); i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert path.exists(), "the child never saved"
        time.sleep(0.5)  # several saves in flight
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = load_checkpoint(path)  # complete, never half-written
    assert float(ckpt.state_dict["w"][0]) == float(ckpt.state_dict["w"][-1])
    prepare_out_dir(path.parent, "train", None, force=True)
    assert not list(path.parent.glob(".*.tmp"))
