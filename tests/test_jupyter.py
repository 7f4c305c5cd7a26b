"""JupyterLab niceties: saving a notebook changes nothing in git, tqdm shows widget bars in a kernel."""
import copy
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'nbs').glob('*.ipynb'))

# What JupyterLab 4 writes into a notebook once its kernel has started, and what a run adds to each cell.
JUPYTERLAB_KERNELSPEC = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
JUPYTERLAB_LANGUAGE_INFO = {'codemirror_mode': {'name': 'ipython', 'version': 3}, 'file_extension': '.py',
                            'mimetype': 'text/x-python', 'name': 'python', 'nbconvert_exporter': 'python',
                            'pygments_lexer': 'ipython3', 'version': '3.11.9'}


def as_jupyterlab_saves(content: dict) -> dict:
    "The notebook as JupyterLab hands it to the server on Ctrl+S after opening it and starting its kernel."
    content = copy.deepcopy(content)
    content['metadata']['kernelspec'] = dict(JUPYTERLAB_KERNELSPEC)
    content['metadata']['language_info'] = dict(JUPYTERLAB_LANGUAGE_INFO)
    for cell in content['cells']:
        if cell['cell_type'] == 'code':
            cell['metadata']['execution'] = {'iopub.execute_input': '2026-11-29T06:00:00.000Z'}
            cell['metadata']['trusted'] = True
    return content


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saving_in_jupyterlab_leaves_no_git_diff(path, tmp_path):
    "nbdev's pre-save hook (`nbdev_install_hooks`, `jupyter_hooks = True`) writes back the committed bytes."
    from nbdev.clean import clean_jupyter
    model = {'type': 'notebook', 'content': as_jupyterlab_saves(json.loads(path.read_text(encoding='utf-8')))}
    clean_jupyter(str(path), model)                      # what the Jupyter server runs before writing
    saved = tmp_path / path.name
    nbformat.write(nbformat.from_dict(model['content']), saved, version=nbformat.NO_CONVERT)
    assert saved.read_bytes() == path.read_bytes(), (
        f'{path.name}: a save in JupyterLab would change the file; run nbdev_clean and check jupyter_hooks in settings.ini')


def test_tqdm_shows_a_widget_bar_in_a_kernel():
    "With the dev extras (ipywidgets), tqdm.auto in a notebook is a widget, not a red 'IProgress not found' warning."
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass')])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    NotebookClient(nb, timeout=120, kernel_name='python3').execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.get('name') == 'stderr' and 'IProgress' in o.get('text', '')], outputs
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outputs), outputs
