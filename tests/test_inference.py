"""Sketching your own photo: alignment against the CUFS geometry, exact checkpoint round trips, `most-net sketch`'s
answers to bad input (one line on stderr, exit code 1), and batches: every photo of a folder tried, the fuzz corpus of
`conftest.make_photo_corpus` (the photos a phone, camera, scanner or browser produces, and files that cannot be
sketched) through the command line and the Python API, and file names that never overwrite another photo's sketch."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from most_net.cli import main
from most_net.core import MostNetError, atomic_torch_save
from most_net import generator_files, inference
from most_net.alignment import (CUFS_EYES, EYES_IN_FACE_BOX, align_faces, alignment_error, load_image, measure_eye_geometry,
                                summarise_eye_geometry)
from most_net.generator_files import (GENERATOR_FORMAT, MB, RELEASE_NAME, export_generator, file_sha256, find_default_checkpoint,
                                      read_generator, release_checksums, release_generator, released_generator_folders,
                                      released_generator_path)
from most_net.inference import Sketcher
from most_net.networks import ModelConfig, build_generator

TINY = dict(base_channels=8, feature_channels=16, encoder_blocks=1, num_si_blocks=1, si_hidden_channels=16,
            decoder_blocks=1, num_slots=16, unet_downs=6)


def save_training_checkpoint(generator, path, image_size=64, resize=True):
    """A checkpoint with the keys most_net.train writes (the discriminator and optimisers are not read)."""
    return atomic_torch_save({'format': 1, 'step': 7, 'config': {'image_size': image_size, 'resize': resize,
                                                                 'variant': generator.config.variant},
                              'model_config': generator.config.to_dict(), 'generator': generator.state_dict()}, path)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A run folder holding a tiny randomly initialised MOST-Net, and that generator."""
    torch.manual_seed(0)
    generator = build_generator(ModelConfig(**TINY)).eval()
    run = tmp_path_factory.mktemp('runs') / 'tiny'
    save_training_checkpoint(generator, run / 'checkpoints' / 'last.pt')
    return run, generator


@pytest.fixture(scope='module')
def faces():
    """Two aligned faces of the astronaut photo (colour and grey), as the generator sees them."""
    astronaut = skimage.data.astronaut()
    grey = np.asarray(Image.fromarray(astronaut).convert('L'))
    return [align_faces(astronaut)[0].photo, align_faces(grey)[0].photo]


