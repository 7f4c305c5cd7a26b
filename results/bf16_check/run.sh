#!/usr/bin/env bash
# The matched runs behind "bf16 trains the same" (nbs/experiments/bf16_check.ipynb): MOST-Net, preset cpu256, on the
# validation split carved from the CUFS training pairs (data/CUFS_val: 228 train / 40 validation pairs),
# 500 steps each, a step-based learning-rate schedule (the wall-clock budget set far away), scored on the
# 40 validation pairs. bf16 seed 0 against fp32 seeds 0 and 1: the two fp32 seeds measure the noise.
# Run from the checkout root, one run at a time (each takes both cores): bash results/bf16_check/run.sh
set -euo pipefail
common=(--preset cpu256 --data-root data/CUFS_val --max-steps 500 --max-minutes 100000
        --metrics fsim,ssim,lpips_squeeze --sample-every 250)
for run in "bf16 0" "fp32 0" "fp32 1"; do
    set -- $run
    name="bf16_check_$1_seed$2"
    if [ -f "results/runs/$name/summary.json" ]; then continue; fi
    resume=(); if [ -f "results/runs/$name/checkpoints/last.pt" ]; then resume=(--resume); fi
    most-net train "${common[@]}" --precision "$1" --seed "$2" --name "$name" --run-dir "results/runs/$name" "${resume[@]}"
done
