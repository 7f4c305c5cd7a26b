"""`most-net demo`, the web page: its function through Gradio's own client (`gradio_client`) against a server on a free
local port, the command itself, and the page in a real browser (Playwright driving an installed Chromium).

Without gradio / gradio_client these tests skip, saying so (CI installs them with `.[dev]`); without Playwright or a
Chromium the browser test skips, saying which is missing. The browser test saves its screenshot under pytest's tmp_path,
and also to `$MOST_NET_DEMO_SCREENSHOT` when set: the README's picture is made with

    MOST_NET_DEMO_SCREENSHOT=results/figures/demo_screenshot.png python -m pytest tests/test_demo.py -k browser
"""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from conftest import make_photo_corpus
from most_net.cli import main
from most_net.demo import ALIGN_LABEL, DEMO_INSTALL, build_demo, launch_demo
from most_net.generator_files import released_generator_path
from most_net.inference import Sketcher

NO_GRADIO = 'gradio / gradio_client not installed: pip install -e ".[demo]" (CI installs them with .[dev])'
MAX_MEGAPIXELS, MAX_FILE_MB = 0.5, 1.0   # small limits, so that small files cross them


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def gradio_client():
    pytest.importorskip('gradio', reason=NO_GRADIO)
    return pytest.importorskip('gradio_client', reason=NO_GRADIO)


@pytest.fixture(scope='module')
def sketcher():
    """The released generator, as `most-net demo` loads it by default."""
    return Sketcher(released_generator_path(), device='cpu')


@pytest.fixture(scope='module')
def server(gradio_client, sketcher):
    """The page served as `most-net demo` serves it, on a free local port; (the Blocks, its address)."""
    demo = build_demo(sketcher, max_megapixels=MAX_MEGAPIXELS, max_file_mb=MAX_FILE_MB)
    url = launch_demo(demo, port=free_port(), max_file_mb=MAX_FILE_MB)
    yield demo, url
    demo.close()


@pytest.fixture(scope='module')
def page(gradio_client, sketcher):
    """The page with `most-net demo`'s default limits, for the browser; its address."""
    demo = build_demo(sketcher)
    yield launch_demo(demo, port=free_port())
    demo.close()


@pytest.fixture(scope='module')
def client(server, gradio_client):
    return gradio_client.Client(server[1], verbose=False)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('photos')
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(folder / 'astronaut.png')
    two = np.full((420, 720, 3), 255, np.uint8)   # the astronaut's head twice, the second smaller
    two[60:360, 20:320] = astronaut[0:300, 80:380]
    two[100:310, 440:650] = cv2.resize(astronaut[0:300, 80:380], (210, 210), interpolation=cv2.INTER_AREA)
    Image.fromarray(two).save(folder / 'two.png')
    (folder / 'broken.jpg').write_bytes(b'not a JPEG at all')
    Image.fromarray(np.full((300, 240), 128, np.uint8)).save(folder / 'flat.png')
    Image.fromarray(np.full((800, 1000, 3), 200, np.uint8)).save(folder / 'wide.png')          # 0.8 megapixels in a small file
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), np.uint8)
    Image.fromarray(noise).save(folder / 'noise.png')                                          # 0.49 megapixels in 1.4 MB
    return folder


def sketch(client, path, align=True):
    """What the page shows for a photo: (faces found, gallery, PNG files, summary), through the /sketch endpoint."""
    from gradio_client import handle_file
    return client.predict(handle_file(str(path)), align, api_name='/sketch')


def assert_still_serving(client, photos):
    assert sketch(client, photos / 'astronaut.png')[3].startswith('1 face(s) sketched')


# -- through gradio_client ------------------------------------------------------------------------------

def test_a_photo_gets_the_sketchers_sketch_to_the_pixel(client, photos):
    overlay, gallery, files, summary = sketch(client, photos / 'astronaut.png')
    reference = Sketcher(device='cpu').sketch_faces(photos / 'astronaut.png')
    assert len(reference) == 1 and summary.startswith('1 face(s) sketched')
    by_name = {Path(path).name: Path(path) for path in files}
    assert sorted(by_name) == ['astronaut_aligned.png', 'astronaut_sketch.png']
    with Image.open(by_name['astronaut_sketch.png']) as sketch_png:
        assert (sketch_png.format, sketch_png.mode, sketch_png.size) == ('PNG', 'L', (200, 250))
        np.testing.assert_array_equal(np.asarray(sketch_png), np.asarray(reference[0].sketch))
    np.testing.assert_array_equal(np.asarray(Image.open(by_name['astronaut_aligned.png'])), np.asarray(reference[0].photo))
    assert [item['caption'] for item in gallery] == ['face 1: aligned photo', 'face 1: sketch']
    with Image.open(gallery[1]['image']) as shown:
        assert shown.format == 'PNG'
        np.testing.assert_array_equal(np.asarray(shown.convert('L')), np.asarray(reference[0].sketch))
    assert Image.open(overlay).size == (512, 512)


