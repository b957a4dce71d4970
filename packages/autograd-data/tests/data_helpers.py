"""Data sets for the tests, at module level so that spawned workers can unpickle them."""

from __future__ import annotations

import os
import random
import time
from typing import Any, Iterator

import numpy as np

from autograd.data import IterableDataset, get_worker_info


class Indexed:
    """Sample i: ``(i, noise)`` with noise drawn from NumPy's and Python's global generators."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.int64(i), np.float64(np.random.random() + random.random())


class Raising:
    """Raises ValueError for index ``bad``."""

    def __init__(self, n: int, bad: int) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if i == self.bad:
            raise ValueError(f"sample {i} is corrupt")
        return np.float32(i)


class Sleepy:
    """Sample i: ``(i, pid)``; index ``slow`` first sleeps ``delay`` seconds."""

    def __init__(self, n: int, slow: int, delay: float) -> None:
        self.n, self.slow, self.delay = n, slow, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if i == self.slow:
            time.sleep(self.delay)
        return np.int64(i), np.int64(os.getpid())


class Big:
    """Samples of 1 MiB each: a few fill a pipe."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> Any:
        return np.full(1 << 18, i, dtype=np.float32)


class Pids:
    """Sample i: ``(i, pid of the process that loaded it, worker id or -1)``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        info = get_worker_info()
        return np.int64(i), np.int64(os.getpid()), np.int64(-1 if info is None else info.id)


class Stream(IterableDataset):
    """0 .. n - 1, split between workers by id, each sample with a draw from NumPy's global generator."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, self.n, step):
            yield np.int64(i), np.float64(np.random.random())

    def __len__(self) -> int:
        return self.n


class EpochAware:
    """Remembers the epoch the loader told it; sample i is ``(i, epoch)``."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return np.int64(i), np.int64(self.epoch)


def record_init(worker_id: int) -> None:
    """worker_init_fn: keeps the worker id and the global generator's first draw (as seeded by the loader)."""
    info = get_worker_info()
    os.environ["AUTOGRAD_DATA_TEST_INIT"] = f"{worker_id}:{info.seed}:{np.random.random()}"


class InitEcho:
    """Sample i: ``(i, what record_init left in this worker)``."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> Any:
        return np.int64(i), os.environ.get("AUTOGRAD_DATA_TEST_INIT", "")
