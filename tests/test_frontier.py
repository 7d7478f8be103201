"""`dlcli frontier`: the pure rules (variant names, Pareto marking, gates, --pick, reuse), label
placement in the plot, and the command end to end on the embedded MNIST sample."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlcli.errors import UsageError
from dlcli.runs import latest_checkpoint
from dlcli.workflows.frontier_build import Recipe, plan
from dlcli.workflows.frontier_config import FrontierConfig
from dlcli.workflows.frontier_rules import (
    DEFAULT_VARIANTS,
    Gates,
    Point,
    gate_failures,
    pareto_flags,
    parse_variant,
    parse_variants,
    pick,
    reusable,
    step_key,
    student_args,
)

QUICK = ["--train-samples", "100", "--iters", "2", "--rounds", "1", "-q"]
ROOT = Path(__file__).resolve().parents[1]


# --- variant names -------------------------------------------------------------------------------------------

def test_variant_names_parse_into_what_they_build() -> None:
    assert parse_variant("channel-50").method == "channel" and parse_variant("channel-50").amount == 0.5
    assert parse_variant("global-90").method == "global-unstructured"
    assert parse_variant("l1-30").method == "l1-unstructured"
    int8 = parse_variant("channel-50-int8")
    assert int8.int8 and int8.base == "prune" and int8.base_name == "channel-50"
    assert parse_variant("int8").base_name == "fp32" and parse_variant("int8").int8
    assert parse_variant("distilled-int8").base == "distill"
    assert parse_variant("channel-50").base_name == "channel-50"


@pytest.mark.parametrize("name", ["channel-0", "channel-100", "global", "fp16", "fp32-int8x", "prune-50", ""])
def test_unknown_variants_are_refused_with_the_forms(name: str) -> None:
    with pytest.raises(UsageError, match="variants are"):
        parse_variant(name)


def test_the_reference_is_always_first_and_duplicates_drop() -> None:
    assert [v.name for v in parse_variants(["int8", "channel-50", "int8", "fp32"])] == ["fp32", "int8", "channel-50"]


def test_plan_shares_a_pruned_model_between_its_variants() -> None:
    recipe = Recipe(None, None, 1, None, 0, 2, ("cnn", {"width": 0.5}))
    steps, artifacts = plan(parse_variants(DEFAULT_VARIANTS), recipe)
    assert list(artifacts) == list(DEFAULT_VARIANTS)
    assert [s.output for s in steps.values()].count("channel-50.pt") == 1
    derived = steps["channel-50-int8.onnx"]
    assert derived.source == "channel-50.onnx" and derived.action == "quantize"
    assert steps["int8.onnx"].source == "fp32.onnx" and steps["fp32.onnx"].source is None
    assert [s.action for s in steps.values()].count("export") == 4  # each fp32 model exported once
    assert steps["distilled/best.pt"].options["student_args"] == {"width": 0.5}
    order = list(steps)
    assert order.index("channel-50.pt") < order.index("channel-50.onnx") < order.index("channel-50-int8.onnx")
    only_int8, artifacts = plan(parse_variants(["channel-50-int8"]), recipe)
    assert "channel-50.onnx" in only_int8 and "channel-50" not in artifacts  # built, not listed


def test_config_refuses_bad_combinations_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown variant"):
        FrontierConfig(tmp_path / "m.pt", variants=("int9",))
    with pytest.raises(UsageError, match="recover-epochs"):
        FrontierConfig(tmp_path / "m.pt", recover_epochs=0)  # the default list has `distilled`
    assert FrontierConfig(tmp_path / "m.pt", variants=("int8",), recover_epochs=0).recover_epochs == 0
    with pytest.raises(UsageError, match="latency-batch"):
        FrontierConfig(tmp_path / "m.pt", latency_batch=8)
    with pytest.raises(UsageError, match="negative"):
        Gates(max_size_mb=-1)
    assert FrontierConfig(tmp_path / "run" / "m.pt").out_dir == tmp_path / "run" / "frontier"


def test_student_is_the_parent_at_half_width() -> None:
    assert student_args("cnn", {"width": 3, "channels": [8, 16]}) == {"width": 1.5, "channels": [8, 16]}
    assert student_args("mlp", {"hidden": [256, 128]}) == {"hidden": [128, 64]}
    assert student_args("vit", {"dim": 64, "heads": 4}) == {"dim": 32, "heads": 4}
    with pytest.raises(UsageError, match="distilled"):
        student_args("other", {"depth": 3})


# --- Pareto, gates, pick -------------------------------------------------------------------------------------

def test_pareto_keeps_exactly_the_undominated_points() -> None:
    points = [
        Point(0.99, 2.0, 900),   # most accurate
        Point(0.98, 1.0, 300),   # faster and smaller
        Point(0.97, 1.5, 400),   # dominated by the one above
        Point(0.96, 1.0, 100),   # smallest
        Point(0.98, 1.0, 300),   # identical to a Pareto point: kept too
    ]
    assert pareto_flags(points) == [True, True, False, True, True]
    assert pareto_flags([Point(0.5, 1.0, 1)]) == [True]


def test_a_point_better_in_one_objective_only_is_still_optimal() -> None:
    assert pareto_flags([Point(0.9, 1.0, 100), Point(0.9, 1.0, 99)]) == [False, True]
    assert pareto_flags([Point(0.9, 1.0, 100), Point(0.9, 0.9, 100)]) == [False, True]


def test_gates_name_each_failure() -> None:
    gates = Gates(max_accuracy_drop=0.5, max_latency_ms=1.0, max_size_mb=0.1)
    assert gate_failures(0.4, 0.9, 100_000, gates) == []
    failures = gate_failures(0.6, 1.1, 100_001, gates)
    assert [f.split()[0] for f in failures] == ["drop", "latency", "size"]
    assert gate_failures(None, 0.1, 1, gates) == ["drop unknown pp > 0.5"]  # unmeasured never passes unseen
    assert gate_failures(None, 99.0, 10**9, Gates()) == []


def test_pick_is_the_most_accurate_passing_variant_ties_to_the_faster() -> None:
    points = [Point(0.99, 3.0, 10), Point(0.98, 1.0, 10), Point(0.98, 0.5, 20), Point(0.97, 0.1, 1)]
    assert pick(points, [True, True, True, True]) == 0
    assert pick(points, [False, True, True, True]) == 2  # tie on accuracy: the lower latency
    assert pick(points, [False, False, False, True]) == 3
    assert pick(points, [False] * 4) is None


# --- reuse ---------------------------------------------------------------------------------------------------

def test_reuse_needs_the_same_step_and_an_unchanged_file() -> None:
    key = step_key("prune", "a" * 64, {"method": "channel", "amount": 0.5})
    assert key == step_key("prune", "a" * 64, {"amount": 0.5, "method": "channel"})  # order does not matter
    assert key != step_key("prune", "b" * 64, {"method": "channel", "amount": 0.5})  # another parent
    assert key != step_key("prune", "a" * 64, {"method": "channel", "amount": 0.6})  # other options
    entry = {"key": key, "sha256": "f" * 64}
    assert reusable(entry, key, "f" * 64)
    assert not reusable(entry, key, "e" * 64)  # the file was changed since
    assert not reusable(entry, key, None)  # the file is gone
    assert not reusable(entry, "other", "f" * 64)
    assert not reusable(None, key, "f" * 64)


# --- the plot's labels ---------------------------------------------------------------------------------------

def test_labels_neither_overlap_nor_leave_the_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlcli.workflows.frontier_report import place_labels

    points = [(1.0, 99.0), (1.02, 99.01), (1.04, 98.99), (1.01, 98.98), (2.0, 97.0), (2.05, 97.02)]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter(*zip(*points, strict=True), s=100)
    ax.set_xlim(0.5, 3)
    ax.set_ylim(96.5, 99.5)
    fig.tight_layout()
    labels = place_labels(ax, points, [f"variant-number-{i}" for i in range(len(points))], [100.0] * len(points))
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    inside = ax.get_window_extent(renderer)
    for i, box in enumerate(boxes):
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        for other in boxes[i + 1:]:
            assert not box.overlaps(other)
    plt.close(fig)


# --- end to end ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_frontier_builds_measures_gates_picks_and_reuses(cli, trained_checkpoint: Path) -> None:
    out = trained_checkpoint.parent / "frontier"
    first = cli("frontier", trained_checkpoint, "--variants", "int8,channel-50", "--recover-epochs", "0", *QUICK,
                "--json")
    assert first.code == 0, first.err
    found = first.json()
    assert found["command"] == "frontier" and found["artifact"] == str(out / "frontier.json")
    rows = {r["variant"]: r for r in found["variants"]}
    assert list(rows) == ["fp32", "int8", "channel-50"]
    for name in ("frontier.json", "frontier.csv", "frontier.png", "manifest.json"):
        assert (out / name).is_file()
    assert json.loads((out / "frontier.json").read_text())["variants"][1]["variant"] == "int8"
    with (out / "frontier.csv").open() as f:
        assert [r["variant"] for r in csv.DictReader(f)] == ["fp32", "int8", "channel-50"]
    assert (out / "frontier.png").read_bytes().startswith(b"\x89PNG")
    for row in rows.values():
        assert Path(row["artifact"]).is_file() and not row["reused"]
        assert 0 <= row["accuracy"] <= 1 and row["size_bytes"] > 0 and row["params"] > 0
        assert all(row[f"{p}_ms_b{b}"] > 0 for p in ("p50", "p90") for b in (1, 32))
        assert row["passes"] and row["failures"] == []
    assert rows["fp32"]["accuracy_drop_pp"] == 0 and rows["fp32"]["speedup_b32"] == 1
    assert rows["channel-50"]["params"] < rows["fp32"]["params"]
    # lineage: each artifact names its parent
    assert rows["int8"]["parent"] == str(out / "fp32.onnx")
    assert [(s["step"], s["source"]) for s in rows["int8"]["lineage"][-2:]] == [
        ("export", str(trained_checkpoint)), ("quantize", str(out / "fp32.onnx"))]
    assert rows["channel-50"]["parent"] == str(out / "channel-50.pt")
    assert [s["step"] for s in rows["channel-50"]["lineage"]][-2:] == ["prune", "export"]
    assert rows["channel-50"]["lineage"][-2]["source"] == str(trained_checkpoint)
    metrics = found["metrics"]
    assert metrics["variants"] == 3 and metrics["passing"] == 3 and metrics["pareto_optimal"] >= 1
    assert found["pick"] in {r["artifact"] for r in rows.values()} and found["threads"] >= 1
    assert latest_checkpoint().resolve() == trained_checkpoint.resolve()  # prune's output is not "the latest run"

    again = cli("frontier", trained_checkpoint, "--variants", "int8,channel-50", "--recover-epochs", "0", *QUICK,
                "--pick")
    assert again.code == 0, again.err
    assert Path(again.out.strip()).is_file() and again.out.strip() in {r["artifact"] for r in rows.values()}
    saved = json.loads((out / "frontier.json").read_text())
    assert all(r["reused"] for r in saved["variants"])

    gated = cli("frontier", trained_checkpoint, "--variants", "int8,channel-50", "--recover-epochs", "0", *QUICK,
                "--max-size-mb", "0.000001", "--pick")
    assert gated.code == 1 and gated.out == ""
    assert "none of the 3 variants passes" in gated.err
    saved = json.loads((out / "frontier.json").read_text())
    assert not any(r["passes"] for r in saved["variants"]) and saved["pick"] is None
    assert all(r["failures"][0].startswith("size") for r in saved["variants"])

    changed = cli("frontier", trained_checkpoint, "--variants", "channel-50", "--recover-epochs", "0", *QUICK,
                  "--seed", "1", "--json")  # the seed shapes pruning's data order, not the fp32 export
    assert changed.code == 0, changed.err
    rows = {r["variant"]: r for r in changed.json()["variants"]}
    assert rows["fp32"]["reused"] and not rows["channel-50"]["reused"]


@pytest.mark.slow
def test_default_variants_on_tiny_data(cli, trained_checkpoint: Path) -> None:
    """The default list end to end, with recovery and distillation on 100 samples."""
    found = cli("frontier", trained_checkpoint, *QUICK, "--json")
    assert found.code == 0, found.err
    rows = {r["variant"]: r for r in found.json()["variants"]}
    assert list(rows) == list(DEFAULT_VARIANTS)
    out = trained_checkpoint.parent / "frontier"
    assert rows["distilled"]["parent"] == str(out / "distilled" / "best.pt")
    assert rows["distilled"]["lineage"][0]["step"] == "distill"
    assert rows["distilled"]["lineage"][0]["source"] == str(trained_checkpoint)
    assert rows["channel-50-int8"]["parent"] == str(out / "channel-50.onnx")
    assert rows["global-90"]["nonzero_params"] < 0.2 * rows["global-90"]["params"]
    assert rows["distilled"]["params"] < rows["fp32"]["params"]


def test_a_foreign_output_folder_needs_force(cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    found = cli("frontier", trained_checkpoint, "--out", folder, "--variants", "int8", *QUICK)
    assert found.code == 2 and "--force" in found.err and len(found.err.strip().splitlines()) == 1
    assert cli("frontier", trained_checkpoint, "--variants", "fp16", *QUICK).code == 2


@pytest.mark.slow
def test_example_script_prints_the_pick(trained_checkpoint: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "examples" / "frontier.sh"), str(trained_checkpoint), "--variants",
                           "fp32", "--recover-epochs", "0", *QUICK], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    picked = proc.stdout.strip().removeprefix("ship: ")
    assert Path(picked).is_file() and picked.endswith(".onnx")
