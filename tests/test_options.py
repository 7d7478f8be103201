"""Each option declared once: the training flags take their help, shown default and choices from
TrainConfig's declarations and the registries; `--print-config` shows the values a run resolves;
every training workflow is `run(XConfig, console) -> XResult` with a frozen config."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
import yaml
from conftest import FAST_TRAIN

from dlcli import choices
from dlcli.cli._options import TRAINING_FIELDS, TRAINING_OPTIONS
from dlcli.config import TrainConfig, field_help, shown_default


def test_registries_hold_exactly_the_declared_names() -> None:
    from dlcli.compress.pruning import PRUNERS
    from dlcli.losses import LOSSES
    from dlcli.optim import OPTIMIZERS, SCHEDULERS

    assert OPTIMIZERS.names() == list(choices.OPTIMIZERS)
    assert SCHEDULERS.names() == list(choices.SCHEDULERS)
    assert LOSSES.names() == list(choices.LOSSES)
    assert PRUNERS.names() == list(choices.PRUNE_METHODS)


def option_info(name: str) -> typing.Any:
    param = next(p for p in TRAINING_OPTIONS if p.name == name)
    return typing.get_args(param.annotation)[1]


@pytest.mark.parametrize("name", TRAINING_FIELDS)
def test_training_flag_help_and_default_come_from_the_config_field(name: str) -> None:
    info = option_info(name)
    assert field_help(TrainConfig, name) and info.help == field_help(TrainConfig, name)
    assert info.show_default == (shown_default(TrainConfig, name) or False)


def test_cli_choices_are_the_registries_names(cli) -> None:
    from dlcli.compress.pruning import PRUNERS
    from dlcli.optim import OPTIMIZERS

    param = next(p for p in TRAINING_OPTIONS if p.name == "optimizer")
    literal = typing.get_args(typing.get_args(param.annotation)[0])[0]
    assert list(typing.get_args(literal)) == OPTIMIZERS.names()
    text = cli("prune", "--help").out
    assert "|".join(PRUNERS.names()) in text.replace("\n", "").replace(" ", "")


def test_lr_help_lists_every_optimizers_default(cli) -> None:
    text = " ".join(cli("train", "--help").out.split())
    for name, lr in choices.DEFAULT_LR.items():
        assert f"{name} {lr:g}" in text


def printed(cli, *args: str) -> dict:
    result = cli(*args, "--print-config", "--json")
    assert result.code == 0, result.err
    return result.json()


def test_train_print_config_shows_the_resolved_values(cli, isolated_env: Path) -> None:
    from dlcli.data.catalog import DATASETS
    from dlcli.engine.budget import default_epochs, training_samples

    cfg = printed(cli, "train", "--optimizer", "rmsprop", "--batch-size", "512", "--device", "cpu")
    sample = DATASETS.get("mnist-sample")
    assert cfg["data"] == "mnist-sample" and cfg["lr"] == choices.DEFAULT_LR["rmsprop"]
    assert cfg["epochs"] == default_epochs(sample.default_epochs, training_samples(sample.train_size, 0.1, None), 512)
    assert cfg["epochs"] > sample.default_epochs  # the budget rule raised it on this small split
    assert cfg["channels_last"] is True  # a conv model on the cpu
    assert not (isolated_env / "runs").exists()  # nothing trained, no folder made


def test_print_config_is_what_the_run_saves(cli, tmp_path: Path) -> None:
    """The run's config.yaml holds the same resolved values --print-config showed (threads aside: the
    run takes the cores that are free when it starts)."""
    args = ["train", *FAST_TRAIN, "--optimizer", "adamw", "--no-channels-last"]
    shown = printed(cli, *args)
    assert cli(*args, "--out", tmp_path / "run").code == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: v for k, v in saved.items() if k != "threads"} == {k: v for k, v in shown.items() if k != "threads"}
    assert saved["lr"] == choices.DEFAULT_LR["adamw"] and saved["channels_last"] is False


def test_prune_print_config_shows_the_checkpoints_model_and_the_method(cli, tmp_path: Path) -> None:
    assert cli("train", *FAST_TRAIN, "-a", "channels=[4,8]", "--out", tmp_path / "run").code == 0
    cfg = printed(cli, "prune", tmp_path / "run" / "best.pt", "--method", "channel", "--amount", "0.25")
    assert cfg["model"] == "cnn" and cfg["model_args"]["channels"] == [4, 8]
    assert cfg["method"] == "channel" and cfg["amount"] == 0.25 and cfg["data"] == "mnist-sample"
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 64 and cfg["lr"] == choices.DEFAULT_LR["sgd"] / 2
    assert not (tmp_path / "run" / "pruned-channel-0.25.pt").exists()


def test_distill_print_config_shows_teacher_and_loss_settings(cli, trained_checkpoint: Path) -> None:
    cfg = printed(cli, "distill", "-t", trained_checkpoint, "-s", "mlp", "-a", "hidden=[32]", "-T", "3",
                  "--alpha", "0.7")
    assert cfg["teacher"] == str(trained_checkpoint) and cfg["temperature"] == 3 and cfg["alpha"] == 0.7
    assert cfg["model"] == "mlp" and cfg["student_args"] == {"hidden": [32]}
    assert cfg["data"] == "mnist-sample" and isinstance(cfg["channels_last"], bool) and cfg["lr"] is not None


def test_finetune_print_config_defaults_to_the_parents_dataset(cli, trained_checkpoint: Path) -> None:
    cfg = printed(cli, "finetune", trained_checkpoint, "--freeze", "backbone")
    assert cfg["data"] == "mnist-sample" and cfg["freeze"] == "backbone" and cfg["epochs"] is not None


def test_configs_are_frozen_and_results_typed(trained_checkpoint: Path, tmp_path: Path) -> None:
    from dlcli.compress.pruning import PruneSpec
    from dlcli.console import Console
    from dlcli.workflows import distill, evaluate, finetune, prune, train

    configs = [
        train.TrainRunConfig(TrainConfig()), finetune.FinetuneConfig(trained_checkpoint),
        distill.DistillConfig(trained_checkpoint), prune.PruneConfig(trained_checkpoint, PruneSpec("channel", 0.5)),
        evaluate.EvalConfig(trained_checkpoint), TrainConfig(),
    ]
    for config in configs:
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.seed = 1  # type: ignore[misc]
    config = prune.PruneConfig(trained_checkpoint, PruneSpec("l1-unstructured", 0.5), finetune_epochs=0,
                               out=tmp_path / "p.pt", latency=False)
    before = dataclasses.replace(config)
    result = prune.run(config, Console(quiet=True))
    assert config == before and result.run_dir is None
    assert list(result.to_json()) == ["command", "artifact", "metrics", "device", "seconds", "parent", "run_dir",
                                      "pruning"]
    assert result.to_json()["command"] == "prune" and json.dumps(result.to_json())


def test_train_and_eval_json_keys(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    trained = cli("train", *FAST_TRAIN, "--out", tmp_path / "t", "--json").json()
    assert list(trained) == ["command", "artifact", "metrics", "device", "seconds", "run_dir", "stopped_early"]
    evaluated = cli("eval", trained_checkpoint, "--json").json()
    assert list(evaluated) == ["command", "artifact", "metrics", "device", "seconds", "checkpoint", "data",
                               "per_class", "confusion_matrix"]
    assert evaluated["artifact"] is None and evaluated["metrics"]["samples"] > 0


@pytest.mark.slow  # three training runs
def test_finetune_and_distill_json_keys(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    from dlcli.checkpoint import load_checkpoint

    tuned = cli("finetune", trained_checkpoint, *FAST_TRAIN, "--out", tmp_path / "f", "--json").json()
    assert list(tuned) == ["command", "artifact", "metrics", "device", "seconds", "run_dir", "stopped_early",
                           "parent"]
    assert tuned["command"] == "finetune" and tuned["metrics"]["head_replaced"] is False
    distilled = cli("distill", "-t", trained_checkpoint, "-a", "width=0.5", *FAST_TRAIN, "--baseline",
                    "--out", tmp_path / "d", "--json").json()
    assert list(distilled) == ["command", "artifact", "metrics", "device", "seconds", "run_dir", "baseline_artifact"]
    assert Path(distilled["baseline_artifact"]).parent == tmp_path / "d" / "baseline"
    saved = yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())
    assert saved["model"] == "cnn" and saved["model_args"] == {"width": 0.5}  # the student, as trained
    student = load_checkpoint(Path(distilled["artifact"]))
    assert student.model_args["width"] == 0.5 and student.model_args["crop"] == 0  # no recipe for a student


def test_distill_and_finetune_options_default_to_their_configs_declarations(cli, trained_checkpoint: Path) -> None:
    """Their own options are None unless given: the config's declared default is the only one."""
    from dlcli.workflows.distill_config import DistillConfig
    from dlcli.workflows.finetune_config import FinetuneConfig

    shown, declared = printed(cli, "distill", "-t", trained_checkpoint), DistillConfig(trained_checkpoint)
    for name in ("student", "temperature", "alpha", "feature_loss", "cache_teacher", "baseline"):
        assert shown[name] == getattr(declared, name)
    shown, declared = printed(cli, "finetune", trained_checkpoint), FinetuneConfig(trained_checkpoint)
    assert (shown["freeze"], shown["unfreeze_after"], shown["head_lr"]) == ("none", None, None)
    assert declared.freeze == "none"
    assert field_help(DistillConfig, "temperature") in " ".join(cli("distill", "--help").out.split())


