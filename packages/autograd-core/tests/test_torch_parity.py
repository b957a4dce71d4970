"""Values and gradients against PyTorch (skipped without it; `nox -s parity` installs it)."""

from __future__ import annotations

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd.tensor import Tensor


def _pair(torch, arr):
    ours = Tensor(backend.asarray(np.asarray(arr, dtype=np.float64)))
    theirs = torch.tensor(np.asarray(arr, dtype=np.float64), requires_grad=True)
    return ours, theirs


CASES = {
    "broadcast_arith": (
        [(3, 1, 4), (2, 4)],
        lambda a, b: ((a * b + a) / (b * b + 1.0) - b) ** 2.0,
        lambda a, b: ((a * b + a) / (b * b + 1.0) - b) ** 2.0,
    ),
    "matmul_batched": ([(2, 3, 4), (4, 5)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_vec": ([(4,), (2, 4, 3)], lambda a, b: a @ b, lambda a, b: a @ b),
    "reductions": (
        [(3, 4, 5)],
        lambda a: a.max(axis=1).sum(axis=0) + a.mean(axis=(0, 2), keepdims=True).sum(),
        lambda a: a.amax(dim=1).sum(dim=0) + a.mean(dim=(0, 2), keepdim=True).sum(),
    ),
    "shape_ops": (
        [(2, 3, 4)],
        lambda a: a.permute(2, 0, 1).reshape(4, 6).transpose(0, 1)[1:5:2].roll(1, 0).exp(),
        lambda a: a.permute(2, 0, 1).reshape(4, 6).transpose(0, 1)[1:5:2].roll(1, 0).exp(),
    ),
    "pad_reflect": (
        [(2, 3, 4)],
        lambda a: a.pad((1, 2), mode="reflect") * 2.0,
        lambda a: torch_pad(a, (1, 2), "reflect") * 2.0,
    ),
    "cat_stack": (
        [(2, 3), (2, 3)],
        lambda a, b: Tensor.stack([Tensor.cat([a, b], axis=1), Tensor.cat([b, a], axis=1)], axis=0).sqrt(),
        lambda a, b: _torch().stack([_torch().cat([a, b], 1), _torch().cat([b, a], 1)], 0).sqrt(),
    ),
    "log_abs_clip": (
        [(3, 4)],
        lambda a: (a.abs() + 0.1).log() + a.clip(-0.3, 0.3),
        lambda a: (a.abs() + 0.1).log() + a.clamp(-0.3, 0.3),
    ),
}


def _torch():
    import torch

    return torch


def torch_pad(a, pad, mode):
    import torch.nn.functional as F

    return F.pad(a, pad, mode=mode)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch(torch, case):
    shapes, ours_fn, torch_fn = CASES[case]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.1, 1.0, size=s) for s in shapes]
    pairs = [_pair(torch, a) for a in arrays]
    ours = ours_fn(*[p[0] for p in pairs])
    theirs = torch_fn(*[p[1] for p in pairs])
    np.testing.assert_allclose(to_np(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = rng.uniform(0.5, 1.5, size=theirs.shape)
    (ours * Tensor(backend.asarray(weights))).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    for o, t in pairs:
        np.testing.assert_allclose(to_np(o.grad), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_strided_windows_matches_torch_unfold(torch):
    x = np.random.default_rng(1).normal(size=(2, 3, 7, 6))
    ours, theirs = _pair(torch, x)
    w = ours.strided_windows(kernel_size=3, stride=2)  # (Ho, Wo, N, C, k, k)
    tw = theirs.unfold(2, 3, 2).unfold(3, 3, 2).permute(2, 3, 0, 1, 4, 5)
    np.testing.assert_allclose(to_np(w), tw.detach().numpy())
    (w * w).sum().backward()
    (tw * tw).sum().backward()
    np.testing.assert_allclose(to_np(ours.grad), theirs.grad.numpy(), rtol=1e-12)
