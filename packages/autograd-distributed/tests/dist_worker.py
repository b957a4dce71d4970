"""The program every multi-process test runs: under ``mpiexec -n 2``, MLX's ring, or alone as the reference.

    python dist_worker.py SCENARIO OUT_DIR [--reference]

Each rank writes what it ended with into OUT_DIR (``<name>_rank<r>.npz`` or
``.json``); the tests compare those files with each other and with the
one-process reference (``--reference``: world size 1, the same global batch).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import nullcontext

import numpy as np

from autograd import backend, nn
from autograd import distributed as dist
from autograd import functional as F
from autograd.optim import SGD, Adam
from autograd.tensor import Tensor

GLOBAL_BATCH = 8  # samples per optimizer step over all ranks
STEPS = 4
DTYPE = os.environ.get("DIST_TEST_DTYPE", "float64")  # float64: the 2-rank average differs from one process by ~1e-16


class MLP(nn.Module):
    """(B, 6) -> (B, 3); ``spare`` is a layer that forward never uses (for the unused-parameter cases)."""

    def __init__(self, hidden: int = 16, spare: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, hidden)
        self.fc2 = nn.Linear(hidden, 3)
        if spare:
            self.spare = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.tanh(self.fc1(x)))


class AttentionNet(nn.Module):
    """(B, 5, 8) -> (B, 5, 2): causal self-attention with a residual, LayerNorm, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiHeadAttention(2, 8, dropout_prob=0.0)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.ln(x + self.attn(x, x, x, is_causal=True)))


def make_data(kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)  # the same data on every rank
    if kind == "attention":
        x = rng.normal(size=(n, 5, 8))
        return x, np.tanh(x[..., :2] * 1.5 + x[..., 2:4])
    x = rng.normal(size=(n, 6))
    return x, np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2], np.cos(x[:, 3] + x[:, 4])], axis=1)


def build(kind: str, seed: int, hidden: int = 16) -> nn.Module:
    backend.seed(seed)
    model = AttentionNet() if kind == "attention" else MLP(hidden, spare=kind == "mlp_unused")
    return model.astype(DTYPE)


def as_tensor(a: np.ndarray) -> Tensor:
    return Tensor(backend.asarray(a.astype(DTYPE)), requires_grad=False)


def snapshot(model: nn.Module) -> dict:
    return {n: backend.to_numpy(p.data).copy() for n, p in model.parameters.items()}


CONFIGS = {
    "mlp": {"kind": "mlp", "bucket": 25.0},
    "mlp_tiny_bucket": {"kind": "mlp", "bucket": 1e-6},  # about 1 byte: smaller than any parameter
    "mlp_one_bucket": {"kind": "mlp", "bucket": 1e4},  # larger than all parameters together
    "mlp_no_overlap": {"kind": "mlp", "bucket": 1e-4, "overlap": False},
    "attention": {"kind": "attention", "bucket": 2e-3},
    "mlp_no_sync": {"kind": "mlp", "bucket": 25.0, "micro": 2},
    "mlp_unused": {"kind": "mlp_unused", "bucket": 1e-3, "synchronize": True},
}


def train(cfg: dict, world: int, rank: int, seed: int) -> tuple[dict, dict, dict, list]:
    """STEPS optimizer steps on this rank's share of each global batch.

    Returns the parameters before and after wrapping and at the end, and the bucket names at wrap time and after
    the first step's rebuild.
    """
    kind = cfg["kind"]
    model = build(kind, seed)
    before = snapshot(model)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cfg["bucket"], overlap=cfg.get("overlap", True))
    wrapped, initial_buckets = snapshot(model), ddp.bucket_names
    if kind == "attention":
        opt = Adam(ddp.parameters, lr=0.02)
    else:
        opt = SGD(ddp.parameters, lr=0.1, momentum=0.9)
    x, y = make_data(kind, GLOBAL_BATCH * STEPS)
    per_rank, micro = GLOBAL_BATCH // world, cfg.get("micro", 1)
    for step in range(STEPS):
        lo = step * GLOBAL_BATCH + rank * per_rank
        xs, ys = x[lo : lo + per_rank], y[lo : lo + per_rank]
        opt.zero_grad()
        m = per_rank // micro
        for j in range(micro):
            with ddp.no_sync() if j < micro - 1 else nullcontext():
                loss = F.mean_squared_loss(ddp(as_tensor(xs[j * m : (j + 1) * m])), as_tensor(ys[j * m : (j + 1) * m]))
                (loss / micro).backward()
        if cfg.get("synchronize"):
            ddp.synchronize()
        opt.step()
    return before, wrapped, snapshot(model), {"initial": initial_buckets, "rebuilt": ddp.bucket_names}


def arrival_order(kind: str) -> list:
    """The order in which one plain backward delivers the parameters' final gradients."""
    model, order = build(kind, seed=0), []
    for name, p in model.parameters.items():
        p.register_post_accumulate_grad_hook(lambda p, name=name: order.append(name))
    x, y = make_data(kind, 4)
    F.mean_squared_loss(model(as_tensor(x)), as_tensor(y)).backward()
    return order


def save_npz(path: str, **groups: dict) -> None:
    np.savez(path, **{f"{g}/{n}": a for g, arrays in groups.items() for n, a in arrays.items()})


