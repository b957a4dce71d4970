"""Data sets: the map-style protocol, iterable data sets, arrays, and token windows over a memory-mapped file.

A **map-style** data set is anything with ``__len__`` and ``__getitem__(i)``
for ``i`` in ``0 .. len - 1`` (a list works), as in PyTorch. Two optional
methods make loading faster, and the :class:`~autograd.data.DataLoader` uses
them when present:

* ``get_batch(indices)``: the whole batch at once, equal to what the default
  collation makes of ``[self[i] for i in indices]`` (one fancy-indexing read
  instead of ``batch_size`` calls; :class:`ArrayDataset` and
  :class:`TokenDataset` have it). It is used only with the default
  ``collate_fn``.
* ``__getitems__(indices)``: a list of samples (PyTorch's name), then collated.

A data set with ``set_epoch(epoch)`` is told the loader's epoch before each
epoch, in the main process and in every worker (:class:`TokenDataset` draws
new random windows each epoch that way).

An **iterable** data set subclasses :class:`IterableDataset` and yields
samples from ``__iter__``; with worker processes each worker iterates its own
copy, so split the stream with :func:`~autograd.data.get_worker_info`.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from autograd.data._random import mix_array

__all__ = ["Dataset", "IterableDataset", "ArrayDataset", "TokenDataset", "token_file_dtype"]

PathLike = Union[str, "os.PathLike[str]"]


class Dataset:
    """Base class of map-style data sets (optional: any object with ``__len__`` and ``__getitem__`` will do).

    Examples:
        >>> from autograd.data import DataLoader, Dataset
        >>> class Squares(Dataset):
        ...     def __len__(self):
        ...         return 5
        ...     def __getitem__(self, i):
        ...         return i * i
        >>> next(iter(DataLoader(Squares(), batch_size=5)))  # the ints collated into one int64 array, shape (5,)
        array([ 0,  1,  4,  9, 16])
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


class IterableDataset:
    """Base class of iterable data sets: subclasses implement ``__iter__`` (and may implement ``__len__``).

    With ``num_workers > 0`` every worker iterates its own copy of the data set,
    so a data set that does not split its stream by
    ``get_worker_info().id`` yields every sample once per worker (as in
    PyTorch).

    Examples:
        >>> from autograd.data import DataLoader, IterableDataset, get_worker_info
        >>> class Count(IterableDataset):
        ...     def __iter__(self):  # each worker takes every num_workers-th number; all of them without workers
        ...         info = get_worker_info()
        ...         start, step = (0, 1) if info is None else (info.id, info.num_workers)
        ...         return iter(range(start, 7, step))
        >>> [batch.tolist() for batch in DataLoader(Count(), batch_size=3)]
        [[0, 1, 2], [3, 4, 5], [6]]
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


def _foreign_array(a: Any) -> Optional[str]:
    """Why ``a`` is not a host array this package can hold, or None (found without importing those libraries)."""
    module = type(a).__module__.split(".")[0]
    if module in ("cupy", "mlx"):
        return f"a {module} array: data sets hold host (NumPy) arrays; convert with autograd.backend.to_numpy(x)"
    if module == "autograd" and type(a).__name__ == "Tensor":
        return "an autograd Tensor: data sets hold host (NumPy) arrays; pass tensor.numpy()"
    if module == "torch":
        return "a torch tensor: pass tensor.numpy()"
    return None


class ArrayDataset(Dataset):
    """Samples ``(a[i], b[i], ...)`` of NumPy arrays (or memory maps) with the same first dimension.

    ``ArrayDataset(x, y)[i]`` is ``(x[i], y[i])``; a batch (default collation)
    is ``[x[idx], y[idx]]``, read with one fancy-indexing read per array.
    Memory maps stay memory maps (nothing is read until a sample is asked for)
    and worker processes reopen them from their file instead of receiving a
    copy.

    Args:
        *arrays: Arrays of shapes ``(N, ...)``; lists and other array-likes are
            converted with ``np.asarray``.

    Raises:
        ValueError: no array, a 0-d array, or first dimensions that differ
            (the message lists every shape).
        TypeError: a GPU/MLX array or a Tensor (convert it to NumPy first).

    Examples:
        >>> import numpy as np
        >>> from autograd.data import ArrayDataset
        >>> ds = ArrayDataset(np.zeros((100, 3, 8, 8), dtype=np.float32), np.arange(100))  # images, labels
        >>> len(ds)
        100
        >>> image, label = ds[7]
        >>> image.shape, int(label)
        ((3, 8, 8), 7)
        >>> [a.shape for a in ds.get_batch([0, 5, 9])]  # what DataLoader(ds, batch_size=3) yields: [X, Y]
        [(3, 3, 8, 8), (3,)]
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        held = []
        for k, a in enumerate(arrays):
            why = _foreign_array(a)
            if why:
                raise TypeError(f"ArrayDataset: array {k} is {why}")
            a = a if isinstance(a, np.ndarray) else np.asarray(a)
            if a.ndim == 0:
                raise ValueError(f"ArrayDataset: array {k} is 0-dimensional; every array needs a first dimension N")
            held.append(a)
        if len({a.shape[0] for a in held}) > 1:
            shapes = ", ".join(f"array {k}: {a.shape}" for k, a in enumerate(held))
            raise ValueError(f"ArrayDataset: the arrays' first dimensions differ ({shapes})")
        self.arrays: Tuple[np.ndarray, ...] = tuple(held)

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: int) -> Tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: Sequence[int]) -> List[np.ndarray]:
        """``[a[indices] for a in arrays]``: each of shape ``(len(indices), ...)``, the arrays' dtypes."""
        idx = np.asarray(indices, dtype=np.int64)
        return [np.asarray(a[idx]) for a in self.arrays]


