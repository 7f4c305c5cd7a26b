#!/usr/bin/env bash
# Table II at one matched budget (issue: the four variants, a second seed): each row trains 789 steps of batch 8
# at 256 px with the cpu256 preset (the released run's budget: 23.9 epochs of the 268 CUFS training pairs), a
# step-based linear learning-rate decay over the second half, in the precision `most-net train` picks on this
# CPU (bf16 autocast where the CPU has native bf16), and is scored on the 338 test pairs.
# One run at a time (each takes both cores); a run cut short resumes exactly from its checkpoint when run.sh
# is started again; a finished run (summary.json) is skipped. Run from the checkout root:
#   bash results/table2_runs/run.sh [MINUTES]      # MINUTES: stop starting new steps after this many minutes
set -euo pipefail
minutes="${1:-100000}"
end=$(( $(date +%s) + ${minutes%.*} * 60 ))
common=(--preset cpu256 --data-root data/CUFS --max-steps 789 --metrics fsim,ssim,lpips_squeeze)
for run in "most_net 0" "pix2pix 0" "most_net_no_memory 0" "most_net_no_mr 0" "most_net 1" "pix2pix 1"; do
    set -- $run
    name="t2_cpu256_$1_seed$2"
    if [ -f "results/runs/$name/summary.json" ]; then continue; fi
    left=$(( (end - $(date +%s)) / 60 ))
    if [ "$left" -lt 1 ]; then echo "table2_runs: time is up before $name"; exit 0; fi
    resume=(); if [ -f "results/runs/$name/checkpoints/last.pt" ]; then resume=(--resume); fi
    # the budget only stops the loop (max_minutes also bends a linear schedule: keep it beyond the 789 steps)
    timeout --signal=TERM --kill-after=120 "${left}m" \
        most-net train "${common[@]}" --max-minutes 100000 --variant "$1" --seed "$2" --name "$name" \
        --run-dir "results/runs/$name" "${resume[@]}" || { status=$?; [ "$status" -eq 124 ] || [ "$status" -eq 143 ] && exit 0; exit "$status"; }
done
