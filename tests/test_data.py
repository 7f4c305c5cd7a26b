"""Data integration tests: the real CUFS copy, every validation error on a broken copy, prepare, the CLI."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from most_net.cli import main
from most_net.data import (DatasetError, FaceSketchDataset, SyntheticFaceSketch, TensorLoader, crop_to_original,
                           open_dataset, pad_to_square, postprocess_prediction, prepare_dataset, read_pairs,
                           validate_dataset)


def test_cufs_split_counts_and_formats(cufs_root):
    counts = validate_dataset(cufs_root)
    assert counts == {'train': {'AR': 80, 'CUHK': 88, 'XM2VTS': 100}, 'test': {'AR': 43, 'CUHK': 100, 'XM2VTS': 195}}
    train, test = FaceSketchDataset(cufs_root, 'train'), FaceSketchDataset(cufs_root, 'test')
    assert (len(train), len(test)) == (268, 338)
    item = test[5]
    assert item['photo'].shape == (3, 256, 256) and item['sketch'].shape == (1, 256, 256)
    assert item['photo'].dtype == torch.float32 and -1 <= item['photo'].min() and item['photo'].max() <= 1
    assert item['subset'] in ('AR', 'CUHK', 'XM2VTS') and item['name'].endswith('.jpg')
    assert np.array_equal(postprocess_prediction(item['sketch'], item), test.original_sketch(5))
    assert test.original_photo(5).shape == (250, 200, 3) and test.original_sketch(5).shape == (250, 200)


def test_cufs_device_loader_keeps_everything_in_memory(cufs_root):
    loader = TensorLoader(FaceSketchDataset(cufs_root, 'train'), 16, drop_last=True, augment=True)
    assert loader.photos.dtype == torch.uint8 and loader.photos.nbytes + loader.sketches.nbytes < 100 * 2**20
    batch = next(iter(loader))
    assert batch['photo'].shape == (16, 3, 256, 256) and len(loader) == 16


def test_pad_crop_round_trip_is_bit_exact():
    rng = np.random.default_rng(1)
    for shape in ((250, 200), (250, 200, 3), (256, 256), (1, 1)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(crop_to_original(pad_to_square(image), shape[:2]), image)


def test_synthetic_set_is_deterministic():
    first, second = SyntheticFaceSketch(4, seed=7, augment=False), SyntheticFaceSketch(4, seed=7, augment=False)
    for index in range(4):
        assert torch.equal(first[index]['photo'], second[index]['photo'])
        assert torch.equal(first[index]['sketch'], second[index]['sketch'])
    assert not torch.equal(first[0]['photo'], SyntheticFaceSketch(4, seed=8, augment=False)[0]['photo'])
    assert open_dataset('synthetic:3', 'test', 64, resize=True)[0]['photo'].shape == (3, 64, 64)


@pytest.fixture()
def broken_copy(cufs_root, tmp_path):
    """A small valid copy of CUFS (2 pairs per split and subset) to break in each test."""
    pairs = read_pairs(cufs_root)
    small = pd.concat([rows.head(2) for _, rows in pairs.groupby(['split', 'subset'])])
    root = tmp_path / 'CUFS'
    for _, row in small.iterrows():
        for kind in ('photos', 'sketches'):
            (root / row['split'] / kind).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cufs_root / row['split'] / kind / row['name'], root / row['split'] / kind / row['name'])
    small.to_csv(root / 'pairs.csv', index=False)
    validate_dataset(root)
    return root, small


def _first(small, split='train'):
    return small[small['split'] == split].iloc[0]['name']


@pytest.mark.parametrize('breakage, message', [
    ('missing_sketch', 'is missing (the sketch of pair'),
    ('missing_photo', 'is missing (the photo of pair'),
    ('truncated', 'unreadable or truncated'),
    ('not_an_image', 'unreadable or truncated'),
    ('wrong_size', 'expected 200x250'),
    ('duplicate', 'duplicate name'),
    ('empty_split', 'the test split is empty'),
    ('extra_photo', 'lack a partner'),
    ('no_pairs_csv', 'pairs.csv not found'),
    ('missing_column', "lacks the column(s) ['subset']"),
])
def test_validation_errors_name_the_file_and_the_fix(broken_copy, breakage, message):
    root, small = broken_copy
    name = _first(small)
    if breakage == 'missing_sketch': (root / 'train' / 'sketches' / name).unlink()
    if breakage == 'missing_photo': (root / 'train' / 'photos' / name).unlink()
    if breakage == 'truncated':
        path = root / 'train' / 'sketches' / name
        path.write_bytes(path.read_bytes()[:400])
    if breakage == 'not_an_image': (root / 'train' / 'photos' / name).write_text('not a jpeg')
    if breakage == 'wrong_size':
        from PIL import Image
        Image.new('RGB', (180, 250), 'white').save(root / 'train' / 'photos' / name)
    if breakage == 'duplicate': pd.concat([small, small.head(1)]).to_csv(root / 'pairs.csv', index=False)
    if breakage == 'empty_split': small[small['split'] == 'train'].to_csv(root / 'pairs.csv', index=False)
    if breakage == 'extra_photo': shutil.copyfile(root / 'train' / 'photos' / name, root / 'train' / 'photos' / 'extra.jpg')
    if breakage == 'no_pairs_csv': (root / 'pairs.csv').unlink()
    if breakage == 'missing_column': small.drop(columns='subset').to_csv(root / 'pairs.csv', index=False)
    with pytest.raises(DatasetError, match=None) as error:
        validate_dataset(root)
    assert message in str(error.value)
    if breakage not in ('no_pairs_csv',): assert str(root) in str(error.value)


def test_cli_validate_reports_errors_as_one_line(broken_copy, capsys):
    root, small = broken_copy
    assert main(['data', 'validate', str(root)]) == 0
    (root / 'test' / 'sketches' / _first(small, 'test')).unlink()
    assert main(['data', 'validate', str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('most-net data: error:') and '\n' not in err


def test_prepare_pairs_format_and_refuses_to_overwrite(broken_copy, tmp_path):
    root, small = broken_copy
    listing = pd.DataFrame({'photo': [f"{r.split}/photos/{r.name}" for r in small.itertuples()],
                            'sketch': [f"{r.split}/sketches/{r.name}" for r in small.itertuples()],
                            'split': small['split'].tolist(), 'subset': small['subset'].tolist()})
    listing.to_csv(tmp_path / 'mine.csv', index=False)
    out = tmp_path / 'mine'
    counts = prepare_dataset(root, out, 'pairs', tmp_path / 'mine.csv')
    assert sum(counts['train'].values()) == 6 and sum(counts['test'].values()) == 6
    with pytest.raises(DatasetError, match='--force'):
        prepare_dataset(root, out, 'pairs', tmp_path / 'mine.csv')
    listing.iloc[:1].assign(photo='train/photos/nope.jpg').to_csv(tmp_path / 'bad.csv', index=False)
    with pytest.raises(DatasetError, match='nope.jpg is missing'):
        prepare_dataset(root, out, 'pairs', tmp_path / 'bad.csv', force=True)
    assert validate_dataset(out) == counts, 'a failed prepare must leave the previous output intact'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.mine.')], 'no staging folder left behind'


def test_prepare_cufs_release_layout(cufs_root, tmp_path):
    pairs = read_pairs(cufs_root)
    chosen = pd.concat([pairs.query("subset != 'CUHK'").groupby(['split', 'subset']).head(2),
                        pairs.query("subset == 'CUHK' and split == 'train'").head(2),
                        pairs.query("subset == 'CUHK' and split == 'test'")])
    for _, row in chosen.iterrows():
        for kind, column in (('photos', 'source_photo'), ('sketches', 'source_sketch')):
            target = tmp_path / 'download' / row[column]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cufs_root / row['split'] / kind / row['name'], target)
    prepare_dataset(tmp_path / 'download', tmp_path / 'CUFS', 'cufs')
    converted = read_pairs(tmp_path / 'CUFS').set_index(['split', 'name'])
    assert sorted(converted.index) == sorted(zip(chosen['split'], chosen['name']))
    for _, row in chosen.iterrows():
        made = (tmp_path / 'CUFS' / row['split'] / 'sketches' / row['name']).read_bytes()
        assert made == (cufs_root / row['split'] / 'sketches' / row['name']).read_bytes(), row['name']
