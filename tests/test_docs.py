"""The documentation site: every public function, class and method of the package has an API entry, and nbdev's
docs processing (the step `nbdev_docs` runs before Quarto renders the pages) passes over every notebook.

Quarto cannot be installed on the CI machines, so this is how CI proves the docs: `process_docs` runs nbdev's own
processing step (`nbdev.serve.proc_nbs` with the processors `nbdev_docs` uses) on a copy of the notebooks, and the
tests read the entries off its output. `python tests/test_docs.py` runs the same check outside pytest."""
from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
NBS = REPO / 'nbs'
_DEFAULT_EXP = re.compile(r'^#\|\s*default_exp\s+(\S+)', re.M)
_HEADING = re.compile(r'^#{1,6} (\S+)\s*$', re.M)


def exported_notebooks(nbs: Path = NBS) -> dict[str, Path]:
    "Module name (`core`, `memory`, ...) -> the notebook that exports it (its `#| default_exp`)."
    found = {}
    for path in sorted(nbs.glob('*.ipynb')):
        cells = json.loads(path.read_text(encoding='utf-8'))['cells']
        match = _DEFAULT_EXP.search('\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'code'))
        if match: found[match.group(1)] = path
    return found


def _public_members(cls: type) -> list[str]:
    "The public methods, class/static methods and properties a class defines itself (inherited ones: where they are defined)."
    kinds = (staticmethod, classmethod, property)
    return [name for name, value in vars(cls).items()
            if not name.startswith('_') and (inspect.isfunction(value) or isinstance(value, kinds))]


def expected_names(module: str) -> set[str]:
    "Every name of `most_net.<module>` that needs a doc entry: `__all__`'s functions and classes, the classes' public members."
    mod = importlib.import_module(f'most_net.{module}')
    names = set()
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, '__module__', None) != mod.__name__: continue
        names.add(name)
        if inspect.isclass(obj): names.update(f'{name}.{member}' for member in _public_members(obj))
    return names


def documented_names(notebook: str | Path) -> set[str]:
    "The names `show_doc` documents in `notebook`: the explicit `show_doc(...)` cells and those nbdev adds after definitions."
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import _get_nm, _show_docs, add_show_docs, populate_language
    nb = read_nb(notebook)
    NBProcessor(nb=nb, procs=[populate_language, add_show_docs]).process()
    return {_get_nm(tree) for cell in nb.cells if cell.cell_type == 'code' for tree in _show_docs(cell.parsed_() or [])}


_PROCESS = """
import sys
from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
from nbdev.serve import proc_nbs
refresh_quarto_yml()                    # nbs/_quarto.yml, as nbdev_docs writes it
nbdev_sidebar.__wrapped__(path='nbs')   # nbs/sidebar.yml
print(proc_nbs('nbs', n_workers=int(sys.argv[1]), force=True))
"""


def process_docs(workdir: Path, n_workers: int = 1) -> Path:
    "Copy the notebooks and settings.ini into `workdir` and run nbdev's docs processing there; the `_proc` folder it writes."
    workdir = Path(workdir)
    shutil.copytree(NBS, workdir / 'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc', '_docs'))
    shutil.copy2(REPO / 'settings.ini', workdir / 'settings.ini')
    done = subprocess.run([sys.executable, '-c', _PROCESS, str(n_workers)], cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f'nbdev docs processing failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}')
    return workdir / '_proc'


def rendered_entries(processed_notebook: Path) -> set[str]:
    "The names whose `show_doc` entry was rendered in a processed notebook (the headings of its markdown outputs)."
    entries = set()
    for cell in json.loads(processed_notebook.read_text(encoding='utf-8'))['cells']:
        for output in cell.get('outputs', []):
            markdown = output.get('data', {}).get('text/markdown')
            if markdown: entries.update(_HEADING.findall(''.join(markdown)))
    return entries


def missing_entries(documented: dict[str, set[str]]) -> dict[str, list[str]]:
    "Per module, the public names without a doc entry (empty when every name is documented)."
    return {module: sorted(expected_names(module) - documented.get(module, set()))
            for module in exported_notebooks()}


def test_every_module_is_exported_by_a_notebook():
    modules = {p.stem for p in (REPO / 'most_net').glob('*.py') if not p.stem.startswith('_')}
    assert modules == set(exported_notebooks()), modules ^ set(exported_notebooks())


def test_every_public_name_has_a_show_doc_entry():
    "Static check (no execution): the show_doc cells, explicit or added by nbdev, cover every public name."
    documented = {module: documented_names(path) for module, path in exported_notebooks().items()}
    missing = {module: names for module, names in missing_entries(documented).items() if names}
    assert not missing, f'public names without a doc entry (add a show_doc cell, or define methods with @patch): {missing}'


def test_expected_names_include_patched_and_class_methods():
    names = expected_names('memory')
    assert {'MemoryDictionary', 'MemoryDictionary.update', 'MemoryDictionary.read', 'MemoryDictionary.refinement_loss',
            'to_slots'} <= names
    assert not any(part.startswith('_') for name in names for part in name.split('.'))
    assert 'Sketcher.from_run' in expected_names('inference')


def test_missing_entry_is_reported(tmp_path):
    "The check can fail: a notebook without the show_doc cell of a method leaves that method undocumented."
    source = exported_notebooks()['networks']
    nb = json.loads(source.read_text(encoding='utf-8'))
    nb['cells'] = [c for c in nb['cells'] if ''.join(c['source']).strip() != 'show_doc(MOSTNet.read_memory)']
    copy = tmp_path / source.name
    copy.write_text(json.dumps(nb), encoding='utf-8')
    assert 'MOSTNet.read_memory' in documented_names(source)
    assert 'MOSTNet.read_memory' not in documented_names(copy)
    assert 'MOSTNet.read_memory' in missing_entries({'networks': documented_names(copy)})['networks']


def test_docs_processing_renders_every_entry(tmp_path):
    "nbdev's processing step (what `nbdev_docs` runs before Quarto) passes over every notebook and renders each entry."
    proc = process_docs(tmp_path, n_workers=2)
    for name in ('_quarto.yml', 'sidebar.yml', 'index.ipynb', 'styles.css'):
        assert (proc / name).is_file(), f'{name} missing from the processed docs'
    assert sorted(p.name for p in proc.glob('*.ipynb')) == sorted(p.name for p in NBS.glob('*.ipynb'))
    rendered = {module: rendered_entries(proc / path.name) for module, path in exported_notebooks().items()}
    missing = {module: names for module, names in missing_entries(rendered).items() if names}
    assert not missing, f'public names whose doc entry was not rendered: {missing}'


if __name__ == '__main__':
    import tempfile
    with tempfile.TemporaryDirectory() as scratch:
        processed = process_docs(Path(scratch), n_workers=2)
        rendered = {module: rendered_entries(processed / path.name) for module, path in exported_notebooks().items()}
        missing = {module: names for module, names in missing_entries(rendered).items() if names}
        print(f'processed {len(list(processed.glob("*.ipynb")))} notebooks;',
              f'{sum(map(len, rendered.values()))} entries rendered; missing: {missing or "none"}')
        sys.exit(1 if missing else 0)
