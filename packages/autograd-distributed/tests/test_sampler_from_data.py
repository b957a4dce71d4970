"""The DistributedSampler re-exported from autograd-data: the same class, and the same reading of the launch."""

from __future__ import annotations

import json

import pytest

from autograd import data
from autograd import distributed as dist
from autograd.data.sampler import launch_rank_and_size
from autograd.distributed.transports import DistributedError, detect_launch


def test_it_is_the_data_package_class():
    assert dist.DistributedSampler is data.DistributedSampler
    from autograd.distributed.sampler import DistributedSampler

    assert DistributedSampler is data.DistributedSampler


def _envs(tmp_path):
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([["127.0.0.1:5000"], ["127.0.0.1:5001"], ["10.0.0.2:5000"]]))
    return [
        {},
        {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
        {"PMI_RANK": "2", "PMI_SIZE": "4"},
        {"PMI_SIZE": "4"},  # MPICH without a rank: not a launch
        {"MLX_RANK": "2", "MLX_HOSTFILE": str(hosts)},
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
        {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "RANK": "1", "WORLD_SIZE": "2"},
        {"MLX_RANK": "0", "RANK": "1", "WORLD_SIZE": "2", "MLX_HOSTFILE": str(hosts)},
    ]


def test_data_reads_the_launch_as_distributed_does(tmp_path):
    """The sampler's defaults and detect_launch come from one reader (autograd.data.launch): they agree."""
    for env in _envs(tmp_path):
        launch = detect_launch(env)
        assert launch_rank_and_size(env) == (launch.rank, launch.size), env


def test_both_refuse_the_same_broken_launches(tmp_path):
    broken = [
        {"RANK": "one", "WORLD_SIZE": "2"},
        {"PMI_RANK": "4", "PMI_SIZE": "4"},
        {"MLX_RANK": "0"},
        {"MLX_RANK": "0", "MLX_HOSTFILE": str(tmp_path / "missing.json")},
    ]
    for env in broken:
        with pytest.raises(DistributedError):
            detect_launch(env)
        with pytest.raises(ValueError):
            launch_rank_and_size(env)


def test_the_sampler_takes_its_defaults_from_the_launch(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "3")
    s = dist.DistributedSampler(10, shuffle=False)
    assert (s.rank, s.num_replicas) == (1, 3) and s.indices().tolist() == [1, 4, 7, 0]
