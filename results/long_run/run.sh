#!/usr/bin/env bash
# The long run: MOST-Net in the preset chosen per CPU-hour (nbs/experiments/cpu_setting.ipynb, "Per CPU-hour"),
# 480 minutes of training time at 256 px on the 228 training pairs of data/CUFS_val, pix2pix's linear decay over
# all 480 minutes, the 40 validation pairs scored every 30 training minutes and at every stop (val_curve.csv).
# It takes many sessions; each one gives it what time it has:
#   bash results/long_run/run.sh MINUTES    # train at most MINUTES now, then stop with a checkpoint
#   bash results/long_run/run.sh save       # before committing: copy the weights a new machine continues from, and
#                                           # draw the validation curve (nbs/experiments/long_run.ipynb, with papermill)
# On the machine that trained it, a run resumes exactly from checkpoints/last.pt. On a new machine (no last.pt) it
# warm-starts from the committed results/long_run/weights.safetensors (generator and discriminator, step and
# training time; fresh optimiser moments) into a new part folder, <name>_w<k>, and appends where to NOTES.md.
# PRESET (default cpu256) names the preset; the validation scores decide which.
set -euo pipefail
preset="${PRESET:-cpu256}"
name="long_${preset}"
here=results/long_run
run=$(ls -d "results/runs/$name" "results/runs/${name}"_w[0-9]* 2>/dev/null | sort -V | tail -1 || true)   # the latest part
run="${run:-results/runs/$name}"
if [ "${1:-}" = save ]; then
    if [ -f "$run/checkpoints/weights.safetensors" ]; then
        cp "$run/checkpoints/weights.safetensors" "$here/weights.safetensors"
        echo "saved $run/checkpoints/weights.safetensors to $here/weights.safetensors"
    else echo "no checkpoint of $run on this machine: $here/weights.safetensors stays as committed"; fi
    papermill --log-level WARNING nbs/experiments/long_run.ipynb "$(mktemp --suffix .ipynb)" --cwd nbs/experiments \
        -p preset "$preset"
    echo "drew $here/val_curve.png (val_curve.csv, floor_val/, released_val/)"; exit 0
fi
minutes="${1:?give the minutes this session may train, or save}"
start=()
if [ -f "$run/summary.json" ]; then echo "long run: $run is finished"; exit 0; fi
if [ -f "$run/checkpoints/last.pt" ]; then start=(--resume)
elif [ -f "$here/weights.safetensors" ]; then
    k=$(( $(ls -d "results/runs/${name}"_w[0-9]* 2>/dev/null | wc -l) + 1 ))
    run="results/runs/${name}_w$k"
    start=(--warm-start "$here/weights.safetensors")
    echo "- $(date -u +%FT%TZ): no checkpoint on this machine; $run warm-started from the committed weights" >> "$here/NOTES.md"
fi
timeout --signal=TERM --kill-after=120 "${minutes}m" most-net train --preset "$preset" --name "$(basename "$run")" \
    --run-dir "$run" --data-root data/CUFS_val --val-root data/CUFS_val --val-every-minutes 30 --max-minutes 480 \
    --max-steps 1000000 --metrics fsim,ssim,lpips_squeeze --seed 0 "${start[@]}" \
    || { status=$?; [ "$status" -eq 124 ] || [ "$status" -eq 143 ] && exit 0; exit "$status"; }
