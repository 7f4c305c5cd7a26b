"""most_net.data on the real CUFS copy and on small temporary copies: counts, formats, validation, the datasets and the loader."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from most_net.core import MostNetError
from most_net.synthetic import find_dataset
from most_net.data import (CUFS_HW, DatasetError, FaceSketchDataset, TensorLoader, crop_to_original,
                           pad_to_square, postprocess_prediction, read_pairs, tensor_to_uint8, uint8_to_tensor,
                           validate_dataset)
from most_net.synthetic import SyntheticFaceSketch, open_dataset, write_synthetic_dataset

STANDARD = {'train': {'AR': 80, 'CUHK': 88, 'XM2VTS': 100}, 'test': {'AR': 43, 'CUHK': 100, 'XM2VTS': 195}}


# ---------------------------------------------------------------- the real CUFS copy

@pytest.fixture(scope='module')
def cufs_sets(cufs_root):
    """Both CUFS splits, preloaded (decodes all 606 pairs once: a second or two)."""
    return {split: FaceSketchDataset(cufs_root, split) for split in ('train', 'test')}


def test_cufs_split_counts(cufs_root, cufs_sets):
    assert validate_dataset(cufs_root, decode=False) == STANDARD
    for split, dataset in cufs_sets.items():
        assert len(dataset) == sum(STANDARD[split].values())
        assert dict(Counter(dataset.subsets)) == STANDARD[split]
        assert len(set(dataset.names)) == len(dataset)
    assert (len(cufs_sets['train']), len(cufs_sets['test'])) == (268, 338)
    assert not set(cufs_sets['train'].names) & set(cufs_sets['test'].names)


def test_cufs_tensor_formats(cufs_sets):
    test = cufs_sets['test']
    assert test.augment is False and cufs_sets['train'].augment is True
    for index in (0, len(test) // 2, len(test) - 1):
        item = test[index]
        photo, sketch = item['photo'], item['sketch']
        assert photo.dtype == sketch.dtype == torch.float32
        assert photo.shape == (3, 256, 256) and sketch.shape == (1, 256, 256)
        assert photo.min() >= -1 and photo.max() <= 1 and sketch.min() >= -1 and sketch.max() <= 1
        assert photo.min() < -0.5 and sketch.min() < -0.5                    # not a blank picture
        assert (photo[:, :3] == 1).all() and (sketch[:, :, :28] == 1).all()   # white padding
        truth_sketch = np.asarray(Image.open(test.path('sketches', index)).convert('L'))
        truth_photo = np.asarray(Image.open(test.path('photos', index)).convert('RGB'))
        assert np.array_equal(postprocess_prediction(sketch, item), truth_sketch)
        assert np.array_equal(tensor_to_uint8(crop_to_original(photo)), truth_photo)
        assert item['subset'] in STANDARD['test'] and item['name'] == test.names[index]


def test_cufs_sketches_stored_as_rgb_or_l_come_out_grey(cufs_sets):
    train = cufs_sets['train']
    modes = {}
    for index in range(len(train)):
        with Image.open(train.path('sketches', index)) as image: modes.setdefault(image.mode, index)
    assert {'RGB', 'L'} <= set(modes), modes
    for mode, index in modes.items():
        assert train.original_sketch(index).shape == CUFS_HW, mode
        assert train.original_photo(index).shape == (*CUFS_HW, 3), mode


def test_cufs_items_collate_and_undo(cufs_sets):
    test = cufs_sets['test']
    batch = torch.utils.data.default_collate([test[i] for i in range(3)])
    assert batch['photo'].shape == (3, 3, 256, 256) and batch['original_hw'].tolist() == [list(CUFS_HW)] * 3
    one = {key: value[1] for key, value in batch.items()}
    assert np.array_equal(postprocess_prediction(batch['sketch'][1], one), test.original_sketch(1))


def test_cufs_resized_small_images(cufs_root):
    with pytest.raises(DatasetError, match='resize=True'):
        FaceSketchDataset(cufs_root, 'test', image_size=64, preload=False)
    small = FaceSketchDataset(cufs_root, 'test', image_size=64, resize=True, preload=False)
    item = small[5]
    assert item['photo'].shape == (3, 64, 64) and item['sketch'].shape == (1, 64, 64) and bool(item['resized'])
    restored = postprocess_prediction(item['sketch'], item)
    assert restored.shape == CUFS_HW
    # resizing to 64 and back blurs, but keeps the picture: close to the truth on average
    assert np.abs(restored.astype(int) - small.original_sketch(5)).mean() < 25


def test_cufs_tensor_loader(cufs_sets):
    loader = TensorLoader(cufs_sets['train'], 8, drop_last=True, augment=True, device='cpu')
    assert len(loader) == 268 // 8 and loader.photos.dtype == torch.uint8
    assert loader.photos.shape == (268, 3, 256, 256) and loader.sketches.shape == (268, 1, 256, 256)
    batch = next(iter(loader))
    assert batch['photo'].shape == (8, 3, 256, 256) and batch['sketch'].shape == (8, 1, 256, 256)
    assert batch['photo'].dtype == torch.float32 and batch['index'].dtype == torch.int64


# ---------------------------------------------------------------- padding and conversions

@pytest.mark.parametrize('shape,size',
                         [((250, 200), 256), ((250, 200, 3), 256), ((17, 9), 32), ((7, 8, 1), 8), ((250, 200), 250)])
def test_pad_crop_round_trip_is_bit_exact(shape, size):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    padded = pad_to_square(image, size)
    assert padded.shape[:2] == (size, size) and padded.dtype == np.uint8
    assert int(padded.astype(int).sum()) == int(image.astype(int).sum()) + 255 * (padded.size - image.size)
    assert np.array_equal(crop_to_original(padded, shape[:2]), image)
    tensor = torch.from_numpy(padded if padded.ndim == 2 else padded.transpose(2, 0, 1)).expand(2, 3, *([-1] * padded.ndim))
    cropped = crop_to_original(tensor, shape[:2])
    assert isinstance(cropped, torch.Tensor) and cropped.shape[:2] == (2, 3)
    assert np.array_equal(cropped[1, 2].numpy(), image if image.ndim == 2 else image.transpose(2, 0, 1))


def test_pad_refuses_a_picture_larger_than_the_canvas():
    with pytest.raises(DatasetError, match='resize=True'):
        pad_to_square(np.zeros((250, 200), np.uint8), 128)


def test_uint8_tensor_round_trip_is_exact():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    colour = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(tensor_to_uint8(uint8_to_tensor(grey)), grey)
    assert np.array_equal(tensor_to_uint8(uint8_to_tensor(colour)), colour)
    assert uint8_to_tensor(grey).min() == -1 and uint8_to_tensor(grey).max() == 1
    assert tensor_to_uint8(uint8_to_tensor(grey)[0]).shape == (16, 16)


# ---------------------------------------------------------------- validation on broken copies

@pytest.fixture
def small_root(tmp_path) -> Path:
    """A small canonical dataset: a few real CUFS pairs (one sketch stored as RGB, one as L) or, without CUFS, drawn faces."""
    root = tmp_path / 'small'
    cufs = find_dataset('CUFS')
    if cufs is None:
        return write_synthetic_dataset(root, n_train=3, n_test=2)
    pairs = read_pairs(cufs)
    chosen = pd.concat([pairs[pairs['split'] == 'train'].groupby('subset').head(1), pairs[pairs['split'] == 'test'].head(2)])
    for row in chosen.itertuples():
        for kind in ('photos', 'sketches'):
            (root / row.split / kind).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cufs / row.split / kind / row.name, root / row.split / kind / row.name)
    chosen[['split', 'subset', 'name']].to_csv(root / 'pairs.csv', index=False)
    return root


def _first(root: Path, split: str = 'train') -> str:
    return read_pairs(root).query('split == @split')['name'].iloc[0]


def _edit_csv(edit):
    def change(root: Path):
        table = pd.read_csv(root / 'pairs.csv', dtype=str)
        edit(table).to_csv(root / 'pairs.csv', index=False)
    return change


def _truncate(root: Path):
    path = root / 'train' / 'photos' / _first(root)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _resave_smaller(root: Path):
    path = root / 'test' / 'sketches' / _first(root, 'test')
    with Image.open(path) as image: smaller = image.convert('L').resize((199, 250))
    smaller.save(path, format='PNG')


def _extra_photo(root: Path):
    shutil.copyfile(root / 'train' / 'photos' / _first(root), root / 'train' / 'photos' / 'zz_extra.jpg')


def _unlisted_pair(root: Path):
    for kind in ('photos', 'sketches'):
        shutil.copyfile(root / 'train' / kind / _first(root), root / 'train' / kind / 'zz_unlisted.jpg')


BROKEN = {  # id: (change, split it breaks, words the message must hold, whether the message names the file)
    'missing pairs.csv': (lambda root: (root / 'pairs.csv').unlink(), 'train', 'pairs.csv not found', 'pairs.csv'),
    'missing column': (_edit_csv(lambda table: table.drop(columns='name')), 'train', 'lacks the column(s) name', 'pairs.csv'),
    'duplicate names': (_edit_csv(lambda table: pd.concat([table, table.iloc[:1]])), 'train', 'duplicate name', 'first'),
    'empty split': (_edit_csv(lambda table: table[table['split'] == 'train']), 'test', 'the test split is empty', 'pairs.csv'),
    'missing sketch partner': (lambda root: (root / 'train' / 'sketches' / _first(root)).unlink(), 'train',
                               'sketch partner of', 'first'),
    'missing photo partner': (lambda root: (root / 'test' / 'photos' / _first(root, 'test')).unlink(), 'test',
                              'photo partner of', 'first_test'),
    'count mismatch': (_extra_photo, 'train', 'photo/sketch count mismatch', 'zz_extra.jpg'),
    'unlisted pair': (_unlisted_pair, 'train', 'not listed in', 'zz_unlisted.jpg'),
    'unreadable image': (lambda root: (root / 'train' / 'sketches' / _first(root)).write_bytes(b'GIF89a broken'), 'train',
                         'cannot be read', 'first'),
    'truncated image': (_truncate, 'train', 'truncated', 'first'),
    'unexpected size': (_resave_smaller, 'test', 'is 199x250 (W x H)', 'first_test'),
}


@pytest.mark.parametrize('case', list(BROKEN))
def test_each_validation_error_names_file_and_fix(small_root, case):
    change, split, words, named = BROKEN[case]
    file_name = {'first': _first(small_root), 'first_test': _first(small_root, 'test')}.get(named, named)
    assert validate_dataset(small_root)                           # the intact copy is valid
    change(small_root)
    with pytest.raises(DatasetError) as caught:
        validate_dataset(small_root)
    message = str(caught.value)
    assert words in message and file_name in message, message
    assert isinstance(caught.value, MostNetError)
    with pytest.raises(DatasetError) as on_construction:
        FaceSketchDataset(small_root, split)                       # training refuses the same folder before it starts
    assert file_name in str(on_construction.value)


def test_lazy_dataset_names_a_file_damaged_after_construction(small_root):
    dataset = FaceSketchDataset(small_root, 'train', preload=False)
    _truncate(small_root)
    with pytest.raises(DatasetError, match='cannot be decoded'):
        dataset[0]


# ---------------------------------------------------------------- open_dataset and the loader

def test_synthetic_item_format():
    dataset = open_dataset('synthetic:3', 'test')
    assert isinstance(dataset, SyntheticFaceSketch) and len(dataset) == 3 and dataset.augment is False
    item = dataset[2]
    assert item['photo'].shape == (3, 256, 256) and item['sketch'].shape == (1, 256, 256)
    assert item['photo'].dtype == torch.float32 and item['subset'] == 'synthetic'
    assert -1 <= item['sketch'].min() < item['sketch'].max() <= 1
    assert np.array_equal(postprocess_prediction(item['sketch'], item), dataset.original_sketch(2))
    assert open_dataset('synthetic', 'train', 64, resize=True)[0]['photo'].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match='synthetic:N'):
        open_dataset('synthetic:0')


@pytest.mark.parametrize('world_size', [2, 4])
def test_ranks_together_see_the_single_process_batches(world_size):
    faces = SyntheticFaceSketch(10, image_size=32, resize=True, augment=False)
    def batches(rank, size):
        loader = TensorLoader(faces, 4, augment=True, seed=5, rank=rank, world_size=size, device='cpu')
        loader.set_epoch(2)
        return list(loader)
    whole = batches(0, 1)
    shares = [batches(rank, world_size) for rank in range(world_size)]
    assert len(whole) == 3 and all(len(share) == 3 for share in shares)
    for position, batch in enumerate(whole):
        for key in ('photo', 'sketch', 'index'):
            joined = torch.cat([share[position][key] for share in shares])
            assert torch.equal(joined, batch[key]), (position, key)
    assert sorted(torch.cat([batch['index'] for batch in whole]).tolist()) == list(range(10))


def test_loader_is_repeatable_per_epoch_and_augments_pairs_alike():
    faces = SyntheticFaceSketch(6, image_size=32, resize=True, augment=False)
    loader = TensorLoader(faces, 6, augment=True, seed=1, device='cpu')
    first = next(iter(loader))
    assert torch.equal(next(iter(loader))['photo'], first['photo'])
    resumed = TensorLoader(faces, 6, augment=True, seed=1, device='cpu')
    loader.set_epoch(3); resumed.set_epoch(3)
    assert torch.equal(next(iter(loader))['sketch'], next(iter(resumed))['sketch'])
    assert not torch.equal(next(iter(loader))['photo'], first['photo'])       # another epoch, other batches
    # an all-white photo channel pattern moves exactly as its sketch: grey sketches equal the photos' first channel
    grey_faces = TensorLoader(faces, 6, augment=True, seed=1, device='cpu')
    grey_faces.photos = grey_faces.sketches.expand(-1, 3, -1, -1).contiguous()
    batch = next(iter(grey_faces))
    assert torch.equal(batch['photo'][:, :1], batch['sketch'])
    with pytest.raises(MostNetError, match='not divisible'):
        TensorLoader(faces, 5, world_size=2, device='cpu')
