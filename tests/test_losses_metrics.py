"""Integration tests of most_net.weights, most_net.losses and most_net.metrics (evaluation protocol)."""
from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity

import most_net.weights as weights_module
from most_net.core import MostNetError
from most_net.losses import DiscriminatorLoss, GeneratorLoss, LossConfig, PerceptualFeatures
from most_net.metrics import (LPIPS_BACKBONES, evaluate, evaluate_images, fsim, lpips_backbone_state,
                              lpips_distance, ssim)
from most_net.weights import available_backbones, find_weights, load_backbone

SQUEEZE = available_backbones()['squeezenet1_1']


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    # FSIM and LPIPS run hundreds of small tensor ops; on the shared 2-core machine two OpenMP threads
    # wait on each other whenever another process holds a core (measured: 20x slower than one thread)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
needs_squeeze = pytest.mark.skipif(isinstance(SQUEEZE, str), reason='SqueezeNet 1.1 ImageNet weights absent '
                                   '(put squeezenet1_1-b8a52dc0.pth in $TORCH_HOME/hub/checkpoints)')


# ---------------------------------------------------------------------------------------------------
# An independent reference for FSIM: a plain NumPy transcription of Zhang et al.'s FeatureSIM.m
# (grayscale branch) and its phasecong2, written from the MATLAB algorithm, not from piq: MATLAB's
# meshgrid orientation (x along columns), epsilon 1e-4, MATLAB's averaging median, no epsilon in the
# final ratio. MATLAB itself is not available here.

def _centred_range(n: int) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) / (n - 1) if n % 2 else (np.arange(n) - n // 2) / n


def _phasecong2(image: np.ndarray) -> np.ndarray:
    nscale, norient, min_wavelength, mult, sigma_on_f, d_theta_on_sigma, k, epsilon = 4, 4, 6, 2, 0.55, 1.2, 2.0, 1e-4
    rows, cols = image.shape
    imagefft = np.fft.fft2(image)
    x, y = np.meshgrid(_centred_range(cols), _centred_range(rows))
    radius = np.sqrt(x ** 2 + y ** 2)
    theta = np.arctan2(-y, x)
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))
    radius, theta = np.fft.ifftshift(radius), np.fft.ifftshift(theta)
    radius[0, 0] = 1
    sintheta, costheta = np.sin(theta), np.cos(theta)
    log_gabor = []
    for scale in range(nscale):
        centre = 1.0 / (min_wavelength * mult ** scale)
        gabor = np.exp(-(np.log(radius / centre)) ** 2 / (2 * np.log(sigma_on_f) ** 2)) * lowpass
        gabor[0, 0] = 0
        log_gabor.append(gabor)
    theta_sigma = np.pi / norient / d_theta_on_sigma
    energy_all, an_all = np.zeros((rows, cols)), np.zeros((rows, cols))
    for orient in range(norient):
        angle = orient * np.pi / norient
        ds = sintheta * np.cos(angle) - costheta * np.sin(angle)
        dc = costheta * np.cos(angle) + sintheta * np.sin(angle)
        spread = np.exp(-np.abs(np.arctan2(ds, dc)) ** 2 / (2 * theta_sigma ** 2))
        sum_e, sum_o, sum_an = np.zeros((rows, cols)), np.zeros((rows, cols)), np.zeros((rows, cols))
        responses, ifft_filters = [], []
        for scale in range(nscale):
            filt = log_gabor[scale] * spread
            ifft_filters.append(np.real(np.fft.ifft2(filt)) * np.sqrt(rows * cols))
            response = np.fft.ifft2(imagefft * filt)
            responses.append(response)
            sum_an += np.abs(response)
            sum_e += response.real
            sum_o += response.imag
            if scale == 0: em_n = np.sum(filt ** 2)
        x_energy = np.sqrt(sum_e ** 2 + sum_o ** 2) + epsilon
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = np.zeros((rows, cols))
        for response in responses:
            even, odd = response.real, response.imag
            energy += even * mean_e + odd * mean_o - np.abs(even * mean_o - odd * mean_e)
        noise_power = (-np.median(np.abs(responses[0]).ravel() ** 2) / np.log(0.5)) / em_n
        sum_an2 = sum(f ** 2 for f in ifft_filters).sum()
        sum_aiaj = sum(ifft_filters[i] * ifft_filters[j] for i in range(nscale - 1) for j in range(i + 1, nscale)).sum()
        tau = np.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
        threshold = (tau * np.sqrt(np.pi / 2) + k * np.sqrt((2 - np.pi / 2) * tau ** 2)) / 1.7
        energy_all += np.maximum(energy - threshold, 0)
        an_all += sum_an
    return energy_all / an_all