@pytest.fixture
def photo_dir(tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(folder / 'astronaut.jpg')
    return folder


# -- alignment -------------------------------------------------------------------------------------------

ALIGN_CASES = [('ar_1.jpg', -6.0, 1.3, (20, 20)), ('ar_10.jpg', 8.6, 0.74, (-30, 12)),
               ('cuhk_f-040-01.jpg', 11.0, 0.9, (-15, 30)), ('cuhk_f-041-01.jpg', -9.0, 1.4, (25, -35)),
               ('xm2vts_1.jpg', -10.0, 1.1, (0, -25)), ('xm2vts_102.jpg', 4.0, 1.8, (10, 40))]


@pytest.mark.parametrize('name,angle,scale,shift', ALIGN_CASES)
def test_alignment_undoes_a_known_similarity(cufs_root, name, angle, scale, shift):
    """A CUFS test photo rotated, scaled and shifted onto a white canvas is aligned back: its eyes land on
    the CUFS positions within 5 % of the eye distance."""
    photo = load_image(cufs_root / 'test' / 'photos' / name)
    error = alignment_error(photo, angle, scale, shift, canvas=(int(500 * scale), int(500 * scale)))
    assert error < 0.05, f'{name}: eyes off by {error:.1%} of the eye distance'


def test_measured_constants_agree_on_a_sample(cufs_root):
    """The hard-coded eye geometry agrees with a fresh measurement on ten test photos per subset."""
    eyes, in_box = summarise_eye_geometry(measure_eye_geometry(cufs_root, per_subset=10, split='test', min_face=0.3))
    np.testing.assert_allclose(eyes, CUFS_EYES, atol=1.5)
    np.testing.assert_allclose(in_box, EYES_IN_FACE_BOX, atol=0.03)


@pytest.mark.slow
def test_measured_constants_agree_on_all_of_cufs(cufs_root):
    """The full measurement (606 photos, minutes): the constants are its medians, rounded."""
    eyes, in_box = summarise_eye_geometry(measure_eye_geometry(cufs_root))
    np.testing.assert_allclose(eyes, CUFS_EYES, atol=0.3)
    np.testing.assert_allclose(in_box, EYES_IN_FACE_BOX, atol=0.02)


def test_colour_and_grey_photos_align_alike():
    astronaut = skimage.data.astronaut()
    colour, grey = align_faces(astronaut)[0], align_faces(np.asarray(Image.fromarray(astronaut).convert('L')))[0]
    np.testing.assert_allclose(grey.detection.eyes, colour.detection.eyes, atol=1.0)
    assert grey.photo.shape == colour.photo.shape == (250, 200, 3)


# -- checkpoints -----------------------------------------------------------------------------------------

def test_training_checkpoint_and_fp32_export_reproduce_the_generator_exactly(tiny_run, faces, tmp_path):
    run, generator = tiny_run
    from_run = Sketcher.from_run(run, device='cpu')
    batch = from_run.preprocess(faces)
    with torch.no_grad():
        expected = generator(batch).fake
    exported = export_generator(run / 'checkpoints' / 'last.pt', tmp_path / 'tiny.safetensors', dtype=torch.float32)
    for sketcher in (from_run, Sketcher(run / 'checkpoints' / 'last.pt'), Sketcher(exported, device='cpu')):
        assert torch.equal(sketcher.generate(batch), expected)
    reference = from_run.predict(faces)
    assert all(np.array_equal(a, b) for a, b in zip(Sketcher(exported).predict(faces), reference))


def test_fp16_export_is_close_and_loads_into_fp32(tiny_run, faces, tmp_path):
    run, generator = tiny_run
    path = export_generator(run, tmp_path / 'tiny-fp16.safetensors')
    sketcher = Sketcher(path, device='cpu')
    assert all(p.dtype == torch.float32 for p in sketcher.generator.parameters())
    batch = sketcher.preprocess(faces)
    with torch.no_grad():
        expected = generator(batch).fake
    torch.testing.assert_close(sketcher.generate(batch), expected, atol=2e-2, rtol=0)
    assert (sketcher.image_size, sketcher.resize) == (64, True)


def test_pix2pix_batch_norm_buffers_survive_export(tmp_path):
    unet = build_generator(ModelConfig(variant='pix2pix', base_channels=4, unet_downs=6)).train()
    with torch.no_grad():
        unet(torch.rand(2, 3, 64, 64) * 2 - 1)   # one training-mode pass: running statistics and step counters move
    unet.eval()
    path = export_generator(unet, tmp_path / 'unet.safetensors', dtype=torch.float32, image_size=64, resize=True)
    batch = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(Sketcher(path, device='cpu').generate(batch), unet(batch).fake)


def test_sketching_reads_the_memory_and_never_updates_it(tiny_run, faces):
    run, _ = tiny_run
    sketcher = Sketcher.from_run(run, device='cpu')
    before = {key: value.clone() for key, value in sketcher.generator.state_dict().items()}
    sketches = sketcher.predict(faces * 3, batch_size=4)
    assert [(s.shape, s.dtype) for s in sketches] == [((250, 200), np.uint8)] * 6
    assert not sketcher.generator.training
    assert all(torch.equal(before[key], value) for key, value in sketcher.generator.state_dict().items())


def test_sketch_returns_an_L_mode_200x250_image(tiny_run, photo_dir):
    sketcher = Sketcher.from_run(tiny_run[0], device='cpu')
    sketch = sketcher.sketch(photo_dir / 'astronaut.jpg')
    assert (sketch.mode, sketch.size) == ('L', (200, 250))
    results = sketcher.sketch_many(photo_dir, batch_size=2)
    assert [(r.source, r.face_index) for r in results] == [(str(photo_dir / 'astronaut.jpg'), 1)]
    assert np.array_equal(np.asarray(results[0].sketch), np.asarray(sketch))


def test_default_checkpoint_prefers_the_released_generator(tiny_run, tmp_path):
    released_folder = tmp_path / 'package' / 'released'
    assert find_default_checkpoint(tmp_path, folders=[released_folder]) is None
    run_checkpoint = tmp_path / 'results' / 'runs' / 'a' / 'checkpoints' / 'last.pt'
    run_checkpoint.parent.mkdir(parents=True)
    run_checkpoint.write_bytes((tiny_run[0] / 'checkpoints' / 'last.pt').read_bytes())
    assert find_default_checkpoint(tmp_path, folders=[released_folder]) == run_checkpoint
    released = export_generator(run_checkpoint, released_folder / f'{RELEASE_NAME}.safetensors')
    assert find_default_checkpoint(tmp_path, folders=[released_folder]) == released
    assert find_default_checkpoint(tmp_path) == released_generator_path()        # by default the package's own


# -- releases: fp16, whole or sharded --------------------------------------------------------------------

def test_sharded_release_loads_like_the_whole_file(tiny_run, faces, tmp_path):
    """Forced into shards of at most 0.04 MB (the tiny generator is about 0.09 MB in fp16): two or more
    Hugging Face style shards and an index with the configuration; they load to the very generator the
    single fp16 file holds, within fp16 rounding of the fp32 model."""
    run, generator = tiny_run
    whole = release_generator(run / 'checkpoints' / 'last.pt', tmp_path / 'whole' / 'model.safetensors')
    index_path = release_generator(run, tmp_path / 'sharded' / 'model.safetensors', max_shard_mb=0.04)
    shards = sorted((tmp_path / 'sharded').glob('model-*.safetensors'))
    assert index_path == tmp_path / 'sharded' / 'model.safetensors.index.json'
    assert len(shards) >= 2 and [p.name for p in shards] == [f'model-{i:05d}-of-{len(shards):05d}.safetensors'
                                                             for i in range(1, len(shards) + 1)]
    assert all(p.stat().st_size <= 0.04 * MB for p in shards)
    index = json.loads(index_path.read_text())
    assert sorted(set(index['weight_map'].values())) == [p.name for p in shards]
    assert json.loads(index['metadata']['model_config']) == generator.config.to_dict()
    assert index['metadata']['dtype'] == 'float16'
    from_whole, from_shards = Sketcher(whole, device='cpu'), Sketcher(index_path, device='cpu')
    assert all(p.dtype == torch.float32 for p in from_shards.generator.parameters())
    assert (from_shards.image_size, from_shards.resize, from_shards.info['step']) == (64, True, '7')
    batch = from_whole.preprocess(faces)
    with torch.no_grad():
        expected = generator(batch).fake
    assert torch.equal(from_shards.generate(batch), from_whole.generate(batch))
    torch.testing.assert_close(from_shards.generate(batch), expected, atol=2e-2, rtol=0)
    for way_in in (tmp_path / 'sharded', tmp_path / 'sharded' / 'model.safetensors', tmp_path / 'whole'):
        assert torch.equal(Sketcher(way_in, device='cpu').generate(batch), from_whole.generate(batch)), way_in


def test_a_release_that_fits_stays_one_file(tiny_run, tmp_path):
    path = release_generator(tiny_run[0], tmp_path / 'g.safetensors', max_shard_mb=1)
    assert path == tmp_path / 'g.safetensors' and sorted(p.name for p in tmp_path.iterdir()) == ['g.safetensors']


def test_releasing_again_replaces_the_earlier_form(tiny_run, tmp_path):
    """Under the same name, a new release removes the old one's files (shards, index or whole file); others stay."""
    run = tiny_run[0]
    index_path = release_generator(run, tmp_path / 'g.safetensors', max_shard_mb=0.025)
    many = len(list(tmp_path.glob('g-*-of-*.safetensors')))
    release_generator(run, tmp_path / 'other.safetensors')
    release_generator(run, tmp_path / 'g.safetensors', max_shard_mb=0.04)       # fewer shards: the extra ones go
    shards = sorted(set(json.loads(index_path.read_text())['weight_map'].values()))
    assert len(shards) < many
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(shards + [index_path.name, 'other.safetensors'])
    release_generator(run, tmp_path / 'g.safetensors')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['g.safetensors', 'other.safetensors']


def test_missing_or_foreign_shard_is_named(tiny_run, tmp_path, capsys, photo_dir):
    index_path = release_generator(tiny_run[0], tmp_path / 'g.safetensors', max_shard_mb=0.04)
    index = json.loads(index_path.read_text())
    second = sorted(set(index['weight_map'].values()))[1]
    metadata = {key: value for key, value in index['metadata'].items() if key != 'total_size'}
    foreign = tmp_path / 'foreign.bin'
    save_file(load_file(str(tmp_path / second)), str(foreign), metadata={**metadata, 'step': '99'})
    (tmp_path / second).unlink()
    with pytest.raises(MostNetError, match=f'shard {second} is missing'):
        read_generator(index_path)
    code, last_line, _ = sketch_command(capsys, photo_dir / 'astronaut.jpg', '-o', tmp_path / 'out', '--checkpoint', index_path)
    assert code == 1 and f'shard {second} is missing' in last_line
    foreign.rename(tmp_path / second)
    with pytest.raises(MostNetError, match='metadata differs'):
        read_generator(tmp_path)


def test_release_refuses_impossible_requests(tiny_run, tmp_path):
    with pytest.raises(MostNetError, match='raise max_shard_mb'):
        release_generator(tiny_run[0], tmp_path / 'g.safetensors', max_shard_mb=0.01)
    with pytest.raises(MostNetError, match='must end in .safetensors'):
        release_generator(tiny_run[0], tmp_path / 'g.bin')
    assert list(tmp_path.iterdir()) == []


def test_checksums_cover_every_file_of_a_release(tiny_run, tmp_path):
    index_path = release_generator(tiny_run[0], tmp_path / 'g.safetensors', max_shard_mb=0.04)
    sums = release_checksums(index_path)
    assert sorted(sums) == sorted(p.name for p in tmp_path.iterdir())
    assert all(sums[name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in sums)
    whole = release_generator(tiny_run[0], tmp_path / 'w.safetensors')
    assert release_checksums(whole) == {'w.safetensors': file_sha256(whole)}


# -- the released generator by default -------------------------------------------------------------------

def test_the_package_ships_the_released_generator():
    """One place in a checkout, an editable install and a wheel: the package's released/ folder, with the model card
    whose checksum is the file's."""
    folder = Path(generator_files.__file__).parent / 'released'
    assert released_generator_folders() == [folder]
    path = released_generator_path()
    assert path == folder / f'{RELEASE_NAME}.safetensors'
    card = (folder / 'README.md').read_text(encoding='utf-8')
    assert all(f'| `{name}` | `{digest}` |' in card for name, digest in release_checksums(path).items())
    loaded = read_generator(path)
    read = (loaded.model_config.variant, loaded.image_size, loaded.resize, loaded.info['dtype'])
    assert read == ('most_net', 256, False, 'float16')


def test_released_generator_path_takes_the_first_folder_holding_one(tiny_run, tmp_path):
    first, second = tmp_path / 'first', tmp_path / 'second'
    with pytest.raises(MostNetError, match=r'no released generator found in .*first.*second.*pass a checkpoint'):
        released_generator_path(folders=[first, second])
    sharded = release_generator(tiny_run[0], second / f'{RELEASE_NAME}.safetensors', max_shard_mb=0.04)
    assert released_generator_path(folders=[first, second]) == sharded
    whole = release_generator(tiny_run[0], first / f'{RELEASE_NAME}.safetensors')
    assert released_generator_path(folders=[first, second]) == whole


def test_a_release_without_a_path_lands_in_the_package_folder(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(generator_files, 'released_generator_folders', lambda: [tmp_path / 'released'])
    path = release_generator(tiny_run[0])
    assert path == tmp_path / 'released' / f'{RELEASE_NAME}.safetensors' and released_generator_path() == path


def test_sketcher_and_cli_default_to_the_released_generator(tiny_run, photo_dir, tmp_path, capsys, monkeypatch):
    released = release_generator(tiny_run[0], tmp_path / 'weights' / f'{RELEASE_NAME}.safetensors')
    monkeypatch.setattr(generator_files, 'released_generator_folders', lambda: [tmp_path / 'weights'])
    sketcher = Sketcher(device='cpu')
    assert sketcher.source == str(released)
    code, _, stdout = sketch_command(capsys, photo_dir / 'astronaut.jpg', '-o', tmp_path / 'out')
    assert code == 0 and f'from {released}' in stdout
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'out' / 'astronaut_sketch.png')),
                          np.asarray(sketcher.sketch(photo_dir / 'astronaut.jpg')))
    monkeypatch.setattr(generator_files, 'released_generator_folders', lambda: [tmp_path / 'nowhere'])
    with pytest.raises(MostNetError, match='no released generator found in .*nowhere'):
        Sketcher(device='cpu')
    monkeypatch.setattr(inference, 'find_default_checkpoint', lambda root=None, folders=None: None)
    code, last_line, _ = sketch_command(capsys, photo_dir / 'astronaut.jpg', '-o', tmp_path / 'out2')
    assert code == 1 and 'no released generator found' in last_line and 'pass a checkpoint' in last_line


