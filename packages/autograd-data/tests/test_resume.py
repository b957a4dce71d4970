"""state_dict / load_state_dict: a new loader yields exactly what the saved one would have, then the next epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from data_helpers import Indexed, Stream

from autograd import backend
from autograd.data import DataLoader, DistributedSampler

LIMIT = 60
N, BATCH = 10, 3  # 4 batches an epoch, the last one short


def _host(batches) -> list:
    return [[backend.to_numpy(x).tolist() for x in b] for b in batches]


def _loader(workers: int, shuffle: bool, seed=7, **kw) -> DataLoader:
    return DataLoader(
        Indexed(N), batch_size=BATCH, shuffle=shuffle, seed=seed, num_workers=workers, timeout=LIMIT, **kw
    )


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_at_every_cut_point_then_the_next_epoch(workers, shuffle):
    reference = _loader(workers, shuffle)
    epoch0, epoch1 = _host(reference), _host(reference)
    assert len(epoch0) == 4 and epoch0 != epoch1  # per-batch seeds differ between epochs (and orders, shuffled)
    for cut in range(len(epoch0) + 1):
        first = _loader(workers, shuffle)
        it = iter(first)
        seen = _host(next(it) for _ in range(cut))
        assert seen == epoch0[:cut]
        state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint keeps
        assert state["epoch"] == 0 and state["batches"] == cut and not state["finished"]
        resumed = _loader(workers, shuffle, seed=None)  # the seed comes from the state
        resumed.load_state_dict(state)
        assert _host(resumed) == epoch0[cut:], f"cut {cut}"
        assert _host(resumed) == epoch1, f"cut {cut}: the next epoch"
        if cut < len(epoch0):
            assert _host(it) == epoch0[cut:]  # the first loader goes on as if nothing happened


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_a_finished_epoch_starts_the_next(workers):
    first = _loader(workers, True)
    _host(first)
    state = first.state_dict()
    assert state["finished"] and state["batches"] == 4
    expected = _host(first)
    resumed = _loader(workers, True)
    resumed.load_state_dict(state)
    assert _host(resumed) == expected and resumed.epoch == 1


def test_resume_in_a_fresh_process(tmp_path):
    reference = _loader(2, True)
    epoch0, epoch1 = _host(reference), _host(reference)
    first = _loader(2, True)
    it = iter(first)
    next(it)
    next(it)
    (tmp_path / "state.json").write_text(json.dumps(first.state_dict()))
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_resume as t; "
        "loader = t._loader(2, True, seed=None); loader.load_state_dict(json.load(open(sys.argv[2]))); "
        "print(json.dumps([t._host(loader), t._host(loader)]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__), str(tmp_path / "state.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AUTOGRAD_BACKEND": backend.BACKEND},
    )
    assert res.returncode == 0, res.stderr
    rest, after = json.loads(res.stdout.strip().splitlines()[-1])
    assert rest == epoch0[2:] and after == epoch1


def test_set_epoch_after_loading_keeps_the_position_only_for_the_saved_epoch():
    first = _loader(0, True)
    first.set_epoch(3)
    it = iter(first)
    next(it)
    state = first.state_dict()
    rest = _host(it)
    same = _loader(0, True)
    same.load_state_dict(state)
    same.set_epoch(3)  # a training loop that calls set_epoch(epoch) each epoch resumes where it stopped
    assert _host(same) == rest
    other = _loader(0, True)
    other.load_state_dict(state)
    other.set_epoch(4)
    reference = _loader(0, True)
    reference.set_epoch(4)
    assert _host(other) == _host(reference)


def test_resume_with_persistent_workers_and_a_distributed_sampler():
    def make():
        shard = DistributedSampler(N, num_replicas=2, rank=1, seed=4)
        return DataLoader(
            Indexed(N), batch_size=2, sampler=shard, num_workers=2, persistent_workers=True, seed=1, timeout=LIMIT
        )

    reference = make()
    reference.set_epoch(2)
    full = _host(reference)
    first = make()
    first.set_epoch(2)
    it = iter(first)
    next(it)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert _host(resumed) == full[1:]
    for loader in (reference, first, resumed):
        loader.close()


def test_loading_a_state_into_running_persistent_workers_uses_its_seed():
    first = _loader(2, True, persistent_workers=True)
    it = iter(first)
    next(it)
    state = first.state_dict()
    rest = _host(it)
    busy = _loader(2, True, seed=123, persistent_workers=True)
    _host(busy)  # its workers are running, started with seed 123
    busy.load_state_dict(state)
    assert _host(busy) == rest
    first.close()
    busy.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_an_iterable_dataset_resumes_by_fast_forwarding(workers):
    def make():
        return DataLoader(Stream(10), batch_size=2, num_workers=workers, seed=2, timeout=LIMIT)

    full = _host(make())
    first = make()
    it = iter(first)
    for _ in range(3):
        next(it)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert _host(resumed) == full[3:]


def test_a_state_from_another_dataset_or_format_is_refused():
    state = _loader(0, False).state_dict()
    other = DataLoader(Indexed(N + 1), batch_size=BATCH)
    with pytest.raises(ValueError, match="saved with dataset_size=10, this loader has 11"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="saved with num_batches=4, this loader has 2"):
        DataLoader(Indexed(N), batch_size=5).load_state_dict(state)
    with pytest.raises(ValueError, match="not a DataLoader state"):
        other.load_state_dict({"epoch": 0})
