"""The experiment notebooks, run headless through papermill as a researcher would, at a tiny budget.

`nbdev_test` skips these notebooks (front matter `skip_exec`): they are experiments, not unit tests.
Here each runs end to end on the synthetic faces with a few steps, writing into a temporary folder.
"""
from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import papermill as pm
import pytest

TINY = {'preset': 'tiny', 'max_steps': 3}


def run_notebook(repo, notebook, scratch, **parameters):
    output = scratch / f'{notebook}.out.ipynb'
    pm.execute_notebook(str(repo / 'nbs' / 'experiments' / f'{notebook}.ipynb'), str(output), parameters=parameters,
                        cwd=str(repo), progress_bar=False)
    return output


@pytest.fixture(scope='module')
def ablation_runs(repo, tmp_path_factory):
    """Table II at a tiny budget: trains the four variants and MOST-Net's second seed on the synthetic faces, tabulates them."""
    out = tmp_path_factory.mktemp('table2')
    run_notebook(repo, 'table2', out, run_prefix='tiny', run_suffix='', second_seed_variants=['most_net'], train_missing=True,
                 data_root='synthetic:8', runs_dir=str(out / 'runs'), out_stem=str(out / 'table2'), **TINY)
    return out


def readme_quickstart_parameters(repo) -> dict:
    "The `-p name value` pairs of the README's Quickstart papermill command, typed as papermill's command line types them."
    from papermill.cli import _resolve_type
    readme = (repo / 'README.md').read_text(encoding='utf-8')
    command = re.search(r'<!-- quickstart-command -->\s*```(?:bash|sh)?\n(.+?)\n```', readme, re.S).group(1)
    return {name: _resolve_type(value) for name, value in re.findall(r'-p\s+(\S+)\s+(\S+)', command.split('papermill', 1)[1])}


def test_train_notebook_quickstart_defaults(repo, tmp_path):
    "The README's Quickstart command (at 3 steps) in a fresh clone, which already holds the committed quickstart run."
    runs = tmp_path / 'runs'
    shutil.copytree(repo / 'results' / 'runs' / 'quickstart', runs / 'quickstart')
    run_notebook(repo, 'train', tmp_path, **readme_quickstart_parameters(repo), runs_dir=str(runs), max_steps=3)
    run = runs / 'quickstart'
    summary = json.loads((run / 'summary.json').read_text())
    assert summary['steps'] == 3 and summary['variant'] == 'most_net'
    assert (run / 'checkpoints' / 'last.pt').is_file()
    per_image = pd.read_csv(run / 'metrics.csv')
    assert len(per_image) == summary['test_images'] > 0
    assert per_image['ssim'].between(-1, 1).all()
    assert summary['preset'] == 'demo' and summary['image_size'] == 128
    # the floor beside the run, on the same test faces, and the committed grid of test fakes
    floor = json.loads((run / 'floor' / 'summary.json').read_text())
    assert floor['variant'] == 'floor' and floor['test_images'] == summary['test_images']
    assert {row['subset'] for row in floor['metrics']} == {row['subset'] for row in summary['metrics']}
    from PIL import Image
    with Image.open(run / 'test_fakes.png') as grid: assert grid.size == (200 * 6, 250 * 3)
    # the README's Python use of a run folder
    from most_net import Sketcher
    from most_net.synthetic import SyntheticFaceSketch
    photo = SyntheticFaceSketch(1, seed=3).original_photo(0)
    sketch = Sketcher.from_run(run, device='cpu').sketch(photo, align=False)
    assert sketch.size == (photo.shape[1], photo.shape[0]) and sketch.mode == 'L'