def feature_sim_reference(reference: np.ndarray, distorted: np.ndarray) -> float:
    """FeatureSIM.m for grayscale images whose smaller side is under 384 pixels (no downsampling, F = 1)."""
    y1, y2 = reference.astype(np.float64), distorted.astype(np.float64)
    assert max(1, round(min(y1.shape) / 256)) == 1
    pc1, pc2 = _phasecong2(y1), _phasecong2(y2)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    dy = np.array([[3, 10, 3], [0, 0, 0], [-3, -10, -3]]) / 16
    gradient = lambda img: np.sqrt(convolve2d(img, dx, mode='same') ** 2 + convolve2d(img, dy, mode='same') ** 2)
    g1, g2 = gradient(y1), gradient(y2)
    pc_sim = (2 * pc1 * pc2 + 0.85) / (pc1 ** 2 + pc2 ** 2 + 0.85)
    g_sim = (2 * g1 * g2 + 160) / (g1 ** 2 + g2 ** 2 + 160)
    pc_max = np.maximum(pc1, pc2)
    return float((g_sim * pc_sim * pc_max).sum() / pc_max.sum())


def _blur(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius))) if radius else image.copy()


def _synthetic_sketch(seed: int = 0, shape=(250, 200)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    canvas = np.full(shape, 235.0)
    for _ in range(60):
        row, col = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5)
        canvas[row:row + 3, col:col + rng.integers(5, 40)] = rng.integers(20, 120)
    return (canvas + rng.normal(0, 3, shape)).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def cufs_sketches(cufs_root) -> list[np.ndarray]:
    names = ['cuhk_f1-013-01.jpg', 'ar_1.jpg', 'xm2vts_146.jpg']
    return [np.asarray(Image.open(cufs_root / 'test' / 'sketches' / name).convert('L')) for name in names]


# ------------------------------------------------------------------------------------------ metrics

def test_fsim_matches_featuresim_transcription_synthetic():
    sketch = _synthetic_sketch()
    for radius in (1, 3):
        blurred = _blur(sketch, radius)
        assert abs(fsim(sketch, blurred) - feature_sim_reference(sketch, blurred)) < 1e-4


def test_fsim_matches_featuresim_transcription_cufs(cufs_sketches):
    for sketch in cufs_sketches[:2]:
        for radius in (1, 2, 4):
            blurred = _blur(sketch, radius)
            assert abs(fsim(sketch, blurred) - feature_sim_reference(sketch, blurred)) < 1e-4, radius


def test_identical_images_score_perfectly():
    sketch = _synthetic_sketch(1)
    assert ssim(sketch, sketch) == 1.0
    assert abs(fsim(sketch, sketch) - 1.0) < 1e-6


@needs_squeeze
def test_identical_images_lpips_zero():
    sketch = _synthetic_sketch(2)
    assert abs(lpips_distance(sketch, sketch)) < 1e-6


def test_scores_order_with_blur(cufs_sketches):
    sketch = cufs_sketches[0]
    blurs = [_blur(sketch, radius) for radius in (0.5, 1, 2, 4)]
    ssims, fsims = [ssim(sketch, b) for b in blurs], [fsim(sketch, b) for b in blurs]
    assert ssims == sorted(ssims, reverse=True) and len(set(ssims)) == 4
    assert fsims == sorted(fsims, reverse=True) and len(set(fsims)) == 4
    if not isinstance(SQUEEZE, str):
        distances = list(lpips_distance([sketch] * 4, blurs))
        assert distances == sorted(distances) and len(set(distances)) == 4


