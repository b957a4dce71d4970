"""Samplers: the order in which a map-style data set's indices are visited, epoch by epoch.

================================ ===================================================================
name                             what it yields
================================ ===================================================================
``SequentialSampler``            ``0, 1, ..., n - 1`` every epoch
``RandomSampler``                a permutation drawn from ``(seed, epoch)``, a new one each epoch
``BatchSampler``                 lists of ``batch_size`` indices taken from another sampler
``DistributedSampler``           this rank's disjoint, equal-length shard of a permutation that is
                                 the same on every rank
================================ ===================================================================

Every sampler here has ``set_epoch(epoch)``, ``state_dict()`` and
``load_state_dict(state)``; a state is a small JSON-serialisable dict, so it
can go into a checkpoint's metadata. Loading the state taken before an
epoch's iteration and iterating again gives the same indices, which is what
:class:`~autograd.data.DataLoader` relies on to resume mid-epoch.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Mapping, Optional

import numpy as np

from autograd.data.launch import launch_rank_and_size

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "BatchSampler",
    "DistributedSampler",
    "launch_rank_and_size",  # defined in autograd.data.launch; the DistributedSampler's defaults
]


def _size(data: Any, who: str) -> int:
    """The number of samples of ``data``: an int, or anything with ``len``."""
    if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
        n = int(data)
    else:
        try:
            n = len(data)
        except TypeError:
            raise TypeError(
                f"{who}: needs a data set with len() or its size as an int, got {type(data).__name__}"
            ) from None
    if n < 0:
        raise ValueError(f"{who}: the data set size must be >= 0, got {n}")
    return n


def _draw_seed() -> int:
    # No seed given: drawn from NumPy's global generator, so np.random.seed(...) at the start of a script makes
    # the run reproducible (as torch.manual_seed does for PyTorch's samplers). The draw is kept in state_dict().
    return int(np.random.randint(0, 2**31 - 1))


class Sampler:
    """Base class: an iterable of indices with a length.

    Subclasses implement ``__iter__`` and ``__len__``; ``set_epoch``,
    ``state_dict`` and ``load_state_dict`` are optional (the defaults do
    nothing and return ``{}``), as in ``torch.utils.data.Sampler``.
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch of the next iteration (no effect for samplers that do not depend on it)."""

    def state_dict(self) -> Dict[str, Any]:
        """What reproduces the next iteration's order; ``{}`` for samplers without state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""


