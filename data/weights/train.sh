#!/usr/bin/env bash
# Retrain the shipped `factorized` codec exactly as it was made: a base model at a middle lambda,
# three longer runs at quality 3's lambda, then a short fine-tune from that per other quality level
# (much cheaper than training each level from scratch), then two rounds of 3,000 more steps of every level.
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
stage "$RUNS/q3b" --lmbda 0.004 --steps 4000 --lr 1e-4 --quality 3 --init "$RUNS/q3"
# The highest rates: quality 5 from q3b, quality 6 (about 1.2 bpp) from quality 5 through lambda 0.1
# (0.95 bpp; six files of 3 MB is the most the 20 MB budget holds, so that one is a step, not a level).
stage "$RUNS/q5" --lmbda 0.035 --steps 1500 --lr 1.5e-4 --quality 5 --init "$RUNS/q3b"
stage "$RUNS/q6a" --lmbda 0.1 --steps 2500 --lr 1.5e-4 --quality 6 --init "$RUNS/q5"
stage "$RUNS/q6" --lmbda 0.25 --steps 2000 --lr 1.5e-4 --quality 6 --init "$RUNS/q6a"
for q_lmbda in 1:0.0004 2:0.0015 4:0.012; do
  q=${q_lmbda%%:*}; lmbda=${q_lmbda#*:}
  stage "$RUNS/q$q" --lmbda "$lmbda" --steps 1500 --lr 1.5e-4 --quality "$q" --init "$RUNS/q3b"
done
# Rounds 5 and 6 (round 6 is shipped): every level trained 3,000 more steps at its own lambda, from its
# codec file of the round before (round 4's quality 3 is q3b's). About 6 minutes per level on 2 quiet cores.
for round in 5 6; do
  for q_lmbda in 1:0.0004 2:0.0015 3:0.004 4:0.012 5:0.035 6:0.25; do
    q=${q_lmbda%%:*}; lmbda=${q_lmbda#*:}
    if [[ $round == 5 ]]; then
      from="$RUNS/q$q"; [[ $q == 3 ]] && from="$RUNS/q3b"
    else
      from="$RUNS/r$((round - 1))-q$q"
    fi
    stage "$RUNS/r$round-q$q" --lmbda "$lmbda" --steps 3000 --lr 1.5e-4 --quality "$q" --init "$from/factorized-q$q.npz"
  done
done
for q in 1 2 3 4 5 6; do cp "$RUNS/r6-q$q/factorized-q$q.npz" data/weights/; done