def test_ssim_equals_scikit_image():
    sketch = _synthetic_sketch(3)
    noisy = (sketch + np.random.default_rng(0).normal(0, 20, sketch.shape)).clip(0, 255).astype(np.uint8)
    direct = structural_similarity(sketch, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255)
    assert ssim(sketch, noisy) == pytest.approx(direct, abs=1e-12)


def test_metrics_refuse_non_uint8_and_size_mismatch():
    sketch = _synthetic_sketch(4)
    with pytest.raises(MostNetError, match='grayscale uint8'): ssim(sketch.astype(np.float32), sketch)
    with pytest.raises(MostNetError, match='grayscale uint8'): fsim(np.stack([sketch] * 3, -1), sketch)
    with pytest.raises(MostNetError, match='crop the prediction back'): fsim(sketch, sketch[:, :100])


@needs_squeeze
def test_lpips_equals_direct_lpips_call():
    import lpips
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        direct = lpips.LPIPS(pretrained=True, net='squeeze', version='0.1', pnet_rand=True, verbose=False).eval()
    features = torch.load(SQUEEZE, weights_only=True)
    features = {k[len('features.'):] if k.startswith('features.') else k: v for k, v in features.items()}
    # load the same ImageNet tensors into lpips's slices by walking its modules (independent of our renaming)
    for block in direct.net.children():
        for index, layer in block.named_children():
            prefix = f'{index}.'
            layer.load_state_dict({k[len(prefix):]: v for k, v in features.items() if k.startswith(prefix)}, strict=True)
    sketch = _synthetic_sketch(5, (64, 48))
    others = [_blur(sketch, 1), _blur(sketch, 3), 255 - sketch]
    to_tensor = lambda image: lpips.im2tensor(np.repeat(image[:, :, None], 3, axis=2))
    with torch.no_grad():
        expected = [direct(to_tensor(sketch), to_tensor(other)).item() for other in others]
    ours = lpips_distance([sketch] * 3, others, net='squeeze', device='cpu')
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize('net', list(LPIPS_BACKBONES))
def test_lpips_backbone_renaming_fills_every_parameter(net):
    import lpips
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torchvision's notice about lpips's `pretrained=` argument
        model = lpips.LPIPS(pretrained=True, net=net, version='0.1', pnet_rand=True, verbose=False)
    features = load_backbone(LPIPS_BACKBONES[net], pretrained=False)
    mapped = lpips_backbone_state(net, features, model.net)
    model.net.load_state_dict(mapped, strict=True)
    first = next(iter(features.state_dict()))
    assert torch.equal(model.net.state_dict()[f'slice1.{first}'], features.state_dict()[first])


def test_lpips_without_backbone_weights_is_reported_unavailable(monkeypatch, tmp_path, offline):
    monkeypatch.setattr(weights_module, 'search_dirs', lambda: [tmp_path])
    sketch = _synthetic_sketch(6, (64, 64))
    result = evaluate_images([('a', 'all', sketch, _blur(sketch, 1))], progress=False)
    assert set(result.unavailable) == {'lpips_squeeze', 'lpips_alex', 'lpips_vgg'}
    assert 'squeezenet1_1' in result.unavailable['lpips_squeeze'] and str(tmp_path) in result.unavailable['lpips_squeeze']
    assert list(result.per_image.columns) == ['name', 'subset', 'fsim', 'ssim']
    with pytest.raises(MostNetError, match='not found'): lpips_distance(sketch, sketch, net='alex')


# ------------------------------------------------------------------------------------------ evaluate

