#!/usr/bin/env bash
# Matched runs of the objective's balance and of capacity (issue: "the sketch people would pick"), chosen on the
# validation pairs weighted to the test split's subset mix, never on the test split (nbs/experiments/objective.ipynb).
# Every run: the cpu256 preset's network and data (228 training pairs of data/CUFS_val at 256 px), bf16 autocast on
# every CPU (--precision bf16: 'auto' takes fp32 where bf16 is measured not to pay, and the runs must match), a budget of
# STEPS steps of batch 8 (pix2pix's linear decay over the second half of them), a generator EMA (decay 0.999) scored
# beside the raw weights on the 40 validation pairs every 250 steps, each scored generator kept on disk. The test split
# is not scored (--no-evaluate): only the setting chosen on validation is, once, at the end.
# Runs of one network compare at equal steps = equal CPU time; others through their step times (bench_run_steps).
#   bash results/objective/run.sh NAME MINUTES     # train NAME for at most MINUTES now; stop with a checkpoint
#   bash results/objective/run.sh NAME save        # copy the weights a new machine continues from, and the generator of
#                                                  # its best validation point (best.safetensors), into results/objective/NAME/
# (the run's config.json, log.csv and val_curve.csv are committed where it writes them, results/runs/obj_NAME/)
# Two runs at once, each on one thread:  OMP_NUM_THREADS=1 bash results/objective/run.sh NAME MINUTES
# The SqueezeNet 1.1 weights of the style/content losses and LPIPS come from $MOST_NET_WEIGHTS or the torch cache.
# On the machine that trained it a run resumes exactly from checkpoints/last.pt; on a new machine it warm-starts from
# the committed results/objective/NAME/weights.safetensors (fresh Adam moments) and says so in NOTES.md.
set -euo pipefail
init=
name="${1:?give a run name: base_s0, base_s1, adv03_s0, adv03_s1, adv03_s2, pix2pix_s0, adv03_fm10_s0, adv03_sc10_s0, adv03_mixtest_s0, adv03_jit15_s0, adv01_s0, adv03_sc0_s0, adv03_wide_s0, adv03_wd01_s0, adv03_lsgan_s0, adv03_ms2_s0, adv03_long_s0, release_ft03_s0, release_ft01_s0}"
steps=3000 val_every=250
case "$name" in
    base_s0)    options=(--preset cpu256 --seed 0) ;;
    base_s1)    options=(--preset cpu256 --seed 1) ;;                               # the seed spread
    adv03_s0)   options=(--preset cpu256 --seed 0 --lambda-adv 0.3) ;;             # the adversarial weight
    adv03_s1)   options=(--preset cpu256 --seed 1 --lambda-adv 0.3) ;;             # the seed spread at the leader
    adv03_s2)   options=(--preset cpu256 --seed 2 --lambda-adv 0.3) ;;             # a third seed of the leader
    pix2pix_s0) options=(--preset pix2pix256 --seed 0) ;;                           # Isola et al.'s stock pix2pix
    # The levers, each on the leader at step 3000 (adversarial 0.3) and read against adv03_s0 (README, "Sessions 11-").
    adv03_fm10_s0)    options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --extra-losses '{"feature_matching": 10}') ;;
    adv03_sc10_s0)    options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --lambda-style 10 --lambda-content 10) ;;
    adv03_mixtest_s0) options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --batch-mix test) ;;
    adv03_jit15_s0)   options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --jitter 15) ;;   # pix2pix's 286-crop shifts
    adv01_s0)         options=(--preset cpu256 --seed 0 --lambda-adv 0.1) ;;
    adv03_sc0_s0)     options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --lambda-style 0 --lambda-content 0) ;;
    adv03_wd01_s0)    options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --weight-decay 0.1) ;;   # AdamW's decay on G
    adv03_lsgan_s0)   options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --gan-mode lsgan) ;;     # pix2pixHD's GAN loss
    adv03_ms2_s0)     options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --disc-scales 2) ;;   # pix2pixHD's D, 2 scales: 1.02x
                      # the step (step_times.csv), inside the sessions' drift of the same step (3.38 s, then 3.50 s): 3000 steps
    adv03_wide_s0)    options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --base-channels 32 --feature-channels 128 --num-slots 256)
                      steps=1100 ;;   # its step is 2.7x cpu256's (step_times.csv): 1100 steps = adv03_s0's 3000 in CPU time
    # Item 7, the long run: the leader at step 3000 (adversarial 0.3, still paying there) at a constant rate for as long
    # as its curve pays, then a linear decay over 1500 steps; long_phase.py decides when, from the curve.
    adv03_long_s0)    options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --lr-policy constant)
                      val_every=500 ;;   # its steps: long_phase.py, below
    # Item 7 from the other end: the 8-hour release's run (results/long_run: adversarial 1, 480 minutes, its rate decayed
    # to zero) trained on with the leader's adversarial 0.3 at a constant 5e-5 for G and D, DESIGN section 7's fine-tune
    # probe (600 steps there, one of them scored on the test split for the record), now scored on validation: 1500 steps.
    release_ft03_s0)  options=(--preset cpu256 --seed 0 --lambda-adv 0.3 --lr-policy constant --lr-g 5e-5 --lr-d 5e-5)
                      init=results/long_run/weights.safetensors steps=1500 ;;   # steps on top of its weights' own
    # The same from the same weights at adversarial 0.1, the probe's end of the frontier with the most SSIM (session 16).
    release_ft01_s0)  options=(--preset cpu256 --seed 0 --lambda-adv 0.1 --lr-policy constant --lr-g 5e-5 --lr-d 5e-5)
                      init=results/long_run/weights.safetensors steps=1500 ;;   # steps on top of its weights' own
    *) echo "run.sh: unknown run $name" >&2; exit 2 ;;
