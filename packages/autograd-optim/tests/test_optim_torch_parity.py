"""Trajectories against torch.optim over 25 steps (skipped without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

from autograd import backend
from autograd.optim import SGD, Adam, CosineScheduler
from autograd.tensor import Tensor


def _targets(step):
    return np.sin(np.arange(12).reshape(4, 3) * 0.7 + step)


def _trajectory_ours(opt_factory, init, steps, clip=None, norm_type=2.0):
    p = Tensor(backend.asarray(init.copy()))
    opt = opt_factory({"w": p})
    norms = []
    for s in range(steps):
        opt.zero_grad()
        t = Tensor(backend.asarray(_targets(s)), requires_grad=False)
        (((p - t) ** 2).sum() + (p * p * p).sum() * 0.1).backward()
        if clip:
            norms.append(opt.clip_grad_norm(clip, norm_type))
        opt.step()
    return np.asarray(backend.to_numpy(p.data)), norms


def _trajectory_torch(torch, opt_factory, init, steps, clip=None, norm_type=2.0, sched=None):
    p = torch.tensor(init.copy(), requires_grad=True)
    opt = opt_factory([p])
    lr0 = opt.param_groups[0]["lr"]
    norms = []
    for s in range(steps):
        if sched is not None:
            opt.param_groups[0]["lr"] = sched(s) if sched else lr0
        opt.zero_grad()
        t = torch.tensor(_targets(s))
        (((p - t) ** 2).sum() + (p * p * p).sum() * 0.1).backward()
        if clip:
            norms.append(float(torch.nn.utils.clip_grad_norm_([p], clip, norm_type)))
        opt.step()
    return p.detach().numpy(), norms


CASES = {
    "sgd": (lambda p: SGD(p, lr=0.02), lambda t: lambda q: t.optim.SGD(q, lr=0.02)),
    "sgd_momentum_dampening": (
        lambda p: SGD(p, lr=0.02, momentum=0.9, dampening=0.1),
        lambda t: lambda q: t.optim.SGD(q, lr=0.02, momentum=0.9, dampening=0.1),
    ),
    "sgd_nesterov_wd": (
        lambda p: SGD(p, lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.05),
        lambda t: lambda q: t.optim.SGD(q, lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.05),
    ),
    "adam": (lambda p: Adam(p, lr=0.05), lambda t: lambda q: t.optim.Adam(q, lr=0.05, eps=1e-7)),
    "adamw": (
        lambda p: Adam(p, lr=0.05, beta1=0.8, beta2=0.99, weight_decay=0.1),
        lambda t: lambda q: t.optim.AdamW(q, lr=0.05, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_torch(torch, case):
    ours_f, torch_f = CASES[case]
    init = np.random.default_rng(0).normal(size=(4, 3))
    ours, _ = _trajectory_ours(ours_f, init, 25)
    theirs, _ = _trajectory_torch(torch, torch_f(torch), init, 25)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_scheduled_adamw_matches_torch(torch):
    sched = CosineScheduler(warmup_steps=5, lr_decay_iters=20, min_lr=0.001, lr=0.05)
    kw = {"lr_scheduler_cls": CosineScheduler, "warmup_steps": 5, "lr_decay_iters": 20, "min_lr": 0.001}
    init = np.random.default_rng(1).normal(size=(4, 3))
    ours, _ = _trajectory_ours(lambda p: Adam(p, lr=0.05, weight_decay=0.1, lr_scheduler_kwargs=kw), init, 25)
    theirs, _ = _trajectory_torch(
        torch, lambda q: torch.optim.AdamW(q, lr=0.05, eps=1e-7, weight_decay=0.1), init, 25, sched=sched
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clipping_matches_torch(torch, norm_type):
    init = np.random.default_rng(2).normal(size=(4, 3)) * 3
    ours, n1 = _trajectory_ours(lambda p: SGD(p, lr=0.01), init, 20, clip=0.5, norm_type=norm_type)
    theirs, n2 = _trajectory_torch(
        torch, lambda q: torch.optim.SGD(q, lr=0.01), init, 20, clip=0.5, norm_type=norm_type
    )
    np.testing.assert_allclose(n1, n2, rtol=1e-10)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
