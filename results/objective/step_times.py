"""Seconds per training step of the matched runs' networks, timed interleaved on this machine (one thread, as the runs
train), so runs of different networks can be set side by side at equal CPU time. Writes step_times.csv beside this file.

    OMP_NUM_THREADS=1 python results/objective/step_times.py      # on a quiet CPU: stop the runs first (SIGTERM)
"""
import json
import tempfile
from pathlib import Path

import torch

from most_net.bench import bench_run_steps
from most_net.config import make_config
from most_net.core import atomic_write_text, repo_root

here = Path(__file__).parent
runs = repo_root() / 'results' / 'runs'
COSTLIER = {   # the settings whose step differs from cpu256's, as run.sh trains them (a folder each, made here)
    'obj_adv03_wide_s0': dict(lambda_adv=0.3, base_channels=32, feature_channels=128, num_slots=256),
    'obj_adv03_ms2_s0': dict(lambda_adv=0.3, disc_scales=2),   # pix2pixHD's D at two scales
}
with tempfile.TemporaryDirectory() as scratch:
    folders = []
    for name, options in COSTLIER.items():
        folder = Path(scratch) / name
        folder.mkdir()
        (folder / 'config.json').write_text(json.dumps(make_config('cpu256', name=name, **options).to_dict()))
        folders.append(folder)
    table = bench_run_steps([runs / 'obj_adv03_s0', *folders, runs / 'obj_pix2pix_s0'], warmup=2, repeats=5, device='cpu')
table['threads'] = torch.get_num_threads()
table['vs_cpu256'] = table['step_s'] / table.loc[table['run'] == 'obj_adv03_s0', 'step_s'].item()
atomic_write_text(here / 'step_times.csv', table.to_csv(index=False))
print(table[['run', 'variant', 'precision', 'step_s', 'vs_cpu256', 'others_busy', 'threads']].round(3).to_string(index=False))
