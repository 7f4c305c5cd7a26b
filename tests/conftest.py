"""Shared pytest fixtures: where the real CUFS copy is, and small synthetic data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from most_net.core import find_dataset

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