def test_several_faces_make_a_gallery(client, sketcher, photos):
    _, gallery, files, summary = sketch(client, photos / 'two.png')
    assert summary.startswith('2 face(s) sketched')
    assert [item['caption'] for item in gallery] == ['face 1: aligned photo', 'face 1: sketch', 'face 2: aligned photo',
                                                     'face 2: sketch']
    assert [Path(path).name for path in files] == ['two_face1_aligned.png', 'two_face1_sketch.png', 'two_face2_aligned.png',
                                                   'two_face2_sketch.png']
    for path, expected in zip(files[1::2], sketcher.sketch_faces(photos / 'two.png')):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(expected.sketch))


def test_an_aligned_face_can_skip_detection(client, sketcher, photos, tmp_path):
    aligned = sketcher.sketch_faces(photos / 'astronaut.png')[0].photo
    aligned.save(tmp_path / 'aligned.png')
    _, _, files, _ = sketch(client, tmp_path / 'aligned.png', align=False)
    np.testing.assert_array_equal(np.asarray(Image.open(files[1])), np.asarray(sketcher.sketch(aligned, align=False)))


@pytest.mark.parametrize('photo', ['broken.jpg', 'flat.png'])
def test_bad_photo_gets_the_clis_message_in_the_pages_words_and_the_server_goes_on(photo, client, photos, tmp_path, capsys,
                                                                                   monkeypatch):
    """A file that is no image and a photo without a face: the page's message is the one `most-net sketch` prints, except
    that it names the page's tick box where the command line names its --no-align flag."""
    from gradio_client.exceptions import AppError
    monkeypatch.chdir(photos)   # so that the command line names the photo as the page does: by its file name
    assert main(['sketch', photo, '-o', str(tmp_path / 'out'), '--checkpoint', str(released_generator_path())]) == 1
    prefix, cli_line = 'most-net sketch: error: ', capsys.readouterr().err.strip().splitlines()[-1]
    assert cli_line.startswith(prefix)
    with pytest.raises(AppError) as raised:
        sketch(client, photos / photo)
    assert str(raised.value) == cli_line[len(prefix):].replace('pass --no-align', f"untick '{ALIGN_LABEL}'")
    assert '--no-align' not in str(raised.value)
    assert_still_serving(client, photos)


def sketch_several(client, paths, align=True):
    """What the page shows for several photos at once: (None, gallery, PNG files, summary), through /sketch_photos."""
    from gradio_client import handle_file
    return client.predict([handle_file(str(path)) for path in paths], align, api_name='/sketch_photos')


def test_several_photos_are_sketched_as_the_cli_sketches_a_folder(client, photos, tmp_path, capsys):
    """The fuzz corpus uploaded at once (all but the folder and the hidden file, which a browser cannot send): a sketch
    for every good and unusual photo, one line per bad file in the summary and in the server's log, no traceback."""
    good, bad = make_photo_corpus(tmp_path / 'corpus')
    bad = {name: words for name, words in bad.items() if name != 'folder.jpg'}
    bad['bomb.png'] = 'bomb.png: more than 179 megapixels (Pillow opens no more) is over the limit of 0.5 megapixels'
    capsys.readouterr()
    overlay, gallery, files, summary = sketch_several(client, [tmp_path / 'corpus' / name for name in sorted([*good, *bad])])
    head, *lines = summary.split('\n')
    assert overlay is None and head.startswith(f'{len(good)} of {len(good) + len(bad)} photos sketched ({len(good)} face(s) in ')
    assert head.endswith(f', {len(bad)} failed: see below'), head
    lines = [line.replace('\\', '') for line in lines]   # the summary is Markdown: its special characters are escaped
    assert len(lines) == len(bad) and all(line.startswith('- ') for line in lines), lines
    for name, words in bad.items():
        mine = [line for line in lines if line.startswith(f'- {name}')]
        assert len(mine) == 1 and words in mine[0], (name, mine)
    assert sorted(Path(path).name for path in files) == sorted(f'{Path(name).stem}_{kind}.png' for name in good
                                                              for kind in ('aligned', 'sketch'))
    assert len(gallery) == 2 * len(good) and gallery[0]['caption'] == 'animated.gif, face 1: aligned photo'
    log = capsys.readouterr().err
    assert 'Traceback' not in log and sum(line.startswith('most-net demo: ') for line in log.splitlines()) == len(bad), log
    assert_still_serving(client, photos)