def fake_project(repo, root, released=()):
    """A copy of the packaging files with a one-line most_net package, and `released` (name -> bytes) in most_net/released/."""
    root.mkdir()
    for name in ('setup.py', 'settings.ini', 'README.md', 'MANIFEST.in'):
        shutil.copy(repo / name, root / name)
    (root / 'most_net').mkdir()
    (root / 'most_net' / '__init__.py').write_text('__version__ = "0.1.0"\n')
    for name, data in dict(released).items():
        (root / 'most_net' / 'released').mkdir(exist_ok=True)
        (root / 'most_net' / 'released' / name).write_bytes(data)
    return root


def build_py(root):
    subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', 'lib'], cwd=root, check=True,
                   capture_output=True)
    return root / 'lib' / 'most_net'


def test_build_py_ships_the_released_generator(repo, tmp_path):
    """A build carries most_net/released/ as package data (weights, shards and index, model card, nothing else);
    without a released generator it builds all the same."""
    files = {f'{RELEASE_NAME}.safetensors': b'weights', 'README.md': b'# card', 'notes.txt': b'not shipped',
             'other-00001-of-00002.safetensors': b'shard 1', 'other-00002-of-00002.safetensors': b'shard 2',
             'other.safetensors.index.json': b'{}'}
    built = build_py(fake_project(repo, tmp_path / 'with', files))
    assert sorted(p.name for p in (built / 'released').iterdir()) == sorted(set(files) - {'notes.txt'})
    assert (built / 'released' / f'{RELEASE_NAME}.safetensors').read_bytes() == b'weights'
    built = build_py(fake_project(repo, tmp_path / 'without'))
    assert (built / '__init__.py').is_file() and not (built / 'released').exists()


