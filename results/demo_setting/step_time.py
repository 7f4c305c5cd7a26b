"""Seconds per training step of the Quickstart candidates on this machine: why the `demo` preset trains 2 faces a step.

    python results/demo_setting/step_time.py

Times `Trainer.train_step` on one fixed batch of synthetic faces with the benchmarks' own timer
(`most_net.bench_tools.time_callable`: 20 warm-up steps, then the median of 3 repeats of 20 steps), for the `demo`
preset at batch 4 and 2 and with a narrower style-injection hidden width. Run it on a quiet machine: writes
step_time.csv beside this script.
"""
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch

from most_net.bench_tools import fixed_batch, time_callable
from most_net.core import atomic_write_text, describe_hardware
from most_net.config import make_config
from most_net.train import Trainer

CANDIDATES = {'batch 4': dict(batch_size=4), 'batch 2 (demo)': dict(batch_size=2),
              'batch 2, si_hidden_channels 32': dict(batch_size=2, model_overrides={'si_hidden_channels': 32})}

rows, scratch = [], Path(tempfile.mkdtemp())
try:
    for name, overrides in CANDIDATES.items():
        trainer = Trainer(make_config('demo', **overrides), scratch / name.replace(' ', '_'), pretrained=False)
        photo, sketch = fixed_batch(trainer)
        def twenty_steps():
            for _ in range(20): trainer.train_step(photo, sketch)
        seconds = time_callable(twenty_steps, warmup=1, repeats=3, device=trainer.device)[0] / 20
        rows.append({'candidate': name, **{k: str(v) for k, v in overrides.items()}, 'seconds_per_step': round(seconds, 4),
                     'seconds_for_300_steps': round(300 * seconds, 1), 'threads': torch.get_num_threads(),
                     'hardware': describe_hardware()})
finally:
    shutil.rmtree(scratch, ignore_errors=True)
table = pd.DataFrame(rows)
atomic_write_text(Path(__file__).with_name('step_time.csv'), table.to_csv(index=False))
print(table.drop(columns='hardware').to_string(index=False))
