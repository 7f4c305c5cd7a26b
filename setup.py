"""nbdev 2 setup script: every setting lives in settings.ini; edit there, not here."""
import shlex
import shutil
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + 'lib_name user branch license status min_python audience language'.split()
for key in expected: assert key in cfg, f'missing expected setting: {key}'
setup_cfg = {key: cfg[key] for key in cfg_keys}

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
demo_requirements = shlex.split(cfg.get('demo_requirements', ''))   # the [demo] extra: most-net demo's web page
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))

# The released generator lives in git once, in results/weights; a built package carries a copy as <lib>/released/.
RELEASE_SOURCE = Path('results') / 'weights'
RELEASE_PATTERNS = ('*.safetensors', '*.safetensors.index.json', 'README.md')


def release_files():
    """The released generator's files in results/weights (weights, shard index, model card); none without weights."""
    if not RELEASE_SOURCE.is_dir(): return []
    found = sorted({path for pattern in RELEASE_PATTERNS for path in RELEASE_SOURCE.glob(pattern) if path.is_file()})
    return found if any(path.name != 'README.md' for path in found) else []


class BuildPyWithRelease(build_py):
    """build_py that also copies results/weights into <build_lib>/<lib>/released/ (not for editable installs, which read the checkout)."""

    def release_target(self):
        return Path(self.build_lib) / cfg['lib_path'] / 'released'

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return
        target = self.release_target()
        shutil.rmtree(target, ignore_errors=True)   # a build folder reused from an earlier build keeps no stale weights
        files = release_files()
        if not files:
            print(f'no released generator in {RELEASE_SOURCE}: the package ships without one')
            return
        self.mkpath(str(target))
        for path in files: self.copy_file(str(path), str(target / path.name))

    def get_outputs(self, include_bytecode=1):
        released = [] if getattr(self, 'editable_mode', False) else [str(self.release_target() / p.name) for p in release_files()]
        return super().get_outputs(include_bytecode) + released

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=[
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ] + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]]
      + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'demo': demo_requirements},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    cmdclass={'build_py': BuildPyWithRelease},
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
    },
    **setup_cfg)