def test_train_notebook_resume_and_overwrite(repo, tmp_path):
    runs = str(tmp_path / 'runs')
    run_notebook(repo, 'train', tmp_path, runs_dir=runs, name='r', max_steps=2)
    run_notebook(repo, 'train', tmp_path, runs_dir=runs, name='r', max_steps=4, resume=True)
    assert json.loads((tmp_path / 'runs' / 'r' / 'summary.json').read_text())['steps'] == 4
    with pytest.raises(pm.PapermillExecutionError, match='already exists'):
        run_notebook(repo, 'train', tmp_path, runs_dir=runs, name='r', max_steps=2)
    run_notebook(repo, 'train', tmp_path, runs_dir=runs, name='r', max_steps=2, overwrite=True)
    assert json.loads((tmp_path / 'runs' / 'r' / 'summary.json').read_text())['steps'] == 2


def test_table2_notebook(ablation_runs):
    table = pd.read_csv(ablation_runs / 'table2.csv')
    assert table['variant'].tolist() == ['pix2pix', 'most_net_no_mr', 'most_net', 'pix2pix', 'most_net_no_memory',
                                         'most_net_no_mr', 'most_net']
    measured = table[table['source'].str.startswith('measured')]
    assert len(measured) == 4 and measured['SSIM'].notna().all()
    spread = measured.set_index('variant')['SSIM seed spread']       # MOST-Net's seed 1 against its seed 0
    assert spread.loc['most_net'] >= 0 and spread.drop('most_net').isna().all()
    assert json.loads((ablation_runs / 'runs' / 'tiny_most_net_seed1' / 'summary.json').read_text())['steps'] == TINY['max_steps']
    assert 'REDUCED budget' in (ablation_runs / 'table2.md').read_text()


def test_table1_notebook(repo, ablation_runs, tmp_path):
    run_notebook(repo, 'table1', tmp_path, cufs_run=str(ablation_runs / 'runs' / 'tiny_most_net'),
                 out_stem=str(tmp_path / 'table1'))
    table = pd.read_csv(tmp_path / 'table1.csv')
    assert table['source'].str.startswith('quoted').sum() == 16
    ours = table[table['method'] == 'MOST-Net (ours)']
    assert len(ours) == 1 and 0 < ours['FSIM'].item() <= 1


def test_figures_notebook(repo, ablation_runs, tmp_path):
    run_notebook(repo, 'figures', tmp_path, run_prefix='tiny', run_suffix='', runs_dir=str(ablation_runs / 'runs'),
                 out_dir=str(tmp_path / 'figures'))
    for name in ('qualitative.png', 'training_curves.png', 'memory.png'):
        assert (tmp_path / 'figures' / name).stat().st_size > 1000, name


def test_cpu_setting_notebook_compares_candidates_on_a_validation_split(repo, tmp_path):
    """The matched-run comparison: carves a validation split, trains each candidate, writes the CSV and figures."""
    run_notebook(repo, 'cpu_setting', tmp_path, data_root='synthetic:8', validation_root=str(tmp_path / 'val'), preset='tiny',
                 steps=2, metrics='ssim', runs_dir=str(tmp_path / 'runs'), out_dir=str(tmp_path / 'out'))
    comparison = pd.read_csv(tmp_path / 'out' / 'cpu_setting' / 'comparison.csv')
    assert comparison['candidate'].tolist() == ['raw_transposed', 'unit_transposed', 'unit_nearest']
    assert (comparison['steps'] == 2).all() and comparison['val_ssim'].between(-1, 1).all()
    assert (comparison['validation_pairs'] == 1).all()          # 15 % of 8 synthetic training pairs, held out
    assert (tmp_path / 'out' / 'figures' / 'cpu_setting.png').is_file()
    held_out = pd.read_csv(tmp_path / 'val' / 'pairs.csv')
    assert set(held_out['name']) <= {f'synthetic_train_{i:04d}.png' for i in range(8)}   # never a test pair


