"""`most-net bench` at a microscopic size: it must write well-formed CSVs and figures (no timing assertions)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from most_net.bench import bench_cli, run_benchmarks
from most_net.bench_report import HARDWARE_COLUMNS
from most_net.bench_tools import bench_settings
from most_net.cli import main
from most_net.synthetic import find_dataset

SETTINGS = {'preset': 'tiny', 'image_size': 32, 'batch_size': 2, 'warmup': 1, 'perceptual_net': 'none', 'memory_dim': 16,
            'memory_batch': 1, 'paper_slots': 64, 'paper_side': 16, 'slot_counts': '32,64', 'position_sides': '8,16',
            'metric_images': 3, 'metric_repeats': 1, 'threads': 1, 'allow_busy': 'true'}   # tests run side by side
TINY = ['--device', 'cpu', '--repeats', '2'] + [part for name, value in SETTINGS.items()
                                                for part in (f"--{name.replace('_', '-')}", str(value))]


def read(out, name):
    """A bench CSV, checked for the columns every one carries (timing tables also: precision and repeats)."""
    frame = pd.read_csv(out / f'bench_{name}.csv')
    assert len(frame) > 0
    assert set(HARDWARE_COLUMNS) | {'mode', 'measured'} <= set(frame.columns), name
    if name != 'summary': assert {'precision', 'repeats', 'warmup'} <= set(frame.columns), name
    assert (frame['torch'].astype(str) != '').all() and (frame['device'] == 'cpu').all()
    return frame


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    """One `most-net bench --quick` run at a microscopic size (the metrics use CUFS when it is found)."""
    out = tmp_path_factory.mktemp('bench')
    assert main(['bench', '--quick', *TINY, '--out', str(out)]) == 0
    return out


def test_training_csv(quick_run):
    training = read(quick_run, 'training')
    assert list(training['variant']) == ['pix2pix', 'most_net']
    assert (training['mode'] == 'quick').all()
    assert (training['step_s'] > 0).all() and (training['images_per_s'] > 0).all()
    assert all(len(json.loads(samples)) == 2 for samples in training['samples'])
    assert training.set_index('variant').loc['pix2pix', 'ratio_to_pix2pix'] == pytest.approx(1.0)
    assert (training['gflop_per_step'] > 0).all() and (training['data_s'] > 0).all()
    most = training.set_index('variant').loc['most_net']
    assert most['memory_share'] > 0 and most['image_size'] == 32 and most['batch_size'] == 2
    assert (training['torch_threads'] == 1).all()


def test_inference_csv(quick_run):
    inference = read(quick_run, 'inference')
    assert set(inference['variant']) == {'pix2pix', 'most_net'}
    assert inference.groupby('variant')['call'].nunique().eq(3).all()
    assert (inference['mode'] == 'quick').all()
    assert (inference['images_per_s'] > 0).all()


def test_memory_csv(quick_run):
    memory = read(quick_run, 'memory')
    assert set(memory['sweep']) == {'paper', 'slots', 'positions'}
    assert set(memory['implementation']) == {'ours', 'naive'}
    assert set(memory['slots']) == {32, 64} and set(memory['positions']) == {'8x8', '16x16'}
    assert set(memory['dim']) == {16} and set(memory['rows']) == {64, 256}
    totals = memory[memory['operation'] == 'total']
    timed = totals[totals['median_s'].notna()]
    assert (timed['peak_bytes'] > 0).all() and timed['peak_method'].str.contains('profiler').all()
    parts = memory[memory['operation'] != 'total'].groupby(['sweep', 'slots', 'side', 'implementation'])['median_s'].sum()
    joined = timed.set_index(['sweep', 'slots', 'side', 'implementation'])['median_s']
    pd.testing.assert_series_equal(joined.sort_index(), parts.loc[joined.index].sort_index(), check_names=False)


def test_metrics_csv(quick_run, cufs_root):
    metrics = read(quick_run, 'metrics').set_index('metric')
    assert {'ssim', 'fsim', 'lpips_squeeze', 'lpips_alex', 'lpips_vgg'} == set(metrics.index)
    assert (metrics['images'] == 3).all()
    computed = metrics[metrics['median_s'].notna()]
    assert {'ssim', 'fsim'} <= set(computed.index)
    assert metrics.loc[metrics['median_s'].isna(), 'note'].str.startswith('not computed').all()


def test_summary_and_figures(quick_run):
    summary = read(quick_run, 'summary')
    quantities = ' | '.join(summary['quantity'])
    assert 'MOST-Net step / pix2pix step' in quantities and 'memory update + read' in quantities
    assert 'needs a GPU run' in ' '.join(summary['target'].fillna(''))
    assert not (quick_run / 'bench_grid.csv').exists() and not (quick_run / 'bench_projection.csv').exists()
    figures = {p.name for p in (quick_run / 'figures').iterdir()}
    expected = {'bench_memory.png', 'bench_training.png'} | ({'bench_metrics.png'} if find_dataset('CUFS') else set())
    assert figures == expected


def test_grid_and_projection_forced_on_cpu(tmp_path):
    """The GPU grid code path, forced on the CPU without compile (compiling is slow on a CPU)."""
    import most_net.bench as bench
    settings = bench_settings(device='cpu', preset='tiny', image_size=32, batch_size=2, warmup=0, repeats=1,
                              perceptual_net='none', grid='on')
    grid = bench.bench_grid(settings, precisions=('fp32',), channels_last=(False, True), compile_options=(False,))
    assert len(grid) == 4 and set(grid['variant']) == {'pix2pix', 'most_net'}
    projected = bench.projection(grid, settings)
    assert (projected['paper_budget_steps'] > 0).all() and (projected['projected_minutes'] > 0).all()


def test_cpu_step_csv(quick_run):
    """The CPU step table: every setting of both variants, the peaks they are measured against, the parts and the profile."""
    frame = read(quick_run, 'cpu_step')
    steps = frame[frame['benchmark'] == 'cpu_step']
    assert sorted(set(steps['variant'])) == ['most_net', 'pix2pix']
    assert steps.groupby('variant')['setting'].apply(list).map(len).eq(4).all()
    assert steps.groupby('variant')['training_default'].sum().eq(1).all()
    assert (steps['fraction_of_peak'] > 0).all() and (steps['peak_gflops'] > 0).all()
    peaks = frame[frame['benchmark'] == 'layer_peak']
    assert set(zip(peaks['precision'], peaks['layout'])) == {('fp32', 'NCHW'), ('fp32', 'channels-last'), ('bf16', 'NCHW'),
                                                             ('bf16', 'channels-last')}
    profile = frame[frame['benchmark'] == 'step_profile']
    for setting, rows in profile.groupby('setting'): assert rows['share_of_profiled_step'].sum() == pytest.approx(1.0)
    assert {'cpu_others_share', 'cpu_steal_share'} <= set(frame.columns)


def test_busy_cpu_writes_nothing(tmp_path):
    """With another process spinning on every core, the bench refuses in one line and leaves the folder empty."""
    import os
    import subprocess
    import sys
    from most_net.core import MostNetError
    spin = 'import time\nend = time.time() + 20\nwhile time.time() < end: pass'
    spinners = [subprocess.Popen([sys.executable, '-c', spin]) for _ in range(os.cpu_count() or 1)]
    try:
        with pytest.raises(MostNetError, match='the CPU was busy.*nothing was written.*--allow-busy'):
            quiet = {k: v for k, v in SETTINGS.items() if k not in ('slot_counts', 'position_sides', 'allow_busy')}
            run_benchmarks(bench_settings(device='cpu', **quiet),
                           tmp_path, only=['training'], progress=None)
    finally:
        for spinner in spinners: spinner.kill()
    assert list(tmp_path.iterdir()) == []


def test_bench_step_is_the_training_step(tmp_path):
    """The bench's step time and `Trainer.train_step` timed side by side (interleaved) agree within the noise."""
    import statistics
    from most_net.bench_cpu import bench_cpu_step
    from most_net.bench_tools import fixed_batch, time_callable
    from most_net.config import make_config
    from most_net.train import Trainer
    settings = bench_settings(device='cpu', preset='tiny', image_size=64, batch_size=4, perceptual_net='none', warmup=2,
                              repeats=7)
    bench = bench_cpu_step(settings, names=('bf16 autocast',), variants=('most_net',), parts=False, peaks=False)
    config = make_config('tiny', image_size=64, batch_size=4, data_root='synthetic:4', precision='bf16', channels_last=False)
    trainer = Trainer(config, tmp_path, pretrained=False)
    photo, sketch = fixed_batch(trainer)
    direct = time_callable(lambda: trainer.train_step(photo, sketch), 2, 7)[1]
    ratio = bench['step_s'].item() / statistics.median(direct)
    assert 0.67 < ratio < 1.5, (bench['samples'].item(), direct)


