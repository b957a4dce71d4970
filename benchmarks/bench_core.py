"""Engine overhead benchmarks against PyTorch eager CPU, measured in the same run.

* per-op overhead: a chain of tiny element-wise ops, forward + backward, time per graph node;
* MLP step: a 2-hidden-layer MLP with manual SGD, forward + backward + update.

Run with ``uv run nox -s bench`` (installs PyTorch's CPU build from this
machine's disk when it is there); the PyTorch columns are skipped without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

import numpy as np

from autograd import backend
from autograd.tensor import Tensor, no_grad

try:
    import torch
except ImportError:  # the benchmark still runs, without the reference columns
    torch = None


def best_of(fn: Callable[[], None], repeat: int, number: int) -> float:
    """Best mean seconds per call over ``repeat`` rounds of ``number`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def chain_ours(n: int) -> Callable[[], None]:
    x = Tensor([0.5, 0.25, 0.125, 1.0])

    def run() -> None:
        y = x
        for _ in range(n):
            y = y * 1.0001 + 0.0001
        y.sum().backward()
        x.grad = None

    return run


def chain_torch(n: int) -> Callable[[], None]:
    x = torch.tensor([0.5, 0.25, 0.125, 1.0], requires_grad=True)

    def run() -> None:
        y = x
        for _ in range(n):
            y = y * 1.0001 + 0.0001
        y.sum().backward()
        x.grad = None

    return run


def mlp_ours(sizes: tuple[int, ...], batch: int) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params.append(Tensor(backend.asarray(rng.normal(0, a**-0.5, (a, b)).astype(np.float32))))
        params.append(Tensor(backend.asarray(np.zeros(b, np.float32))))
    x = Tensor(backend.asarray(rng.normal(size=(batch, sizes[0])).astype(np.float32)), requires_grad=False)
    y = Tensor(backend.asarray(rng.normal(size=(batch, sizes[-1])).astype(np.float32)), requires_grad=False)

    def run() -> None:
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = h.maximum(0.0)
        loss = ((h - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with no_grad():
            for p in params:
                p.data = p.data - 0.01 * p.grad.data
        backend.materialize(*[p.data for p in params])

    return run


def mlp_torch(sizes: tuple[int, ...], batch: int) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params.append(torch.tensor(rng.normal(0, a**-0.5, (a, b)).astype(np.float32), requires_grad=True))
        params.append(torch.zeros(b, requires_grad=True))
    x = torch.tensor(rng.normal(size=(batch, sizes[0])).astype(np.float32))
    y = torch.tensor(rng.normal(size=(batch, sizes[-1])).astype(np.float32))

    def run() -> None:
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = h.clamp_min(0.0)
        loss = ((h - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.01 * p.grad

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(2)
    n = 200
    nodes = 2 * n + 1  # mul + add per step, plus the sum
    rows = []
    ours = best_of(chain_ours(n), args.repeat, 10) / nodes
    ref = best_of(chain_torch(n), args.repeat, 10) / nodes if torch is not None else None
    rows.append(("per-op overhead (fwd+bwd per node, 4 elements)", ours, ref, "us"))
    sizes, batch = (64, 128, 128, 10), 32
    ours = best_of(mlp_ours(sizes, batch), args.repeat, 20)
    ref = best_of(mlp_torch(sizes, batch), args.repeat, 20) if torch is not None else None
    rows.append((f"MLP step {'-'.join(map(str, sizes))}, batch {batch}, SGD", ours, ref, "us"))

    print(f"autograd backend: {backend.BACKEND}; torch: {torch.__version__ if torch else 'not installed'}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"{'benchmark':52s} {'autograd':>12s} {'pytorch':>12s} {'ratio':>7s}")
    for name, ours, ref, _ in rows:
        ref_s = f"{ref * 1e6:10.1f}us" if ref else f"{'-':>12s}"
        ratio = f"{ours / ref:6.2f}x" if ref else f"{'-':>7s}"
        print(f"{name:52s} {ours * 1e6:10.1f}us {ref_s} {ratio}")


if __name__ == "__main__":
    main()
