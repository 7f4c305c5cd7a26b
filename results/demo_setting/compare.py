"""Score candidate Quickstart runs on validation faces: synthetic faces drawn with another seed (1), never
the demo's own test faces (seed 0). Writes comparison.csv beside this script.

    python results/demo_setting/compare.py RUN_DIR [RUN_DIR ...]
"""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from most_net.config import ModelConfig, TrainConfig
from most_net.core import atomic_write_text, portable_path
from most_net.inference import Sketcher
from most_net.metrics import evaluate_images
from most_net.synthetic import SyntheticFaceSketch

METRICS = ('fsim', 'ssim', 'lpips_squeeze')
validation = SyntheticFaceSketch(16, seed=1, split='test')
photos = [validation.original_photo(i) for i in range(len(validation))]
sketches = [validation.original_sketch(i) for i in range(len(validation))]


def score(name: str, predictions: list[np.ndarray]) -> dict:
    items = [(f'{i:04d}', 'synthetic', sketch, prediction) for i, (sketch, prediction) in enumerate(zip(sketches, predictions))]
    result = evaluate_images(items, metrics=METRICS, progress=False)
    return {'run': name, **{m: result.summary.iloc[-1][m] for m in METRICS}}


rows = [score('floor (grey photo)', [np.asarray(Image.fromarray(photo).convert('L')) for photo in photos])]
for run in map(Path, sys.argv[1:]):
    config = TrainConfig.from_dict(json.loads((run / 'config.json').read_text()))   # flat (older runs) or nested
    default = dataclasses.asdict(ModelConfig())
    model = {key: value for key, value in dataclasses.asdict(config.model).items() if value != default[key]}
    summary = pd.read_json(run / 'summary.json', typ='series')
    row = score(run.name, Sketcher.from_run(run).predict(photos))
    rows.append({**row, 'image_size': config.image_size, 'batch_size': config.batch_size, 'lr_g': config.lr_g,
                 'decoder_upsample': config.model.decoder_upsample, 'model (not the default)': json.dumps(model),
                 'steps': summary['steps'], 'train_minutes': summary['train_minutes'], 'run_dir': portable_path(run)})
table = pd.DataFrame(rows)
atomic_write_text(Path(__file__).with_name('comparison.csv'), table.to_csv(index=False))
print(table.round(4).to_string(index=False))
