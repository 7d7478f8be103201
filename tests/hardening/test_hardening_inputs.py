"""Issue #13, defects 2, 6, 7, 9, 10: every bad option, config value or model argument is refused with
exit 2 and one line naming it, before any run folder is made; --json failures are one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAIN
from refusal import refused


def no_run_folders(isolated_env: Path) -> None:
    runs = isolated_env / "runs"
    left = [p for p in runs.rglob("*") if p.is_dir()] if runs.exists() else []
    assert not left, f"run folders left behind: {left}"


@pytest.mark.parametrize(("config", "field"), [
    ('epochs = "three"', "epochs"), ("batch_size = [1, 2]", "batch-size"), ('model_args = "x"', "model-args"),
    ("epochs = 0", "epochs"), ("lr = true", "lr"), ("momentum = 5", "momentum"),
])
def test_wrong_config_values_exit_2_naming_the_field(cli, tmp_path: Path, isolated_env: Path, config: str,
                                                     field: str) -> None:
    """Named as written: the key and its file (a flag the user never typed was named before)."""
    path = tmp_path / "c.toml"
    path.write_text(config + "\n")
    refused(cli("train", "-c", path, "--data", "mnist-sample", "--train-samples", "600", "-q"), f"{field} in {path}")
    no_run_folders(isolated_env)


@pytest.mark.parametrize(("args", "words"), [
    (["-a", "channels=abc"], ["channels", "list of integers"]),
    (["-m", "vit", "-a", "heads=0"], ["heads"]),
    (["-m", "mlp", "-a", "hidden=[-5]"], ["hidden"]),
    (["-a", "width=0"], ["width"]),
    (["-a", "channels=[0]"], ["channels"]),
    (["-a", "channels=[1000000000]"], ["channels"]),
])
def test_bad_model_arguments_exit_2_naming_the_argument(cli, isolated_env: Path, args: list[str],
                                                        words: list[str]) -> None:
    refused(cli("train", *args, *FAST_TRAIN), *words)
    no_run_folders(isolated_env)


@pytest.mark.parametrize(("option", "value"), [
    ("--warmup-epochs", "-3"), ("--lr", "nan"), ("--momentum", "5"), ("--momentum", "-0.1"), ("--lr", "-1"),
    ("--gamma", "0"), ("--train-samples", "0"),
])
def test_out_of_range_options_exit_2(cli, isolated_env: Path, option: str, value: str) -> None:
    refused(cli("train", *FAST_TRAIN, option, value), option)
    no_run_folders(isolated_env)


def test_finetune_negative_head_lr_is_refused(cli, trained_checkpoint: Path, isolated_env: Path) -> None:
    refused(cli("finetune", trained_checkpoint, *FAST_TRAIN, "--head-lr", "-1"), "--head-lr")
    assert not (isolated_env / "runs" / "finetune").exists()


@pytest.mark.parametrize(("args", "word"), [(["-s", "vit", "-a", "heads=0"], "heads"), (["--alpha", "2"], "--alpha")])
def test_distill_options_are_checked_before_the_run_folder(cli, trained_checkpoint: Path, isolated_env: Path,
                                                           args: list[str], word: str) -> None:
    refused(cli("distill", "-t", trained_checkpoint, *args, *FAST_TRAIN, "--baseline"), word)
    assert not (isolated_env / "runs" / "distill").exists()


def test_models_lists_what_each_argument_accepts(cli) -> None:
    models = {m["name"]: m for m in cli("models", "--json").json()["models"]}
    assert models["vit"]["arg_checks"]["heads"].startswith("an integer")
    assert "[0, 1)" in models["cnn"]["arg_checks"]["dropout"]


def _single_class_csv(tmp_path: Path) -> Path:
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i * 2},cat\n" for i in range(20)))
    return path


def test_single_class_data_is_refused(cli, tmp_path: Path, isolated_env: Path) -> None:
    path = _single_class_csv(tmp_path)
    refused(cli("train", "-m", "mlp", "--data", f"csv:{path}", "--epochs", "1", "-q"), "at least two")
    no_run_folders(isolated_env)


def test_cache_dir_that_is_a_file_is_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "cachefile"
    blocker.write_text("")
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(blocker))
    monkeypatch.delenv("DLCLI_DATA_DIR", raising=False)
    refused(cli("train", "--data", "mnist", "--epochs", "1", "-q"), "DLCLI_CACHE_DIR")


@pytest.mark.parametrize("out", ["/proc/dlcli-x", "FILE/sub"])
def test_out_that_cannot_be_created_is_refused(cli, tmp_path: Path, out: str) -> None:
    blocker = tmp_path / "FILE"
    blocker.write_text("")
    out = out.replace("FILE", str(blocker))
    refused(cli("train", *FAST_TRAIN, "--out", out), out)


def test_export_out_that_cannot_be_written_fails_before_the_work(cli, trained_checkpoint: Path,
                                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "FILE"
    blocker.write_text("")
    result = cli("export", trained_checkpoint, "--out", blocker / "m.onnx")
    refused(result, "cannot be written")
    assert "verified" not in result.err


def test_failed_run_removes_the_folder_it_created(cli, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure during the work (here: the data loader) leaves no empty runs/train/expN behind."""
    import dlcli.workflows.train as train_workflow
    from dlcli.errors import WorkError

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise WorkError("simulated failure during the work")

    monkeypatch.setattr(train_workflow, "prepare_data", broken)
    result = cli("train", *FAST_TRAIN)
    assert result.code == 1 and "simulated failure" in result.err
    no_run_folders(isolated_env)


def test_print_config_json_prints_json(cli) -> None:
    result = cli("train", "--print-config", "--json", "--epochs", "3")
    assert result.code == 0
    assert result.json()["epochs"] == 3


@pytest.mark.parametrize("args", [
    ["train", "--epochs", "0", "--json"],
    ["train", "--json", "--optimizer", "sgdd"],
    ["info", "missing.pt", "--json"],
    ["train", "--json", "--batch-size", "many"],  # a click usage error
])
def test_json_failures_print_one_object(cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == 2
    obj = result.json()
    assert obj["exit_code"] == 2 and obj["error"] and obj["error"] in result.err


def test_onecycle_honours_momentum(cli, tmp_path: Path, _session_checkpoint: Path) -> None:
    """Before: onecycle cycled momentum 0.85-0.95 whatever --momentum said: 0.5 and 0.9 gave
    bit-identical runs. The session's run is the same training with the default momentum, 0.9."""
    result = cli("train", *FAST_TRAIN, "--momentum", "0.5", "--json", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    runs = (tmp_path / "run", _session_checkpoint.parent)
    configs = [yaml.safe_load((run / "config.yaml").read_text()) for run in runs]
    assert [c["momentum"] for c in configs] == [0.5, 0.9]
    assert {k: v for k, v in configs[0].items() if k not in ("momentum", "out")} == {
        k: v for k, v in configs[1].items() if k not in ("momentum", "out")}  # the only difference
    losses = [json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["train_loss"] for run in runs]
    assert losses[0] != losses[1]


def test_onecycle_momentum_peaks_at_the_given_value() -> None:
    import torch

    from dlcli.optim import make_optimizer, make_scheduler

    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    optimizer = make_optimizer("sgd", [{"params": params}], 0.1, momentum=0.6)
    make_scheduler("onecycle", optimizer, total_steps=100, steps_per_epoch=10)
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.6)  # starts at the peak, dips later
