"""JupyterLab niceties: saving a notebook changes nothing in git, papermill runs the notebooks in this Python,
tqdm shows widget bars.

The notebooks name the stock `python3` kernel. JupyterLab writes the running kernel's `kernelspec` and the `language_info`
of its `kernel_info` reply into a notebook's metadata when the kernel starts (the "modified" dot every nbdev user sees);
nbdev's pre-save hook takes the machine-dependent part out again before the file is written.
"""
import copy
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'nbs').rglob('*.ipynb'))
KERNEL_NAME = 'python3'


@pytest.fixture(scope='module')
def jupyterlab_writes():
    "The metadata JupyterLab writes into a notebook once the stock `python3` kernel has started (from the kernel itself)."
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    manager = KernelManager(kernel_name=KERNEL_NAME)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        language_info = client.kernel_info(reply=True, timeout=60)['content']['language_info']
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {'kernelspec': {'name': KERNEL_NAME, 'display_name': spec.display_name, 'language': spec.language},
            'language_info': language_info}


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_names_the_stock_kernel(path):
    "No home-made kernel: JupyterLab and papermill start `python3` in the Python they run in."
    assert json.loads(path.read_text(encoding='utf-8'))['metadata']['kernelspec']['name'] == KERNEL_NAME, path.name


def as_jupyterlab_saves(content: dict, metadata: dict) -> dict:
    "The notebook as JupyterLab hands it to the server on Ctrl+S after opening it, starting its kernel and running it."
    content = copy.deepcopy(content)
    content['metadata'].update(copy.deepcopy(metadata))
    for cell in content['cells']:
        if cell['cell_type'] == 'code':
            cell['metadata']['execution'] = {'iopub.execute_input': '2026-11-29T06:00:00.000Z'}
            cell['metadata']['trusted'] = True
    return content


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saving_in_jupyterlab_leaves_no_git_diff(path, tmp_path, jupyterlab_writes):
    "nbdev's pre-save hook (`nbdev_install_hooks`, `jupyter_hooks = True`) writes back the committed bytes."
    from nbdev.clean import clean_jupyter
    content = as_jupyterlab_saves(json.loads(path.read_text(encoding='utf-8')), jupyterlab_writes)
    model = {'type': 'notebook', 'content': content}
    clean_jupyter(str(path), model)                      # what the Jupyter server runs before writing
    saved = tmp_path / path.name
    nbformat.write(nbformat.from_dict(model['content']), saved, version=nbformat.NO_CONVERT)
    assert saved.read_bytes() == path.read_bytes(), (
        f'{path.name}: a save in JupyterLab would change the file; run nbdev_clean and check jupyter_hooks in settings.ini')


def test_the_notebooks_run_in_this_python():
    "papermill starts the kernel the notebooks name, `python3`, in the Python that runs it (this environment's packages)."
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('import sys; print(sys.executable)')])
    nb.metadata.update(json.loads(NOTEBOOKS[0].read_text(encoding='utf-8'))['metadata'])
    NotebookClient(nb, timeout=120).execute()         # no kernel_name: the one the notebook's metadata names
    assert Path(nb.cells[0].outputs[0]['text'].strip()).resolve() == Path(sys.executable).resolve()


def test_tqdm_shows_a_widget_bar_in_a_kernel():
    "With the dev extras (ipywidgets), tqdm.auto in a notebook is a widget, not a red 'IProgress not found' warning."
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass')])
    nb.metadata['kernelspec'] = {'name': KERNEL_NAME, 'display_name': KERNEL_NAME, 'language': 'python'}
    NotebookClient(nb, timeout=120, kernel_name=KERNEL_NAME).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.get('name') == 'stderr' and 'IProgress' in o.get('text', '')], outputs
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outputs), outputs
