#!/usr/bin/env bash
# The best sketch per CPU-hour (nbs/experiments/cpu_setting.ipynb, "Per CPU-hour"): matched wall-clock runs of candidate settings,
# each 30 minutes of training time on the 228 training pairs of data/CUFS_val, seed 0, pix2pix's linear decay over the
# 30 minutes, in the precision training picks on this CPU, scored on the 40 validation pairs every 5 minutes
# (val_curve.csv) and at the end (summary.json). The test split is never looked at. One run at a time (each takes
# both cores); a run cut short resumes exactly from its checkpoint when run.sh is started again; finished runs
# (summary.json) are skipped. Run from the checkout root:
#   bash results/cpu_setting/hour_runs.sh [MINUTES]     # MINUTES: stop starting new steps after this many minutes
set -euo pipefail
minutes="${1:-100000}"
end=$(( $(date +%s) + ${minutes%.*} * 60 ))
common=(--preset cpu256 --data-root data/CUFS_val --val-root data/CUFS_val --val-every-minutes 5 --max-steps 1000000
        --metrics fsim,ssim,lpips_squeeze --seed 0)

train_run() {   # name, then its options
    local name=$1; shift
    local resume=() left=$(( (end - $(date +%s)) / 60 ))
    if [ -f "results/runs/$name/summary.json" ]; then return 0; fi
    if [ "$left" -lt 1 ]; then echo "hour_runs: time is up before $name"; exit 0; fi
    if [ -f "results/runs/$name/checkpoints/last.pt" ]; then resume=(--resume); fi
    timeout --signal=TERM --kill-after=120 "${left}m" most-net train "${common[@]}" --name "$name" --run-dir "results/runs/$name" \
        "$@" "${resume[@]}" || { status=$?; [ "$status" -eq 124 ] || [ "$status" -eq 143 ] && exit 0; exit "$status"; }
}

train_run hour_cpu256 --max-minutes 30                                   # the released generator's setting
train_run hour_batch4 --max-minutes 30 --batch-size 4
train_run hour_batch2 --max-minutes 30 --batch-size 2
train_run hour_light_d --max-minutes 30 --disc-channels 16               # the discriminator at half width
train_run hour_deep_si --max-minutes 30 --feature-channels 128 \
    --model-overrides '{"si_hidden_channels": 64, "downsamplings": 3}'  # SI trunk at 32 x 32, twice as wide
# progressive resolution: the first 12 minutes at 128 px (resized faces, constant rate: the first 12 minutes of the
# others' schedule), then a warm start at 256 px (padded, as the others) for the other 18 minutes. A warm start carries
# the step and the training time on, so the second phase's --max-minutes 30 is the total, and its linear decay is the
# others' (constant to minute 15, then down to 0 at minute 30). (A first attempt gave it --max-minutes 18: 6 minutes.)
if [ ! -f results/runs/hour_progressive/checkpoints/last.pt ]; then
    train_run hour_progressive_128 --max-minutes 12 --image-size 128 --resize true --lr-policy constant --no-evaluate
fi
if [ -f results/runs/hour_progressive_128/checkpoints/weights.safetensors ] && [ ! -f results/runs/hour_progressive/checkpoints/last.pt ]; then
    warm=(--warm-start results/runs/hour_progressive_128/checkpoints/weights.safetensors)
else warm=(); fi
train_run hour_progressive --max-minutes 30 "${warm[@]}"
