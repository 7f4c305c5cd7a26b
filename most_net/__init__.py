"""MOST-Net face sketch synthesis: the stable public API is `Sketcher`, `evaluate` and `train`.

The three names load lazily, so `import most_net` (and `most-net --help`) stays fast.
"""

__version__ = "0.1.0"

_PUBLIC = {'Sketcher': 'most_net.inference', 'evaluate': 'most_net.metrics', 'train': 'most_net.train'}
__all__ = list(_PUBLIC) + ['__version__']


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
