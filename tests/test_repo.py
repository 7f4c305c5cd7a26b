"""The repository's promises to its readers: one source of truth for the README, CI and results."""
from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

from most_net.readme import sync_readme


def _block(readme: str, marker: str) -> str:
    match = re.search(rf'<!-- {marker} -->\s*```(?:bash|sh)?\n(.+?)\n```', readme, re.S)
    assert match, f'README.md lacks the {marker} block'
    return match.group(1).strip()


def test_readme_results_match_results_folder(repo):
    assert not sync_readme(repo / 'README.md', repo / 'results', check=True), \
        'README results block is stale: run most_net.readme.sync_readme("README.md", "results")'


def test_readme_has_two_quickstart_commands(repo):
    readme = (repo / 'README.md').read_text()
    quickstart, test_command = _block(readme, 'quickstart-command'), _block(readme, 'test-command')
    assert quickstart.count('\n') == 0 and test_command.count('\n') == 0
    assert 'papermill nbs/experiments/train.ipynb' in quickstart
    assert 'pytest' in test_command and 'nbdev_test' in test_command


def test_ci_runs_the_readme_test_command(repo):
    ci = (repo / '.ci' / 'run').read_text()
    assert '<!-- test-command -->' in ci and 'torch==2.14.1 torchvision==0.29.1' in ci


def test_notebook_map_lists_every_notebook(repo):
    readme = (repo / 'README.md').read_text()
    listed = set(re.findall(r'`nbs/([\w/-]+\.ipynb)`', readme))
    present = {p.relative_to(repo / 'nbs').as_posix() for p in (repo / 'nbs').rglob('*.ipynb')
               if '.ipynb_checkpoints' not in p.parts}
    assert listed == present, f'README notebook map: missing {present - listed}, stale {listed - present}'


def test_settings_declare_runtime_requirements(repo):
    config = configparser.ConfigParser(delimiters=['='])
    config.read(repo / 'settings.ini')
    requirements = config['DEFAULT']['requirements']
    for package in ('torch', 'torchvision', 'lpips==0.1.4', 'scikit-image', 'piq', 'pandas', 'matplotlib',
                    'tqdm', 'pillow', 'safetensors', 'opencv-python-headless'):
        assert package in requirements, package


def test_console_script_help():
    script = Path(sys.executable).parent / 'most-net'
    assert script.is_file(), 'the most-net console script is not installed: pip install -e .'
    result = subprocess.run([str(script), '--help'], capture_output=True, text=True)
    assert result.returncode == 0 and 'usage: most-net' in result.stdout


_OUTSIDE = re.compile(r'DESIGN\.md|\.\./shared|(?<![\w.$])/(?:work|root|home)/')


def test_no_reference_points_outside_the_repository(repo):
    "Docs, code, notebooks (their outputs too) and committed results name only the checkout, `$MOST_NET_DATA`, "
    "`$MOST_NET_WEIGHTS` and `$TORCH_HOME`; only the CI script may know the CI machine's layout."
    tracked = subprocess.run(['git', 'ls-files'], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    allowed = {'.ci/run', 'tests/test_repo.py'}
    offenders = []
    for name in tracked:
        path = repo / name
        if name in allowed or not path.is_file() or path.suffix in ('.png', '.jpg', '.safetensors', '.pt', '.pth'): continue
        try: text = path.read_text(encoding='utf-8')
        except UnicodeDecodeError: continue
        offenders += [f'{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}' for m in _OUTSIDE.finditer(text)]
    assert not offenders, 'references outside the repository:\n' + '\n'.join(offenders[:20])


def test_library_notebooks_keep_their_demonstrations(repo):
    "A reader on the web sees what the demonstration cells show: each numbered notebook keeps saved outputs."
    bare = []
    for path in sorted((repo / 'nbs').glob('[0-9][0-9]_*.ipynb')):
        cells = json.loads(path.read_text(encoding='utf-8'))['cells']
        if not any(cell.get('outputs') for cell in cells if cell['cell_type'] == 'code'): bare.append(path.name)
    assert not bare, f'no saved outputs in {bare}: run `python .ci/save_outputs.py nbs/<notebook>`, then nbdev_clean'


def test_no_dataset_pictures_saved(repo):
    "Cells tagged remove-output show CUFS pictures, which are not ours to publish: their outputs are never saved."
    saved = [f'{path.relative_to(repo)} cell {index}' for path in sorted((repo / 'nbs').rglob('*.ipynb'))
             for index, cell in enumerate(json.loads(path.read_text(encoding='utf-8'))['cells'])
             if 'remove-output' in cell.get('metadata', {}).get('tags', []) and cell.get('outputs')]
    assert not saved, f'outputs saved in cells tagged remove-output: {saved}; clear them (python .ci/save_outputs.py does)'



def test_code_layout_names_every_module(repo):
    "README's 'How the code is laid out' names each module of most_net."
    readme = (repo / 'README.md').read_text(encoding='utf-8')
    section = readme.split('## How the code is laid out', 1)[1].split('\n## ', 1)[0]
    modules = {p.stem for p in (repo / 'most_net').glob('*.py') if not p.stem.startswith('_')}
    missing = modules - set(re.findall(r'`(\w+)`', section))
    assert not missing, f'README "How the code is laid out" does not name {sorted(missing)}'