class SequentialSampler(Sampler):
    """``0, 1, ..., n - 1`` every epoch.

    Args:
        data_source: The data set (anything with ``len``) or its size.

    Examples:
        >>> from autograd.data import SequentialSampler
        >>> list(SequentialSampler(["a", "b", "c", "d", "e"]))
        [0, 1, 2, 3, 4]
        >>> SequentialSampler(5).indices()  # all at once, shape (n,)
        array([0, 1, 2, 3, 4])
    """

    def __init__(self, data_source: Any) -> None:
        self.n = _size(data_source, "SequentialSampler")

    def indices(self) -> np.ndarray:
        """The indices of the next iteration, shape ``(n,)``, int64."""
        return np.arange(self.n, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class RandomSampler(Sampler):
    """A permutation of ``range(n)`` (or draws with replacement) from ``(seed, epoch)``.

    Each iteration uses the current epoch and then moves to the next one, so
    iterating twice gives two different orders, as PyTorch's sampler does;
    :meth:`set_epoch` chooses the epoch of the next iteration explicitly. The
    order depends only on ``(seed, epoch)``: the same seed gives the same
    orders in any process.

    Args:
        data_source: The data set (anything with ``len``) or its size ``n``.
        replacement: Draw ``num_samples`` indices with replacement instead of
            permuting.
        num_samples: Indices per epoch (default ``n``; with
            ``replacement=False`` at most ``n``: the first ``num_samples`` of
            the permutation).
        seed: Seed of the permutations; ``None`` draws one from NumPy's global
            generator at construction (kept in :meth:`state_dict`).

    Examples:
        >>> from autograd.data import RandomSampler
        >>> sampler = RandomSampler(6, seed=0)
        >>> list(sampler)  # epoch 0
        [3, 2, 5, 4, 0, 1]
        >>> list(sampler)  # the next iteration is epoch 1: a new order
        [1, 4, 3, 0, 2, 5]
        >>> sampler.set_epoch(0)
        >>> list(sampler)  # epoch 0 again, the same order
        [3, 2, 5, 4, 0, 1]
        >>> list(RandomSampler(3, replacement=True, num_samples=5, seed=0))
        [2, 1, 1, 0, 0]
    """

    def __init__(
        self,
        data_source: Any,
        replacement: bool = False,
        num_samples: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.n = _size(data_source, "RandomSampler")
        self.replacement = bool(replacement)
        self.num_samples = self.n if num_samples is None else int(num_samples)
        if self.num_samples < 0:
            raise ValueError(f"RandomSampler: num_samples must be >= 0, got {num_samples}")
        if not self.replacement and self.num_samples > self.n:
            raise ValueError(
                f"RandomSampler: num_samples={self.num_samples} is more than the {self.n} samples of the data set "
                "(pass replacement=True to draw with replacement)"
            )
        if self.replacement and self.n == 0 and self.num_samples > 0:
            raise ValueError("RandomSampler: cannot draw with replacement from an empty data set")
        self.seed = _draw_seed() if seed is None else int(seed)
        self.epoch = 0
        self._advance = False  # whether the next iteration moves to the next epoch first

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next iteration (and count on from it)."""
        self.epoch = int(epoch)
        self._advance = False

    def indices(self, epoch: Optional[int] = None) -> np.ndarray:
        """The indices of ``epoch`` (default: the next iteration's), shape ``(num_samples,)``, int64."""
        if epoch is None:
            epoch = self.epoch + 1 if self._advance else self.epoch
        rng = np.random.default_rng([self.seed, int(epoch)])
        if self.replacement:
            return rng.integers(0, self.n, size=self.num_samples, dtype=np.int64)
        return rng.permutation(self.n)[: self.num_samples].astype(np.int64)

    def _next_epoch_indices(self) -> np.ndarray:
        if self._advance:
            self.epoch += 1
        self._advance = True
        return self.indices(self.epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self._next_epoch_indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> Dict[str, Any]:
        """``{"seed", "epoch", "advance"}``: loading it makes the next iteration repeat the order it had."""
        return {"seed": self.seed, "epoch": self.epoch, "advance": self._advance}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.seed = int(state.get("seed", self.seed))
        self.epoch = int(state["epoch"])
        self._advance = bool(state.get("advance", False))


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``, as ``torch.utils.data.BatchSampler``.

    Args:
        sampler: Any iterable of indices (a :class:`Sampler`, a list, a range).
        batch_size: Indices per batch (>= 1).
        drop_last: Drop the last batch when it is smaller than ``batch_size``.

    ``set_epoch``, ``state_dict`` and ``load_state_dict`` go to ``sampler``
    where it has them.

    Examples:
        >>> from autograd.data import BatchSampler, SequentialSampler
        >>> list(BatchSampler(SequentialSampler(10), batch_size=4, drop_last=False))
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        >>> list(BatchSampler(range(10), batch_size=4, drop_last=True))
        [[0, 1, 2, 3], [4, 5, 6, 7]]
        >>> len(BatchSampler(range(10), batch_size=4)), len(BatchSampler(range(10), batch_size=4, drop_last=True))
        (3, 2)
    """

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def index_batches(self) -> Iterator[Any]:
        """The batches of the next iteration: int64 arrays where the sampler can give its indices at once.

        Slicing one array is much cheaper than building lists index by index; the
        loader uses this, ``for batch in batch_sampler`` yields lists of ints.
        """
        get = getattr(self.sampler, "_next_epoch_indices", None) or getattr(self.sampler, "indices", None)
        if get is None:
            yield from iter(self)
            return
        order = get()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]

    def __iter__(self) -> Iterator[List[Any]]:
        batch: List[Any] = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> Dict[str, Any]:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)


class DistributedSampler(Sampler):
    """This rank's indices of a data set of ``n`` samples for the current epoch.

    Every rank draws the same permutation (from ``(seed, epoch)``; call
    :meth:`set_epoch` at the start of each epoch, directly or through
    ``DataLoader.set_epoch``), makes its length a multiple of the world size,
    and takes every ``num_replicas``-th index starting at its rank. So the
    shards are disjoint and of equal length (every rank runs the same number
    of steps), and together they cover:

    * ``drop_last=False`` (default): every sample, the permutation padded by
      repeating its first ``(-n) % num_replicas`` indices (those few samples
      are seen twice in the epoch);
    * ``drop_last=True``: the permutation without its last
      ``n % num_replicas`` indices (a different few each epoch when shuffled).

    When ``n`` is a multiple of the world size both cover every sample exactly
    once per epoch. Unlike :class:`RandomSampler`, iterating does not move to
    the next epoch by itself (as in PyTorch).

    Args:
        data: The data set (anything with ``len``) or its size.
        num_replicas: Number of ranks (default: the launcher's world size, read
            from its environment variables by :func:`launch_rank_and_size`).
        rank: This rank (default: the launcher's rank).
        shuffle: Permute the indices each epoch (False: in order).
        seed: Seed of the permutation; must be the same on every rank.
        drop_last: Drop the tail instead of padding it (see above).

    Examples:
        In order, 10 samples over 4 ranks: padded with samples 0 and 1, or without 8 and 9 with ``drop_last``.

        >>> import numpy as np
        >>> from autograd.data import ArrayDataset, DataLoader, DistributedSampler
        >>> [DistributedSampler(10, num_replicas=4, rank=r, shuffle=False).indices().tolist() for r in range(4)]
        [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
        >>> [DistributedSampler(10, 4, r, shuffle=False, drop_last=True).indices().tolist() for r in range(4)]
        [[0, 4], [1, 5], [2, 6], [3, 7]]

        Shuffled: rank 1 of 2 (``num_replicas`` and ``rank`` default to the launcher's), epoch by epoch.

        >>> sampler = DistributedSampler(10, num_replicas=2, rank=1, seed=0)
        >>> sampler.set_epoch(1)  # at the start of every epoch, on every rank
        >>> sampler.indices()  # shape (len(sampler),), int64
        array([1, 8, 6, 4, 5])
        >>> loader = DataLoader(ArrayDataset(np.arange(10)), batch_size=2, sampler=sampler)
        >>> loader.set_epoch(1)  # passed on to the sampler
        >>> [y.tolist() for (y,) in loader]
        [[1, 8], [6, 4], [5]]
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
        self.n = _size(data, "DistributedSampler")
        if num_replicas is None or rank is None:
            launch_rank, launch_size = launch_rank_and_size()
            num_replicas = launch_size if num_replicas is None else num_replicas
            rank = launch_rank if rank is None else rank
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
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

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the epoch and the seed (the world size may differ: the shards are then recut)."""
        self.epoch = int(state["epoch"])
        self.seed = int(state.get("seed", self.seed))
