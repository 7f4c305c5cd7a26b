"""`most-net reproduce` end to end on the synthetic faces at the tiny preset: plan, grid, four runs, tables, figures, release.

One reproduction (a 0.3-minute budget, every variant, a sharded release) is shared by the tests of this module.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from most_net.cli import main
from most_net.inference import Sketcher
from most_net.reproduce import DEFAULT_VARIANTS, PAPER_EPOCHS, release_most_net
from most_net.synthetic import SyntheticFaceSketch

BUDGET = 0.3          # minutes
SHARD_MB = 0.25       # the tiny generator is about 1.2 MB in fp16: several shards


@pytest.fixture(scope='module')
def reproduction(tmp_path_factory):
    """`most-net reproduce` on 8 drawn faces per split, all four variants, on the CPU; (out folder, reproduce.json)."""
    out = tmp_path_factory.mktemp('reproduce') / 'out'
    threads = torch.get_num_threads()
    if os.environ.get('OMP_NUM_THREADS'): torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))  # a machine-wide cap wins
    try:
        code = main(['reproduce', '--minutes', str(BUDGET), '--preset', 'tiny', '--data-root', 'synthetic:8', '--out', str(out),
                     '--device', 'cpu', '--max-shard-mb', str(SHARD_MB)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out, json.loads((out / 'reproduce.json').read_text())


def test_plan_keeps_to_the_budget_and_favours_most_net(reproduction):
    out, record = reproduction
    plan = record['plan']
    assert plan == json.loads((out / 'plan.json').read_text())
    assert list(plan['minutes']) == list(DEFAULT_VARIANTS)
    assert plan['grid_minutes'] + plan['finish_minutes'] + sum(plan['minutes'].values()) <= BUDGET + 1e-9
    assert sum(plan['shares'].values()) <= 1 + 1e-9
    assert max(plan['minutes'], key=plan['minutes'].get) == 'most_net'
    assert all(plan['minutes']['most_net'] > minutes for variant, minutes in plan['minutes'].items() if variant != 'most_net')
    assert record['status'] == 'done' and record['hardware']['device'] == 'cpu'


def test_every_variant_trained_within_its_share(reproduction):
    out, record = reproduction
    assert list(record['runs']) == list(DEFAULT_VARIANTS)
    for variant, run in record['runs'].items():
        summary = json.loads((out / 'runs' / variant / 'summary.json').read_text())
        assert run['stopped_by'] == summary['stopped_by'] == 'budget', variant    # the budget, not the 1000 epochs, ended it
        assert 1 <= run['steps'] < run['total_steps'] and run['max_minutes'] <= run['planned_minutes'] + 1e-9
        assert run['step_s'] > 0 and 0 <= run['metrics']['SSIM'] <= 1


def test_grid_picked_a_setting(reproduction):
    out, record = reproduction
    grid = pd.read_csv(out / 'bench_grid.csv')
    assert grid['setting'].iloc[0] == 'fp32, eager' and grid['step_s'].iloc[0] > 0      # the first setting always runs
    assert {'device', 'torch', 'mode'} <= set(grid.columns)
    assert record['setting']['precision'] in ('fp32', 'bf16') and record['setting']['compile'] is False
    assert record['setting']['chosen_by'].startswith('fastest of the grid')


def test_tables_have_one_row_per_variant(reproduction):
    out, _ = reproduction
    table2 = pd.read_csv(out / 'table2.csv')
    measured = table2[table2['source'].str.startswith('measured')]
    assert measured['variant'].tolist() == [*DEFAULT_VARIANTS, 'floor']
    assert measured['SSIM'].notna().all()
    assert any(column.startswith('SSIM diff vs MOST-Net') for column in table2.columns)   # paired CIs against MOST-Net
    table1 = pd.read_csv(out / 'table1.csv')
    ours = table1[table1['method'] == 'MOST-Net (ours)']
    assert len(ours) == 1 and ours['dataset'].item() == 'synthetic'
    for stem in ('table1', 'table2'): assert 'REDUCED budget' in (out / f'{stem}.md').read_text()


def test_figures_exist(reproduction):
    out, record = reproduction
    for name in ('qualitative', 'training_curves', 'bench_grid'):
        assert (out / 'figures' / f'{name}.png').stat().st_size > 1000, name
    assert len(record['figures']) == 3


def _sketch(path):
    photo = SyntheticFaceSketch(1, split='test', seed=5).original_photo(0)
    sketch = Sketcher(path, device='cpu').predict([photo])[0]
    assert sketch.shape == photo.shape[:2]
    return sketch


def test_release_sharded_and_whole_load_with_sketcher(reproduction, tmp_path):
    out, record = reproduction
    release = record['release']
    assert release['sharded'] and release['path'].endswith('.safetensors.index.json') and len(release['files']) > 2
    assert all(size <= SHARD_MB * 1e6 for size in release['files'].values())
    assert sorted(p.name for p in (out / 'weights').iterdir()) == sorted(release['files'])
    whole = release_most_net(out / 'runs' / 'most_net', tmp_path / 'weights', max_shard_mb=1000)
    assert not whole['sharded'] and list(whole['files']) == ['most_net_generator.safetensors']
    np.testing.assert_array_equal(_sketch(release['path']), _sketch(whole['path']))    # the same fp16 weights either way


def test_projection_of_the_paper_budget(reproduction):
    _, record = reproduction
    projection = record['projection']
    assert projection[0]['source'].startswith('MOST-Net run')
    assert projection[0]['step_s'] == pytest.approx(record['runs']['most_net']['step_s'])
    for row in projection:
        assert row['paper_budget_steps'] % PAPER_EPOCHS == 0 and row['paper_budget_steps'] > 0
        assert row['projected_minutes'] == pytest.approx(row['step_s'] * row['paper_budget_steps'] / 60)


@pytest.mark.parametrize('argv, message', [
    (['--minutes', '0'], 'the budget must be a positive number of minutes'),
    (['--minutes', '-2'], 'the budget must be a positive number of minutes'),
    (['--minutes', '1', '--variants', 'most_net,cyclegan'], "unknown variant 'cyclegan'"),
    (['--minutes', '1', '--data-root', '{tmp}/no_such_data'], 'data root {tmp}/no_such_data does not exist'),
    (['--minutes', '1', '--augment', 'maybe'], "--augment 'maybe': expected true or false"),
])
def test_cli_refuses_a_bad_request_before_writing(argv, message, tmp_path, capsys):
    argv = [part.format(tmp=tmp_path) for part in argv]
    out = tmp_path / 'out'
    assert main(['reproduce', '--preset', 'tiny', '--data-root', 'synthetic:8', '--out', str(out), *argv]) == 1
    error = capsys.readouterr().err
    assert error.startswith('most-net reproduce: error: ') and message.format(tmp=tmp_path) in error
    if 'data root' in message: assert 'most-net data prepare' in error           # the fix, not only the problem
    assert not out.exists()
