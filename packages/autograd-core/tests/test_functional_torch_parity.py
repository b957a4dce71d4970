"""Activations and losses against PyTorch (skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.tensor import Tensor


def _pair(torch, arr):
    return Tensor(backend.asarray(np.asarray(arr, dtype=np.float64))), torch.tensor(arr, requires_grad=True)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax"])
def test_activations_match_torch(torch, name):
    x = np.random.default_rng(0).normal(size=(3, 5)) * 3
    ours, theirs = _pair(torch, x)
    tf = {
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "gelu": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
        "softmax": lambda t: torch.softmax(t, -1),
        "log_softmax": lambda t: torch.log_softmax(t, -1),
    }[name]
    w = np.random.default_rng(1).normal(size=x.shape)
    o, t = getattr(F, name)(ours), tf(theirs)
    np.testing.assert_allclose(to_np(o), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    (o * Tensor(backend.asarray(w))).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(to_np(ours.grad), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch_with_ignore_and_smoothing(torch, shape, reduction):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=shape) * 2
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    targets.reshape(-1)[[0, 3]] = -1
    ours, theirs = _pair(torch, logits)
    o = F.cross_entropy(ours, targets, ignore_index=-1, label_smoothing=0.2, reduction=reduction)
    t = torch.nn.functional.cross_entropy(
        theirs.reshape(-1, shape[-1]),
        torch.tensor(targets.reshape(-1)),
        ignore_index=-1,
        label_smoothing=0.2,
        reduction=reduction,
    )
    np.testing.assert_allclose(to_np(o), t.item(), rtol=1e-10)
    o.backward()
    t.backward()
    np.testing.assert_allclose(to_np(ours.grad), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_binary_losses_match_torch(torch):
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, size=(4, 3))
    x = rng.normal(size=(4, 3)) * 3
    y = (rng.uniform(size=(4, 3)) > 0.5).astype(np.float64)
    for ours_fn, torch_fn, inp in [
        (F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, p),
        (F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits, x),
        (F.mean_squared_loss, torch.nn.functional.mse_loss, x),
    ]:
        ours, theirs = _pair(torch, inp)
        o, t = ours_fn(ours, y), torch_fn(theirs, torch.tensor(y))
        np.testing.assert_allclose(to_np(o), t.item(), rtol=1e-10)
        o.backward()
        t.backward()
        np.testing.assert_allclose(to_np(ours.grad), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