def equivalence(out: str, reference: bool) -> None:
    dist.init()
    world, rank = dist.world_size(), dist.rank()
    buckets = {}
    for name, cfg in CONFIGS.items():
        if reference:  # one process, the whole global batch; and rank 0's half alone (no averaging)
            _, _, full, _ = train(cfg, 1, 0, seed=1000)
            _, _, half, _ = train(cfg, 2, 0, seed=1000)
            save_npz(os.path.join(out, f"{name}_ref.npz"), final=full, half=half)
        else:
            before, wrapped, final, names = train(cfg, world, rank, seed=1000 + rank)
            save_npz(os.path.join(out, f"{name}_rank{rank}.npz"), before=before, wrapped=wrapped, final=final)
            buckets[name] = names
    if not reference:
        with open(os.path.join(out, f"buckets_rank{rank}.json"), "w") as f:
            info = {"buckets": buckets, "transport": dist.transport(), "world": world}
            json.dump(info | {"arrivals": {k: arrival_order(k) for k in ("mlp", "attention")}}, f)


def collectives(out: str) -> None:
    name = dist.init()
    rank, world = dist.rank(), dist.world_size()
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = backend.asarray(base * (rank + 1))
    kept = backend.to_numpy(a).copy()
    results = {
        "transport": name,
        "rank": rank,
        "world": world,
        "local_rank": dist.local_rank(),
        "sum": backend.to_numpy(dist.all_reduce(a)).tolist(),
        "mean_tensor": dist.all_reduce(Tensor(a, requires_grad=False), "mean").numpy().tolist(),
        "max": backend.to_numpy(dist.all_reduce(a, "max")).tolist(),
        "int_sum": backend.to_numpy(dist.all_reduce(backend.asarray(np.array([rank, 10], dtype=np.int32)))).tolist(),
        "broadcast": backend.to_numpy(dist.broadcast(a, root=world - 1)).tolist(),
        "gather": backend.to_numpy(dist.all_gather(a)).tolist(),
        "objects": dist.all_gather_object({"rank": rank, "text": "x" * (rank + 1)}),
        "input_unchanged": bool(np.array_equal(backend.to_numpy(a), kept)),
        # the sampler's defaults come from the group
        "shard_epoch0": dist.DistributedSampler(11, seed=3).indices().tolist(),
        "shard_epoch1": _shard(11, epoch=1),
    }
    dist.barrier()
    with open(os.path.join(out, f"collectives_rank{rank}.json"), "w") as f:
        json.dump(results, f)


def _shard(n: int, epoch: int) -> list:
    sampler = dist.DistributedSampler(n, seed=3)
    sampler.set_epoch(epoch)
    return sampler.indices().tolist()


def checkpoint(out: str, phase: str) -> None:
    """Adam on a DistributedSampler's shards over 2.5 epochs; ``part`` stops mid-epoch and saves, ``resume`` goes on."""
    dist.init()
    rank = dist.rank()
    n, batch, total = 40, 4, 13  # 40 samples / 2 ranks / 4 per batch = 5 steps per epoch
    x, y = make_data("mlp", n)

    def run(start_from: str | None, stop: int) -> dict:
        model = dist.DistributedDataParallel(build("mlp", seed=7 + rank))
        opt = Adam(model.parameters, lr=0.01)
        sampler = dist.DistributedSampler(n, seed=5)
        step = 0
        if start_from:
            step = dist.load_checkpoint(start_from, model, opt, sampler)["step"]
        per_epoch = len(sampler) // batch
        while step < stop:
            epoch, i = divmod(step, per_epoch)
            sampler.set_epoch(epoch)
            idx = sampler.indices()[i * batch : (i + 1) * batch]
            opt.zero_grad()
            F.mean_squared_loss(model(as_tensor(x[idx])), as_tensor(y[idx])).backward()
            opt.step()
            step += 1
        if stop < total:
            dist.save_checkpoint(os.path.join(out, "ckpt"), model, opt, sampler, extra={"step": step})
        return snapshot(model)

    if phase == "full":
        save_npz(os.path.join(out, f"full_rank{rank}.npz"), final=run(None, total))
        run(None, 7)  # the interrupted run: 7 steps (into the second epoch), then a checkpoint
    else:
        save_npz(os.path.join(out, f"resumed_rank{rank}.npz"), final=run(os.path.join(out, "ckpt"), total))


def fault(out: str, kind: str) -> None:
    if kind == "timeout":
        dist.init(timeout=1.5)
        if dist.rank() == 1:
            time.sleep(60)  # never reaches the collective in time
        dist.all_reduce(backend.asarray(np.ones(3, dtype=np.float32)))
        return
    dist.init()
    rank = dist.rank()
    model = build("mlp_unused" if kind == "unused" else "mlp", seed=1, hidden=17 if kind == "mismatch" and rank else 16)
    ddp = dist.DistributedDataParallel(model)
    opt = SGD(ddp.parameters, lr=0.1)
    x, y = make_data("mlp", 64)
    for step in range(100):
        if kind == "raise" and rank == 1 and step == 2:
            raise RuntimeError("deliberate failure on rank 1")
        opt.zero_grad()
        F.mean_squared_loss(ddp(as_tensor(x[step % 8 :][:8])), as_tensor(y[step % 8 :][:8])).backward()
        opt.step()


def main(argv: list[str]) -> None:
    scenario, out = argv[0], argv[1]
    if scenario == "equivalence":
        equivalence(out, reference="--reference" in argv)
    elif scenario == "collectives":
        collectives(out)
    elif scenario == "checkpoint":
        checkpoint(out, argv[2])
    elif scenario == "fault":
        fault(out, argv[2])
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
