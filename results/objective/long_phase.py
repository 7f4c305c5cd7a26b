"""Which phase the long run is in: prints its step budget, CONSTANT_STEPS while the rate stays constant, or the step its
decay starts from + DECAY_STEPS, then DECAY_STEPS, once it decays (run.sh trains with them; they are set here only).
The validation curve decides (issue: "trained for as long as its validation curve still pays"): once its
latest EMA point no longer beats its best point WINDOW steps back under the decision rule (statistics.curve_still_pays;
the spread is the largest EMA gap of base_s0 and base_s1 from step 1000 on), or once CONSTANT_STEPS are trained, the
step is written to decay_from.json beside the run's committed files, and run.sh decays the rate linearly to zero over
the DECAY_STEPS after it (a warmup-stable-decay schedule without the warmup).

    python results/objective/long_phase.py RUN_DIR OUT_DIR     # run.sh calls it before each session's share
"""
import json
import sys
from pathlib import Path

import pandas as pd

from most_net.core import atomic_write_text, repo_root
from most_net.statistics import DECISIVE_METRICS, curve_still_pays, largest_seed_gap, validation_scores

WINDOW, CONSTANT_STEPS, DECAY_STEPS = 1000, 22500, 1500   # 24000 steps: about 24 hours of one core at 3.6 s a step


def ema_spread() -> dict[str, float]:
    "The largest |seed 1 - seed 0| of the EMA's mix-weighted FSIM and SSIM, from step 1000 on."
    curves = [pd.read_csv(repo_root() / f'results/runs/obj_base_s{seed}/val_curve.csv') for seed in (0, 1)]
    return largest_seed_gap(*curves, weights='ema', from_step=1000, metrics=DECISIVE_METRICS)


def decay_from(run_dir: Path, out_dir: Path) -> int | None:
    "The step the decay starts from (deciding it now if the curve has stopped paying), or None."
    decided = out_dir / 'decay_from.json'
    if decided.is_file(): return int(json.loads(decided.read_text())['step'])
    curve_path, info_path = run_dir / 'val_curve.csv', run_dir / 'run_info.json'
    if not curve_path.is_file(): return None
    curve, spread = pd.read_csv(curve_path), ema_spread()
    trained = json.loads(info_path.read_text()).get('steps', 0) if info_path.is_file() else 0
    if trained < CONSTANT_STEPS and curve_still_pays(curve, spread, WINDOW): return None
    step = int(min(trained, CONSTANT_STEPS))
    why = 'budget' if trained >= CONSTANT_STEPS else f'the EMA stopped paying over {WINDOW} steps'
    ema = curve[curve['weights'] == 'ema']
    latest = ema.loc[ema['step'].idxmax()]
    atomic_write_text(decided, json.dumps({'step': step, 'why': why, 'decay_steps': DECAY_STEPS, 'spread': spread,
                                           'latest': {'step': int(latest['step']), **validation_scores(latest)}},
                                          indent=2) + '\n')
    return step


if __name__ == '__main__':
    step = decay_from(Path(sys.argv[1]), Path(sys.argv[2]))
    print(CONSTANT_STEPS if step is None else f'{step + DECAY_STEPS} {DECAY_STEPS}')