def test_bad_input(tmp_path):
    assert main(['bench', '--only', 'speed', '--out', str(tmp_path)]) == 1
    assert main(['bench', '--dataset', str(tmp_path / 'nowhere'), '--only', 'metrics', '--out', str(tmp_path)]) == 1
    assert main(['bench', '--grid', 'sometimes', '--out', str(tmp_path)]) == 1
    assert main(['bench', '--repeats', 'many', '--out', str(tmp_path)]) == 1
    with pytest.raises(SystemExit):
        bench_cli(['--speed', '3'])


def test_missing_dataset(tmp_path, monkeypatch):
    import most_net.bench as bench
    monkeypatch.setattr(bench, 'locate_cufs', lambda settings: None)   # as on a machine without CUFS
    tables = run_benchmarks(bench_settings(device='cpu', metric_repeats=1, allow_busy=True), tmp_path, only=['metrics'],
                            progress=None)
    assert tables['metrics']['note'].item().startswith('skipped: CUFS not found')
    assert read(tmp_path, 'metrics')['mode'].item() == 'full'
    assert not (tmp_path / 'figures' / 'bench_metrics.png').exists()


def test_benchmarks_notebook(repo, tmp_path):
    """`nbs/experiments/benchmarks.ipynb` headless through papermill, at the same microscopic size."""
    import papermill as pm
    parameters = {'quick': True, 'device': 'cpu', 'out_dir': str(tmp_path), 'repeats': 1, 'only': 'training,memory,metrics',
                  'slot_counts': [32], 'position_sides': [8], 'threads': 1,
                  **{name: value for name, value in SETTINGS.items() if name not in ('slot_counts', 'position_sides', 'threads')}}
    overrides = {name: parameters.pop(name) for name in ('memory_dim', 'paper_slots', 'paper_side')}
    overrides['allow_busy'] = parameters.pop('allow_busy') == 'true'
    pm.execute_notebook(str(repo / 'nbs' / 'experiments' / 'benchmarks.ipynb'), str(tmp_path / 'benchmarks.out.ipynb'),
                        parameters={**parameters, 'overrides': overrides}, cwd=str(repo), progress_bar=False)
    assert read(tmp_path, 'training')['mode'].eq('quick').all()
    assert {'bench_training.png', 'bench_memory.png'} <= {p.name for p in (tmp_path / 'figures').iterdir()}