def test_prune_options_come_from_prune_spec_and_config(cli, trained_checkpoint: Path) -> None:
    from dlcli.compress.prune_spec import DEFAULT_ROUND_TO, PruneSpec
    from dlcli.workflows.prune_config import PruneConfig

    text = " ".join(cli("prune", "--help").out.split())
    for cls, name in ((PruneSpec, "steps"), (PruneSpec, "round_to"), (PruneConfig, "recover"),
                      (PruneConfig, "latency")):
        assert field_help(cls, name) in text
    cfg = printed(cli, "prune", trained_checkpoint, "--method", "channel", "--amount", "0.5")
    assert cfg["steps"] == 1 and cfg["round_to"] == DEFAULT_ROUND_TO and cfg["recover"] == "labels"


def test_recovery_epochs_may_be_fractional_like_epochs(cli, trained_checkpoint: Path) -> None:
    """--finetune-epochs takes what --epochs takes (a fraction), for prune's recovery as for training."""
    cfg = printed(cli, "prune", trained_checkpoint, "--method", "channel", "--amount", "0.5",
                  "--finetune-epochs", "0.5")
    assert cfg["epochs"] == 0.5


def test_a_fractional_run_reports_the_epochs_it_trained(cli, tmp_path: Path, tiny_train: list[str]) -> None:
    """metrics.epochs is 1.5 for --epochs 1.5 (two epochs begun), and stays a whole number otherwise."""
    at = tiny_train.index("--epochs")
    args = tiny_train[:at] + tiny_train[at + 2:]
    half = cli("train", *args, "--epochs", "1.5", "--out", tmp_path / "half", "--json")
    whole = cli("train", *args, "--epochs", "2", "--out", tmp_path / "whole", "--json")
    assert half.code == whole.code == 0, half.err + whole.err
    assert half.json()["metrics"]["epochs"] == 1.5
    assert whole.json()["metrics"]["epochs"] == 2 and isinstance(whole.json()["metrics"]["epochs"], int)


