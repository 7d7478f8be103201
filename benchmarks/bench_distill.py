"""Issue "finetune and distill": Hinton et al.'s MNIST table, with our models.

A wide cnn teacher (width 3.5, ~300k parameters; `--teacher-args "-m resnet"` for a ResNet-20) is
trained on MNIST; the default cnn (~25k, under a tenth of the teacher) is distilled from it and, with
the same budget, trained alone (`--baseline`).

Run:  DLCLI_DATA_DIR=../shared/data python benchmarks/bench_distill.py [--teacher-epochs 4] [--epochs 2]
      (pass --teacher PATH to reuse a trained teacher)
Prints a table and writes benchmarks/results/distill.json. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import dlcli, require_data_dir

RESULTS = Path(__file__).parent / "results" / "distill.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", help="a trained teacher checkpoint (default: train a resnet)")
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--teacher-args", default="-m cnn -a width=3.5", help="model flags of the teacher")
    parser.add_argument("--epochs", type=int, default=2, help="student budget, distilled and alone")
    parser.add_argument("--temperature", default="4")
    parser.add_argument("--alpha", default="0.9")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    require_data_dir("mnist")
    with tempfile.TemporaryDirectory() as tmp:
        teacher = args.teacher
        teacher_cmd = f"dlcli train {args.teacher_args} --data mnist --epochs {args.teacher_epochs} --seed {args.seed}"
        if teacher is None:
            teacher = dlcli(*teacher_cmd.split()[1:], "--out", f"{tmp}/teacher")["artifact"]
        distill_cmd = (f"dlcli distill --teacher TEACHER --student cnn --data mnist --epochs {args.epochs} "
                       f"--temperature {args.temperature} --alpha {args.alpha} --seed {args.seed} --baseline")
        result = dlcli(*distill_cmd.replace("TEACHER", teacher).split()[1:], "--out", f"{tmp}/kd")
    m = result["metrics"]
    rows = [("teacher", m["teacher_params"], m["teacher_accuracy"]),
            ("student distilled (cnn)", m["student_params"], m["accuracy"]),
            ("student alone (cnn)", m["student_params"], m["baseline_accuracy"])]
    print(f"{'model':<24} {'params':>8} {'accuracy':>9} {'errors':>7}")
    for name, params, acc in rows:
        print(f"{name:<24} {params:>8,} {acc:>9.2%} {round((1 - acc) * 10000):>7}")
    print(f"param ratio {m['param_ratio']:.1%}, latency ratio {m['latency_ratio']:.2f}x (PyTorch, batch 32)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"teacher_command": teacher_cmd, "distill_command": distill_cmd,
                                   "metrics": m}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
