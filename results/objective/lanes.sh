#!/usr/bin/env bash
# Keep both cores busy with the matched runs for MINUTES: two lanes, one thread each, each training its runs of run.sh in
# order (a finished run is skipped, an unfinished one continues: exactly from last.pt on the machine that trained it, else
# from its committed weights), each stopped by the deadline with a checkpoint. A lane stops when under 10 minutes are left.
#   setsid nohup bash results/objective/lanes.sh MINUTES > logs/lanes.log 2>&1 &
#   kill -TERM -- -PGID; pkill -TERM -f 'bin/most-net train'   # stop early: the lanes, then their runs (timeout puts each
#                           # run in a process group of its own), which checkpoint; then run.sh NAME save for each run
# pix2pix_s0 is in no lane: its weights (213 MB) are not committed, so it must run its 3000 steps within one session on
# one machine, on both cores and alone:  OMP_NUM_THREADS=2 setsid nohup bash results/objective/run.sh pix2pix_s0 MINUTES &
set -euo pipefail
minutes="${1:?give the minutes the lanes may train}"
command -v most-net > /dev/null || {
    echo "lanes.sh: the most-net command is not on PATH; activate the environment first (. .venv/bin/activate)" >&2; exit 2; }
deadline=$(( $(date +%s) + minutes * 60 ))
lane() {
    for name in "$@"; do
        left=$(( (deadline - $(date +%s)) / 60 ))
        if [ "$left" -lt 10 ]; then echo "$(date -u +%FT%TZ) lane: $left min left, stopping before $name"; break; fi
        echo "$(date -u +%FT%TZ) lane: $name for at most $left min"
        OMP_NUM_THREADS=1 bash results/objective/run.sh "$name" "$left" \
            || { status=$?; echo "$(date -u +%FT%TZ) lane: $name failed (exit $status)"; }
    done
}
mkdir -p logs
# The two lists share no run (two lanes must never train one run at once); a finished run is skipped in a second.
lane base_s1 adv03_long_s0 adv03_lsgan_s0 adv03_ms2_s0 adv01_s0 adv03_wd01_s0 adv03_s1 > logs/lane_a.log 2>&1 &
lane adv03_wide_s0 adv03_fm10_s0 adv03_jit15_s0 release_ft01_s0 adv03_mixtest_s0 adv03_sc10_s0 adv03_sc0_s0 adv03_s2 > logs/lane_b.log 2>&1 &
wait