def test_uploads_that_share_a_name_are_kept_apart(client, photos, tmp_path):
    shutil.copy(photos / 'astronaut.png', tmp_path / 'astronaut.jpg')
    _, _, files, summary = sketch_several(client, [tmp_path / 'astronaut.jpg', photos / 'astronaut.png'])
    assert summary.startswith('2 of 2 photos sketched') and 'failed' not in summary
    assert [Path(path).name for path in files] == ['astronaut.jpg_aligned.png', 'astronaut.jpg_sketch.png',
                                                   'astronaut.png_aligned.png',
                                                   'astronaut.png_sketch.png']


def test_the_page_states_its_limits_and_names_its_tick_box(server):
    """The upload-size limit beside the megapixel limit, and the tick box the messages name."""
    with urllib.request.urlopen(server[1] + 'config', timeout=30) as answer:
        config = answer.read().decode()
    assert f'Photos up to {MAX_MEGAPIXELS:g} megapixels and {MAX_FILE_MB:g} MB each.' in config
    assert f'"label": "{ALIGN_LABEL}"' in config or f'"label":"{ALIGN_LABEL}"' in config


def test_too_many_pixels_are_refused_in_one_line(client, photos):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match=r'^wide\.png: 1000 x 800 pixels \(0\.8 megapixels\) is over the limit of 0\.5 megapixels: '
                                       r'shrink the photo, or start the page with a higher --max-megapixels$'):
        sketch(client, photos / 'wide.png')
    assert_still_serving(client, photos)


def test_too_large_uploads_are_refused(server, client, photos):
    import httpx
    data = (photos / 'noise.png').read_bytes()
    assert len(data) > MAX_FILE_MB * 2**20
    with pytest.raises(ValueError, match='exceeds the maximum file size of 1048576 bytes'):   # the client reads the limit
        sketch(client, photos / 'noise.png')
    answer = httpx.post(server[1] + 'gradio_api/upload', files={'files': ('noise.png', data, 'image/png')})   # the server too
    assert answer.status_code == 413, answer.text
    assert_still_serving(client, photos)


def test_sketching_runs_one_request_at_a_time(client, sketcher, photos, monkeypatch):
    """Three requests sent at once: the generator runs them one after the other (the queue), never two together."""
    from gradio_client import handle_file
    spans, predict = [], sketcher.predict

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try: return predict(*args, **kwargs)
        finally: spans.append((start, time.perf_counter()))

    monkeypatch.setattr(sketcher, 'predict', timed)
    jobs = [client.submit(handle_file(str(photos / 'astronaut.png')), True, api_name='/sketch') for _ in range(3)]
    assert all(job.result(timeout=120)[3].startswith('1 face(s) sketched') for job in jobs)
    spans.sort()
    assert len(spans) == 3 and all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans


def test_the_page_is_served_on_localhost_only_and_not_shared(server):
    demo, url = server
    assert (demo.server_name, demo.share, demo.share_url) == ('127.0.0.1', False, None)
    assert url.startswith('http://127.0.0.1:')
    with urllib.request.urlopen(url, timeout=30) as answer:
        page = answer.read().decode()
    assert answer.status == 200 and 'fonts.googleapis' not in page


# -- the command ----------------------------------------------------------------------------------------

def test_demo_without_gradio_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'gradio', None)   # as if it were not installed
    assert main(['demo']) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('most-net demo: error: the web page needs Gradio') and DEMO_INSTALL in err


def test_most_net_demo_serves_the_page_and_stops_on_ctrl_c(gradio_client, tmp_path):
    script = Path(sys.executable).parent / 'most-net'
    assert script.is_file(), 'the most-net console script is not installed: pip install -e .'
    port, start = free_port(), time.perf_counter()
    err_path = tmp_path / 'stderr.txt'   # a file, not a pipe: a pipe nobody reads can fill and stall the process
    # Started as from a terminal: in a job a shell script runs in the background SIGINT is ignored, and a child inherits
    # that (Python then leaves it ignored); a handler of our own is reset to the default in the child instead.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open(err_path, 'w') as err_file:
            process = subprocess.Popen([str(script), 'demo', '--port', str(port)], stdout=subprocess.PIPE, stderr=err_file,
                                       text=True, cwd=tmp_path)   # outside the checkout: the released generator is found as well
    finally: signal.signal(signal.SIGINT, ignored)
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        while time.perf_counter() - start < 300 and process.poll() is None and not any('serving' in line for line in lines):
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        assert any('serving' in line for line in lines), f'no page after {seconds:.0f} s: {lines} {process.poll()}'
        url = f'http://127.0.0.1:{port}/'
        with urllib.request.urlopen(url, timeout=30) as answer: assert answer.status == 200
        process.send_signal(signal.SIGINT)
        try: process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f'most-net demo still running 30 s after Ctrl+C; its stderr so far:\n{err_path.read_text()[-3000:]}')
        reader.join(timeout=10)
        err = err_path.read_text()
    finally:
        if process.poll() is None: process.kill()
    out = ''.join(lines)
    assert process.returncode == 0, err
    assert re.search(rf'^most-net demo: most_net from .*most_net_cufs_cpu256\.safetensors on cpu, serving {re.escape(url)} ', out,
                     re.M), out
    assert err.strip() == 'most-net demo: stopped', err
    print(f'most-net demo served its page {seconds:.1f} s after it was started')