# -- the command line ------------------------------------------------------------------------------------

def sketch_command(capsys, *args):
    """Run `most-net sketch ARGS` through the dispatcher; (exit code, last stderr line, stdout)."""
    code = main(['sketch', *map(str, args)])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.replace('\r', '\n').splitlines() if line.strip()]
    return code, (lines[-1] if lines else ''), captured.out


def test_cli_writes_one_sketch_per_face(tiny_run, photo_dir, tmp_path, capsys):
    astronaut = skimage.data.astronaut()
    canvas = np.full((420, 720, 3), 255, np.uint8)
    canvas[60:360, 20:320] = astronaut[0:300, 80:380]
    canvas[100:310, 440:650] = np.asarray(Image.fromarray(astronaut[0:300, 80:380]).resize((210, 210), Image.BILINEAR))
    Image.fromarray(canvas).save(photo_dir / 'two.png')
    out = tmp_path / 'out'
    code, _, stdout = sketch_command(capsys, photo_dir, '-o', out, '--checkpoint', tiny_run[0], '--side-by-side')
    assert code == 0 and stdout.startswith('2 of 2 photos sketched (3 face(s) -> ')
    assert sorted(p.name for p in out.iterdir()) == [
        'astronaut_side_by_side.png', 'astronaut_sketch.png', 'two_face1_side_by_side.png', 'two_face1_sketch.png',
        'two_face2_side_by_side.png', 'two_face2_sketch.png']
    assert Image.open(out / 'two_face1_sketch.png').size == (200, 250)
    assert Image.open(out / 'two_face1_side_by_side.png').size == (400, 250)
    largest = tmp_path / 'largest'
    assert sketch_command(capsys, photo_dir / 'two.png', '-o', largest, '--checkpoint', tiny_run[0], '--largest')[0] == 0
    assert sorted(p.name for p in largest.iterdir()) == ['two_sketch.png']


