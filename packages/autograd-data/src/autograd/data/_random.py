"""Seeds derived from tuples of integers, and the per-batch seeding of Python's and NumPy's global generators.

Every random choice of this package comes from a tuple such as ``(seed, epoch,
batch)`` hashed with SplitMix64, so it is the same in any process, with any
number of workers, before and after a resume. The hash is spelled out here
(not Python's ``hash``, which is salted per process for strings and may
change between versions).
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_START = 0x243F6A8885A308D3


def _splitmix(x: int) -> int:
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * _M1) & _MASK
    x = ((x ^ (x >> 27)) * _M2) & _MASK
    return x ^ (x >> 31)


def mix(*words: int) -> int:
    """A 64-bit seed from any number of integers (negative ones included), the same in every process."""
    h = _START
    for w in words:
        h = _splitmix(h ^ (int(w) & _MASK))
    return h


def mix_array(words: tuple, last: np.ndarray) -> np.ndarray:
    """``mix(*words, i)`` for every ``i`` of the int64 array ``last``, as uint64 (vectorised, same values)."""
    h = np.full(last.shape, mix(*words) if words else _START, dtype=np.uint64)
    # uint64 arrays wrap on overflow without warnings (only NumPy scalars warn): the hash needs the wrap.
    x = h ^ last.astype(np.int64).view(np.uint64)
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


def seed_globals(seed: int) -> None:
    """Seed Python's ``random`` and NumPy's legacy global generator (``np.random.*``) from a 64-bit seed."""
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])


@contextlib.contextmanager
def global_rng_scope(seed: int, restore: bool) -> Iterator[None]:
    """Run the body with both global generators seeded from ``seed``; put the caller's states back if ``restore``.

    In the main process (``num_workers=0``) the loader restores them, so loading data neither depends on nor
    changes the random numbers the training loop draws; a worker process owns its generators and skips that.
    """
    if not restore:
        seed_globals(seed)
        yield
        return
    py_state, np_state = random.getstate(), np.random.get_state()
    seed_globals(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
