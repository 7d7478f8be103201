"""`dlcli prune`: each method reaches its target, structured results rebuild in a fresh process, masks
survive recovery, KD recovery and iterative rounds run, and bad requests fail with exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcli.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from dlcli.compress.pruning import PruneSpec, dense_state_dict, kept_channels, layer_stats, make_pruner
from dlcli.errors import UsageError
from dlcli.models import MODELS, count_parameters, create_model, model_args
from dlcli.models.surgery import head_name

# Recovery on a small class-balanced subset of the embedded sample: 5 SGD steps per epoch.
FAST = ["--data", "mnist-sample", "--train-samples", "600", "-q", "--json"]
NO_RECOVERY = [*FAST, "--finetune-epochs", "0", "--no-latency"]


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One briefly trained default cnn shared by the module (tests copy it or write elsewhere)."""
    from dlcli.config import TrainConfig
    from dlcli.console import Console
    from dlcli.runs import prepare_out_dir
    from dlcli.workflows.train import TrainRunConfig, run

    root = tmp_path_factory.mktemp("prune-base")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLCLI_RUNS_DIR", str(root / "runs"))
        cfg = TrainConfig(data="mnist-sample", epochs=1, train_samples=600, device="cpu")
        out_dir = prepare_out_dir(root / "run", "train", None, False)
        return Path(run(TrainRunConfig(cfg, out_dir), Console(quiet=True)).artifact)


def prune(cli, checkpoint: Path, *args: str):
    result = cli("prune", checkpoint, *args)
    assert result.code == 0, result.err
    payload = result.json()
    return payload, load_checkpoint(payload["artifact"])


def conv_linear_weights(ckpt: Checkpoint) -> dict[str, torch.Tensor]:
    model = ckpt.build_model()
    return {n: m.weight.detach() for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                       torch.nn.Linear))}


@pytest.mark.parametrize("method", ["l1-unstructured", "global-unstructured"])
def test_unstructured_reaches_target_and_masks_are_permanent(cli, base_checkpoint: Path, tmp_path: Path,
                                                             method: str) -> None:
    payload, ckpt = prune(cli, base_checkpoint, "--method", method, "--amount", "0.6", "--out",
                          tmp_path / "p.pt", *NO_RECOVERY)
    assert not any(k.endswith(("_orig", "_mask")) for k in ckpt.state_dict)  # prune.remove was applied
    weights = conv_linear_weights(ckpt)
    head = weights.pop(head_name(ckpt.build_model()))
    assert int((head == 0).sum()) == 0  # the classifier head is never pruned
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    assert zeros / total == pytest.approx(0.6, abs=2e-3)
    assert payload["metrics"]["sparsity"] == pytest.approx(0.6, abs=2e-3)
    if method == "l1-unstructured":  # every layer at the amount, within one weight of rounding
        for w in weights.values():
            assert abs(int((w == 0).sum()) - round(0.6 * w.numel())) <= 1
    metrics = payload["metrics"]
    assert metrics["params"] == metrics["params_before"] and metrics["macs"] == metrics["macs_before"]
    assert "latency_ms_b32" not in metrics
    for key in ("accuracy", "accuracy_before", "accuracy_pruned", "params", "macs"):
        assert key in metrics
    assert ckpt.extra["pruning"]["method"] == method
    assert ckpt.lineage[-1]["step"] == "prune" and ckpt.lineage[-1]["amount"] == 0.6
    assert ckpt.lineage[:-1] == load_checkpoint(base_checkpoint).lineage