def test_cpu_setting_notebook_judges_the_hour_runs_on_one_clock_against_the_seed_spread(repo, tmp_path):
    """Per CPU-hour: two finished runs, each put on the timed step of step_times.csv, judged against hour_cpu256."""
    from most_net.config import make_config
    from most_net.prepare import carve_validation
    from most_net.statistics import validation_seed_spread
    from most_net.synthetic import write_synthetic_dataset
    from most_net.train import train
    validation = carve_validation(write_synthetic_dataset(tmp_path / 'faces', n_train=8, n_test=2), tmp_path / 'hour_val')
    runs, out = tmp_path / 'runs', tmp_path / 'out'
    for seed, name in enumerate(['hour_cpu256', 'hour_batch4']):
        train(make_config('tiny', name=name, max_steps=3, seed=seed, data_root=str(validation), val_root=str(validation),
                          val_every_minutes=60, metrics=('ssim',)), run_dir=runs / name, progress=False)
    (out / 'cpu_setting').mkdir(parents=True)
    pd.DataFrame({'run': ['hour_cpu256', 'hour_batch4'], 'image_size': 64, 'batch_size': 2, 'precision': 'fp32',
                  'step_s': [6.0, 2.0], 'pairs_per_s': 1.0, 'others_busy': 0.0, 'hardware': 'test CPU'}
                 ).to_csv(out / 'cpu_setting' / 'step_times.csv', index=False)        # timed already: nothing is re-timed
    run_notebook(repo, 'cpu_setting', tmp_path, data_root='synthetic:8', validation_root=str(tmp_path / 'val'), preset='tiny',
                 steps=1, metrics='ssim', runs_dir=str(runs), out_dir=str(out), hour_runs=['hour_cpu256', 'hour_batch4'])
    hour = pd.read_csv(out / 'cpu_setting' / 'comparison_hour.csv').set_index('candidate')
    assert hour['steps'].tolist() == [3, 3] and hour['bench_minutes'].tolist() == [0.3, 0.1]   # 3 steps x 6 s, 3 x 2 s
    choice = pd.read_csv(out / 'cpu_setting' / 'choice_hour.csv').set_index('candidate')
    gain = choice.loc['hour_batch4', 'ssim']
    assert gain == pytest.approx(hour.loc['hour_batch4', 'val_ssim'] - hour.loc['hour_cpu256', 'val_ssim'], abs=1e-6)
    better = gain > validation_seed_spread()['ssim']                                    # the one metric scored
    assert choice.loc['hour_batch4', 'better_on'] == int(better)
    assert choice.loc['hour_batch4', 'verdict'] == ('better than cpu256' if better else 'no better than cpu256')
    assert choice.loc['hour_cpu256', 'verdict'] == 'reference'