def test_cli_no_align_takes_the_photo_as_it_is(tiny_run, tmp_path, capsys):
    flat = tmp_path / 'flat.png'
    Image.fromarray(np.full((250, 200), 128, np.uint8)).save(flat)
    code, _, _ = sketch_command(capsys, flat, '-o', tmp_path / 'out', '--checkpoint', tiny_run[0], '--no-align')
    assert code == 0 and Image.open(tmp_path / 'out' / 'flat_sketch.png').mode == 'L'


def bad_inputs(tmp_path, tiny_run, photo_dir):
    """(arguments, the message stderr must hold) for every kind of bad input."""
    unreadable = tmp_path / 'broken.jpg'
    unreadable.write_bytes(b'not a JPEG at all')
    flat = tmp_path / 'flat.png'
    Image.fromarray(np.full((300, 240), 128, np.uint8)).save(flat)
    random_dict = tmp_path / 'random.pt'
    torch.save({'weights': torch.zeros(3), 'lr': 0.1}, random_dict)
    wrong_metadata = tmp_path / 'wrong.safetensors'
    save_file({'w': torch.zeros(2)}, str(wrong_metadata), metadata={'format': 'something-else'})
    future = tmp_path / 'future.safetensors'
    save_file({'w': torch.zeros(2)}, str(future), metadata={'format': GENERATOR_FORMAT, 'format_version': '2'})
    newer_config = tmp_path / 'newer.pt'
    generator = tiny_run[1]
    atomic_torch_save({'format': 1, 'config': {'image_size': 64, 'resize': True},
                       'model_config': {**generator.config.to_dict(), 'config_version': 99},
                       'generator': generator.state_dict()}, newer_config)
    good = tiny_run[0]
    photo = photo_dir / 'astronaut.jpg'
    return {
        'unreadable file': ([unreadable, '--checkpoint', good], 'broken.jpg cannot be read as an image'),
        'no face': ([flat, '--checkpoint', good], 'flat.png: no face found'),
        'missing photo': ([tmp_path / 'nowhere.jpg', '--checkpoint', good], 'nowhere.jpg does not exist'),
        'missing checkpoint': ([photo, '--checkpoint', tmp_path / 'absent.pt'], 'absent.pt does not exist'),
        'random dict checkpoint': ([photo, '--checkpoint', random_dict], 'random.pt is not a most-net training checkpoint'),
        'safetensors, wrong metadata': ([photo, '--checkpoint', wrong_metadata], 'wrong.safetensors is not a most-net generator'),
        'safetensors, newer format': ([photo, '--checkpoint', future], "future.safetensors: generator format_version '2'"),
        'newer model config': ([photo, '--checkpoint', newer_config], 'newer.pt: incompatible generator'),
        'run folder without checkpoint': ([photo, '--checkpoint', tmp_path], 'without checkpoints/last.pt'),
    }


@pytest.mark.parametrize('case', ['unreadable file', 'no face', 'missing photo', 'missing checkpoint', 'random dict checkpoint',
                                  'safetensors, wrong metadata', 'safetensors, newer format', 'newer model config',
                                  'run folder without checkpoint'])