# -- in a real browser ----------------------------------------------------------------------------------

def chromium_executable() -> str | None:
    """`$MOST_NET_CHROMIUM`, else an installed Chromium (Debian's `apt-get install chromium`) or Chrome."""
    for candidate in (os.environ.get('MOST_NET_CHROMIUM'), shutil.which('chromium'), shutil.which('chromium-browser'),
                      shutil.which('google-chrome')):
        if candidate and Path(candidate).is_file(): return candidate
    return None


def test_browser_uploads_the_astronaut_and_shows_its_sketch(page, sketcher, photos, tmp_path):
    """Chromium opens the page, uploads the astronaut and waits for the sketch (which must be the Sketcher's); then a face-less
    photo and a webcam shot (Chromium's fake camera) get their one-line messages in the page; every request stays on the page's
    own server and no font file is loaded."""
    sync_api = pytest.importorskip('playwright.sync_api',
                                   reason='Playwright not installed: pip install playwright (it is in .[dev])')
    executable = chromium_executable()
    if executable is None:
        pytest.skip('no Chromium installed: apt-get install chromium (or point $MOST_NET_CHROMIUM at a Chromium or Chrome)')
    url = page
    origin, requests = url.rstrip('/'), []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=[
            '--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'])
        try:
            tab = browser.new_context(viewport={'width': 1280, 'height': 900}, permissions=['camera']).new_page()
            tab.on('request', lambda request: requests.append(request.url))
            tab.goto(url, wait_until='networkidle')
            tab.locator('input[type=file]').first.set_input_files(str(photos / 'astronaut.png'))
            tab.get_by_text('face 1: sketch').wait_for(timeout=120_000)
            tab.wait_for_function("() => [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0)"
                                   '.length >= 4', timeout=60_000)   # the photo, the faces found and the gallery's two
            tab.wait_for_timeout(500)
            tab.screenshot(path=str(tmp_path / 'demo_screenshot.png'), full_page=True)
            shown = tab.eval_on_selector_all('img', 'images => images.map(i => i.currentSrc)')
            expected = np.asarray(sketcher.sketch_faces(photos / 'astronaut.png')[0].sketch)
            matches = []
            for source in shown:
                if not source.startswith(origin): continue
                with urllib.request.urlopen(source, timeout=30) as answer:
                    picture = Image.open(io.BytesIO(answer.read()))
                matches.append(picture.size == (200, 250) and np.array_equal(np.asarray(picture.convert('L')), expected))
            assert any(matches), f'the sketch shown is not the Sketcher\'s: {shown}'
            tab.locator('input[type=file]').first.set_input_files(str(photos / 'flat.png'))
            tab.get_by_text('flat.png: no face found').wait_for(timeout=60_000)
            tab.get_by_label('Capture from camera').click()
            tab.get_by_text('Click to Access Webcam').click()
            tab.wait_for_function("() => [...document.querySelectorAll('video')]"
                          ".some(v => v.readyState >= 2 && v.videoWidth > 0)",
                                   timeout=30_000)   # the camera streams: a shot now is a frame, not an empty canvas
            tab.get_by_label('capture photo').click(timeout=30_000)
            # the fake camera films a test pattern, no face: the shot reaches the sketcher, which says so in the page
            tab.get_by_text(re.compile(r'^(?!flat\.png)\S+: no face found')).wait_for(timeout=60_000)
        finally:
            browser.close()
    screenshot = tmp_path / 'demo_screenshot.png'
    assert screenshot.stat().st_size > 10_000
    if os.environ.get('MOST_NET_DEMO_SCREENSHOT'):
        target = Path(os.environ['MOST_NET_DEMO_SCREENSHOT'])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)
    outside = [request for request in requests if not request.startswith((origin + '/', 'data:', 'blob:'))]
    assert not outside, f'the page fetched from outside its server: {outside}'
    fonts = [request for request in requests if re.search(r'\.(woff2?|ttf|otf)(\?|$)', request)]
    assert not fonts, f'the page loaded font files: {fonts}'
