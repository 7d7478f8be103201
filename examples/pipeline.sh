#!/usr/bin/env bash
# From training to a compressed, verified ONNX artifact with measured speed, in one pipeline.
# Usage: DLCLI_DATA_DIR=/path/to/data bash examples/pipeline.sh [DATA]   (DATA defaults to mnist;
# use mnist-sample to run it with no data folder at all). OUT sets the output folder [runs/pipeline],
# EPOCHS the training epochs [the dataset's default], e.g. EPOCHS=1 for a quick try.
set -euo pipefail
data="${1:-mnist}"
out="${OUT:-runs/pipeline}"
epochs=()
if [ -n "${EPOCHS:-}" ]; then epochs=(--epochs "$EPOCHS"); fi

ckpt=$(dlcli train --model cnn --data "$data" "${epochs[@]}" --out "$out/train" --force -q)
echo "trained:   $ckpt ($(dlcli eval "$ckpt" --json -q | python3 -c 'import json,sys; print(json.load(sys.stdin)["metrics"]["accuracy"])'))"

onnx=$(dlcli export "$ckpt" --out "$out/model.onnx" --force -q)
echo "exported:  $onnx"

int8=$(dlcli quantize "$ckpt" --out "$out/model.int8.onnx" --force -q)
echo "quantized: $int8"

pruned=$(dlcli prune "$ckpt" --method channel --amount 0.5 --finetune-epochs 1 --out "$out/pruned.pt" --force -q)
pruned_onnx=$(dlcli export "$pruned" --out "$out/pruned.onnx" --force -q)
echo "pruned:    $pruned -> $pruned_onnx"

dlcli benchmark "$ckpt" "$onnx" "$int8" "$pruned_onnx" --data "$data" --batch-size 1,32 \
  --csv "$out/benchmark.csv" --plot "$out/benchmark.png" --force
