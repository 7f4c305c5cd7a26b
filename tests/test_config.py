"""`TrainConfig` holds a `ModelConfig` and a `LossConfig` (issue 39): what was configured before still configures the same.

Every committed run's config.json (the flat form, with `model_overrides`), every committed weights file's config, each
preset and every flag read into the same model and losses as the flat `TrainConfig` of before made of them (its mapping
is kept here, as it was); an old-form checkpoint resumes as a new one does, and an old weights file warm-starts."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil

import pytest
import torch

from most_net.config import PRESETS, TrainConfig, make_config
from most_net.losses import LossConfig
from most_net.networks import GENERATORS, VARIANTS, ModelConfig
from most_net.options import add_config_options, config_overrides

# the flat TrainConfig's model and loss fields, and how its model_config() / loss_config() mapped them (before issue 39)
OLD_MODEL_FIELDS = ('variant', 'base_channels', 'feature_channels', 'encoder_blocks', 'num_si_blocks', 'decoder_upsample',
                    'num_slots', 'temperature', 'momentum', 'unet_downs', 'disc_channels')
OLD_LOSS_FIELDS = ('gan_mode', 'lambda_adv', 'lambda_l1', 'lambda_style', 'lambda_content', 'lambda_mr', 'perceptual_net',
                   'perceptual_distance', 'weights_path', 'extra_losses')

# the presets as they read before issue 39 (cpu256's SI hidden width through model_overrides)
OLD_PRESETS = {
    'paper': {},
    'quick': dict(image_size=128, resize=True, epochs=100, batch_size=8, base_channels=32, feature_channels=128,
                  num_slots=256, unet_downs=7, disc_channels=32, log_every=10, sample_every=200, checkpoint_every=200),
    'cpu': dict(image_size=128, resize=True, epochs=30, batch_size=8, base_channels=16, feature_channels=64,
                encoder_blocks=2, num_slots=128, unet_downs=7, disc_channels=32, log_every=10, sample_every=100,
                checkpoint_every=100),
    'cpu256': dict(image_size=256, resize=False, epochs=1000, max_minutes=100.0, batch_size=8, base_channels=16,
                   feature_channels=64, encoder_blocks=2, num_slots=128, unet_downs=8, disc_channels=32,
                   model_overrides={'si_hidden_channels': 64}, perceptual_net='squeezenet1_1', perceptual_distance='unit',
                   decoder_upsample='nearest', lr_policy='linear', log_every=10, sample_every=100, checkpoint_every=50),
    'pix2pix256': dict(variant='pix2pix', image_size=256, resize=False, epochs=1000, max_minutes=100.0, batch_size=8,
                       base_channels=64, unet_downs=8, disc_channels=64, perceptual_net='none', lr_policy='linear',
                       log_every=10, sample_every=100, checkpoint_every=50),
    'tiny': dict(image_size=64, resize=True, epochs=3, batch_size=4, base_channels=16, feature_channels=32,
                 encoder_blocks=1, num_si_blocks=2, num_slots=64, unet_downs=6, disc_channels=16,
                 perceptual_net='none', data_root='synthetic:16', log_every=2, sample_every=10,
                 checkpoint_every=10, num_samples=4),
    'demo': dict(image_size=128, resize=True, epochs=1000, max_steps=300, batch_size=2, base_channels=16,
                 feature_channels=32, encoder_blocks=1, num_si_blocks=2, num_slots=64, unet_downs=7, disc_channels=16,
                 perceptual_net='none', data_root='synthetic:16', lr_g=1e-3, lr_d=1e-3, lr_policy='linear',
                 decoder_upsample='nearest', log_every=5, sample_every=50, checkpoint_every=50, num_samples=4,
                 precision='fp32'),
}


def old_model_config(values: dict) -> ModelConfig:
    "What the flat TrainConfig's model_config() made of these values."
    return ModelConfig(**{key: values[key] for key in OLD_MODEL_FIELDS if key in values}, **values.get('model_overrides', {}))


def old_loss_config(values: dict) -> LossConfig:
    "What the flat TrainConfig's loss_config() made of these values."
    asked = LossConfig(**{key: values[key] for key in OLD_LOSS_FIELDS if key in values})
    own_losses = GENERATORS[values.get('variant', 'most_net')].own_losses
    if own_losses is not None and values.get('baseline_objective', 'pix2pix') == 'pix2pix':
        return LossConfig(gan_mode=asked.gan_mode, lambda_adv=asked.lambda_adv, extra_losses=asked.extra_losses, **own_losses)
    return asked


def old_form(config: TrainConfig) -> dict:
    "`config` written as the flat TrainConfig wrote config.json (the model's other fields in model_overrides)."
    own = {key: value for key, value in config.to_dict().items() if key not in ('model', 'loss')}
    model, default = dataclasses.asdict(config.model), dataclasses.asdict(ModelConfig())
    overrides = {key: value for key, value in model.items() if key not in OLD_MODEL_FIELDS and value != default[key]}
    old_model = {key: model[key] for key in OLD_MODEL_FIELDS}
    return {**own, **old_model, **dataclasses.asdict(config.loss), 'model_overrides': overrides}


def assert_reads_as_before(values: dict, where: str) -> None:
    config = TrainConfig.from_dict(values)
    assert config.model == old_model_config(values), where
    assert config.objective() == old_loss_config(values), where
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config, where


def test_every_committed_config_json_reads_as_before(repo):
    flat = {path: values for path in sorted(repo.glob('results/**/config.json'))
            if 'model' not in (values := json.loads(path.read_text()))}   # the nested form is written since issue 39
    assert len(flat) > 30
    for path, values in flat.items(): assert_reads_as_before(values, str(path))


def test_every_committed_weights_file_reads_as_before(repo):
    from safetensors import safe_open
    paths = sorted(repo.glob('results/**/weights.safetensors'))
    assert paths
    for path in paths:
        with safe_open(str(path), framework='pt') as handle: values = json.loads(handle.metadata()['config'])
        if 'model' not in values: assert_reads_as_before(values, str(path))   # the flat form, written before issue 39


@pytest.mark.parametrize('preset', list(OLD_PRESETS))
def test_presets_say_what_they_said(preset):
    assert set(PRESETS) == set(OLD_PRESETS)
    for variant in VARIANTS:
        config, values = make_config(preset, variant=variant), {**OLD_PRESETS[preset], 'variant': variant}
        assert config.model == old_model_config(values) and config.objective() == old_loss_config(values), (preset, variant)
        own = {key: value for key, value in values.items() if key in {spec.name for spec in dataclasses.fields(TrainConfig)}}
        assert all(getattr(config, key) == value for key, value in own.items()), (preset, variant)


def test_flags_of_the_model_and_the_losses():
    parser = add_config_options(argparse.ArgumentParser(prog='most-net train'), TrainConfig, skip=['preset'])
    args = parser.parse_args(['--num-slots', '256', '--lambda-style', '10', '--lambda-content', '10', '--seed', '3',
                              '--variant', 'most_net_no_mr', '--si-hidden-channels', '32', '--extra-losses', '{}'])
    config = make_config('cpu256', **config_overrides(args, TrainConfig, skip=['preset']))
    assert (config.model.num_slots, config.loss.lambda_style, config.loss.lambda_content, config.variant, config.seed) == \
        (256, 10, 10, 'most_net_no_mr', 3)
    assert (config.model.si_hidden_channels, config.name) == (32, 'most_net_no_mr')
    older = parser.parse_args(['--model-overrides', '{"si_hidden_channels": 48, "memory": "dictionary"}'])
    assert make_config('cpu256', **config_overrides(older, TrainConfig)).model.si_hidden_channels == 48
    assert '--model-overrides JSON' in parser.format_help() and '--model ' not in parser.format_help()


def _tiny(**options) -> TrainConfig:
    return make_config('tiny', name='old', data_root='synthetic:8', checkpoint_every=2, sample_every=100, log_every=1, **options)


def _generator_weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / 'checkpoints' / 'last.pt', weights_only=True)['generator']


def test_an_old_form_checkpoint_resumes_as_a_new_one(tmp_path):
    from most_net.train import train
    common = dict(evaluate=False, progress=False, pretrained=False)
    train(_tiny(max_steps=2, si_hidden_channels=24), run_dir=tmp_path / 'new', **common)
    shutil.copytree(tmp_path / 'new', tmp_path / 'old')
    state = torch.load(tmp_path / 'old' / 'checkpoints' / 'last.pt', weights_only=True)
    state['config'] = old_form(TrainConfig.from_dict(state['config']))
    assert 'model' not in state['config'] and state['config']['model_overrides'] == {'si_hidden_channels': 24}
    torch.save(state, tmp_path / 'old' / 'checkpoints' / 'last.pt')
    (tmp_path / 'old' / 'config.json').write_text(json.dumps(state['config']))
    for name in ('new', 'old'):
        train(_tiny(max_steps=4, si_hidden_channels=24), run_dir=tmp_path / name, resume=True, **common)
    new, old = _generator_weights(tmp_path / 'new'), _generator_weights(tmp_path / 'old')
    assert new.keys() == old.keys() and all(torch.equal(new[key], old[key]) for key in new)


def test_committed_weights_warm_start(repo, tmp_path):
    from safetensors import safe_open
    from most_net.train import Trainer
    path = repo / 'results' / 'objective' / 'base_s0' / 'weights.safetensors'
    with safe_open(str(path), framework='pt') as handle: metadata = handle.metadata()
    saved = json.loads(metadata['config'])
    config = make_config('cpu256', data_root='synthetic:8', seed=saved['seed'], ema_decay=saved['ema_decay'], device='cpu')
    trainer = Trainer(config, tmp_path / 'warm', pretrained=False)
    trainer.load_weights(path)
    assert trainer.step == int(metadata['step']) > 0


def test_model_card_settings_of_the_released_run(repo):
    "The shipped card's settings line is what model_card writes from the run the shipped file's test scores name."
    from most_net.generator_files import file_sha256
    from most_net.release import model_card
    released = repo / 'most_net' / 'released'
    shipped = file_sha256(released / 'most_net_cufs_cpu256.safetensors')
    scored = [path.parent for path in (repo / 'results').glob('**/test/summary.json')
              if shipped in json.loads(path.read_text()).get('release_sha256', {}).values()]
    assert len(scored) == 1, f'the shipped generator should have one scored test folder, found {scored}'
    run = repo / 'results' / 'runs' / json.loads((scored[0].parent / 'release_decision.json').read_text())['run']
    card = model_card(run, released / 'most_net_cufs_cpu256.safetensors', scores=scored[0])
    settings = next(line for line in card.splitlines() if line.startswith('- settings:'))
    assert settings in (released / 'README.md').read_text()
