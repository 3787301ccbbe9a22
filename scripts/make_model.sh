#!/bin/sh
# Model v2 end to end on a CPU (about 25-40 minutes on 2 cores; most of it the view cache):
#   scripts/make_model.sh [RUN_DIR] [extra scripts/train.py arguments]
# Trains the cpu-v2 recipe into RUN_DIR (default runs/v2), converts it into RUN_DIR/models and
# evaluates it there (thresholds chosen on validation). Copy RUN_DIR/models/* into models/ only
# if the evaluation beats the shipped model's (see models/MODEL_CARD.md for the criteria).
# The warm start defaults to the shipped model (models/skinscan_checkpoint.pt); the v2 model
# itself was made from the v1 float model: --warm-start <v1 skinscan_float.tflite from git>.
set -e
cd "$(dirname "$0")/.."
RUN="${1:-runs/v2}"
[ $# -gt 0 ] && shift
PY=.venv/bin/python
$PY scripts/train.py --recipe cpu-v2 --data ../shared/data --out "$RUN" "$@"
$PY scripts/convert.py --data ../shared/data --weights "$RUN/model.pt" --out "$RUN/models" \
  --training-note "scripts/make_model.sh (cpu-v2)"
$PY scripts/evaluate.py --data ../shared/data --model "$RUN/models/skinscan.json" --calibrate