esac
if [ -n "$init" ]; then   # a fine-tune counts its steps from those of the weights it starts from
    steps=$(( $(python -c "from safetensors import safe_open as o; print(o('$init', 'pt').metadata()['step'])") + steps ))
fi
here="results/objective/$name"
run="results/runs/obj_$name"
mkdir -p "$here"
if [ "${2:-}" = save ]; then
    if [ -f "$run/checkpoints/weights.safetensors" ] && [ "$(stat -c %s "$run/checkpoints/weights.safetensors")" -gt 50000000 ]; then
        echo "$run's weights are over 50 MB (pix2pix's 64-wide U-Net): they stay on this machine, not in git"
    elif [ -f "$run/checkpoints/weights.safetensors" ]; then
        cp "$run/checkpoints/weights.safetensors" "$here/weights.safetensors"; echo "saved $run's weights into $here"
    else echo "no checkpoint of $run on this machine: $here/weights.safetensors stays as committed"; fi
    if [ "$name" != pix2pix_s0 ] && [ -f "$run/val_curve.csv" ]; then   # its best validation point too (release_best.ipynb)
        python -c "from most_net.release import keep_best_point as k; r = k('$run', '$here'); print('best point:', r and (r['step'], r['weights']))"
    fi
    exit 0
fi
minutes="${2:?give the minutes this session may train, or save}"
if [ "$name" = adv03_long_s0 ]; then
    phase=$(python results/objective/long_phase.py "$run" "$here")   # "STEPS" at a constant rate, or "STEPS DECAY_STEPS"
    read -r steps decay_steps <<< "$phase"
    if [ -n "$decay_steps" ]; then
        options+=(--lr-policy linear --lr-decay-steps "$decay_steps")
        echo "objective: $name decays its rate over its last $decay_steps steps, to step $steps ($here/decay_from.json)"
    fi
fi
start=()
if [ -f "$run/run_info.json" ] && python -c "import json, sys; sys.exit(json.load(open('$run/run_info.json')).get('steps') != $steps)"; then
    echo "objective: $run is finished ($steps steps)"; exit 0; fi
if [ -f "$run/checkpoints/last.pt" ]; then start=(--resume)
elif [ -f "$here/weights.safetensors" ]; then
    start=(--warm-start "$here/weights.safetensors")
    echo "- $(date -u +%FT%TZ): $name: no checkpoint on this machine; warm-started from the committed weights" >> results/objective/NOTES.md
elif [ -n "${init:-}" ]; then start=(--warm-start "$init")   # a fine-tune's first share
elif [ -n "$(ls -A "$run" 2>/dev/null)" ]; then   # pix2pix: its weights are not committed, so it starts again
    echo "- $(date -u +%FT%TZ): $name: no checkpoint and no committed weights here; starts again from step 0 (the earlier files are in git)" >> results/objective/NOTES.md
    rm -rf "$run"
fi
timeout --signal=TERM --kill-after=120 "${minutes}m" most-net train "${options[@]}" --name "obj_$name" --run-dir "$run" \
    --data-root data/CUFS_val --val-root data/CUFS_val --val-every-steps "$val_every" --max-steps "$steps" --max-minutes none \
    --ema-decay 0.999 --precision bf16 --metrics fsim,ssim,lpips_squeeze --no-evaluate "${start[@]}" \
    || { status=$?; [ "$status" -eq 124 ] || [ "$status" -eq 143 ] && exit 0; exit "$status"; }
