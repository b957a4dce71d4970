"""Where this package follows torch.utils.data, it gives what PyTorch gives (run by nox -s parity, which has PyTorch).

Without PyTorch these tests skip, unless AUTOGRAD_REQUIRE_TORCH is set (the parity session): then they fail.
"""

from __future__ import annotations

import os
from collections import namedtuple

import numpy as np
import pytest

from autograd.data import BatchSampler, DataLoader, IterableDataset, default_collate, get_worker_info

Point = namedtuple("Point", ["x", "y"])


@pytest.fixture(scope="module")
def torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("AUTOGRAD_REQUIRE_TORCH"):
            raise
        pytest.skip("PyTorch is not installed (parity tests run in `nox -s parity`)")
    return torch


def _plain(x, torch):
    """Tensors to NumPy arrays, containers kept, so both collations compare with ==."""
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: _plain(v, torch) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_plain(v, torch) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v, torch) for v in x)
    return x


def _same(a, b) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        assert a == b


def test_default_collate_matches_torch_on_nested_samples(torch):
    from torch.utils.data import default_collate as torch_collate

    samples = [
        {
            "image": np.full((2, 3), i, dtype=np.float32),
            "label": i,
            "weight": 0.5 * i,
            "flag": bool(i % 2),
            "name": f"s{i}",
            "pair": (np.int64(i), [np.arange(2, dtype=np.int32) + i, float(i)]),
            "point": Point(np.float64(i), i),
        }
        for i in range(3)
    ]
    _same(default_collate(samples), _plain(torch_collate(samples), torch))


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (1, 4, False)])
def test_batch_sampler_and_loader_length_match_torch(torch, n, batch_size, drop_last):
    ours = BatchSampler(range(n), batch_size, drop_last)
    theirs = torch.utils.data.BatchSampler(range(n), batch_size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    data = list(range(n))
    assert len(DataLoader(data, batch_size=batch_size, drop_last=drop_last)) == len(
        torch.utils.data.DataLoader(data, batch_size=batch_size, drop_last=drop_last)
    )


class Shards(IterableDataset):
    """0 .. n - 1 split between workers, through whichever library's worker info is set in this process."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        import torch.utils.data

        info = get_worker_info() or torch.utils.data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def test_iterable_dataset_batches_interleave_across_workers_as_in_torch(torch):
    # PyTorch knows an iterable data set by its own base class; fork, so the local class needs no pickling.
    both = type("BothShards", (Shards, torch.utils.data.IterableDataset), {})(11)
    kw = dict(batch_size=2, num_workers=2, timeout=60, multiprocessing_context="fork")
    ours = [[int(i) for i in b] for b in DataLoader(both, **kw)]
    theirs = [b.tolist() for b in torch.utils.data.DataLoader(both, **kw)]
    assert ours == theirs and sorted(i for b in ours for i in b) == list(range(11))