def test_cli_bad_input_gives_one_line_and_exit_1(case, tiny_run, photo_dir, tmp_path, capsys):
    (tmp_path / 'bad').mkdir()
    arguments, message = bad_inputs(tmp_path / 'bad', tiny_run, photo_dir)[case]
    out = tmp_path / 'out'
    code, last_line, _ = sketch_command(capsys, *arguments, '-o', out)
    assert code == 1
    assert last_line.startswith('most-net sketch: error:') and message in last_line, last_line
    assert not out.exists()  # nothing written


def test_cli_never_overwrites_an_input(tiny_run, photo_dir, capsys):
    """astronaut.jpg's sketch would replace the input astronaut_sketch.png: it takes its suffix into its name instead."""
    (photo_dir / 'astronaut_sketch.png').write_bytes((photo_dir / 'astronaut.jpg').read_bytes())
    before = (photo_dir / 'astronaut_sketch.png').read_bytes()
    code, _, _ = sketch_command(capsys, photo_dir / 'astronaut.jpg', photo_dir / 'astronaut_sketch.png',
                                '-o', photo_dir, '--checkpoint', tiny_run[0], '--no-align')
    assert code == 0 and (photo_dir / 'astronaut_sketch.png').read_bytes() == before
    assert sorted(p.name for p in photo_dir.glob('*_sketch.png')) == ['astronaut.jpg_sketch.png', 'astronaut_sketch.png',
                                                                      'astronaut_sketch_sketch.png']


# -- batches: every photo tried ---------------------------------------------------------------------------

def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace('\r', '\n').splitlines() if line.startswith('most-net')]


def test_cli_sketches_every_good_photo_and_names_each_bad_one(tiny_run, photo_corpus, tmp_path, capsys):
    """The fuzz corpus as a folder: a sketch for every good and unusual photo, one line for every bad file (naming it and
    saying why), a summary, exit status 1, no traceback, and nothing else in the output folder (no temporary file)."""
    folder, good, bad = photo_corpus
    out = tmp_path / 'out'
    code = main(['sketch', str(folder), '-o', str(out), '--checkpoint', str(tiny_run[0])])
    captured = capsys.readouterr()
    assert code == 1 and 'Traceback' not in captured.err
    lines = error_lines(captured.err)
    assert len(lines) == len(bad), lines
    for name, words in bad.items():
        mine = [line for line in lines if f'photos/{name}' in line]
        assert len(mine) == 1 and mine[0].startswith('most-net sketch: error: ') and words in mine[0], (name, mine)
    assert sorted(p.name for p in out.iterdir()) == sorted(f'{Path(name).stem}_sketch.png' for name in good)
    assert captured.out.startswith(f'{len(good)} of {len(good) + len(bad)} photos sketched ({len(good)} face(s) -> {out}; ')
    assert captured.out.endswith(f', {len(bad)} failed: see above\n'), captured.out


def test_cli_fail_fast_stops_at_the_first_failure_before_writing(tiny_run, photo_corpus, tmp_path, capsys):
    folder, _, bad = photo_corpus
    out = tmp_path / 'out'
    code, last_line, stdout = sketch_command(capsys, folder, '-o', out, '--checkpoint', tiny_run[0], '--fail-fast')
    assert code == 1 and last_line.startswith('most-net sketch: error: ') and bad['bomb.png'] in last_line   # the first, sorted
    assert stdout == '' and not out.exists()


