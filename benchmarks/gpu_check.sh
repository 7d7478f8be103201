#!/usr/bin/env bash
# The CUDA paths in one run, for a machine with an NVIDIA GPU (no GPU has been lent to this project
# yet; run it when one is). Prints one table at the end; every step is a real dlcli command.
#
#   DLCLI_DATA_DIR=/path/to/data bash benchmarks/gpu_check.sh      # MNIST in $DLCLI_DATA_DIR/mnist
#   bash benchmarks/gpu_check.sh                                   # no data folder: the embedded sample
#
# Steps: default training with --device auto (must pick cuda; time to the reported accuracy), the
# same with --precision bf16 and fp16 (fp16 uses a gradient scaler), a 1-GPU torchrun run
# (--nproc-per-node 1: nccl), export, eval and benchmark of the ONNX file on onnxruntime's CUDA
# provider (needs onnxruntime-gpu; the row says so when it is missing).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=mnist
if [ -z "${DLCLI_DATA_DIR:-}" ] || [ ! -d "${DLCLI_DATA_DIR}/mnist" ]; then DATA=mnist-sample; fi
OUT=$(mktemp -d)
export DLCLI_RUNS_DIR="$OUT/runs" NO_COLOR=1
declare -a ROWS

row() { ROWS+=("$(printf '%-28s %-8s %-10s %s' "$1" "$2" "$3" "$4")"); }

step() {  # step NAME COMMAND... : run, time, and pull accuracy/device from the JSON
  local name=$1; shift
  local start end json
  start=$(date +%s.%N)
  json=$("$@" --json -q 2>"$OUT/$name.err")
  local rc=$?
  end=$(date +%s.%N)
  local secs; secs=$(python3 -c "print(f'{$end-$start:.1f}')")
  if [ $rc -ne 0 ]; then row "$name" "rc=$rc" "$secs s" "$(tail -n1 "$OUT/$name.err")"; return; fi
  local summary
  summary=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); m=r.get("metrics",{});
print(r.get("device","?"), m.get("accuracy", m.get("p50_ms", "")))' <<<"$json")
  row "$name" ok "$secs s" "$summary"
  echo "$json" > "$OUT/$name.json"
}

python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'

step train-auto        python3 -m dlcli train --data "$DATA" --device auto --out "$OUT/auto"
step train-bf16        python3 -m dlcli train --data "$DATA" --device cuda --precision bf16 --out "$OUT/bf16"
step train-fp16        python3 -m dlcli train --data "$DATA" --device cuda --precision fp16 --out "$OUT/fp16"
step torchrun-1gpu     python3 -m dlcli train --data "$DATA" --nproc-per-node 1 --out "$OUT/ddp"
step export            python3 -m dlcli export "$OUT/auto/best.pt"
step eval-onnx-cuda    python3 -m dlcli eval "$OUT/auto/best.onnx" --device cuda
step benchmark-cuda    python3 -m dlcli benchmark "$OUT/auto/best.pt" "$OUT/auto/best.onnx" --device cuda --data "$DATA"

echo
printf '%-28s %-8s %-10s %s\n' step status wall "device / accuracy or p50"
printf '%s\n' "${ROWS[@]}"
echo "outputs in $OUT"
