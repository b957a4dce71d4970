"""Fit a tiny MLP to a noisy sine curve with plain Tensors and hand-written SGD.

Run with ``uv run --package autograd-core python examples/fit_regression.py``;
``AUTOGRAD_BACKEND=mlx`` runs the same code on MLX.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from autograd import backend
from autograd.tensor import Tensor, no_grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    backend.seed(args.seed)
    x_np = np.linspace(-3, 3, 256, dtype=np.float32)[:, None]
    y_np = np.sin(x_np) + 0.05 * rng.standard_normal(x_np.shape).astype(np.float32)
    x, y = Tensor(backend.asarray(x_np)), Tensor(backend.asarray(y_np))

    w1 = Tensor(backend.normal((1, args.hidden), scale=1.0))
    b1 = Tensor(backend.asarray(np.zeros(args.hidden, dtype=np.float32)))
    w2 = Tensor(backend.normal((args.hidden, 1), scale=1.0 / np.sqrt(args.hidden)))
    b2 = Tensor(backend.asarray(np.zeros(1, dtype=np.float32)))
    params = [w1, b1, w2, b2]

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        hidden = (x @ w1 + b1).maximum(0.0)
        pred = hidden @ w2 + b2
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with no_grad():
            for p in params:
                p.data = p.data - args.lr * p.grad.data
        if step % (args.steps // 10) == 0 or step == 1:
            print(f"step {step:5d}  mse {loss.item():.5f}")
    print(f"backend {backend.BACKEND}: final mse {loss.item():.5f} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
