"""most_net.prepare: converting CUFS / CUFSF downloads and listed pairs (atomically, refusing to overwrite), and the
`most-net data prepare` / `validate` command."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import most_net.prepare as prepare
from most_net.cli import main
from most_net.data import DatasetError, FaceSketchDataset, read_pairs
from most_net.prepare import prepare_dataset
from most_net.synthetic import draw_synthetic_face, write_synthetic_dataset


# ---------------------------------------------------------------- prepare

def _fake_release(cufs: Path, where: Path, per_group: int = 2) -> pd.DataFrame:
    """A CUFS release tree (as the shared pairs.csv records it) holding a few real files; CUHK test photos are the
    first ones in sorted order, so the release's numbering of their sketches (89, 90, ...) still holds."""
    pairs = read_pairs(cufs)
    pairs['photo_file'] = pairs['source_photo'].str.rsplit('/', n=1).str[-1]
    groups = []
    for (split, subset), rows in pairs.groupby(['split', 'subset']):
        extra = (split, subset) == ('test', 'CUHK')
        groups.append(rows.sort_values('photo_file').head(per_group + 1) if extra else rows.head(per_group))
    chosen = pd.concat(groups)
    for row in chosen.itertuples():
        for kind, source in (('photos', row.source_photo), ('sketches', row.source_sketch)):
            target = where / source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cufs / row.split / kind / row.name, target)
    return chosen


def test_prepare_converts_a_fake_cufs_release(cufs_root, tmp_path):
    chosen = _fake_release(cufs_root, tmp_path / 'download')
    counts = prepare_dataset(tmp_path / 'download', tmp_path / 'CUFS')
    expected = Counter(zip(chosen['split'], chosen['subset']))
    assert counts == {split: {subset: expected[(split, subset)] for subset in ('AR', 'CUHK', 'XM2VTS')}
                      for split in ('train', 'test')}
    converted = read_pairs(tmp_path / 'CUFS')
    columns = ['split', 'subset', 'name', 'source_photo', 'source_sketch']
    assert sorted(map(tuple, converted[columns].values.tolist())) == sorted(map(tuple, chosen[columns].values.tolist()))
    for row in converted.itertuples():   # the bytes are copied as they are
        for kind in ('photos', 'sketches'):
            copied, original = tmp_path / 'CUFS' / row.split / kind / row.name, cufs_root / row.split / kind / row.name
            assert copied.read_bytes() == original.read_bytes()
    assert len(FaceSketchDataset(tmp_path / 'CUFS', 'test')) == len(chosen.query("split == 'test'"))


def test_prepare_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    source = write_synthetic_dataset(tmp_path / 'canon', n_train=3, n_test=1)
    listing = tmp_path / 'pairs.csv'
    listing.write_text('photo,sketch,split\n' + ''.join(f'{split}/photos/{name},{split}/sketches/{name},{split}\n'
                                                       for split, name in read_pairs(source)[['split', 'name']].values))
    out = tmp_path / 'out'
    assert prepare_dataset(source, out, 'pairs', listing) == {'train': {'custom': 3}, 'test': {'custom': 1}}
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
    with pytest.raises(DatasetError, match='--force'):
        prepare_dataset(source, out, 'pairs', listing)
    missing = tmp_path / 'missing.csv'
    missing.write_text('photo,sketch\ntrain/photos/nope.jpg,train/sketches/nope.jpg\n')
    with pytest.raises(DatasetError, match='nope.jpg is missing'):
        prepare_dataset(source, out, 'pairs', missing, force=True)
    missing.unlink()
    calls = []
    def failing_write(row, folder):
        calls.append(row['name'])
        if len(calls) == 3: raise OSError('disk full')
        return original_write(row, folder)
    original_write = prepare._write_pair
    monkeypatch.setattr(prepare, '_write_pair', failing_write)
    with pytest.raises(OSError, match='disk full'):
        prepare_dataset(source, out, 'pairs', listing, force=True)
    with pytest.raises(OSError, match='disk full'):
        calls.clear(); prepare_dataset(source, tmp_path / 'fresh', 'pairs', listing)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()} == before   # old output intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['canon', 'out', 'pairs.csv']            # no partial folders
    monkeypatch.undo()
    assert prepare_dataset(source, out, 'pairs', listing, force=True)['train'] == {'custom': 3}


