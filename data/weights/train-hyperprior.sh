#!/usr/bin/env bash
# Train the `hyperprior` codec (Balle et al. 2018) at the six quality levels of the shipped `factorized`
# one, each warm-started from the factorized codec file of its level (--init FILE.npz: the analysis and
# synthesis transforms; h_a, h_s and the prior of z start fresh) and trained at that level's lambda.
# About 8 minutes per level on 2 CPU cores. The codec files are not shipped (six files of 5.6 MB would
# overrun the 20 MB weights budget): run this, then `compress eval --model hyperprior --weights RUNS/all`.
# Usage: data/weights/train-hyperprior.sh [PHOTOS_DIR] [RUNS_DIR]   (from the repository root; resumable)
set -euo pipefail
PHOTOS=${1:-../shared/datasets/photos}
RUNS=${2:-runs/compress-hyperprior}
COMMON=(--images "$PHOTOS" --model hyperprior --filters 64 --latent 96 --patch 128 --batch 8 --holdout 5 --epoch-steps 250
        --steps 3000 --lr 1.5e-4)
mkdir -p "$RUNS/all"
for q_lmbda in 3:0.004 1:0.0004 2:0.0015 4:0.012 5:0.035 6:0.25; do
  q=${q_lmbda%%:*}; lmbda=${q_lmbda#*:}
  out="$RUNS/hyperprior-q$q"
  if [[ -f $out/metrics.json ]]; then
    echo "skip $out (finished)"
  else
    python cli.py compress train "${COMMON[@]}" --lmbda "$lmbda" --quality "$q" --init "data/weights/factorized-q$q.npz" --out "$out"
  fi
  cp "$out/hyperprior-q$q.npz" "$RUNS/all/"
done