# --- token files -----------------------------------------------------------------------------------------


def token_file_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id of a ``vocab_size`` vocabulary fits (at most 65536 ids), else ``uint32``.

    Examples:
        >>> import numpy as np
        >>> from autograd.data import token_file_dtype
        >>> token_file_dtype(50257)  # GPT-2's vocabulary: 2 bytes a token
        dtype('uint16')
        >>> token_file_dtype(100_000)
        dtype('uint32')
        >>> np.asarray([15496, 995], dtype=token_file_dtype(50257)).nbytes
        4
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    if vocab_size <= 2**16:
        return np.dtype(np.uint16)
    if vocab_size <= 2**32:
        return np.dtype(np.uint32)
    raise ValueError(f"vocab_size {vocab_size} does not fit uint32 token ids")


def _open_tokens(source: Any, dtype: Any) -> Tuple[np.ndarray, Optional[str]]:
    """(1-D integer token array, the path it was mapped from or None)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TokenDataset: no token file {path!r}")
        with open(path, "rb") as f:
            is_npy = f.read(6) == b"\x93NUMPY"
        if is_npy:
            tokens = np.load(path, mmap_mode="r")
            if dtype is not None and np.dtype(dtype) != tokens.dtype:
                raise ValueError(f"TokenDataset: {path!r} holds {tokens.dtype} tokens, dtype={dtype!r} was given")
        else:
            if dtype is None:
                raise ValueError(
                    f"TokenDataset: {path!r} is a raw token file (not .npy), so its dtype is unknown: pass "
                    "dtype='uint16' or dtype='uint32' (python -m autograd.data.tokenize writes .npy files, which "
                    "carry it)"
                )
            dt = np.dtype(dtype)
            size = os.path.getsize(path)
            if size % dt.itemsize:
                raise ValueError(
                    f"TokenDataset: {path!r} has {size} bytes, not a multiple of {dt.itemsize} ({dt}): wrong dtype?"
                )
            tokens = np.memmap(path, dtype=dt, mode="r") if size else np.zeros(0, dtype=dt)
        return tokens, path
    why = _foreign_array(source)
    if why:
        raise TypeError(f"TokenDataset: the tokens are {why}")
    tokens = source if isinstance(source, np.ndarray) else np.asarray(source)
    if dtype is not None:
        tokens = tokens.astype(dtype, copy=False)
    return tokens, None


class TokenDataset(Dataset):
    """Windows of ``block_size`` tokens and their next-token targets, read from a memory-mapped token file.

    Sample ``i`` is ``(x, y)``: ``x = tokens[s : s + block_size]`` and
    ``y = tokens[s + 1 : s + block_size + 1]``, both of shape
    ``(block_size,)`` and dtype ``out_dtype``; a batch is ``[X, Y]`` of shape
    ``(B, block_size)`` each. Only the windows asked for are read: the file is
    memory-mapped, never loaded (worker processes map it again themselves).

    * ``random=False``: window ``i`` starts at ``i * stride`` (default stride
      ``block_size``: consecutive, non-overlapping windows), as many as fit.
    * ``random=True``: window ``i`` starts at a position drawn uniformly from
      ``0 .. n - block_size - 1`` by hashing ``(seed, epoch, i)``; there are
      ``num_samples`` windows (default: as many as non-overlapping windows
      fit). The same index gives the same window in any process; the loader's
      ``set_epoch`` (or :meth:`set_epoch`) draws a new set.

    Args:
        tokens: A token file (``.npy`` as written by
            :func:`autograd.data.tokenize.encode_file` or
            :class:`~autograd.data.tokenize.TokenWriter`, or a raw file with
            ``dtype``) or a 1-D integer array.
        block_size: Tokens per window (the context length).
        stride: Start-to-start distance of sequential windows (default
            ``block_size``).
        random: Random window starts instead of sequential ones.
        num_samples: Number of random windows (``random=True`` only).
        seed: Seed of the random starts.
        dtype: The file's token dtype (``uint16``/``uint32``); needed only for
            raw files.
        out_dtype: dtype of the windows returned (default int64, what
            embeddings and losses take).

    Raises:
        ValueError: a file too short for one window (it says how many tokens
            it has and needs), a non-integer or non-1-D token array, bad sizes.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from autograd.data import DataLoader, TokenDataset
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = os.path.join(folder.name, "train.npy")
        >>> np.save(path, np.arange(1000, dtype=np.uint16))  # 1000 token ids, as autograd.data.tokenize writes them
        >>> ds = TokenDataset(path, block_size=4)
        >>> len(ds), ds[1]  # 249 windows; window 1 starts at token 4, its targets are shifted by one
        (249, (array([4, 5, 6, 7]), array([5, 6, 7, 8])))
        >>> x, y = next(iter(DataLoader(ds, batch_size=8, shuffle=True, seed=0)))
        >>> x.shape, y.shape, x.dtype
        ((8, 4), (8, 4), dtype('int64'))
        >>> len(TokenDataset(np.arange(1000), block_size=64, random=True, seed=0))  # random windows, from an array
        15
        >>> del ds; folder.cleanup()
    """

    def __init__(
        self,
        tokens: Union[PathLike, np.ndarray],
        block_size: int,
        *,
        stride: Optional[int] = None,
        random: bool = False,
        num_samples: Optional[int] = None,
        seed: int = 0,
        dtype: Any = None,
        out_dtype: Any = np.int64,
    ) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"TokenDataset: block_size must be a positive int, got {block_size!r}")
        self.block_size = int(block_size)
        self._tokens, self.path = _open_tokens(tokens, dtype)
        what = repr(self.path) if self.path else "the token array"
        if self._tokens.ndim != 1:
            raise ValueError(f"TokenDataset: {what} must be 1-D, got shape {self._tokens.shape}")
        if self._tokens.dtype.kind not in "iu":
            raise ValueError(f"TokenDataset: {what} must hold integer token ids, got dtype {self._tokens.dtype}")
        n = int(self._tokens.shape[0])
        if n < self.block_size + 1:
            raise ValueError(
                f"TokenDataset: {what} has {n} tokens; a window of block_size={self.block_size} and its targets "
                f"need at least {self.block_size + 1}"
            )
        self.num_tokens = n
        self._starts = n - self.block_size  # window starts 0 .. n - block_size - 1
        self.random = bool(random)
        if stride is not None and self.random:
            raise ValueError("TokenDataset: stride applies to sequential windows; random=True draws the starts")
        if num_samples is not None and not self.random:
            raise ValueError("TokenDataset: num_samples applies to random=True; sequential windows are as many as fit")
        self.stride = self.block_size if stride is None else int(stride)
        if self.stride < 1:
            raise ValueError(f"TokenDataset: stride must be >= 1, got {stride}")
        if self.random:
            self._len = (n - 1) // self.block_size if num_samples is None else int(num_samples)
            if self._len < 0:
                raise ValueError(f"TokenDataset: num_samples must be >= 0, got {num_samples}")
        else:
            self._len = (self._starts - 1) // self.stride + 1
        self.seed = int(seed)
        self.epoch = 0
        self.out_dtype = np.dtype(out_dtype)
        self._span = np.arange(self.block_size + 1, dtype=np.int64)

    @property
    def tokens(self) -> np.ndarray:
        """The whole token sequence, shape ``(num_tokens,)`` (a memory map for files: nothing is read)."""
        return self._tokens

    def set_epoch(self, epoch: int) -> None:
        """Random windows: draw the set of ``epoch`` (sequential windows do not depend on it)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    def starts(self, indices: Sequence[int]) -> np.ndarray:
        """The first token of each window in ``indices``, shape ``(len(indices),)``, int64.

        Raises:
            IndexError: an index outside ``-len .. len - 1``, named.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size:
            bad = (idx < -self._len) | (idx >= self._len)
            if bad.any():
                raise IndexError(
                    f"TokenDataset: index {int(idx[bad][0])} is out of range for {self._len} windows "
                    f"(block_size={self.block_size}, {self.num_tokens} tokens)"
                )
        idx = np.where(idx < 0, idx + self._len, idx)
        if not self.random:
            return idx * self.stride
        return (mix_array((self.seed, self.epoch), idx) % np.uint64(self._starts)).astype(np.int64)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        s = int(self.starts([index])[0])
        window = np.asarray(self._tokens[s : s + self.block_size + 1]).astype(self.out_dtype)
        return window[:-1], window[1:]

    def get_batch(self, indices: Sequence[int]) -> List[np.ndarray]:
        """``[X, Y]``, each ``(len(indices), block_size)`` of ``out_dtype``: one read of every window."""
        rows = self.starts(indices)[:, None] + self._span  # (B, block_size + 1) token positions
        windows = np.asarray(self._tokens[rows]).astype(self.out_dtype, copy=False)
        return [np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_tokens"] = None  # a worker maps the file again rather than receiving its contents
            state["_file_dtype"] = self._tokens.dtype.str
        return state

    def __setstate__(self, state: dict) -> None:
        dtype = state.pop("_file_dtype", None)
        self.__dict__.update(state)
        if self._tokens is None:
            self._tokens, _ = _open_tokens(self.path, dtype)
