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
        lr: The peak learning rate (passed by the optimizer; default 1e-3).
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
