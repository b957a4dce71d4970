"""The DataLoader in the main process: coverage, order, seeding, arguments, errors, backend arrays."""

from __future__ import annotations

import random

import numpy as np
import pytest
from data_helpers import EpochAware, Indexed, Raising, Stream

from autograd import backend
from autograd.data import ArrayDataset, BatchSampler, DataLoader, DistributedSampler, RandomSampler


def _ids(batches) -> list:
    return [int(i) for b in batches for i in backend.to_numpy(b[0]).reshape(-1)]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 10, 16])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_per_epoch(shuffle, batch_size, drop_last):
    n = 10
    loader = DataLoader(Indexed(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=0)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert all(len(b[0]) == batch_size for b in batches[: n // batch_size])
        ids = _ids(batches)
        if drop_last:
            assert len(ids) == n - n % batch_size and len(set(ids)) == len(ids)
        else:
            assert sorted(ids) == list(range(n))
        if not shuffle:
            assert ids == list(range(len(ids)))


def test_same_seed_same_order_new_epoch_new_order():
    def orders(seed):
        loader = DataLoader(Indexed(30), batch_size=4, shuffle=True, seed=seed)
        return [_ids(loader) for _ in range(3)]

    a = orders(5)
    assert a == orders(5)
    assert a[0] != a[1] != a[2] and a != orders(6)
    loader = DataLoader(Indexed(30), batch_size=4, shuffle=True, seed=5)
    loader.set_epoch(2)
    assert _ids(loader) == a[2] and loader.epoch == 2


def test_breaking_out_of_an_epoch_starts_the_next_one():
    loader = DataLoader(Indexed(12), batch_size=4, shuffle=True, seed=1)
    first = next(iter(loader))
    assert loader.epoch == 0
    rest = _ids(loader)
    assert loader.epoch == 1
    ref = RandomSampler(12, seed=1)
    assert _ids([first]) == ref.indices(0)[:4].tolist() and rest == ref.indices(1).tolist()


def test_batches_are_backend_arrays_without_a_copy_on_numpy():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    made = []

    def collate(samples):
        made.append(np.stack([s[0] for s in samples]))
        return made[-1]

    for batch in DataLoader(ArrayDataset(x), batch_size=4, collate_fn=collate):
        assert backend.is_array(batch)
        np.testing.assert_array_equal(backend.to_numpy(batch), made[-1])
        if backend.BACKEND == "numpy":
            assert batch is made[-1]  # handed over as it is: no copy
    batch = next(iter(DataLoader(ArrayDataset(x, np.arange(6)), batch_size=6)))
    assert backend.is_array(batch[0]) and backend.is_array(batch[1])
    assert backend.dtype_name(batch[1].dtype) == "int64"


def test_per_batch_seeding_is_reproducible_and_leaves_the_callers_generators_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = [backend.to_numpy(b[1]).tolist() for b in DataLoader(Indexed(8), batch_size=3, seed=4)]
    assert (np.random.random(), random.random()) == (expected_np, expected_py)  # untouched by loading
    b = [backend.to_numpy(b[1]).tolist() for b in DataLoader(Indexed(8), batch_size=3, seed=4)]
    c = [backend.to_numpy(b[1]).tolist() for b in DataLoader(Indexed(8), batch_size=3, seed=5)]
    assert a == b and a != c
    flat = [v for batch in a for v in batch]
    assert len(set(flat)) == len(flat)  # each sample got its own draw


def test_a_raising_getitem_names_the_index_in_the_main_process():
    loader = DataLoader(Raising(10, bad=7), batch_size=4)
    it = iter(loader)
    next(it)
    with pytest.raises(ValueError, match="sample 7 is corrupt") as info:
        next(it)
    notes = "\n".join(info.value.__notes__)
    assert "dataset[7] while loading batch 1 of epoch 0" in notes and "main process" in notes
    with pytest.raises(StopIteration):
        next(it)  # the iteration ended with the error


def test_fast_batch_path_still_names_a_bad_index():
    class Broken(ArrayDataset):
        def __getitem__(self, i):
            if i == 3:
                raise KeyError("row 3 missing")
            return super().__getitem__(i)

        def get_batch(self, indices):
            if 3 in list(indices):
                raise KeyError("batch read failed")
            return super().get_batch(indices)

    loader = DataLoader(Broken(np.arange(6)), batch_size=2)
    with pytest.raises(KeyError, match="row 3 missing") as info:
        list(loader)
    assert "dataset[3]" in "\n".join(info.value.__notes__)


def test_batch_size_none_yields_single_samples():
    loader = DataLoader(ArrayDataset(np.arange(4) * 10), batch_size=None)
    assert [int(backend.to_numpy(s[0])) for s in loader] == [0, 10, 20, 30] and len(loader) == 4


def test_a_custom_batch_sampler_and_sampler():
    batches = [[3, 1], [0], [2, 2]]
    loader = DataLoader(Indexed(4), batch_sampler=batches)
    assert [backend.to_numpy(b[0]).tolist() for b in loader] == batches and len(loader) == 3
    shard = DistributedSampler(10, num_replicas=2, rank=1, shuffle=False)
    assert _ids(DataLoader(Indexed(10), batch_size=2, sampler=shard)) == [1, 3, 5, 7, 9]


def test_set_epoch_reaches_the_sampler_and_the_dataset():
    shard = DistributedSampler(8, num_replicas=2, rank=0, seed=3)
    ds = EpochAware(8)
    loader = DataLoader(ds, batch_size=8, sampler=shard)
    loader.set_epoch(6)
    batch = next(iter(loader))
    assert shard.epoch == 6 and set(backend.to_numpy(batch[1]).tolist()) == {6}
    ref = DistributedSampler(8, num_replicas=2, rank=0, seed=3)
    ref.set_epoch(6)
    assert backend.to_numpy(batch[0]).tolist() == ref.indices().tolist()


def test_an_iterable_dataset_in_the_main_process():
    loader = DataLoader(Stream(10), batch_size=4, seed=0)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4, 4, 2] and _ids(batches) == list(range(10)) and len(loader) == 3
    assert [len(b[0]) for b in DataLoader(Stream(10), batch_size=4, drop_last=True)] == [4, 4]
    again = [backend.to_numpy(b[1]).tolist() for b in DataLoader(Stream(10), batch_size=4, seed=0)]
    assert again == [backend.to_numpy(b[1]).tolist() for b in batches]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_workers": -1}, "num_workers must be an int >= 0"),
        ({"batch_size": 0}, "batch_size must be a positive int or None"),
        ({"prefetch": 0}, "prefetch must be an int >= 1"),
        ({"timeout": -1}, "timeout must be >= 0"),
        ({"persistent_workers": True}, "persistent_workers=True needs num_workers > 0"),
        ({"shuffle": True, "sampler": [0, 1]}, "sampler and shuffle=True are mutually exclusive"),
        ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler is mutually exclusive"),
        ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler is mutually exclusive"),
        ({"batch_size": None, "drop_last": True}, "drop_last needs a batch_size"),
        ({"num_workers": 1, "multiprocessing_context": "nope"}, "is not a start method here"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        loader = DataLoader(Indexed(4), **kwargs)
        iter(loader)


def test_dataset_kind_errors():
    with pytest.raises(TypeError, match="neither"):
        DataLoader(42)
    with pytest.raises(ValueError, match="iterable dataset has no indices"):
        DataLoader(Stream(3), shuffle=True)


def test_len_of_a_batch_sampler_loader():
    loader = DataLoader(Indexed(10), batch_sampler=BatchSampler(range(10), 4, drop_last=True))
    assert len(loader) == 2 and len(list(loader)) == 2
