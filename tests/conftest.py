"""Shared pytest fixtures: where the real CUFS copy is, and small synthetic data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from most_net.synthetic import find_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope='session')
def _quiet_threads():
    # two cores on the CI machine: keep torch from oversubscribing them while pytest runs
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS') or min(2, os.cpu_count() or 1)))


@pytest.fixture(scope='session')
def repo() -> Path:
    return REPO


@pytest.fixture(scope='session')
def cufs_root() -> Path:
    """The real CUFS dataset, found through $MOST_NET_DATA (or the checkout's data/CUFS); skips when absent."""
    root = find_dataset('CUFS')
    if root is None:
        pytest.skip('CUFS not found: point $MOST_NET_DATA at it or put it in data/CUFS (see data/README.md)')
    return root


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB pixels and holds none (its header, an empty data chunk and its end)."""
    import struct
    import zlib
    chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def make_photo_corpus(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The fuzz corpus, made in code in `folder` (no image is committed): (good, bad).

    good: the forms a phone, a camera, a scanner or a browser hands a photo over in, each holding the astronaut's
    face (file name -> what it is); bad: files that cannot be sketched (file name -> words its one line must hold).
    A macOS `._` file rides along: hidden, it is no photo and never reported."""
    import cv2
    import numpy as np
    import skimage.data
    from PIL import Image
    astronaut = skimage.data.astronaut()
    photo = Image.fromarray(astronaut)
    folder.mkdir(parents=True, exist_ok=True)
    rgba = photo.convert('RGBA')
    alpha = np.full(astronaut.shape[:2], 220, np.uint8)
    alpha[:, :40] = 0                                   # a transparent strip: laid on white
    rgba.putalpha(Image.fromarray(alpha))
    exif = Image.Exif()
    exif[0x0112] = 6                                    # 'rotate 90 degrees clockwise to display', as phones write it
    good = {
        'cmyk.jpg': ('CMYK JPEG', lambda path: photo.convert('CMYK').save(path)),
        'grey.jpg': ('greyscale JPEG', lambda path: photo.convert('L').save(path)),
        'progressive.jpg': ('progressive JPEG', lambda path: photo.save(path, progressive=True)),
        'phone-rotated.jpg': ('JPEG stored sideways with EXIF orientation 6',
                              lambda path: Image.fromarray(np.rot90(astronaut)).save(path, exif=exif)),
        'scan16.png': ('16-bit greyscale PNG',
                       lambda path: Image.fromarray(np.asarray(photo.convert('L')).astype(np.uint16) * 257).save(path)),
        'rgb48.png': ('16-bit-per-channel RGB PNG',
                      lambda path: cv2.imwrite(str(path), astronaut[..., ::-1].astype(np.uint16) * 257)),
        'rgba.png': ('RGBA PNG, partly transparent', lambda path: rgba.save(path)),
        'palette.png': ('palette PNG', lambda path: photo.convert('P', palette=Image.ADAPTIVE).save(path)),
        'browser.webp': ('WebP', lambda path: photo.save(path)),
        'windows.bmp': ('BMP', lambda path: photo.save(path)),
        'scanner.tif': ('TIFF', lambda path: photo.save(path)),
        'animated.gif': ('animated GIF: the astronaut, then a grey frame (the first frame is sketched)',
                         lambda path: photo.save(path, save_all=True, append_images=[Image.new('RGB', photo.size, 'grey')])),
    }
    for name, (_, save) in good.items(): save(folder / name)
    jpeg = (folder / 'progressive.jpg').read_bytes()
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'cut-short.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (folder / 'notes.jpg').write_text('not a photo\n')
    (folder / 'folder.jpg').mkdir()
    Image.new('RGB', (1, 1), 'grey').save(folder / 'dot.png')
    (folder / 'bomb.png').write_bytes(png_header(20000, 20000))
    Image.fromarray(np.full((300, 240), 128, np.uint8)).save(folder / 'no-face.png')
    (folder / '._cmyk.jpg').write_bytes(b'\x00\x05\x16\x07 AppleDouble')
    bad = {'empty.jpg': 'empty.jpg is empty (0 bytes)',
           'cut-short.jpg': 'cut-short.jpg cannot be read as an image, it is damaged or cut short (image file is truncated',
           'notes.jpg': 'notes.jpg cannot be read as an image: it is in no format Pillow reads',
           'folder.jpg': 'folder.jpg is a folder, not a photo',
           'dot.png': 'dot.png: 1 x 1 pixels is too small to hold a face: a photo needs at least 24 x 24 pixels',
           'bomb.png': 'bomb.png: more than 89 megapixels',
           'no-face.png': 'no-face.png: no face found'}
    return {name: kind for name, (kind, _) in good.items()}, bad


@pytest.fixture
def photo_corpus(tmp_path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A folder holding the fuzz corpus (`make_photo_corpus`): (folder, good, bad)."""
    folder = tmp_path / 'photos'
    return (folder, *make_photo_corpus(folder))