def test_long_run_notebook_scores_the_test_split_and_releases(repo, tmp_path):
    """The long run's end on synthetic faces: its curve beside the two references, the test split, and the release
    (forced by an earlier release that scored SSIM -1 on validation) into a scratch package folder, Table I and README."""
    from most_net.config import make_config
    from most_net.prepare import carve_validation
    from most_net.synthetic import write_synthetic_dataset
    from most_net.train import train
    source = write_synthetic_dataset(tmp_path / 'faces', n_train=8, n_test=3)
    validation = carve_validation(source, tmp_path / 'val')
    runs = tmp_path / 'runs'
    train(make_config('tiny', name='long_tiny', max_steps=3, data_root=str(validation), val_root=str(validation),
                      val_every_minutes=60, metrics=('ssim',)), run_dir=runs / 'long_tiny', progress=False)
    spread = tmp_path / 'spread.csv'
    pd.DataFrame({'quantity': ['validation SSIM'], 'seed_difference': [0.0]}).to_csv(spread, index=False)
    earlier = tmp_path / 'out' / 'released_val'   # an earlier release that scored SSIM -1: any run beats it
    earlier.mkdir(parents=True)
    (earlier / 'summary.json').write_text(json.dumps({'name': 'earlier', 'steps': 1,
                                                      'metrics': [{'subset': 'all', 'count': 3, 'ssim': -1.0}]}))
    (tmp_path / 'results').mkdir()
    readme = tmp_path / 'README.md'
    readme.write_text('# x\n\n<!-- results:start -->\nold\n<!-- results:end -->\n')
    run_notebook(repo, 'long_run', tmp_path, preset='tiny', validation_root=str(validation), test_root=str(source),
                 metrics='ssim', runs_dir=str(runs), out_dir=str(tmp_path / 'out'), score_test=True, release=True,
                 floor_dir=str(tmp_path / 'floor'), seed_spread_csv=str(spread),
                 release_path=str(tmp_path / 'pkg' / 'g.safetensors'),
                 results_dir=str(tmp_path / 'results'), readme=str(readme))
    curve = pd.read_csv(tmp_path / 'out' / 'val_curve.csv')
    assert curve['part'].tolist() == ['long_tiny'] and curve['step'].tolist() == [3]
    test = json.loads((tmp_path / 'out' / 'test' / 'summary.json').read_text())
    assert test['test_images'] == 3 and test['test_root'].endswith('faces') and test['data_root'].endswith('val')
    card = (tmp_path / 'pkg' / 'README.md').read_text()
    assert 'evaluated on the ' in card and '3 test pairs' in card and '## Test metrics (3 CUFS test images)' in card
    assert sorted(p.name for p in (tmp_path / 'pkg').iterdir()) == ['README.md', 'g.safetensors']
    table1 = pd.read_csv(tmp_path / 'results' / 'table1.csv').set_index('method')
    assert abs(table1.loc['MOST-Net (ours)', 'SSIM'] - next(r['ssim'] for r in test['metrics'] if r['subset'] == 'all')) < 1e-4
    assert 'Floor: input photo in grey, no model' in table1.index
    assert "trained on " in table1.loc['MOST-Net (ours)', 'source'] and '| MOST-Net (ours) | CUFS |' in readme.read_text()
    with pytest.raises(pm.PapermillExecutionError, match='release=True needs score_test=True'):
        run_notebook(repo, 'long_run', tmp_path, preset='tiny', validation_root=str(validation), metrics='ssim',
                     runs_dir=str(runs), out_dir=str(tmp_path / 'out'), release=True)


def test_objective_notebook_checks_the_protocol_and_compares_matched_runs(repo, tmp_path):
    """The objective notebook on synthetic faces: the protocol check (floor, the release, its blurred sketches, on the
    validation and test splits) and four tiny matched runs (EMA, validated every 2 steps) compared at their last step,
    the spread read as the range of three seeds."""
    from most_net.config import make_config
    from most_net.prepare import carve_validation
    from most_net.synthetic import write_synthetic_dataset
    from most_net.train import train
    source = write_synthetic_dataset(tmp_path / 'faces', n_train=8, n_test=3)
    validation = carve_validation(source, tmp_path / 'val')
    runs, out = tmp_path / 'runs', tmp_path / 'out'
    for name, options in (('base_s0', {}), ('adv03_s0', {'lambda_adv': 0.3}), ('base_s1', {'seed': 1}),
                          ('base_s2', {'seed': 2})):
        train(make_config('tiny', name=f'obj_{name}', max_steps=4, data_root=str(validation), val_root=str(validation),
                          val_every_steps=2, ema_decay=0.9, metrics=('fsim', 'ssim'), **options),
              run_dir=runs / f'obj_{name}', progress=False, evaluate=False)
    third = pd.read_csv(runs / 'obj_base_s2' / 'val_curve.csv')   # a third seed well off the first two: it sets the range
    third[[c for c in ('fsim', 'ssim', 'fsim_mix', 'ssim_mix') if c in third]] += .05
    third.to_csv(runs / 'obj_base_s2' / 'val_curve.csv', index=False)
    run_notebook(repo, 'objective', tmp_path, data_root=str(source), validation_root=str(validation), runs_dir=str(runs),
                 out_dir=str(out), metrics='fsim,ssim', figure=str(out / 'curves.png'),
                 spread_runs='base_s0,base_s1,base_s2')
    protocol = pd.read_csv(out / 'protocol_overall.csv')
    assert len(set(protocol['model'])) == 4 and set(protocol['metric']) == {'FSIM', 'SSIM'}
    scores = pd.read_csv(out / 'protocol_scores.csv')
    assert set(scores['split']) == {'validation', 'test'}
    assert scores.query("split == 'test' and subset == 'all'")['count'].eq(3).all()
    comparison = pd.read_csv(out / 'comparison.csv')
    assert comparison[['run', 'weights']].dropna().values.tolist() == [
        ['base_s0', 'raw'], ['base_s0', 'ema'], ['adv03_s0', 'raw'], ['adv03_s0', 'ema'], ['base_s1', 'raw'], ['base_s1', 'ema'],
        ['base_s2', 'raw'], ['base_s2', 'ema']]
    assert comparison['step'].iloc[0] == 4 and comparison['structure_mix'].iloc[:8].between(-1, 1).all()
    assert comparison['run'].iloc[-1] == 'floor: the photo in grey'
    verdicts = pd.read_csv(out / 'verdicts.csv')
    assert verdicts[['candidate', 'weights']].values.tolist() == [['adv03_s0', 'raw'], ['adv03_s0', 'ema']]
    seeds = comparison[comparison['run'].str.startswith('base_s')].groupby('weights')[['fsim', 'ssim']]
    spread = (seeds.max() - seeds.min()).loc[verdicts['weights']]           # the three seeds' range at step 4
    assert abs(verdicts[['fsim spread', 'ssim spread']].values - spread.values).max() < 1e-9, (verdicts, spread)
    assert (out / 'curves.png').is_file()


