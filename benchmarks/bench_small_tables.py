"""Small tables: `dlcli train -m mlp --data csv:PATH` with its defaults against a logistic regression on
standardized features, on the same stratified train/test split (issue #15's target: within 2 pp).

The tables are the public UCI sets that scikit-learn ships inside its package (iris 150 rows, wine
178, breast cancer 569): written to csv in a temporary folder, nothing downloaded, nothing committed.
scikit-learn is needed by this script only (`pip install scikit-learn`), never by dlcli.

Run:  python benchmarks/bench_small_tables.py [--seeds 0 1 2] [-- extra dlcli train flags]
Prints a table and writes benchmarks/results/small_tables.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import dlcli

RESULTS = Path(__file__).parent / "results" / "small_tables.json"
TABLES = ("iris", "wine", "breast_cancer")
TEST_FRACTION = 0.3


def load_table(name: str) -> tuple[Any, Any]:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return bunch.data, bunch.target


def write_csv(path: Path, x: Any, y: Any) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{i}" for i in range(x.shape[1])), "label"])
        writer.writerows([*map(float, row), int(label)] for row, label in zip(x, y, strict=True))


def logistic_regression(x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10_000))
    return float(model.fit(x_train, y_train).score(x_test, y_test))


def one_split(name: str, seed: int, folder: Path, extra: list[str]) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    x, y = load_table(name)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_FRACTION, stratify=y,
                                                        random_state=seed)
    path = folder / f"{name}-{seed}.csv"
    write_csv(path, x_train, y_train)
    write_csv(path.with_name(f"{path.stem}.test.csv"), x_test, y_test)
    run = dlcli("train", "-m", "mlp", "--data", f"csv:{path}", "--seed", str(seed),
                "--out", str(folder / f"run-{name}-{seed}"), *extra)
    baseline = logistic_regression(x_train, y_train, x_test, y_test)
    metrics = run["metrics"]
    return {"table": name, "seed": seed, "rows": len(y), "train_rows": len(y_train), "test_rows": len(y_test),
            "mlp_accuracy": metrics["accuracy"], "logreg_accuracy": baseline,
            "gap_pp": round(100 * (baseline - metrics["accuracy"]), 2), "epochs": metrics["epochs"],
            "best_epoch": metrics["best_epoch"], "seconds": run["seconds"]}


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in TABLES:
        mine = [r for r in rows if r["table"] == name]
        gaps = [r["gap_pp"] for r in mine]
        out.append({"table": name, "rows": mine[0]["rows"], "epochs": mine[0]["epochs"],
                    "mlp_median": statistics.median(r["mlp_accuracy"] for r in mine),
                    "logreg_median": statistics.median(r["logreg_accuracy"] for r in mine),
                    "gap_pp_median": statistics.median(gaps), "gap_pp_max": max(gaps)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("extra", nargs="*", help="extra dlcli train flags, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlcli-tables-") as tmp:
        rows = [one_split(name, seed, Path(tmp), args.extra) for name in TABLES for seed in args.seeds]
    summary = summarize(rows)
    print(f"{'table':14s} {'rows':>5s} {'epochs':>6s} {'mlp':>8s} {'logreg':>8s} {'gap pp (median, max)':>22s}")
    for s in summary:
        print(f"{s['table']:14s} {s['rows']:5d} {s['epochs']:6d} {s['mlp_median']:8.2%} {s['logreg_median']:8.2%} "
              f"{s['gap_pp_median']:10.2f} {s['gap_pp_max']:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_small_tables.py " + " ".join(
        [f"--seeds {' '.join(map(str, args.seeds))}", *(["--", *args.extra] if args.extra else [])])
    args.out.write_text(json.dumps({"command": command, "split": f"stratified, test {TEST_FRACTION:.0%}",
                                    "summary": summary, "runs": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
