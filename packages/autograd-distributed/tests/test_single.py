"""One process, no launcher: world size 1 no-ops, launch detection, argument errors, the sampler and checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autograd import backend, nn
from autograd import distributed as dist
from autograd import functional as F
from autograd.distributed import transports as tr
from autograd.optim import Adam
from autograd.tensor import Tensor


def tiny_model(seed: int = 0) -> nn.Module:
    backend.seed(seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 5)
            self.bn = nn.BatchNorm(5)
            self.fc2 = nn.Linear(5, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc2(F.relu(self.bn(self.fc1(x))))

    return Net()


def batch(seed: int = 1, n: int = 6) -> tuple[Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    return (
        Tensor(backend.asarray(rng.normal(size=(n, 3)).astype(np.float32)), requires_grad=False),
        Tensor(backend.asarray(rng.normal(size=(n, 2)).astype(np.float32)), requires_grad=False),
    )


# --- the group -------------------------------------------------------------------------


def test_a_plain_process_is_a_world_of_one_and_collectives_are_no_ops():
    assert dist.init() == "single" and dist.transport() == "single" and dist.is_initialized()
    assert (dist.rank(), dist.world_size(), dist.local_rank()) == (0, 1, 0)
    dist.barrier()
    a = backend.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    t = Tensor(a, requires_grad=False)
    for op in ("sum", "mean", "max"):
        assert dist.all_reduce(a, op) is a and dist.all_reduce(t, op) is t
    assert dist.broadcast(a) is a
    gathered = dist.all_gather(t)
    assert isinstance(gathered, Tensor) and gathered.shape == (1, 2, 3)
    np.testing.assert_array_equal(gathered.numpy()[0], backend.to_numpy(a))
    assert dist.all_gather_object({"k": 1}) == [{"k": 1}]


def test_importing_loads_no_mpi():
    code = "import sys, autograd.distributed as d; d.init(); print('mpi4py' in sys.modules, d.world_size())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "1"]


def test_collective_argument_errors():
    a = backend.asarray(np.ones((2,), dtype=np.float32))
    with pytest.raises(ValueError, match="op must be 'sum', 'mean' or 'max', got 'prod'"):
        dist.all_reduce(a, "prod")
    with pytest.raises(TypeError, match="all_reduce\\('mean'\\) needs .* floating.* got dtype int32"):
        dist.all_reduce(backend.asarray(np.ones(2, dtype=np.int32)), "mean")
    with pytest.raises(TypeError, match=f"all_gather takes a Tensor or a {backend.BACKEND} array, got list"):
        dist.all_gather([1.0, 2.0])
    with pytest.raises(ValueError, match="root 3 is not a rank of this world of 1"):
        dist.broadcast(a, root=3)


def test_timeouts_are_validated(monkeypatch):
    with pytest.raises(ValueError, match="must be > 0 seconds, got 0.0"):
        dist.set_timeout(0)
    monkeypatch.setenv("AUTOGRAD_DISTRIBUTED_TIMEOUT", "soon")
    with pytest.raises(dist.DistributedError, match="AUTOGRAD_DISTRIBUTED_TIMEOUT='soon' is not a positive number"):
        dist.group._env_timeout()
    monkeypatch.setenv("AUTOGRAD_DISTRIBUTED_TIMEOUT", "12.5")
    assert dist.group._env_timeout() == 12.5


# --- launch detection and transport choice ---------------------------------------------------


def where(launch: dist.Launch) -> tuple:
    return launch.launcher, launch.rank, launch.size, launch.local_rank


def test_detect_launch_reads_every_launcher(tmp_path):
    assert dist.detect_launch({}) == dist.Launch("none", 0, 1, 0)
    ompi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    assert where(dist.detect_launch(ompi)) == ("mpi", 3, 4, 1)
    mpich = {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}
    assert where(dist.detect_launch(mpich)) == ("mpi", 1, 2, 1)
    torchrun = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    launch = dist.detect_launch(torchrun)
    assert where(launch) == ("env", 5, 8, 1) and launch.vars["MASTER_PORT"] == "29500"
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([["10.0.0.1:5000"], ["10.0.0.2:5000"], ["10.0.0.1:5001"]]))
    assert where(dist.detect_launch({"MLX_RANK": "2", "MLX_HOSTFILE": str(hosts)})) == ("mlx", 2, 3, 1)


def test_detect_launch_rejects_bad_variables(tmp_path):
    with pytest.raises(dist.DistributedError, match="OMPI_COMM_WORLD_RANK='x' is not an integer"):
        dist.detect_launch({"OMPI_COMM_WORLD_RANK": "x", "OMPI_COMM_WORLD_SIZE": "2"})
    with pytest.raises(dist.DistributedError, match="give rank 4 of 2"):
        dist.detect_launch({"RANK": "4", "WORLD_SIZE": "2"})
    with pytest.raises(dist.DistributedError, match="needs both MLX_RANK and MLX_HOSTFILE"):
        dist.detect_launch({"MLX_RANK": "0"})
    bad = tmp_path / "hosts.json"
    bad.write_text("{not json")
    with pytest.raises(dist.DistributedError, match="cannot be read as a JSON list of hosts"):
        dist.detect_launch({"MLX_RANK": "0", "MLX_HOSTFILE": str(bad)})


def test_missing_mpi4py_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    launch = dist.Launch("mpi", 0, 2, 0, {"OMPI_COMM_WORLD_SIZE": "2"})
    with pytest.raises(
        dist.DistributedError, match=r"mpi4py is not installed .*pip install 'autograd-distributed\[mpi\]'"
    ):
        tr.import_mpi(launch)


@pytest.mark.skipif(backend.BACKEND != "numpy", reason="the NumPy backend's transport choice")
def test_numpy_without_mpiexec_says_how_to_launch():
    launch = dist.Launch("env", 0, 2, 0, {"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(dist.DistributedError, match="the NumPy backend communicates through MPI: launch with mpiexec"):
        tr.create(launch, 5.0)


# --- DistributedDataParallel with one process --------------------------------------------------


def test_ddp_in_one_process_is_the_module_itself():
    module = tiny_model()
    ddp = dist.DistributedDataParallel(module)
    assert ddp.parameters.keys() == module.parameters.keys()  # no "module." prefix
    assert all(ddp.parameters[k] is p for k, p in module.parameters.items())
    assert ddp.states.keys() == module.states.keys() and ddp.bucket_names == []
    x, y = batch()
    F.mean_squared_loss(ddp(x), y).backward()
    grads = {k: p.grad.numpy().copy() for k, p in module.parameters.items()}
    ref = tiny_model()
    F.mean_squared_loss(ref(x), y).backward()
    for k, p in ref.parameters.items():
        np.testing.assert_array_equal(grads[k], p.grad.numpy())
    ddp.synchronize()  # a no-op with one process
    with ddp.no_sync():
        F.mean_squared_loss(ddp(x), y).backward()
    for k, p in module.parameters.items():
        np.testing.assert_allclose(p.grad.numpy(), 2 * grads[k], rtol=1e-6, atol=1e-7)  # accumulated locally
    ddp.eval()
    assert not module.is_training and not module.bn.is_training


def test_ddp_state_dict_and_weights_use_the_module_names(tmp_path):
    module = tiny_model()
    ddp = dist.DistributedDataParallel(module)
    assert ddp.state_dict()["parameters"].keys() == module.state_dict()["parameters"].keys()
    ddp.save_weights(tmp_path / "w.safetensors")
    plain = tiny_model(seed=5)
    plain.load_weights(tmp_path / "w.safetensors")  # a checkpoint of the wrapper loads without it
    for k, p in module.parameters.items():
        np.testing.assert_array_equal(plain.parameters[k].numpy(), p.numpy())


def test_ddp_argument_errors():
    with pytest.raises(TypeError, match="wraps an autograd.nn.Module, got Linear"):
        dist.DistributedDataParallel(type("Linear", (), {})())
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0, got 0"):
        dist.DistributedDataParallel(tiny_model(), bucket_cap_mb=0)


# --- DistributedSampler -----------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 7, 12, 13])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_are_disjoint_equal_and_cover_the_data(world, n, drop_last):
    if drop_last and n < world:
        with pytest.raises(ValueError, match="leaves every rank with nothing"):
            dist.DistributedSampler(n, num_replicas=world, rank=0, drop_last=drop_last)
        return
    for epoch in (0, 1):
        shards = []
        for r in range(world):
            s = dist.DistributedSampler(n, num_replicas=world, rank=r, seed=11, drop_last=drop_last)
            s.set_epoch(epoch)
            shards.append(s.indices())
            assert len(shards[-1]) == len(s) and list(s) == shards[-1].tolist()
        sizes = {len(sh) for sh in shards}
        assert len(sizes) == 1  # every rank runs the same number of steps
        flat = np.concatenate(shards)
        counts = np.bincount(flat, minlength=n)
        if drop_last:
            assert len(flat) == n - n % world and counts.max() == 1  # disjoint; n % world samples dropped
        else:
            assert counts.min() >= 1 and counts.sum() - n == (-n) % world  # all covered; only the padding repeats
        if n % world == 0:
            assert sorted(flat.tolist()) == list(range(n))  # exactly once per epoch


def test_sampler_shuffle_is_the_same_everywhere_and_changes_per_epoch():
    def order(epoch: int, seed: int = 0) -> list:
        s = dist.DistributedSampler(100, num_replicas=1, rank=0, seed=seed)
        s.set_epoch(epoch)
        return s.indices().tolist()

    assert order(3) == order(3) and order(3) != order(4) and order(3) != order(3, seed=1)
    plain = dist.DistributedSampler(10, num_replicas=3, rank=1, shuffle=False)
    assert plain.indices().tolist() == [1, 4, 7, 0]  # round robin; 10 padded to 12 with 0, 1
    state = plain.state_dict()
    other = dist.DistributedSampler(list(range(10)), num_replicas=3, rank=1, shuffle=False)
    other.set_epoch(9)
    other.load_state_dict(state)
    assert other.epoch == 0


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="size must be >= 0, got -1"):
        dist.DistributedSampler(-1)


# --- checkpoints ------------------------------------------------------------------------------


def _train(model: nn.Module, opt: Adam, steps: int) -> None:
    for step in range(steps):
        x, y = batch(seed=step)
        opt.zero_grad()
        F.mean_squared_loss(model(x), y).backward()
        opt.step()


def test_checkpoint_round_trip_in_one_process(tmp_path):
    model = dist.DistributedDataParallel(tiny_model())
    opt = Adam(model.parameters, lr=0.01)
    sampler = dist.DistributedSampler(10)
    sampler.set_epoch(3)
    _train(model, opt, 2)
    dist.save_checkpoint(tmp_path / "ck", model, opt, sampler, extra={"step": 2})
    fresh = dist.DistributedDataParallel(tiny_model(seed=9))
    fresh_opt = Adam(fresh.parameters, lr=0.01)
    fresh_sampler = dist.DistributedSampler(10)
    assert dist.load_checkpoint(tmp_path / "ck", fresh, fresh_opt, fresh_sampler) == {"step": 2}
    assert fresh_sampler.epoch == 3 and fresh_opt.timestep == 2
    _train(model, opt, 2)
    _train(fresh, fresh_opt, 2)
    for k, p in model.parameters.items():
        np.testing.assert_array_equal(fresh.parameters[k].numpy(), p.numpy())


def test_checkpoint_errors(tmp_path):
    model = tiny_model()
    with pytest.raises(dist.DistributedError, match="cannot be read as a checkpoint's meta.json"):
        dist.load_checkpoint(tmp_path / "nothing", model)
    dist.save_checkpoint(tmp_path / "no_opt", model)
    with pytest.raises(dist.DistributedError, match="holds no optimizer state, but an optimizer was given"):
        dist.load_checkpoint(tmp_path / "no_opt", model, Adam(model.parameters, lr=0.1))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text('{"format": "something"}')
    with pytest.raises(dist.DistributedError, match="is not an autograd.distributed checkpoint"):
        dist.load_checkpoint(tmp_path / "other", model)