def test_prepare_cufsf_and_user_pairs_convert_other_sizes(tmp_path):
    for index, stem in enumerate(['b', 'a', 'c']):
        photo, sketch = draw_synthetic_face(3, 'train', index)
        for kind, picture in (('photos', photo), ('sketches', sketch)):
            (tmp_path / 'cufsf' / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).resize((300, 300)).save(tmp_path / 'cufsf' / kind / f'{stem}.png')
    counts = prepare_dataset(tmp_path / 'cufsf', tmp_path / 'CUFSF', 'cufsf', cufsf_train=2)
    assert counts == {'train': {'CUFSF': 2}, 'test': {'CUFSF': 1}}
    splits = read_pairs(tmp_path / 'CUFSF').set_index('name')['split'].to_dict()
    assert splits == {'a.png': 'train', 'b.png': 'train', 'c.png': 'test'}
    with Image.open(tmp_path / 'CUFSF' / 'test' / 'photos' / 'c.png') as image:
        assert image.size == (200, 250) and image.mode == 'RGB'     # square 300 x 300: centre-cropped to 4:5, resized
    with Image.open(tmp_path / 'CUFSF' / 'test' / 'sketches' / 'c.png') as image:
        assert image.mode == 'L'
    with pytest.raises(DatasetError, match='--pairs-csv'):
        prepare_dataset(tmp_path / 'cufsf', tmp_path / 'CUFSF2', 'cufsf')                  # 3 pairs: no standard split
    (tmp_path / 'pairs.csv').write_text('photo,sketch,split,subset\nphotos/a.png,sketches/a.png,test,fs2k\n')
    assert prepare_dataset(tmp_path / 'cufsf', tmp_path / 'OWN', 'pairs', tmp_path / 'pairs.csv') == {'test': {'fs2k': 1}}
    (tmp_path / 'bad.csv').write_text('picture,drawing\na.png,a.png\n')
    with pytest.raises(DatasetError, match='lacks the column'):
        prepare_dataset(tmp_path / 'cufsf', tmp_path / 'OWN2', 'pairs', tmp_path / 'bad.csv')


# ---------------------------------------------------------------- command line

def test_cli_validate_and_prepare_exit_codes(tmp_path, capsys):
    good = write_synthetic_dataset(tmp_path / 'good', n_train=2, n_test=1)
    assert main(['data', 'validate', str(good)]) == 0
    out = capsys.readouterr().out
    assert 'valid' in out and 'synthetic' in out and 'total' in out
    (good / 'test' / 'sketches' / read_pairs(good).query("split == 'test'")['name'].iloc[0]).unlink()
    assert main(['data', 'validate', str(good)]) == 1
    error = capsys.readouterr().err
    assert 'most-net data: error:' in error and 'synthetic_test_0000.png is missing' in error and error.count('\n') == 1
    assert main(['data', 'validate', str(tmp_path / 'nowhere')]) == 1
    assert 'is not a folder' in capsys.readouterr().err
    source = write_synthetic_dataset(tmp_path / 'source', n_train=2, n_test=1)
    listing = tmp_path / 'pairs.csv'
    listing.write_text('photo,sketch,split\n' + ''.join(f'{split}/photos/{name},{split}/sketches/{name},{split}\n'
                                                       for split, name in read_pairs(source)[['split', 'name']].values))
    command = ['data', 'prepare', str(source), '-o', str(tmp_path / 'out'), '--format', 'pairs', '--pairs-csv', str(listing)]
    assert main(command) == 0
    assert 'custom' in capsys.readouterr().out
    assert main(command) == 1
    assert '--force' in capsys.readouterr().err
    assert main(command + ['--force']) == 0
    assert main(['data', 'prepare', str(source), '-o', str(tmp_path / 'o2'), '--format', 'pairs']) == 1
    assert 'needs --pairs-csv' in capsys.readouterr().err
    assert main(['data', 'prepare', str(tmp_path / 'missing'), '-o', str(tmp_path / 'o3')]) == 1
    assert 'is not a folder' in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(['data', 'prepare', str(source)])                     # no --out: argparse's usage error
    assert usage.value.code == 2 and '--out' in capsys.readouterr().err
