#!/usr/bin/env bash
# A small learning-rate sweep: three runs of the default cnn, then `dlcli compare` side by side
# (metrics, the config keys that differ, lineage). Runs on the embedded MNIST sample: no data needed.
# Usage: bash examples/sweep.sh [DATA]   (DATA defaults to mnist-sample)
# OUT sets the output folder [runs/sweep], EPOCHS the epochs [the dataset's default], TRAIN_SAMPLES a
# smaller training subset, LRS the learning rates ["0.05 0.2 0.8"]; TENSORBOARD=1 also writes
# TensorBoard logs, so `tensorboard --logdir runs/sweep` compares the runs in its HPARAMS tab.
set -euo pipefail
data="${1:-mnist-sample}"
out="${OUT:-runs/sweep}"
extra=()
if [ -n "${EPOCHS:-}" ]; then extra+=(--epochs "$EPOCHS"); fi
if [ -n "${TRAIN_SAMPLES:-}" ]; then extra+=(--train-samples "$TRAIN_SAMPLES"); fi
if [ -n "${TENSORBOARD:-}" ]; then extra+=(--tensorboard); fi

runs=()
for lr in ${LRS:-0.05 0.2 0.8}; do
  ckpt=$(dlcli train --data "$data" --lr "$lr" "${extra[@]}" --out "$out/lr-$lr" --force -q)
  echo "lr $lr: $ckpt"
  runs+=("$out/lr-$lr")
done

dlcli compare "${runs[@]}"
dlcli compare "${runs[@]}" --json -q > "$out/compare.json"
echo "comparison: $out/compare.json"