def _dataset(root: Path, shapes: dict[str, tuple[str, int]]) -> Path:
    """A tiny canonical dataset: names -> (subset, blur radius of the prediction); returns the prediction folder."""
    (root / 'gt' / 'test' / 'sketches').mkdir(parents=True)
    (root / 'pred').mkdir()
    rows = []
    for index, (stem, (subset, radius)) in enumerate(shapes.items()):
        sketch = _synthetic_sketch(index, (64, 48))
        Image.fromarray(sketch).save(root / 'gt' / 'test' / 'sketches' / f'{stem}.jpg', quality=95)
        Image.fromarray(_blur(sketch, radius)).save(root / 'pred' / f'{stem}.png')
        rows.append({'split': 'test', 'subset': subset, 'name': f'{stem}.jpg'})
    rows.append({'split': 'train', 'subset': 'AR', 'name': 'not_in_test.jpg'})
    pd.DataFrame(rows).to_csv(root / 'gt' / 'pairs.csv', index=False)
    return root / 'pred'


def test_evaluate_tiny_dataset_has_subset_rows(tmp_path):
    pred = _dataset(tmp_path, {'a': ('AR', 1), 'b': ('CUHK', 2), 'c': ('CUHK', 0)})
    result = evaluate(pred, tmp_path / 'gt', metrics=('ssim', 'fsim'), progress=False)
    summary = result.summary.set_index('subset')
    assert list(summary.index) == ['AR', 'CUHK', 'all']
    assert list(summary['count']) == [1, 2, 3]
    per_image = result.per_image.set_index('name')
    assert per_image.loc['c', 'ssim'] == pytest.approx(1.0, abs=0.02)  # JPEG ground truth vs lossless PNG copy
    assert summary.loc['CUHK', 'ssim'] == pytest.approx(per_image.loc[['b', 'c'], 'ssim'].mean())


def test_evaluate_plain_folder_is_one_subset(tmp_path):
    pred = _dataset(tmp_path, {'a': ('AR', 1), 'b': ('CUHK', 2)})
    result = evaluate(pred, tmp_path / 'gt' / 'test' / 'sketches', metrics=('ssim',), progress=False)
    assert list(result.summary['subset']) == ['all'] and list(result.summary['count']) == [2]


