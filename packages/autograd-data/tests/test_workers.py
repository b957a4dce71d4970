"""Worker processes: the same batches as without them, seeding, errors, dead and slow workers, spawn, shutdown.

Every loader here that could wait on a worker has a ``timeout`` or a worker that is known to answer, and
conftest.py ends the run if a test hangs anyway.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from data_helpers import Big, EpochAware, Indexed, InitEcho, Pids, Raising, Sleepy, Stream, record_init

from autograd import backend
from autograd.data import (
    ArrayDataset,
    DataLoader,
    LoaderTimeoutError,
    TokenDataset,
    WorkerDiedError,
    get_worker_info,
)
from autograd.data._random import mix, seed_globals

LIMIT = 60  # seconds any worker test's loader waits for a batch


def _host(batches) -> list:
    return [[backend.to_numpy(x).tolist() for x in b] for b in batches]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_two_workers_give_exactly_the_batches_of_the_main_process(shuffle, batch_size, drop_last):
    kw = dict(batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=9, timeout=LIMIT)
    alone = DataLoader(Indexed(11), **kw)
    workers = DataLoader(Indexed(11), num_workers=2, **kw)
    for _ in range(2):  # two epochs: each a new shuffle and new per-batch seeds
        a, b = _host(alone), _host(workers)
        assert a == b
        ids = [i for batch in b for i in batch[0]]
        assert len(set(ids)) == len(ids) == (11 - 11 % batch_size if drop_last else 11)


def test_spawned_workers_map_the_file_and_give_the_same_batches(tmp_path):
    path = tmp_path / "tokens.npy"
    np.save(path, np.random.default_rng(0).integers(0, 50_000, 5000).astype(np.uint16))
    ds = TokenDataset(path, 32, random=True, seed=2)
    kw = dict(batch_size=8, shuffle=True, seed=1, timeout=LIMIT)
    spawned = DataLoader(ds, num_workers=2, multiprocessing_context="spawn", **kw)
    assert _host(spawned) == _host(DataLoader(ds, **kw))


def test_spawn_needs_picklable_arguments():
    loader = DataLoader(
        Indexed(4), num_workers=1, collate_fn=lambda b: b, multiprocessing_context="spawn", timeout=LIMIT
    )
    with pytest.raises(TypeError, match="'spawn' start method sends the dataset.*Define them at module level"):
        iter(loader)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_exception_names_the_index_and_the_worker(method):
    loader = DataLoader(Raising(12, bad=9), batch_size=2, num_workers=2, multiprocessing_context=method, timeout=LIMIT)
    with pytest.raises(ValueError, match="sample 9 is corrupt") as info:
        list(loader)
    notes = "\n".join(info.value.__notes__)
    # batch 4 (indices 8, 9) is worker 0's: batch b goes to worker b % 2
    assert "raised in DataLoader worker 0 (pid " in notes and "dataset[9] while loading batch 4 of epoch 0" in notes
    assert "Traceback" in notes and "__getitem__" in notes  # the worker's own traceback


def test_a_killed_worker_raises_at_once_instead_of_hanging():
    # Index 4 sleeps for a minute in worker 0 (batch b is worker b % 2's); no timeout: only the death can end it.
    loader = DataLoader(Sleepy(8, slow=4, delay=60), batch_size=1, num_workers=2)
    it = iter(loader)
    first = next(it)
    pid = int(backend.to_numpy(first[1])[0])
    for _ in range(3):
        next(it)
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match=rf"worker 0 \(pid {pid}\) was killed by SIGKILL.*batch 4 of epoch 0"):
        next(it)
    assert time.monotonic() - start < 10


def test_a_slow_worker_raises_after_the_timeout():
    # fork: a spawned worker's start-up alone (imports) can take longer than this timeout, which covers it
    loader = DataLoader(
        Sleepy(4, slow=1, delay=30), batch_size=1, num_workers=2, timeout=0.5, multiprocessing_context="fork"
    )
    it = iter(loader)
    next(it)
    start = time.monotonic()
    with pytest.raises(LoaderTimeoutError, match=r"no batch from worker 1 .* within timeout=0.5 s"):
        next(it)
    assert time.monotonic() - start < 5
    assert isinstance(LoaderTimeoutError("x"), TimeoutError)


def test_workers_are_seeded_from_seed_epoch_and_id_before_worker_init_fn():
    loader = DataLoader(InitEcho(), batch_size=1, num_workers=2, worker_init_fn=record_init, seed=17, timeout=LIMIT)
    loader.set_epoch(3)
    seen = {}
    for batch in loader:
        worker, seed, draw = batch[1][0].split(":")
        seen[int(worker)] = (int(seed), float(draw))
    assert set(seen) == {0, 1}
    for w, (seed, draw) in seen.items():
        assert seed == mix(17, 3, w)
        seed_globals(seed)
        assert draw == np.random.random()  # worker_init_fn ran right after the seeding
    assert get_worker_info() is None  # in the main process


def test_the_dataset_hears_the_epoch_in_every_worker():
    loader = DataLoader(EpochAware(6), batch_size=2, num_workers=2, timeout=LIMIT)
    loader.set_epoch(5)
    assert {int(e) for b in loader for e in backend.to_numpy(b[1])} == {5}
    assert {int(e) for b in loader for e in backend.to_numpy(b[1])} == {6}  # the next iteration is the next epoch


def test_an_iterable_dataset_with_workers_goes_round_robin():
    batches = _host(DataLoader(Stream(10), batch_size=2, num_workers=2, timeout=LIMIT, seed=3))
    # worker 0 streams 0, 2, 4, 6, 8 and worker 1 streams 1, 3, 5, 7, 9; their batches alternate
    assert [b[0] for b in batches] == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    assert batches == _host(DataLoader(Stream(10), batch_size=2, num_workers=2, timeout=LIMIT, seed=3))


def test_persistent_workers_live_across_epochs():
    def pids(loader):
        return {int(p) for b in loader for p in backend.to_numpy(b[1])}

    persistent = DataLoader(Pids(8), batch_size=2, num_workers=2, persistent_workers=True, timeout=LIMIT)
    first = pids(persistent)
    assert len(first) == 2 and os.getpid() not in first
    it = iter(persistent)
    next(it)  # abandoned with batches in flight: the next epoch drains them
    assert pids(persistent) == first
    persistent.close()
    fresh = DataLoader(Pids(8), batch_size=2, num_workers=2, timeout=LIMIT)
    assert pids(fresh).isdisjoint(pids(fresh))  # without persistence each epoch starts new workers


def test_persistent_workers_are_replaced_after_one_died():
    loader = DataLoader(Pids(8), batch_size=2, num_workers=2, persistent_workers=True, timeout=LIMIT)
    first = {int(p) for b in loader for p in backend.to_numpy(b[1])}
    os.kill(min(first), signal.SIGKILL)
    with pytest.raises(WorkerDiedError, match="was killed by SIGKILL"):
        list(loader)
    again = {int(p) for b in loader for p in backend.to_numpy(b[1])}  # new workers, and the epoch is complete
    assert len(again) == 2 and again.isdisjoint(first)
    loader.close()


def test_an_abandoned_iteration_stops_its_workers_quickly():
    loader = DataLoader(Big(), batch_size=4, num_workers=2, prefetch=4, timeout=LIMIT)
    it = iter(loader)
    next(it)
    procs = list(it._pool.procs)
    time.sleep(0.5)  # the workers fill their pipes and block writing
    start = time.monotonic()
    del it
    assert time.monotonic() - start < 5
    assert not any(p.is_alive() for p in procs)


def test_array_dataset_through_workers_keeps_dtypes():
    x = np.arange(40, dtype=np.float16).reshape(20, 2)
    y = np.arange(20, dtype=np.uint8)
    batch = next(iter(DataLoader(ArrayDataset(x, y), batch_size=5, num_workers=2, timeout=LIMIT)))
    assert backend.dtype_name(batch[0].dtype) == "float16" and backend.dtype_name(batch[1].dtype) == "uint8"
    np.testing.assert_array_equal(backend.to_numpy(batch[0]), x[:5])
