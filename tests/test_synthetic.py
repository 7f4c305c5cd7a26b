"""most_net.synthetic: a drawn face depends on (seed, split, index) alone, and differs between seeds, splits and indices."""
from __future__ import annotations

import numpy as np

from most_net.synthetic import SyntheticFaceSketch


def test_synthetic_faces_are_deterministic():
    first, again = SyntheticFaceSketch(5, seed=7, split='train'), SyntheticFaceSketch(5, seed=7, split='train')
    for index in range(5):
        assert first.original_photo(index).tobytes() == again.original_photo(index).tobytes()
        assert first.original_sketch(index).tobytes() == again.original_sketch(index).tobytes()
    assert SyntheticFaceSketch(2, seed=7).original_sketch(1).tobytes() == first.original_sketch(1).tobytes()   # n-independent
    other_seed, other_split = SyntheticFaceSketch(5, seed=8), SyntheticFaceSketch(5, seed=7, split='test')
    assert all(not np.array_equal(first.original_photo(i), other.original_photo(i)) for other in (other_seed, other_split)
               for i in range(5))
    assert len({first.original_photo(i).tobytes() for i in range(5)}) == 5
