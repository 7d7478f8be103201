"""The CLI through its real entry point: help, version, output contract, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST_TRAIN

from dlcli.checkpoint import load_checkpoint


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom dlcli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "train" in out and "eval" in out


def test_module_entry_point_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "dlcli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("dlcli ")


def test_short_help_alias(cli) -> None:
    result = cli("train", "-h")
    assert result.code == 0
    assert "--epochs" in result.out


def test_unknown_model_suggests_closest(cli) -> None:
    result = cli("train", "--model", "cnnn", *FAST_TRAIN)
    assert result.code == 2
    assert "did you mean 'cnn'" in result.err.lower()
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_unknown_dataset_and_optimizer(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLCLI_RUNS_DIR", str(tmp_path / "runs"))
    assert cli("train", "--data", "mnistt", "-q").code == 2
    for option, value, suggestion in (("--optimizer", "adamm", "'adam'"), ("--scheduler", "cosin", "'cosine'"),
                                      ("--loss", "crossentropy", "'cross-entropy'")):
        result = cli("train", *FAST_TRAIN, option, value)
        assert result.code == 2 and f"Did you mean {suggestion}" in result.err
    assert not (tmp_path / "runs" / "train").exists()  # refused before any run folder was made


def test_unavailable_device_is_a_usage_error(cli) -> None:
    import torch

    if torch.cuda.is_available():
        return
    result = cli("train", *FAST_TRAIN, "--device", "cuda")
    assert result.code == 2
    assert "cuda" in result.err.lower()


def test_bad_option_values(cli) -> None:
    for args in (["--epochs", "0"], ["--val-split", "1.5"], ["--dropout", "2"], ["-a", "nokey"]):
        result = cli("train", *FAST_TRAIN, *args)
        assert result.code == 2, (args, result.err)
        assert result.err.startswith("error:") or "Usage" in result.err


def test_train_json_contract_and_artifacts(cli, tmp_path: Path) -> None:
    result = cli("train", *FAST_TRAIN, "--out", tmp_path / "run", "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "train"
    assert payload["artifact"] == str(tmp_path / "run" / "best.pt")
    assert 0.0 <= payload["metrics"]["accuracy"] <= 1.0
    assert payload["metrics"]["loss"] > 0
    assert payload["device"] == "cpu" or payload["device"].startswith(("cuda", "mps"))
    assert payload["seconds"] > 0
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.yaml", "curves.png"):
        assert (tmp_path / "run" / name).exists(), name
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1


def test_pipeline_eval_of_train_output(cli, trained_checkpoint: Path) -> None:
    result = cli("eval", trained_checkpoint, "--json", "-q")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["command"] == "eval" and payload["artifact"] is None
    assert payload["metrics"]["samples"] == 1000  # the embedded sample's test split
    # best.pt records the test accuracy it was saved with; eval must reproduce it exactly
    import torch

    saved = torch.load(trained_checkpoint, weights_only=True)["metrics"]["test_accuracy"]
    assert abs(payload["metrics"]["accuracy"] - saved) < 1e-6


def test_eval_defaults_to_latest_run(cli, trained_checkpoint: Path) -> None:
    result = cli("eval", "--json", "-q")
    assert result.code == 0, result.err
    assert result.json()["checkpoint"] == str(trained_checkpoint.resolve())


def test_eval_without_any_run_is_a_clear_error(cli) -> None:
    result = cli("eval")
    assert result.code == 2
    assert "dlcli train" in result.err


@pytest.mark.slow
def test_out_dir_is_not_overwritten_without_force(cli, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    result = cli("train", *FAST_TRAIN, "--out", out)
    assert result.code == 2 and "--force" in result.err
    assert (out / "notes.txt").read_text() == "precious"
    assert cli("train", *FAST_TRAIN, "--out", out, "--force").code == 0
    assert (out / "notes.txt").read_text() == "precious"
    assert cli("train", *FAST_TRAIN, "--out", out, "--force").code == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # a rerun does not append to the old run


def test_default_run_folders_do_not_collide(cli, isolated_env: Path, tiny_train: list[str]) -> None:
    first = Path(cli("train", *tiny_train).out.strip())
    second = Path(cli("train", *tiny_train).out.strip())
    assert first.parent != second.parent
    assert first.parent.parent == isolated_env / "runs" / "train"


def test_bad_files_give_one_line_and_exit_2(cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    for args in (["eval", junk], ["eval", tmp_path / "missing.pt"], ["info", junk], ["eval", tmp_path]):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_info_describes_a_checkpoint(cli, trained_checkpoint: Path) -> None:
    result = cli("info", trained_checkpoint, "--json")
    payload = result.json()
    assert payload["model"] == "cnn"
    assert payload["input_shape"] == [1, 28, 28]
    assert payload["classes"] == [str(i) for i in range(10)]
    assert payload["lineage"][0]["step"] == "train"
    assert "test_accuracy" in payload["metrics"]
    assert payload["params"] > 1000


def test_models_and_datasets_listings(cli) -> None:
    models = cli("models", "--json").json()["models"]
    assert {m["name"] for m in models} >= {"mlp", "cnn", "resnet", "vit"}
    assert all(m["params"] > 0 for m in models)
    datasets = cli("datasets", "--json").json()["datasets"]
    sample = next(d for d in datasets if d["name"] == "mnist-sample")
    assert sample["present"] is True


def test_config_file_precedence_and_print_config(cli, tmp_path: Path) -> None:
    toml = tmp_path / "cfg.toml"
    toml.write_text('model = "mlp"\nepochs = 3\nbatch-size = 64\n')
    out = cli("train", "--config", toml, "--epochs", "7", "--print-config").out
    import yaml

    cfg = yaml.safe_load(out)
    assert cfg["model"] == "mlp" and cfg["batch_size"] == 64 and cfg["epochs"] == 7
    assert cfg["optimizer"] == "sgd"  # untouched default
    yml = tmp_path / "cfg.yaml"
    yml.write_text("modle: mlp\n")
    result = cli("train", "--config", yml)
    assert result.code == 2 and "model" in result.err
    for wrong, key in (("data = 5", "data"), ("data-dir = 5", "data-dir"), ('epochs = "three"', "epochs")):
        toml.write_text(wrong + "\n")  # values are checked before the data is read ahead, and named in the file
        result = cli("train", "--config", toml)
        assert result.code == 2 and result.err.startswith(f"error: {key} in {toml} ") and "Error" not in result.err
    assert cli("train", "--config", toml, "--epochs", "0.5", "--print-config").code == 0  # the flag wins


def test_same_seed_same_metrics(cli, tmp_path: Path, _session_checkpoint: Path) -> None:
    """The session's checkpoint was trained with the same settings and seed 0 (the default): a second
    run must reproduce its test metrics exactly (one training here instead of two)."""
    again = cli("train", *FAST_TRAIN, "--seed", "0", "--out", tmp_path / "a", "--json").json()["metrics"]
    first = load_checkpoint(_session_checkpoint).metrics
    assert again["accuracy"] == first["test_accuracy"] and again["loss"] == first["test_loss"]


@pytest.mark.slow
def test_debug_env_shows_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "DLCLI_DEBUG": "1", "DLCLI_RUNS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "dlcli", "eval", str(tmp_path / "nope.pt")],
                         capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "Traceback" in out.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["prune", "x.pt", "--method", "chanel", "--amount", "0.5"], "Did you mean 'channel'? (see `dlcli prune -h`)"),
    (["train", "--bogus"], "No such option: --bogus"),
    (["nosuch"], "No such command 'nosuch'."),
    (["train", "--optimizer", "sgdd"], "'sgdd' is not one of 'sgd', 'adam', 'adamw', 'rmsprop'. Did you mean 'sgd'?"),
    (["train", "--epochs", "three"], "Invalid value for '--epochs' / '-e': 'three' is not a number"),
    (["train", "--threads=x"], "'x' is not a whole number (see `dlcli train -h`)"),
    (["train", "--lr"], "Option '--lr' requires an argument. (see `dlcli train -h`)"),
])
def test_click_usage_errors_are_one_line(cli, args: list[str], expected: str) -> None:
    """In our words: pydantic's "Value error, " and "Input should be a valid number, ..." (typer
    validates with it) made plain, with the value given; the help of the command typed."""
    result = cli(*args)
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("error: ") and expected in result.err
    assert "Value error" not in result.err and "Input should be" not in result.err


def test_model_argument_names_are_checked_before_the_data(cli) -> None:
    result = cli("train", "-a", "activation=foo", "--data", "mnist-sample", "--epochs", "0.01")
    assert result.code == 2 and result.err.startswith("error: unknown activation 'foo'. Choose from: relu, gelu")
    assert "data:" not in result.err  # refused with the config, before anything was loaded
    models = {m["name"]: m for m in cli("models", "--json").json()["models"]}
    assert models["cnn"]["arg_checks"]["activation"] == "one of relu, gelu, tanh, sigmoid, silu"
    assert models["cnn"]["recipes"]["mnist"]["channels"] == [8, 24, 48, 64] and models["vit"]["recipes"] == {}


def test_an_empty_argument_is_refused_before_it_means_this_folder(cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`dlcli eval "$(...)"` whose command printed nothing passed "", which typer reads as `.`: a run
    folder in the current folder was evaluated (or `--out ""` wrote into it)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"would be read as ./best.pt")
    monkeypatch.chdir(run)
    for args, where in ((["eval", ""], "argument 2 is empty after 'eval'"),
                        (["export", "", "--json"], "argument 2 is empty after 'export'"),
                        (["train", "--out", "", "-q"], "argument 3 is empty after '--out'")):
        result = cli(*args)
        assert result.code == 2 and result.err.count("\n") == 1 and where in result.err, result.err
        assert f"see `dlcli {args[0]} -h`" in result.err
    assert result.code == 2 and cli("export", "", "--json").json()["error"].startswith("argument 2 is empty")
    assert sorted(p.name for p in run.iterdir()) == ["best.pt"]  # nothing written beside it


def test_a_small_validation_split_says_best_pt_is_the_last_epoch(cli, isolated_env: Path,
                                                                 tiny_train: list[str]) -> None:
    """No "best so far" mark on epochs that were not picked by validation (too few samples to)."""
    loud = [a for a in tiny_train if a != "-q"]
    result = cli("train", *loud, "--epochs", "2")
    assert result.code == 0, result.err
    assert "best.pt will be the last epoch: 4 validation samples are too few" in result.err
    epoch_lines = [line for line in result.err.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and not any(" *" in line for line in epoch_lines)


def test_a_run_folder_stands_for_its_best_pt(cli, isolated_env: Path, tiny_train: list[str], tmp_path: Path) -> None:
    """eval, info and export take a run folder as `compare` does: its best.pt."""
    run = tmp_path / "run"
    assert cli("train", *tiny_train, "--out", run).code == 0
    assert cli("eval", run, "--json").json()["checkpoint"] == str(run / "best.pt")
    assert cli("info", run, "--json").code == 0
    assert Path(cli("export", run, "-q").out.strip()).resolve() == (run / "best.onnx").resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = cli("eval", empty)
    assert refused.code == 2 and "folder without best.pt" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
