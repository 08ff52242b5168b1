#!/usr/bin/env bash
# Retrain the shipped `factorized` codec exactly as it was made: a base model at a middle lambda,
# two longer runs at quality 3's lambda, then a short fine-tune from that per other quality level
# (much cheaper than training each level from scratch).
# Usage: data/weights/train.sh [PHOTOS_DIR] [RUNS_DIR]   (from the repository root)
# Every stage is resumable: rerun the script after an interruption; finished stages are skipped.
set -euo pipefail
PHOTOS=${1:-../shared/datasets/photos}
RUNS=${2:-runs/compress-weights}
COMMON=(--images "$PHOTOS" --model factorized --filters 64 --latent 96 --patch 128 --batch 8 --holdout 5 --epoch-steps 250)

stage() {  # stage OUT ARGS...: run `compress train` unless OUT already holds a finished run
  local out=$1; shift
  if [[ -f $out/metrics.json ]]; then echo "skip $out (finished)"; return; fi
  python cli.py compress train "${COMMON[@]}" --out "$out" "$@"
}

stage "$RUNS/base" --lmbda 0.007 --steps 3500 --lr 3e-4
# The first round of per-level fine-tunes (1,000 steps each) shipped until this one: its lambda-0.012
# model is where the longer quality-3 run started, so it stays in the recipe.
stage "$RUNS/l0.012" --lmbda 0.012 --steps 1000 --lr 1.5e-4 --quality 4 --init "$RUNS/base"
stage "$RUNS/q3a" --lmbda 0.004 --steps 4000 --lr 2e-4 --quality 3 --init "$RUNS/l0.012"
stage "$RUNS/q3" --lmbda 0.004 --steps 5000 --lr 1.5e-4 --quality 3 --init "$RUNS/q3a"
cp "$RUNS/q3/factorized-q3.npz" data/weights/
for q_lmbda in 1:0.0004 2:0.0015 4:0.012 5:0.035; do
  q=${q_lmbda%%:*}; lmbda=${q_lmbda#*:}
  stage "$RUNS/q$q" --lmbda "$lmbda" --steps 1000 --lr 1.5e-4 --quality "$q" --init "$RUNS/q3"
  cp "$RUNS/q$q/factorized-q$q.npz" data/weights/
done
