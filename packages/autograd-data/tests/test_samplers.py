"""Samplers: orders, epochs, batching, states, and the launcher's rank and world size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autograd.data import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    launch_rank_and_size,
)


def test_sequential_sampler_counts_up_and_takes_sizes_or_data():
    assert list(SequentialSampler(5)) == [0, 1, 2, 3, 4]
    assert list(SequentialSampler("abc")) == [0, 1, 2] and len(SequentialSampler([1, 2])) == 2
    assert SequentialSampler(3).indices().tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="needs a data set with len"):
        SequentialSampler(object())
    with pytest.raises(ValueError, match="size must be >= 0, got -2"):
        SequentialSampler(-2)


def test_random_sampler_is_a_permutation_that_depends_only_on_seed_and_epoch():
    a, b = RandomSampler(50, seed=3), RandomSampler(50, seed=3)
    first = list(a)
    assert sorted(first) == list(range(50)) and first == list(b)
    second = list(a)  # iterating again moves to the next epoch, as PyTorch's sampler gives a new order
    assert sorted(second) == list(range(50)) and second != first
    assert a.epoch == 1
    c = RandomSampler(50, seed=3)
    c.set_epoch(1)
    assert list(c) == second  # the order is a function of (seed, epoch), however it was reached
    assert list(RandomSampler(50, seed=4)) != first


def test_random_sampler_state_replays_the_next_iteration():
    s = RandomSampler(20, seed=1)
    list(s)
    state = s.state_dict()
    json.dumps(state)
    upcoming = list(s)
    fresh = RandomSampler(20, seed=99)
    fresh.load_state_dict(state)
    assert list(fresh) == upcoming and fresh.state_dict() == s.state_dict()


def test_random_sampler_with_replacement_and_num_samples():
    s = RandomSampler(5, replacement=True, num_samples=40, seed=0)
    drawn = list(s)
    assert len(drawn) == len(s) == 40 and set(drawn) <= set(range(5)) and len(set(drawn)) == 5
    assert len(set(RandomSampler(10, num_samples=4, seed=0).indices().tolist())) == 4
    with pytest.raises(ValueError, match="num_samples=11 is more than the 10 samples"):
        RandomSampler(10, num_samples=11)
    with pytest.raises(ValueError, match="empty data set"):
        RandomSampler(0, replacement=True, num_samples=3)


def test_random_sampler_without_a_seed_draws_one_from_numpy():
    np.random.seed(7)
    a = RandomSampler(30)
    np.random.seed(7)
    b = RandomSampler(30)
    assert a.seed == b.seed and list(a) == list(b)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_covers_the_sampler(n, batch_size, drop_last):
    bs = BatchSampler(SequentialSampler(n), batch_size, drop_last)
    batches = list(bs)
    assert len(batches) == len(bs)
    assert all(len(b) == batch_size for b in batches[:-1])
    flat = [i for b in batches for i in b]
    kept = n - n % batch_size if drop_last else n
    assert flat == list(range(kept))
    fast = [b.tolist() for b in bs.index_batches()]
    assert fast == batches  # the array path the loader takes gives the same batches


def test_batch_sampler_over_a_random_sampler_advances_its_epoch_once_per_iteration():
    bs = BatchSampler(RandomSampler(10, seed=0), 4)
    first = [i for b in bs.index_batches() for i in b.tolist()]
    second = [i for b in bs for i in b]
    ref = RandomSampler(10, seed=0)
    assert first == ref.indices(0).tolist() and second == ref.indices(1).tolist()


def test_batch_sampler_argument_errors():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            BatchSampler(range(3), bad)


def test_distributed_sampler_shards_are_disjoint_and_cover_the_data():
    shards = [DistributedSampler(10, num_replicas=3, rank=r, seed=5).indices() for r in range(3)]
    assert {len(s) for s in shards} == {4}
    assert set(np.concatenate(shards).tolist()) == set(range(10))


def test_launch_rank_and_size_reads_the_launchers(tmp_path):
    assert launch_rank_and_size({}) == (0, 1)
    assert launch_rank_and_size({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4"}) == (1, 4)
    assert launch_rank_and_size({"PMI_RANK": "2", "PMI_SIZE": "3"}) == (2, 3)
    assert launch_rank_and_size({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}) == (0, 2)
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([["127.0.0.1:5000"], ["127.0.0.1:5001"], ["127.0.0.1:5002"]]))
    assert launch_rank_and_size({"MLX_RANK": "2", "MLX_HOSTFILE": str(hosts)}) == (2, 3)
    # MPI wins over torchrun-style variables, as in autograd.distributed.detect_launch
    both = {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "RANK": "5", "WORLD_SIZE": "8"}
    assert launch_rank_and_size(both) == (0, 2)


def test_launch_rank_and_size_errors_name_the_variable(tmp_path):
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        launch_rank_and_size({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="give rank 3 of 2"):
        launch_rank_and_size({"PMI_RANK": "3", "PMI_SIZE": "2"})
    with pytest.raises(ValueError, match="the launch sets no OMPI_COMM_WORLD_RANK"):
        launch_rank_and_size({"OMPI_COMM_WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="needs both MLX_RANK and MLX_HOSTFILE"):
        launch_rank_and_size({"MLX_RANK": "0"})
    with pytest.raises(ValueError, match="cannot be read as a JSON list"):
        launch_rank_and_size({"MLX_RANK": "0", "MLX_HOSTFILE": str(tmp_path / "missing.json")})


def test_distributed_sampler_defaults_come_from_the_launcher(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    s = DistributedSampler(9, seed=0, shuffle=False)
    assert (s.rank, s.num_replicas) == (1, 2) and s.indices().tolist() == [1, 3, 5, 7, 0]
    assert DistributedSampler(9, rank=0).num_replicas == 2