def test_compare_releases_notebook(repo, tmp_path):
    "A tiny generator beside the shipped release on synthetic test faces and the astronaut: one row each, one figure."
    from PIL import Image
    from most_net.config import make_config
    from most_net.generator_files import release_generator
    from most_net.networks import build_generator
    from most_net.synthetic import write_synthetic_dataset
    faces = write_synthetic_dataset(tmp_path / 'faces', n_train=1, n_test=4)
    generator = build_generator(make_config('tiny').model)
    tiny = release_generator(generator, tmp_path / 'tiny.safetensors', image_size=64, resize=True)
    out = tmp_path / 'comparison.png'
    run_notebook(repo, 'compare_releases', tmp_path, previous=str(tiny), previous_label='tiny', data_root=str(faces),
                 faces=2, out_path=str(out))
    with Image.open(out) as figure: width, height = figure.size
    assert 0.8 < height / width < 1.1   # 3 rows (2 test faces + the astronaut) of 4 columns: 3 x 2.1 by 4 x 1.7 inches


def test_release_best_notebook(repo, tmp_path):
    "A tiny run's best validation point against a dominated 'release': decided, kept, then released with card, Table I, figure."
    from most_net.config import make_config
    from most_net.generator_files import file_sha256
    from most_net.hooks import validation_weights
    from most_net.readme import README_END, README_START
    from most_net.statistics import best_validation_point
    from most_net.synthetic import write_synthetic_dataset
    from most_net.tables import floor_summary
    from most_net.train import train
    faces = write_synthetic_dataset(tmp_path / 'faces', n_train=8, n_test=4)
    config = make_config('tiny', name='obj_candidate', max_steps=6, batch_size=2, data_root=str(faces), val_root=str(faces),
                         val_every_steps=1, metrics=('fsim', 'ssim'))
    run = train(config, run_dir=tmp_path / 'runs' / 'obj_candidate', progress=False, evaluate=False).run_dir
    curve = pd.read_csv(run / 'val_curve.csv')
    best = best_validation_point(curve)
    dominated = curve[(curve['fsim'] < best['fsim'] - 0.002) & (curve['ssim'] < best['ssim'] - 0.002)]
    assert len(dominated), curve[['step', 'fsim', 'ssim']]          # seeded: the untrained first steps lose on both
    shop = tmp_path / 'shop'
    shipped = shop / 'released' / 'g.safetensors'
    shipped.parent.mkdir(parents=True)
    shutil.copyfile(validation_weights(run, int(dominated['step'].iloc[0]), 'raw'), shipped)
    readme = shop / 'README.md'
    readme.write_text(f'# x\n\n{README_START}\nold\n{README_END}\n')
    floor_summary(faces, tmp_path / 'floor', metrics=('fsim', 'ssim'), device='cpu', progress=False)
    kept = tmp_path / 'kept'
    common = dict(run_dir=str(run), kept_dir=str(kept), validation_root=str(faces), test_root=str(faces),
                  spread_runs=f'{run},{run}', spread_from_step=0, metrics='fsim,ssim', release_path=str(shipped),
                  results_dir=str(shop), readme=str(readme), floor_dir=str(tmp_path / 'floor'),
                  figure_path=str(tmp_path / 'comparison.png'))
    before = file_sha256(shipped)
    output = run_notebook(repo, 'release_best', tmp_path, **common)
    assert 'it replaces the released generator' in output.read_text()
    assert json.loads((kept / 'release_decision.json').read_text())['replaces'] is True
    assert json.loads((kept / 'best_point.json').read_text())['step'] == int(best['step'])
    assert file_sha256(shipped) == before                           # deciding changes nothing
    run_notebook(repo, 'release_best', tmp_path, **common, release=True, command='most-net train --preset tiny')
    assert file_sha256(shipped) == file_sha256(kept / 'best.safetensors') != before
    assert (kept / 'test' / 'summary.json').is_file() and (shipped.parent / 'README.md').is_file()
    assert 'MOST-Net (ours)' in set(pd.read_csv(shop / 'table1.csv')['method'])
    assert (tmp_path / 'comparison.png').is_file()
    assert '\nold\n' not in readme.read_text() and '| MOST-Net (ours) | CUFS |' in readme.read_text()   # results block synced