def test_cli_reports_a_missing_path_and_an_empty_folder_and_goes_on(tiny_run, photo_dir, tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    out = tmp_path / 'out'
    code = main(['sketch', str(tmp_path / 'nowhere.jpg'), str(tmp_path / 'empty'), str(photo_dir), '-o', str(out),
                 '--checkpoint', str(tiny_run[0])])
    captured = capsys.readouterr()
    assert code == 1 and [line.split(': ', 2)[2] for line in error_lines(captured.err)] == [
        f"{tmp_path / 'empty'} holds no photos (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .gif, .pgm, .ppm)",
        f"{tmp_path / 'nowhere.jpg'} does not exist: give the path of a photo"]
    assert captured.out.startswith('1 of 3 photos sketched') and captured.out.endswith(', 2 failed: see above\n'), captured.out
    assert sorted(p.name for p in out.iterdir()) == ['astronaut_sketch.png']


def test_cli_reports_each_failure_on_stderr(tiny_run, photo_dir, tmp_path):
    """The same through the installed console script, as a user runs it: one line per failure, the summary, exit 1."""
    script = Path(sys.executable).parent / 'most-net'
    assert script.is_file(), 'the most-net console script is not installed: pip install -e .'
    (photo_dir / 'notes.jpg').write_text('not a photo')
    Image.new('RGB', (1, 1)).save(photo_dir / 'dot.png')
    done = subprocess.run([str(script), 'sketch', str(photo_dir), '-o', str(tmp_path / 'out'), '--checkpoint', str(tiny_run[0])],
                          capture_output=True, text=True)
    lines = error_lines(done.stderr)
    assert done.returncode == 1 and 'Traceback' not in done.stderr and len(lines) == 2, done.stderr
    assert lines[0].startswith(f"most-net sketch: error: {photo_dir / 'dot.png'}: 1 x 1 pixels is too small")
    assert lines[1].startswith(f"most-net sketch: error: {photo_dir / 'notes.jpg'} cannot be read as an image")
    assert done.stdout.startswith('1 of 3 photos sketched') and done.stdout.endswith(', 2 failed: see above\n'), done.stdout
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['astronaut_sketch.png']


def test_cli_no_align_refuses_a_photo_too_small_to_be_a_face(tiny_run, tmp_path, capsys):
    Image.new('RGB', (1, 1), 'grey').save(tmp_path / 'dot.png')
    code, last_line, _ = sketch_command(capsys, tmp_path / 'dot.png', '-o', tmp_path / 'out', '--checkpoint', tiny_run[0],
                                        '--no-align')
    assert code == 1 and 'dot.png: 1 x 1 pixels is too small to hold a face: a photo needs at least 24 x 24 pixels' in last_line
    assert not (tmp_path / 'out').exists()


def test_a_write_fault_leaves_no_partial_file(tiny_run, photo_dir, tmp_path, capsys, monkeypatch):
    """The disk fills while the second sketch is written: one line naming it, the first sketch whole, no temporary file."""
    import errno
    import os
    Image.fromarray(skimage.data.astronaut()).save(photo_dir / 'b.png')
    replace, calls = os.replace, []
    def full_disk(source, target):
        calls.append(target)
        if len(calls) == 2: raise OSError(errno.ENOSPC, 'No space left on device', str(target))
        return replace(source, target)
    monkeypatch.setattr(os, 'replace', full_disk)
    out = tmp_path / 'out'
    code, last_line, _ = sketch_command(capsys, photo_dir, '-o', out, '--checkpoint', tiny_run[0])
    assert code == 1 and last_line.startswith('most-net sketch: error: cannot write ') and 'b_sketch.png' in last_line
    assert [p.name for p in out.iterdir()] == ['astronaut_sketch.png']
    assert Image.open(out / 'astronaut_sketch.png').size == (200, 250)


def test_api_reports_every_photo_and_raises_per_photo(tiny_run, photo_corpus, tmp_path):
    """`Sketcher.sketch_photos`: a result per photo, ok or failed with a PhotoError that names it; `sketch_many` keeps the
    good faces and lists the failed photos; `sketch_faces` raises a photo's PhotoError, which a caller can catch photo by
    photo; `save_sketches` writes the good ones under the command line's names."""
    from most_net.alignment import NoFaceFound, PhotoError
    from most_net.inference import PHOTO_KEY, save_sketches
    folder, good, bad = photo_corpus
    sketcher = Sketcher.from_run(tiny_run[0], device='cpu')
    photos = sketcher.sketch_photos(folder, batch_size=4)
    by_name = {Path(photo.source).name: photo for photo in photos}
    assert sorted(by_name) == sorted([*good, *bad])                       # the hidden ._ file is no photo
    assert all(by_name[name].ok and len(by_name[name].faces) == 1 for name in good), [n for n in good if not by_name[n].ok]
    for name, words in bad.items():
        assert not by_name[name].ok and isinstance(by_name[name].error, PhotoError) and words in str(by_name[name].error)
    assert isinstance(by_name['no-face.png'].error, NoFaceFound)
    faces = sketcher.sketch_many(folder)
    assert len(faces) == len(good) and sorted(Path(photo.source).name for photo in faces.failed) == sorted(bad)
    caught = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith('.'): continue
        try: sketcher.sketch_faces(path)
        except PhotoError as err: caught.append((path.name, str(err).startswith(str(path))))
    assert sorted(caught) == sorted((name, True) for name in bad)
    saved = save_sketches(photos, tmp_path / 'out')
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == sorted(f'{Path(name).stem}_sketch.png' for name in good)
    assert [photo.files for photo in saved if not photo.ok] == [[]] * len(bad)
    with Image.open(tmp_path / 'out' / 'cmyk_sketch.png') as png:
        assert (png.mode, png.size, png.info[PHOTO_KEY]) == ('L', (200, 250), 'cmyk.jpg')


def test_unusual_photos_read_as_the_photo_they_show(photo_corpus):
    """An EXIF-rotated phone photo is read upright, 16-bit grey is scaled (not clipped to white), transparency is laid on
    white, an animated GIF gives its first frame."""
    folder, _, _ = photo_corpus
    astronaut = skimage.data.astronaut()
    luminance = np.asarray(Image.fromarray(astronaut).convert('L'), float)
    with Image.open(folder / 'phone-rotated.jpg') as stored:
        sideways = np.asarray(stored.convert('RGB'))
    assert np.array_equal(load_image(folder / 'phone-rotated.jpg'), np.rot90(sideways, -1))
    assert len(align_faces(folder / 'phone-rotated.jpg')) == 1
    with pytest.raises(MostNetError, match='no face found'):   # sideways, as stored: the frontal-face detector finds nothing
        align_faces(sideways)
    for name in ('scan16.png', 'rgb48.png', 'animated.gif', 'grey.jpg'):
        read = np.asarray(Image.fromarray(load_image(folder / name)).convert('L'), float)
        assert np.abs(read - luminance).mean() < 3, name
    rgba = load_image(folder / 'rgba.png')
    assert (rgba[:, :40] == 255).all() and rgba[:, 40:].mean() > astronaut[:, 40:].mean()


def test_names_never_overwrite_another_photos_sketch(tiny_run, tmp_path, capsys):
    """a.jpg and a.png in one run; a folder that already holds a's sketch of another photo, or a file from elsewhere; a run
    again (its own sketches replaced); x/a.jpg with y/a.jpg (the later one fails, saying why)."""
    astronaut = Image.fromarray(skimage.data.astronaut())
    for path in ('both/a.jpg', 'both/a.png', 'x/a.jpg', 'y/a.jpg'):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        astronaut.save(tmp_path / path)
    run = lambda out, *photos: sketch_command(capsys, *photos, '-o', tmp_path / out, '--checkpoint', tiny_run[0])
    names = lambda out: sorted(p.name for p in (tmp_path / out).iterdir())
    assert run('one', tmp_path / 'both')[0] == 0 and names('one') == ['a.jpg_sketch.png', 'a.png_sketch.png']
    assert run('one', tmp_path / 'both')[0] == 0 and names('one') == ['a.jpg_sketch.png', 'a.png_sketch.png']   # again: replaced
    assert run('two', tmp_path / 'both' / 'a.png')[0] == 0 and names('two') == ['a_sketch.png']
    before = (tmp_path / 'two' / 'a_sketch.png').read_bytes()
    assert run('two', tmp_path / 'both' / 'a.jpg')[0] == 0 and names('two') == ['a.jpg_sketch.png', 'a_sketch.png']
    assert (tmp_path / 'two' / 'a_sketch.png').read_bytes() == before     # a.png's sketch is not a.jpg's to replace
    assert run('two', tmp_path / 'both' / 'a.png')[0] == 0 and names('two') == ['a.jpg_sketch.png', 'a_sketch.png']
    (tmp_path / 'three').mkdir()
    (tmp_path / 'three' / 'a_sketch.png').write_bytes(b'somebody else\'s file')
    assert run('three', tmp_path / 'x' / 'a.jpg')[0] == 0
    assert (tmp_path / 'three' / 'a_sketch.png').read_bytes() == b'somebody else\'s file'
    code, last_line, stdout = run('four', tmp_path / 'x' / 'a.jpg', tmp_path / 'y' / 'a.jpg')
    assert code == 1 and names('four') == ['a.jpg_sketch.png'] and stdout.startswith('1 of 2 photos sketched')
    assert last_line == (f"most-net sketch: error: {tmp_path / 'y' / 'a.jpg'} and {tmp_path / 'x' / 'a.jpg'} would both be "
                         "written to "
                         f"{tmp_path / 'four' / 'a.jpg_sketch.png'}: rename one of them, or sketch them into different folders")


# -- the demo notebook -----------------------------------------------------------------------------------

def run_demo(repo, out_ipynb, cwd, **parameters):
    """Execute nbs/experiments/sketch_your_photo.ipynb with papermill; the text it printed."""
    import papermill as pm
    notebook = pm.execute_notebook(str(repo / 'nbs' / 'experiments' / 'sketch_your_photo.ipynb'), str(out_ipynb),
                                   parameters=parameters,
                                   cwd=str(cwd), progress_bar=False)
    return ''.join(''.join(output.get('text', '')) for cell in notebook['cells'] for output in cell.get('outputs', []))


def test_demo_notebook_sketches_the_astronaut(repo, tiny_run, tmp_path):
    text = run_demo(repo, tmp_path / 'demo.ipynb', repo, checkpoint=str(tiny_run[0]), out_dir=str(tmp_path / 'out'))
    assert 'ms per face' in text
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'astronaut_aligned.png', 'astronaut_side_by_side.png', 'astronaut_sketch.png']


def test_demo_notebook_outside_the_checkout_uses_the_released_generator(repo, tmp_path):
    """Run from another folder with no checkpoint: the released generator (most_net/released/, package data) sketches."""
    text = run_demo(repo, tmp_path / 'demo.ipynb', tmp_path, out_dir=str(tmp_path / 'out'))
    assert released_generator_path().name in text and 'ms per face' in text
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['astronaut_aligned.png', 'astronaut_side_by_side.png',
                                                                     'astronaut_sketch.png']
