"""Training-step benchmarks of autograd.nn models against the same models in PyTorch eager CPU.

* small CNN step: batch 32 of 1x28x28, two conv3x3 + maxpool, linear head, cross entropy, SGD;
* GPT-style decoder step: vocab 256, hidden 128, 4 layers, 4 heads, seq 128, batch 8, cross entropy, SGD.

Run with ``uv run nox -s bench``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from models import SmallCNN, TinyGPT, torch_models  # noqa: E402

from autograd import backend  # noqa: E402
from autograd import functional as F  # noqa: E402
from autograd.tensor import Tensor, no_grad  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def best_of(fn: Callable[[], None], repeat: int = 5, number: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def sgd_step_ours(model, x, y, lr=1e-3) -> Callable[[], None]:
    params = list(model.parameters.values())

    def step() -> None:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        for p in params:
            p.grad = None
        loss.backward()
        with no_grad():
            for p in params:
                p.data = p.data - lr * p.grad.data
        backend.materialize(*[p.data for p in params])

    return step


def sgd_step_torch(model, x, y, lr=1e-3) -> Callable[[], None]:
    params = list(model.parameters())

    def step() -> None:
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad

    return step


def main() -> None:
    rng = np.random.default_rng(0)
    backend.seed(0)
    rows = []

    images = rng.normal(size=(32, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, size=32)
    ours = best_of(sgd_step_ours(SmallCNN(), Tensor(backend.asarray(images), requires_grad=False), labels))
    ref = None
    if torch is not None:
        torch.set_num_threads(2)
        torch.manual_seed(0)
        TorchCNN, TorchGPT = torch_models()
        ref = best_of(sgd_step_torch(TorchCNN(), torch.tensor(images), torch.tensor(labels)))
    rows.append(("small CNN step (batch 32, 1x28x28)", ours, ref))

    tokens = rng.integers(0, 256, size=(8, 129))
    x, y = tokens[:, :-1], tokens[:, 1:]
    ours = best_of(sgd_step_ours(TinyGPT(), backend.asarray(x), y), repeat=3, number=2)
    ref = None
    if torch is not None:
        ref = best_of(sgd_step_torch(TorchGPT(), torch.tensor(x), torch.tensor(y)), repeat=3, number=2)
    rows.append(("GPT decoder step (256/128/4L/4H, seq 128, batch 8)", ours, ref))

    print(f"autograd backend: {backend.BACKEND}; torch: {torch.__version__ if torch else 'not installed'}")
    print(f"{'benchmark':52s} {'autograd':>10s} {'pytorch':>10s} {'ratio':>7s}")
    for name, o, r in rows:
        ref = f"{r * 1e3:8.1f}ms" if r else "-"
        ratio = f"{o / r:6.2f}x" if r else "-"
        print(f"{name:52s} {o * 1e3:8.1f}ms {ref:>10s} {ratio:>7s}")


if __name__ == "__main__":
    main()
