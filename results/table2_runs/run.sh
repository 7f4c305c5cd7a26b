#!/usr/bin/env bash
# Table II at one matched budget (issue: the four variants, a second seed): each row trains 789 steps of batch 8
# at 256 px with the cpu256 preset (the released run's budget: 23.9 epochs of the 268 CUFS training pairs), a
# step-based linear learning-rate decay over the second half, in the precision `most-net train` picks on this
# CPU (bf16 autocast where the CPU has native bf16), and is scored on the 338 test pairs.
# pix2pix's test mode (eval: running statistics; train: pix2pix's own test time) is chosen first, on the 40
# validation pairs: a pix2pix run at the same budget trained on data/CUFS_val, both modes scored
# (most_net.evaluation.score_test_modes -> pix2pix_test_mode.csv); the pix2pix rows are sketched in the winner.
# One run at a time (each takes both cores); a run cut short resumes exactly from its checkpoint when run.sh
# is started again; a finished run (summary.json) is skipped, or only re-sketched when its test mode is not
# the chosen one. Run from the checkout root:
#   bash results/table2_runs/run.sh [MINUTES]      # MINUTES: stop starting new steps after this many minutes
set -euo pipefail
minutes="${1:-100000}"
end=$(( $(date +%s) + ${minutes%.*} * 60 ))
here=results/table2_runs
common=(--preset cpu256 --max-steps 789 --metrics fsim,ssim,lpips_squeeze)

# train (or resume) one run to its 789 steps; exit 0 from the script when the minutes are spent
train_run() {   # name variant seed data_root test_mode
    local name=$1 resume=()
    local left=$(( (end - $(date +%s)) / 60 ))
    if [ "$left" -lt 1 ]; then echo "table2_runs: time is up before $name"; exit 0; fi
    if [ -f "results/runs/$name/checkpoints/last.pt" ]; then resume=(--resume); fi
    # the budget only stops the loop (max_minutes also bends a linear schedule: keep it beyond the 789 steps)
    timeout --signal=TERM --kill-after=120 "${left}m" \
        most-net train "${common[@]}" --data-root "$4" --max-minutes 100000 --variant "$2" --seed "$3" \
        --test-mode "$5" --name "$name" --run-dir "results/runs/$name" "${resume[@]}" \
        || { status=$?; [ "$status" -eq 124 ] || [ "$status" -eq 143 ] && exit 0; exit "$status"; }
}
summary_field() { python -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

# 1. pix2pix's test mode, on the validation pairs
if [ ! -f "$here/pix2pix_test_mode.csv" ]; then
    if [ ! -f results/runs/t2_val_pix2pix_seed0/summary.json ]; then
        train_run t2_val_pix2pix_seed0 pix2pix 0 data/CUFS_val eval
    fi
    python - <<'PY'
from most_net.core import atomic_write_text
from most_net.evaluation import choose_test_mode, score_test_modes
scores = score_test_modes('results/runs/t2_val_pix2pix_seed0')
scores['chosen'] = scores['test_mode'] == choose_test_mode(scores)
print(scores.to_string(index=False))
atomic_write_text('results/table2_runs/pix2pix_test_mode.csv', scores.to_csv(index=False, float_format='%.4f'))
PY
fi
pix2pix_mode=$(python -c "import pandas as pd; s = pd.read_csv('$here/pix2pix_test_mode.csv'); print(s.loc[s['chosen'], 'test_mode'].item())")
echo "table2_runs: pix2pix is sketched in test_mode=$pix2pix_mode (chosen on the validation pairs, $here/pix2pix_test_mode.csv)"

# 2. the rows of Table II, seed 0, then the second seeds
for run in "most_net 0" "pix2pix 0" "most_net_no_memory 0" "most_net_no_mr 0" "most_net 1" "pix2pix 1"; do
    set -- $run
    name="t2_cpu256_$1_seed$2"
    mode=eval; [ "$1" = pix2pix ] && mode=$pix2pix_mode
    if [ -f "results/runs/$name/summary.json" ] && [ "$(summary_field "results/runs/$name/summary.json" test_mode)" = "$mode" ]; then
        continue
    fi
    train_run "$name" "$1" "$2" data/CUFS "$mode"   # a finished run in another test mode: resumed at its end, re-sketched
done
