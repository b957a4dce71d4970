"""DistributedSampler: each rank's disjoint share of a data set's indices, reshuffled the same way on every rank."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, Optional

import numpy as np

from autograd.distributed import group

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """This rank's indices of a data set of ``n`` samples for the current epoch.

    Every rank draws the same permutation (from ``(seed, epoch)``; call
    :meth:`set_epoch` at the start of each epoch), makes its length a
    multiple of the world size, and takes every ``num_replicas``-th index
    starting at its rank. So the shards are disjoint and of equal length
    (every rank runs the same number of steps), and together they cover:

    * ``drop_last=False`` (default): every sample, the permutation padded by
      repeating its first ``(-n) % num_replicas`` indices (those few samples
      are seen twice in the epoch);
    * ``drop_last=True``: the permutation without its last
      ``n % num_replicas`` indices (a different few each epoch when shuffled).

    When ``n`` is a multiple of the world size both cover every sample exactly
    once per epoch.

    Args:
        data: The data set (anything with ``len``) or its size.
        num_replicas: Number of ranks (default: ``world_size()``).
        rank: This rank (default: ``rank()``).
        shuffle: Permute the indices each epoch (False: in order).
        seed: Seed of the permutation; must be the same on every rank.
        drop_last: Drop the tail instead of padding it (see above).

    Example::

        sampler = DistributedSampler(len(x_train), seed=0)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            idx = sampler.indices()                       # (len(sampler),) int64
            for i in range(0, len(idx), batch_size):
                xb, yb = x_train[idx[i : i + batch_size]], y_train[idx[i : i + batch_size]]
    """

    def __init__(
        self,
        data: Any,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        n = data if isinstance(data, (int, np.integer)) else len(data)
        if int(n) < 0:
            raise ValueError(f"DistributedSampler: the data set size must be >= 0, got {n}")
        self.n = int(n)
        self.num_replicas = group.world_size() if num_replicas is None else int(num_replicas)
        self.rank = group.rank() if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"DistributedSampler: rank {self.rank} is not in 0..{self.num_replicas - 1} "
                f"(num_replicas={self.num_replicas})"
            )
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        if self.drop_last and self.n < self.num_replicas:
            raise ValueError(
                f"DistributedSampler: drop_last with {self.n} samples and {self.num_replicas} ranks leaves every "
                "rank with nothing"
            )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation :meth:`indices` returns (the same epoch on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """The number of indices of each rank: ``n // W`` with ``drop_last``, else ``ceil(n / W)``."""
        if self.drop_last:
            return self.n // self.num_replicas
        return math.ceil(self.n / self.num_replicas) if self.n else 0

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, shape ``(len(self),)``, int64."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        total = len(self) * self.num_replicas
        if total > self.n:  # pad by repeating from the start (cycling for tiny data sets)
            order = np.concatenate([order, np.resize(order, total - self.n)])
        order = order[:total]
        return order[self.rank : total : self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def state_dict(self) -> Dict[str, Any]:
        """``{"epoch", "seed", "num_replicas", "shuffle", "drop_last"}``, for checkpoints."""
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the epoch and the seed (the world size may differ: the shards are then recut)."""
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))
