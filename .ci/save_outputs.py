#!/usr/bin/env python
"""Run library notebooks as `nbdev_test` does and save what their cells show, so a reader on the web sees it.

    python .ci/save_outputs.py [NOTEBOOK ...]     # default: every numbered notebook in nbs/

Each notebook runs in its own process, through nbdev's executor with nbdev_test's rule for skipped cells
(`#| eval: false` and the `tst_flags` of settings.ini), so a saved output is what the tests saw. What is
kept: printed text and displayed values (with this machine's folders written as `$MOST_NET_DATA`, `.` and
so on) and figures (at 1x; pictures of faces as JPEG). Not kept: stderr
(warnings, progress bars), and anything of a cell tagged `remove-output` (Jupyter Book's tag: the cells
that show CUFS pictures, which are not ours to publish). A notebook that fails is left as it was and named. Run `nbdev_clean` afterwards: it keeps outputs (`clear_all = False`).
"""
import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor
from PIL import Image

from most_net.core import portable_text

ROOT = Path(__file__).resolve().parents[1]


PHOTO_PNG_CHARS = 100_000   # a figure this large as PNG is photographic (faces, sketches): saved as JPEG


def kept(output: dict) -> dict:
    "The output as saved: paths as `portable_text` writes them; a picture as JPEG where it is a photograph."
    if 'text' in output: output['text'] = portable_text(''.join(output['text']))
    data = output.get('data', {})
    for kind in [kind for kind in data if kind.startswith('text/')]: data[kind] = portable_text(''.join(data[kind]))
    if 'image/jpeg' in data and 'image/png' in data: del data['image/png']
    png = data.get('image/png')
    if png and len(png) > PHOTO_PNG_CHARS:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(base64.b64decode(png))).convert('RGB').save(buffer, format='JPEG', quality=85)
        data['image/jpeg'] = base64.b64encode(buffer.getvalue()).decode('ascii')
        del data['image/png']
    return output


def run_one(path: Path) -> None:
    "Execute `path` as nbdev_test would and write its outputs into the notebook."
    os.environ['IN_TEST'] = '1'
    flags = set(get_config().tst_flags.split())
    def skipped(cell) -> bool:
        if cell.cell_type != 'code': return True
        directives = getattr(cell, 'directives_', {}) or {}
        return directives.get('eval:', [''])[0].lower() == 'false' or bool(flags & directives.keys())
    ran = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    shell = CaptureShell(path, mpl_format='png')
    with working_directory(path.parent): shell.run_all(ran, exc_stop=True, preproc=skipped)
    saved = read_nb(path)
    if len(saved.cells) != len(ran.cells): raise SystemExit(f'{path}: the processed notebook lost cells')
    for cell, done in zip(saved.cells, ran.cells):
        if cell.cell_type != 'code': continue
        hidden = 'remove-output' in cell.get('metadata', {}).get('tags', [])
        cell.outputs = [] if hidden else [kept(out) for out in done.get('outputs', [])
                                          if not (out.get('output_type') == 'stream' and out.get('name') == 'stderr')]
    write_nb(saved, path)
    # written again as the Jupyter server writes it: multi-line text as a list of lines
    nbformat.write(nbformat.read(path, as_version=nbformat.NO_CONVERT), path)


def main(args: list[str]) -> int:
    if args[:1] == ['--one']:
        run_one(Path(args[1]).resolve())
        return 0
    paths = [Path(a) for a in args] or sorted((ROOT / 'nbs').glob('[0-9][0-9]_*.ipynb'))
    failed = []
    for path in paths:
        print(f'running {path.relative_to(ROOT) if path.is_absolute() else path}', flush=True)
        if subprocess.run([sys.executable, __file__, '--one', str(path)]).returncode: failed.append(str(path))
    if failed: print('failed (left as they were):', *failed, sep='\n  ')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