def test_train_uses_the_datasets_recipe_for_its_model(cli) -> None:
    """MNIST's cnn recipe (dlcli.data.catalog): its epochs, sgd learning rate and model arguments when
    not given; every flag wins; other models and optimizers keep the plain defaults."""
    from dlcli.data.catalog import DATASETS

    recipe = DATASETS.get("mnist").recipes["cnn"]
    cfg = printed(cli, "train", "--data", "mnist")
    assert cfg["epochs"] == recipe.epochs and cfg["lr"] == recipe.lr["sgd"] != choices.DEFAULT_LR["sgd"]
    assert cfg["model_args"] == recipe.model_args
    given = printed(cli, "train", "--data", "mnist", "--epochs", "3", "--lr", "0.1", "-a", "crop=0")
    assert given["epochs"] == 3 and given["lr"] == 0.1 and given["model_args"] == {**recipe.model_args, "crop": 0}
    adam = printed(cli, "train", "--data", "mnist", "--optimizer", "adam")
    assert adam["lr"] == choices.DEFAULT_LR["adam"] and adam["epochs"] == recipe.epochs
    resnet = printed(cli, "train", "--data", "mnist", "--model", "resnet")
    assert resnet["lr"] == choices.DEFAULT_LR["sgd"] and resnet["model_args"] == {}
    assert resnet["epochs"] == DATASETS.get("mnist").default_epochs
    small = printed(cli, "train", "--data", "mnist", "--train-samples", "2000")
    assert small["epochs"] > recipe.epochs  # the step budget raises the recipe's epochs on small data


def test_the_recipes_model_is_what_the_checkpoint_records(cli, tmp_path: Path) -> None:
    from dlcli.checkpoint import load_checkpoint
    from dlcli.data.catalog import DATASETS

    result = cli("train", *FAST_TRAIN, "--out", tmp_path / "run")
    assert result.code == 0, result.err
    args = load_checkpoint(tmp_path / "run" / "best.pt").model_args
    recipe = DATASETS.get("mnist-sample").recipes["cnn"].model_args
    assert {k: args[k] for k in recipe} == recipe


def test_the_step_budget_says_when_it_raises_the_recipes_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from dlcli.console import Console
    from dlcli.workflows.resolve import with_data, with_defaults, with_recipe

    cfg = with_defaults(with_recipe(TrainConfig(data="mnist", train_samples=2000), "mnist"), "mnist")
    resolved = with_data(cfg, torch.device("cpu"), 60000, [1, 28, 28], Console(quiet=False), from_scratch=True)
    assert resolved.epochs > 1
    assert f"epochs: {resolved.epochs:g} rather than 1," in capsys.readouterr().err


def test_a_run_saved_before_its_recipe_resumes_as_it_was(cli, tmp_path: Path) -> None:
    """A last.pt whose config predates MNIST's recipe (model_args {}) resumes with that config, not the
    recipe merged in (which the resume check would refuse as a changed architecture)."""
    from dlcli.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "old"
    plain = ["-a", "crop=0", "-a", "stem_norm=true", "-a", "channels=[8,16,32,64]", "--lr", "0.2"]
    assert cli("train", *FAST_TRAIN, *plain, "--out", run).code == 0
    ckpt = load_checkpoint(run / "last.pt")
    ckpt.config["model_args"] = {}  # what a run made before the recipe saved
    save_checkpoint(ckpt, run / "last.pt")
    resumed = cli("train", "--resume", run / "last.pt", "--epochs", "2", "-q")
    assert resumed.code == 0, resumed.err
    assert load_checkpoint(run / "last.pt").config["model_args"] == {}