def test_memory_use_notebook(repo, tmp_path):
    "A tiny MOST-Net's read replaced four ways on carved synthetic pairs: one row per probe, checked against its recorded point."
    from most_net.config import make_config
    from most_net.evaluation import mix_weighted
    from most_net.generator_files import release_generator
    from most_net.networks import build_generator
    from most_net.prepare import carve_validation, read_test_mix
    from most_net.release import score_generator_file
    from most_net.synthetic import write_synthetic_dataset
    carved = carve_validation(write_synthetic_dataset(tmp_path / 'faces', n_train=12, n_test=5), tmp_path / 'carved',
                              fraction=0.25)
    kept = tmp_path / 'kept'
    tiny = release_generator(build_generator(make_config('tiny').model), kept / 'best.safetensors', image_size=64, resize=True)
    scored = score_generator_file(tiny, carved, tmp_path / 'scored', {}, ('fsim', 'ssim'), device='cpu', progress=False)
    recorded = mix_weighted(pd.DataFrame(scored['metrics']), read_test_mix(carved))
    parameters = dict(generators=f'tiny, untrained={tiny}', validation_root=str(carved), metrics='fsim,ssim',
                      out_dir=str(tmp_path / 'out'), figure_path=str(tmp_path / 'memory_use.png'))
    (kept / 'best_point.json').write_text(json.dumps({**recorded, 'ssim_mix': recorded['ssim_mix'] + 0.01}))
    with pytest.raises(pm.PapermillExecutionError, match='AssertionError'):     # a probe that disagrees with the record
        run_notebook(repo, 'memory_use', tmp_path, **parameters)
    (kept / 'best_point.json').write_text(json.dumps(recorded))
    output = run_notebook(repo, 'memory_use', tmp_path, **parameters)
    assert '1 generator(s) checked against the scores recorded in training' in output.read_text()
    probes = pd.read_csv(tmp_path / 'out' / 'memory_use.csv')
    assert probes['probe'].tolist() == ['as trained', 'uniform', 'other face', 'face mean']
    assert probes.loc[0, 'ssim_mix'] == pytest.approx(recorded['ssim_mix'], abs=1e-4)
    assert (tmp_path / 'out' / 'attention.csv').is_file() and (tmp_path / 'memory_use.png').is_file()