def test_evaluate_errors_name_the_files(tmp_path):
    pred = _dataset(tmp_path, {'a': ('AR', 1), 'b': ('CUHK', 2)})
    gt = tmp_path / 'gt'
    (pred / 'b.png').unlink()
    with pytest.raises(MostNetError, match=r'missing prediction\(s\) for b'): evaluate(pred, gt, metrics=('ssim',))
    Image.fromarray(_synthetic_sketch(1, (64, 48))).save(pred / 'b.png')
    Image.fromarray(_synthetic_sketch(1, (64, 48))).save(pred / 'stray.png')
    with pytest.raises(MostNetError, match='no ground truth: stray'): evaluate(pred, gt, metrics=('ssim',))
    (pred / 'stray.png').unlink()
    Image.fromarray(_synthetic_sketch(1, (40, 48))).save(pred / 'b.png')
    with pytest.raises(MostNetError, match=r'b\.png: size 48x40'): evaluate(pred, gt, metrics=('ssim',))
    (pred / 'b.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(MostNetError, match=r'b\.png: cannot be read'): evaluate(pred, gt, metrics=('ssim',))
    Image.fromarray(_synthetic_sketch(1, (64, 48))).save(pred / 'b.png')
    Image.fromarray(_synthetic_sketch(1, (64, 48))).save(pred / 'b.jpg')
    with pytest.raises(MostNetError, match='same name stem'): evaluate(pred, gt, metrics=('ssim',))
    (pred / 'b.jpg').unlink()
    with pytest.raises(MostNetError, match='unknown metric'): evaluate(pred, gt, metrics=('psnr',))
    (gt / 'test' / 'sketches' / 'a.jpg').unlink()
    with pytest.raises(MostNetError, match='missing'): evaluate(pred, gt, metrics=('ssim',))


def test_evaluate_crops_padded_predictions_back(tmp_path, cufs_root):
    data = pytest.importorskip('most_net.data')
    if not hasattr(data, 'crop_to_original'): pytest.skip('most_net.data.crop_to_original not written yet')
    (tmp_path / 'pred').mkdir()
    name = 'ar_1'
    reference = np.asarray(Image.open(cufs_root / 'test' / 'sketches' / f'{name}.jpg').convert('L'))
    padded = np.full((256, 256), 255, np.uint8)
    # find where the data module puts the original frame by cropping row- and column-index images back
    rows, cols = np.indices((256, 256), dtype=np.uint8)
    top = int(np.asarray(data.crop_to_original(rows, original_hw=reference.shape))[0, 0])
    left = int(np.asarray(data.crop_to_original(cols, original_hw=reference.shape))[0, 0])
    padded[top:top + 250, left:left + 200] = reference
    Image.fromarray(padded).save(tmp_path / 'pred' / f'{name}.png')
    (tmp_path / 'gt').mkdir()
    shutil.copy(cufs_root / 'test' / 'sketches' / f'{name}.jpg', tmp_path / 'gt' / f'{name}.jpg')
    result = evaluate(tmp_path / 'pred', tmp_path / 'gt', metrics=('ssim',), progress=False)
    assert result.per_image['ssim'].item() == 1.0


def test_evaluate_cli_writes_scores_and_prints_summary(tmp_path):
    import json
    from most_net.cli import main
    from most_net.metrics import load_summary, overall_metrics
    pred = _dataset(tmp_path, {'a': ('AR', 1), 'b': ('CUHK', 2)})
    out = tmp_path / 'scores'
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(['evaluate', str(pred), str(tmp_path / 'gt'), '--metrics', 'ssim', 'fsim', '--out', str(out),
                     '--no-progress']) == 0
    table = pd.read_csv(out / 'metrics.csv')
    assert list(table.columns) == ['name', 'subset', 'ssim', 'fsim'] and len(table) == 2
    assert 'AR' in printed.getvalue() and 'all' in printed.getvalue()
    assert sorted(p.name for p in out.iterdir()) == ['metrics.csv', 'summary.json']  # no temporary file left behind
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['test_images'] == 2 and summary['variant'] == 'predictions'
    assert overall_metrics(load_summary(out))['SSIM'] == pytest.approx(table['ssim'].mean())   # readable as a table row


# ------------------------------------------------------------------------------------------ weights

@pytest.fixture
def offline(monkeypatch):
    "torch's download as on a machine without internet, whatever this machine's network (no test downloads gigabytes)."
    def unreachable(url, *args, **kwargs): raise OSError(f'<urlopen error [Errno -2] Name or service not known> ({url})')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', unreachable)
    monkeypatch.setattr(weights_module, '_FAILED_DOWNLOADS', {})


def _network_reachable(host: str = 'download.pytorch.org') -> bool:
    import socket
    try:
        with socket.create_connection((host, 443), timeout=3): return True
    except OSError: return False


def test_offline_download_fails_fast_with_clear_error(monkeypatch, tmp_path):
    "The real download attempt on a machine without internet: fails within seconds, and the error says what to do."
    if _network_reachable(): pytest.skip('the network is reachable here: the offline path cannot be observed')
    import time
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MOST_NET_WEIGHTS', raising=False)
    monkeypatch.setattr(weights_module, '_FAILED_DOWNLOADS', {})
    started = time.perf_counter()
    with pytest.raises(MostNetError) as caught: find_weights('alexnet')
    assert time.perf_counter() - started < 3 * weights_module.DOWNLOAD_TIMEOUT
    message = str(caught.value)
    assert 'Downloading https://download.pytorch.org/models/alexnet-owt-7be5be79.pth failed' in message
    assert str(tmp_path / 'torch' / 'hub' / 'checkpoints') in message and '$MOST_NET_WEIGHTS' in message
    started = time.perf_counter()
    with pytest.raises(MostNetError, match='failed'): load_backbone('alexnet')   # remembered: no second attempt
    assert time.perf_counter() - started < 1
    assert 'not found' in available_backbones()['alexnet']                     # a report never downloads


def test_missing_file_is_downloaded_with_torch_hash_check(monkeypatch, tmp_path):
    "The online path: torch's hash-checked download is asked for torchvision's file, into the torch cache, then used."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MOST_NET_WEIGHTS', raising=False)
    monkeypatch.setattr(weights_module, '_FAILED_DOWNLOADS', {})
    calls = []
    def fake_download(url, model_dir, check_hash, **kwargs):
        calls.append((url, Path(model_dir), check_hash))
        torch.save({'features.0.weight': torch.ones(1)}, Path(model_dir) / Path(url).name)
        return {}
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', fake_download)
    # the stand-in file is not AlexNet, so the hash check of find_weights refuses it; the request itself is right
    monkeypatch.setattr(weights_module, '_match', lambda name, path: weights_module.KNOWN_FILES[name][0])
    (tmp_path / 'torch' / 'hub' / 'checkpoints').mkdir(parents=True)
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    assert find_weights('alexnet') == cache / 'alexnet-owt-7be5be79.pth'
    assert calls == [('https://download.pytorch.org/models/alexnet-owt-7be5be79.pth', cache, True)]
    assert find_weights('alexnet') == cache / 'alexnet-owt-7be5be79.pth' and len(calls) == 1   # found, not fetched again
    with pytest.raises(MostNetError, match='not found'): find_weights('vgg16', path=tmp_path / 'nowhere')
    assert len(calls) == 1                                                                       # explicit paths never download


def test_missing_weights_message_names_file_places_and_command(monkeypatch, tmp_path, offline):
    monkeypatch.setenv('MOST_NET_WEIGHTS', str(tmp_path / 'mine'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    if not isinstance(available_backbones()['vgg19'], str): pytest.skip('VGG-19 weights are present here')
    with pytest.raises(MostNetError) as caught: find_weights('vgg19')
    message = str(caught.value)
    assert 'vgg19-dcbb9e9d.pth' in message
    assert str(tmp_path / 'mine') in message and str(tmp_path / 'torch' / 'hub' / 'checkpoints') in message
    assert "python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"" in message
    with pytest.raises(MostNetError, match='vgg19-dcbb9e9d.pth'): load_backbone('vgg19')  # never random silently
    with pytest.raises(MostNetError, match='vgg19-dcbb9e9d.pth'): GeneratorLoss(LossConfig(perceptual_net='vgg19'))


def test_hash_mismatch_is_an_error(monkeypatch, tmp_path, offline):
    monkeypatch.setenv('MOST_NET_WEIGHTS', str(tmp_path))
    torch.save({'features.0.weight': torch.zeros(1)}, tmp_path / 'alexnet-owt-7be5be79.pth')
    with pytest.raises(MostNetError, match='does not match the expected prefix 7be5be79'): find_weights('alexnet')
    with pytest.raises(MostNetError, match='corrupt'): load_backbone('alexnet')


def test_random_weights_only_when_asked():
    torch.manual_seed(0)
    first = load_backbone('vgg19', pretrained=False)
    torch.manual_seed(1)
    second = load_backbone('vgg19', pretrained=False)
    assert not torch.equal(first[0].weight, second[0].weight)
    assert len(first) == 37 and first[27].__class__.__name__ == 'MaxPool2d'


@needs_squeeze
def test_search_order_env_then_torch_cache(monkeypatch, tmp_path):
    found = Path(SQUEEZE)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.delenv('MOST_NET_WEIGHTS', raising=False)
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    shutil.copy(found, cache / found.name)
    assert find_weights('squeezenet1_1') == cache / found.name
    (tmp_path / 'env').mkdir()
    shutil.copy(found, tmp_path / 'env' / found.name)
    monkeypatch.setenv('MOST_NET_WEIGHTS', str(tmp_path / 'env'))
    assert find_weights('squeezenet1_1') == tmp_path / 'env' / found.name
    assert weights_module.search_dirs() == [tmp_path / 'env', cache]          # no other folder: no machine layout
    reference = torch.load(found, weights_only=True)
    loaded = load_backbone('squeezenet1_1')
    assert torch.equal(loaded[12].expand3x3.weight, reference['12.expand3x3.weight'])


# ------------------------------------------------------------------------------------------ losses

@pytest.fixture(scope='module')
def vgg_loss() -> GeneratorLoss:
    torch.manual_seed(0)
    return GeneratorLoss(LossConfig(), pretrained=False)  # VGG-19 ImageNet weights do not exist here


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    sketch = torch.rand(2, 1, 32, 32, generator=generator) * 2 - 1
    photo = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    return sketch, photo


@pytest.mark.parametrize('perceptual', ['vgg19', 'squeezenet1_1'])
def test_loss_terms_zero_for_identical_inputs(perceptual, vgg_loss):
    if perceptual == 'squeezenet1_1' and isinstance(SQUEEZE, str): pytest.skip('SqueezeNet 1.1 weights absent')
    loss = vgg_loss if perceptual == 'vgg19' else GeneratorLoss(LossConfig(perceptual_net='squeezenet1_1', gan_mode='lsgan'))
    sketch, _ = _inputs()
    photo = sketch.expand(-1, 3, -1, -1).clone()  # content compares the fake with the photo
    fooled = torch.full((2, 1, 2, 2), 40.0 if loss.config.gan_mode == 'vanilla' else 1.0)  # D says "real" everywhere
    terms = loss(sketch.clone(), sketch, photo, fooled, mr_loss=torch.tensor(0.0))
    for name in ('l1', 'style', 'content', 'mr'):
        assert terms[name].item() == 0.0, name
    assert terms['adv'].item() < 1e-6


@pytest.mark.parametrize('gan_mode', ['vanilla', 'lsgan', 'hinge'])
def test_every_term_has_a_gradient_on_the_fake(gan_mode, vgg_loss):
    loss = GeneratorLoss(LossConfig(gan_mode=gan_mode, perceptual_net='none'))
    loss.perceptual = vgg_loss.perceptual  # reuse the (random) VGG-19 built once
    sketch, photo = _inputs(1)
    fake = (sketch + 0.2 * torch.randn_like(sketch)).clamp(-1, 1).requires_grad_(True)
    toy_discriminator = torch.nn.Conv2d(4, 1, 8, stride=8)
    terms = loss(fake, sketch, photo, toy_discriminator(torch.cat([photo, fake], 1)), mr_loss=torch.tensor(0.3))
    for name in ('adv', 'l1', 'style', 'content'):
        (gradient,) = torch.autograd.grad(terms[name], fake, retain_graph=True)
        assert gradient.abs().sum().item() > 0, name
    weights = LossConfig()
    expected = (terms['adv'] + 200 * terms['l1'] + 40 * terms['style'] + 40 * terms['content'] + 10 * terms['mr'])
    assert terms['total'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert weights.lambda_mr == 10


def test_perceptual_network_stays_frozen_in_eval_mode(vgg_loss):
    vgg_loss.train()
    assert not any(module.training for module in vgg_loss.perceptual.modules())
    assert not any(p.requires_grad for p in vgg_loss.perceptual.parameters())
    assert [vgg_loss.perceptual.style_layers, vgg_loss.perceptual.content_layer] == [(4, 9), 27]


def test_discriminator_loss_is_half_the_sum():
    real, fake = torch.tensor([1.5, -0.5]), torch.tensor([0.2, -2.0])
    for mode in ('vanilla', 'lsgan', 'hinge'):
        terms = DiscriminatorLoss(mode)(real, fake)
        assert terms['total'].item() == pytest.approx(0.5 * (terms['real'] + terms['fake']).item())
    assert DiscriminatorLoss('hinge')(torch.ones(3) * 2, -torch.ones(3) * 2)['total'].item() == 0


def test_loss_config_round_trip_and_note():
    config = LossConfig(perceptual_net='squeezenet1_1', weights_path=Path('/x/y.pth'))
    assert LossConfig.from_dict(config.to_dict()) == config
    assert config.perceptual_note == 'style/content losses on SqueezeNet 1.1 features, VGG-19 weights unavailable'
    assert 'no style/content' in LossConfig(perceptual_net='none').perceptual_note


@needs_squeeze
def test_squeezenet_substitute_layers_match_vgg_resolutions():
    features = PerceptualFeatures('squeezenet1_1')
    out = features(torch.rand(1, 1, 256, 256) * 2 - 1)
    assert [tuple(f.shape[1:]) for f in out['style']] == [(64, 127, 127), (128, 63, 63)]
    assert tuple(out['content'].shape[1:]) == (512, 15, 15)