def test_unstructured_sparsity_survives_recovery(cli, base_checkpoint: Path, tmp_path: Path) -> None:
    payload, ckpt = prune(cli, base_checkpoint, "--method", "global-unstructured", "--amount", "0.8",
                          "--finetune-epochs", "1", "--out", tmp_path / "p.pt", *FAST)
    weights = conv_linear_weights(ckpt)
    weights.pop(head_name(ckpt.build_model()))
    sparsity = sum(int((w == 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())
    assert sparsity == pytest.approx(0.8, abs=2e-3)
    record = ckpt.extra["pruning"]
    assert record["recovery"]["epochs_per_round"] == 1
    assert record["recovery"]["lr"] == pytest.approx(0.1)  # the stated recovery defaults for sgd
    assert record["recovery"]["batch_size"] == 64
    assert "accuracy_recovered" in record["rounds"][0]
    assert (Path(payload["run_dir"]) / "metrics.jsonl").exists()
    assert "nothing faster" in cli("prune", base_checkpoint, "--method", "l1-unstructured", "--amount", "0.3",
                                   "--out", tmp_path / "q.pt", "--data", "mnist-sample",
                                   "--finetune-epochs", "0").err


@pytest.mark.slow
def test_channel_pruning_is_smaller_and_rebuilds_in_a_fresh_process(cli, base_checkpoint: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "channel.pt"
    payload, ckpt = prune(cli, base_checkpoint, "--method", "channel", "--amount", "0.5", "--out", out,
                          "--finetune-epochs", "0", *FAST)
    metrics = payload["metrics"]
    assert metrics["sparsity"] == pytest.approx(0.5)
    assert metrics["params"] < 0.35 * metrics["params_before"] and metrics["macs"] < 0.5 * metrics["macs_before"]
    assert metrics["latency_ms_b32"] > 0 and metrics["latency_ms_b32_before"] > 0  # measured, not estimated
    layers = ckpt.extra["pruning"]["layers"]
    head = head_name(ckpt.build_model())
    for name, layer in layers.items():
        if name != head:  # the head keeps its 10 outputs
            assert layer["shape"][0] == layer["shape_before"][0] // 2
    assert layers[head]["shape"][0] == 10

    code = (
        "import sys, torch\nfrom dlcli.checkpoint import load_checkpoint\n"
        "ckpt = load_checkpoint(sys.argv[1])\nmodel = ckpt.build_model().eval()\n"
        "print(sum(p.numel() for p in model.parameters()), tuple(model(torch.rand(2, 1, 28, 28)).shape))\n"
    )
    fresh = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True)
    assert fresh.stdout.split()[0] == str(metrics["params"]) and "(2, 10)" in fresh.stdout

    evaluated = cli("eval", out, "--json", "-q")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.json()["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    exported = cli("export", out, "--out", tmp_path / "channel.onnx", "-q", "--json")
    if "No such command" not in exported.err:
        assert exported.code == 0, exported.err
        assert (tmp_path / "channel.onnx").exists()


@pytest.mark.slow
def test_iterative_channel_pruning_with_kd_recovery(cli, base_checkpoint: Path, tmp_path: Path) -> None:
    payload, ckpt = prune(cli, base_checkpoint, "--method", "channel", "--amount", "0.5", "--steps", "2",
                          "--recover", "kd", "--finetune-epochs", "1", "--no-latency", "--round-to", "2",
                          "--out", tmp_path / "p.pt", *FAST)
    record = ckpt.extra["pruning"]
    assert [r["amount"] for r in record["rounds"]] == [0.25, 0.5]
    assert all("accuracy_recovered" in r for r in record["rounds"])
    assert record["recovery"]["recover"] == "kd" and ckpt.lineage[-1]["recover"] == "kd"
    assert all(layer["shape"][0] % 2 == 0 for layer in record["layers"].values())
    assert (Path(payload["run_dir"]) / "round2" / "best.pt").exists()


def test_ignore_and_default_output_name(cli, base_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "best.pt"
    shutil.copy(base_checkpoint, source)
    payload, ckpt = prune(cli, source, "--method", "channel", "--amount", "0.5", "--ignore", "body.0",
                          *NO_RECOVERY)
    assert payload["artifact"] == str(tmp_path / "pruned-channel-0.5.pt")
    layers = ckpt.extra["pruning"]["layers"]
    first, second = [k for k, m in load_checkpoint(base_checkpoint).build_model().body.named_children()
                     if isinstance(m, torch.nn.Conv2d)][:2]
    assert first == "0" and layers["body.0"]["shape"][0] == 8  # ignored: whole
    assert layers[f"body.{second}"]["shape"][0] == load_checkpoint(base_checkpoint).model_args["channels"][1] // 2
    # Rewriting our own file is fine; a file dlcli did not write needs --force.
    assert cli("prune", source, "--method", "channel", "--amount", "0.5", *NO_RECOVERY).code == 0
    foreign = tmp_path / "notes.pt"
    foreign.write_text("mine")
    refused = cli("prune", source, "--method", "channel", "--amount", "0.5", "--out", foreign, *NO_RECOVERY)
    assert refused.code == 2 and "--force" in refused.err
    assert cli("prune", source, "--method", "channel", "--amount", "0.5", "--out", foreign, "--force",
               *NO_RECOVERY).code == 0


@pytest.mark.parametrize("amount", ["0", "1", "-0.2", "1.5"])
def test_invalid_amount_is_a_usage_error(cli, base_checkpoint: Path, tmp_path: Path, amount: str) -> None:
    result = cli("prune", base_checkpoint, "--method", "channel", "--amount", amount, "--out", tmp_path / "p.pt",
                 *NO_RECOVERY)
    assert result.code == 2
    assert "--amount" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "p.pt").exists()


def test_bad_method_ignore_and_round_to(cli, base_checkpoint: Path, tmp_path: Path) -> None:
    out = ["--out", tmp_path / "p.pt", *NO_RECOVERY]
    assert cli("prune", base_checkpoint, "--method", "chanel", "--amount", "0.5", *out).code == 2
    bad_ignore = cli("prune", base_checkpoint, "--method", "channel", "--amount", "0.5", "--ignore", "body.99", *out)
    assert bad_ignore.code == 2 and "body.0" in bad_ignore.err
    bad_round = cli("prune", base_checkpoint, "--method", "l1-unstructured", "--amount", "0.5", "--round-to", "8",
                    *out)
    assert bad_round.code == 2 and "channel" in bad_round.err


def _random_checkpoint(name: str, args: dict, path: Path) -> Path:
    model = create_model(name, [1, 28, 28], 10, [0.5], [0.25], args)
    save_checkpoint(Checkpoint(model_name=name, model_args=model_args(name, args), state_dict=model.state_dict(),
                               classes=[str(i) for i in range(10)], input_shape=[1, 28, 28], mean=[0.5],
                               std=[0.25], dataset="mnist-sample"), path)
    return path


def test_channel_pruning_refuses_vit_clearly(cli, tmp_path: Path) -> None:
    path = _random_checkpoint("vit", {"dim": 16, "depth": 1, "heads": 2}, tmp_path / "vit.pt")
    result = cli("prune", path, "--method", "channel", "--amount", "0.5", *NO_RECOVERY)
    assert result.code == 2 and "attention" in result.err and "unstructured" in result.err
    payload, _ = prune(cli, path, "--method", "l1-unstructured", "--amount", "0.5", *NO_RECOVERY)
    assert payload["metrics"]["sparsity"] == pytest.approx(0.5, abs=2e-3)


SMALL_ARGS = {"resnet": {"depth": 8}, "vit": {"dim": 16, "depth": 1, "heads": 2}, "mlp": {"hidden": [32, 16]}}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", ["l1-unstructured", "global-unstructured", "channel"])
def test_every_model_prunes_and_rebuilds(name: str, method: str) -> None:
    """The transforms alone (no training): each registered model either prunes to a state_dict that
    rebuilds into the same function, or (vit with channel) is refused with a UsageError."""
    args = SMALL_ARGS.get(name, {})
    model = create_model(name, [1, 28, 28], 10, [0.5], [0.25], args).eval()
    example = torch.rand(1, 1, 28, 28)
    spec = PruneSpec(method, 0.5).validate()
    if name == "vit" and method == "channel":
        with pytest.raises(UsageError):
            make_pruner(model, spec, example)
        return
    before = count_parameters(model)
    pruner = make_pruner(model, spec, example)
    pruner.step()
    pruner.finalize()
    ckpt = Checkpoint(model_name=name, model_args=model_args(name, args), state_dict=dense_state_dict(model),
                      classes=[str(i) for i in range(10)], input_shape=[1, 28, 28], mean=[0.5], std=[0.25],
                      dataset="x", extra={"pruning": {"method": method}})  # only recorded pruning reshapes
    rebuilt = ckpt.build_model().eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model(x), atol=1e-5)
    if method == "channel":
        assert count_parameters(rebuilt) < 0.6 * before
    else:
        stats = layer_stats(rebuilt)
        stats.pop(head_name(rebuilt))  # never pruned
        zeros = sum(s["zeros"] for s in stats.values())
        assert zeros / sum(s["params"] for s in stats.values()) == pytest.approx(0.5, abs=2e-3)


def test_prune_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom dlcli.cli import main\n"
        "try:\n    main(['prune', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('HEAVY', [m for m in ('torch', 'torch_pruning', 'onnx', 'onnxruntime') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "--amount" in out and "--finetune-epochs" in out


@pytest.mark.slow
def test_recovery_batch_default_sits_below_a_config_file(cli, base_checkpoint: Path, tmp_path: Path) -> None:
    config = tmp_path / "recover.yaml"
    config.write_text("lr: 0.05\n")
    _, ckpt = prune(cli, base_checkpoint, "--method", "l1-unstructured", "--amount", "0.3", "--finetune-epochs",
                    "1", "--no-latency", "--config", config, "--out", tmp_path / "p.pt", *FAST)
    assert ckpt.extra["pruning"]["recovery"]["batch_size"] == 64
    assert ckpt.extra["pruning"]["recovery"]["lr"] == pytest.approx(0.05)
    config.write_text("batch_size: 32\n")
    _, ckpt = prune(cli, base_checkpoint, "--method", "l1-unstructured", "--amount", "0.3", "--finetune-epochs",
                    "1", "--no-latency", "--config", config, "--out", tmp_path / "q.pt", *FAST)
    assert ckpt.extra["pruning"]["recovery"]["batch_size"] == 32


@pytest.mark.parametrize(("width", "amount", "multiple", "kept"), [
    (64, 0.3, 4, 44), (16, 0.3, 4, 12), (8, 0.3, 4, 4), (8, 0.7, 4, 4), (8, 0.5, 8, 8), (64, 0.5, 16, 32),
    (3, 0.5, 4, 2), (3, 0.9, 4, 1), (22, 0.3, 1, 15), (4, 0.9, 4, 4), (24, 0.01, 16, 24), (12, 0.1, 8, 12),
    (10, 0.05, 4, 10),
])
def test_kept_channels_are_the_nearest_multiple(width: int, amount: float, multiple: int, kept: int) -> None:
    assert kept_channels(width, amount, multiple) == kept


@pytest.mark.parametrize(("round_to", "widths"), [(None, [4, 12, 24, 44]), (1, [6, 11, 22, 45]), (8, [8, 8, 24, 48])])
def test_channel_widths_are_rounded_by_default(round_to: int | None, widths: list[int]) -> None:
    model = create_model("cnn", [1, 28, 28], 10, [0.5], [0.5], {}).eval()
    pruner = make_pruner(model, PruneSpec("channel", 0.3, round_to=round_to).validate(), torch.rand(1, 1, 28, 28))
    pruner.step()
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == widths


def test_an_amount_that_rounds_to_nothing_is_refused() -> None:
    model = create_model("cnn", [1, 28, 28], 10, [0.5], [0.5], {"channels": [4, 8]})
    with pytest.raises(UsageError, match="removes no channel.*--round-to 1"):
        make_pruner(model, PruneSpec("channel", 0.1).validate(), torch.rand(1, 1, 28, 28))


def test_a_pruned_model_that_is_not_faster_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    from dlcli.console import Console
    from dlcli.workflows.prune_measure import ModelStats
    from dlcli.workflows.prune_report import report

    spec = PruneSpec("channel", 0.3)
    layers = {"body.0": {"type": "Conv2d", "shape": [8, 1, 3, 3], "params": 72, "zeros": 0}}
    metrics = {"accuracy": 0.9, "accuracy_before": 0.91, "accuracy_pruned": 0.5, "sparsity": 0.3, "params": 50,
               "params_before": 72, "params_ratio": 0.7, "nonzero_params": 50, "nonzero_params_before": 72,
               "macs": 1, "macs_before": 2, "size_bytes": 1, "size_bytes_before": 2,
               "latency_ms_b32": 0.6, "latency_ms_b32_before": 0.5, "latency_ms_b1": 0.01, "latency_ms_b1_before": 0.02}
    stats = ModelStats(macs=1, params=72, nonzero_params=72, layers=layers)
    report(spec, stats, stats, metrics, Console(quiet=False))
    err = capsys.readouterr().err
    assert "not faster than the original on onnxruntime at batch 32 (0.600 vs 0.500 ms)" in err
    assert "batch 1 " not in err.split("not faster")[1] and "fixed per-operator costs" in err
    report(PruneSpec("channel", 0.3, round_to=1), stats, stats, metrics, Console(quiet=False))
    assert "try --round-to 4 or 8" in capsys.readouterr().err
