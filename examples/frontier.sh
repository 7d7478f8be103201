#!/usr/bin/env bash
# The frontier in one line: build fp32, int8, pruned and distilled variants of a trained checkpoint,
# measure them side by side, keep those within 0.5 pp of its accuracy, and print the best one's path
# (exit 1 when none passes, so a CI step can guard on it). The table goes to stderr; files go to
# frontier/ next to the checkpoint (a re-run reuses what is up to date).
# Usage: bash examples/frontier.sh CHECKPOINT [more `dlcli frontier` options]
#   e.g. dlcli train --data mnist -a width=3 --out runs/wide && bash examples/frontier.sh runs/wide/best.pt
set -euo pipefail
best=$(dlcli frontier "${1:?usage: frontier.sh CHECKPOINT [options]}" --max-accuracy-drop 0.5 --pick "${@:2}")
echo "ship: $best"
