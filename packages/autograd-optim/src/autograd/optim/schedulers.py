"""Learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LRScheduler", "CosineScheduler"]


class LRScheduler:
    """Interface for a learning-rate schedule: ``scheduler(step) -> lr``.

    ``step`` counts optimizer steps from 0. An optimizer built with
    ``lr_scheduler_kwargs={"lr_scheduler_cls": cls, **kwargs}`` instantiates
    ``cls(**kwargs, lr=<the optimizer's lr>)`` (``lr`` only when the class
    accepts it) and calls it before every step.

    Examples:
        >>> class Halving(LRScheduler):
        ...     def __init__(self, every=10, lr=1e-3):
        ...         self.every, self.lr = every, lr
        ...     def __call__(self, step):
        ...         return self.lr * 0.5 ** (step // self.every)
        >>> from autograd.optim import SGD
        >>> from autograd.tensor import Tensor
        >>> [Halving(every=2, lr=0.4)(step) for step in range(5)]
        [0.4, 0.4, 0.2, 0.2, 0.1]
        >>> w = Tensor([1.0])
        >>> opt = SGD([w], lr=0.4, lr_scheduler_kwargs={"lr_scheduler_cls": Halving, "every": 2})
        >>> for _ in range(3):  # steps 0, 1 and 2
        ...     opt.zero_grad()
        ...     w.sum().backward()
        ...     opt.step()
        >>> opt.lr
        0.2
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step) -> lr")


class CosineScheduler(LRScheduler):
    r"""Linear warmup, then cosine decay to ``min_lr`` (SGDR without restarts).

    With peak ``lr`` (the optimizer's), warmup ``W`` and decay end ``D``:

    * ``step < W``: ``lr * (step + 1) / W``;
    * ``W <= step <= D``: ``min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * (step - W) / (D - W)))``;
    * ``step > D``: ``min_lr``.

    Args:
        warmup_steps: Steps of linear warmup (0 for none).
        lr_decay_iters: The step at which ``min_lr`` is reached; must exceed ``warmup_steps``.
        min_lr: The floor.
        **kwargs: ``lr``, the peak learning rate (the optimizer passes its own; default 1e-3).

    Examples:
        >>> s = CosineScheduler(warmup_steps=2, lr_decay_iters=6, min_lr=0.0, lr=1.0)
        >>> [round(s(step), 3) for step in range(8)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0, 0.0]

        As an optimizer's schedule (it sets the learning rate before each step):

        >>> from autograd.optim import Adam
        >>> from autograd.tensor import Tensor
        >>> kwargs = {"lr_scheduler_cls": CosineScheduler, "warmup_steps": 10, "lr_decay_iters": 100, "min_lr": 1e-5}
        >>> opt = Adam([Tensor([1.0])], lr=1e-3, lr_scheduler_kwargs=kwargs)
    """

    def __init__(self, warmup_steps: int = 100, lr_decay_iters: int = 200, min_lr: float = 0.0001, **kwargs: Any):
        self.warmup_steps, self.lr_decay_iters = int(warmup_steps), int(lr_decay_iters)
        self.min_lr = float(min_lr)
        self.lr = float(kwargs.pop("lr", kwargs.pop("max_lr", 1e-3)))
        if kwargs:
            raise TypeError(f"CosineScheduler got unexpected arguments {sorted(kwargs)}")
        if self.warmup_steps < 0 or self.lr_decay_iters <= self.warmup_steps:
            raise ValueError(
                f"CosineScheduler needs 0 <= warmup_steps < lr_decay_iters, got {self.warmup_steps} and "
                f"{self.lr_decay_iters}"
            )
        if not (0.0 <= self.min_lr <= self.lr) or not math.isfinite(self.lr):
            raise ValueError(f"CosineScheduler needs 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if step > self.lr_decay_iters:
            return self.min_lr
        ratio = (step - self.warmup_steps) / (self.lr_decay_iters - self.warmup_steps)
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))

    def __repr__(self) -> str:
        return (
            f"CosineScheduler(warmup_steps={self.warmup_steps}, lr_decay_iters={self.lr_decay_iters}, "
            f"min_lr={self.min_lr}, lr={self.lr})"
        )
