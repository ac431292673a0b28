#!/usr/bin/env bash
# Train scenes-sd on one GPU in one or two calls of the device tool (each call resumes where the last stopped).
#   bash benchmarks/train_scenes_gpu.sh [MINUTES]    # MINUTES: the stop clock of each stage (default 8)
# Writes runs/scenes (data, checkpoints, logs) and, when every stage has finished, the pipeline into
# explainer/assets/scenes-sd and the judge into explainer/assets/scenes-judge; copies the model card figures to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:-8}
W=runs/scenes
common=(--world scenes --work $W --device cuda --threads 4 --max-minutes "$MIN" --into-package)
run() {  # a stage continues its checkpoint when one exists
  local stage=$1; shift
  local resume=(); [ -d "$W/$stage/checkpoint" ] && resume=(--resume)
  python -m explainer.train "${common[@]}" "${resume[@]}" --stage "$stage" "$@"
}
python -m explainer.train --world scenes --work $W --stage data --workers 16 --data-images 60000
run vae --vae-batch 64 --vae-steps 8000 --vae-lr 1e-3
run vae-decoder --dec-batch 64 --dec-steps 4000
run clip --clip-batch 256 --clip-steps 4000
run judge --judge-batch 256 --judge-steps 4000 --judge-round-trips 12000
run unet --unet-batch 256 --unet-steps 20000 --unet-lr 5e-4
mkdir -p "${OUT:-/tmp/out}"
python benchmarks/adherence.py --model explainer/assets/scenes-sd --threads 4 --json "${OUT:-/tmp/out}/adherence.json"
cp -r explainer/assets/scenes-sd/training.json "${OUT:-/tmp/out}/" 2>/dev/null || true
