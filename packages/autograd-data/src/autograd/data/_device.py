"""Batches onto the active backend: NumPy as they are, MLX with one copy, CuPy through pinned memory on a side stream.

A transfer has two halves: ``start(batch)`` begins moving a host batch and
``finish(started)`` returns it as backend arrays. On CuPy the loader starts
batch ``i + 1`` before it hands out batch ``i``, so the host-to-device copy
runs on its own stream while the model computes (``ahead`` is True only
there).

The CuPy path, step by step (written against the module passed in, so the
tests drive it with a fake that records the calls):

1. the compute stream records an event and the copy stream waits for it: the
   device buffers below come from the compute stream's memory pool and may
   reuse memory its queued kernels still read;
2. each array is copied into a page-locked (pinned) host buffer, the only kind
   of host memory the GPU copies from asynchronously;
3. a device array is allocated (on the compute stream's pool, so freeing it
   later is ordered on that stream) and filled with ``set(..., stream=copy)``;
4. the copy stream records ``done``; ``finish`` makes the compute stream wait
   for it (the host does not wait) and a pinned buffer is reused only after
   its ``done`` has passed.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Deque, Dict, List, Tuple

import numpy as np

__all__ = ["make_transfer", "map_arrays"]


def map_arrays(fn: Callable[[np.ndarray], Any], obj: Any) -> Any:
    """``obj`` with every NumPy array (and numeric NumPy scalar) replaced by ``fn(array)``, structure kept."""
    if isinstance(obj, np.ndarray):
        return fn(obj) if obj.dtype.kind in "biufc" else obj
    if isinstance(obj, np.generic):
        return fn(np.asarray(obj)) if obj.dtype.kind in "biufc" else obj
    if isinstance(obj, dict):
        return {k: map_arrays(fn, v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_arrays(fn, v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_arrays(fn, v) for v in obj)
    return obj


class Transfer:
    """NumPy backend: batches are used as they are (no copy)."""

    ahead = False

    def start(self, batch: Any) -> Any:
        return batch

    def finish(self, started: Any) -> Any:
        return started


class AsarrayTransfer(Transfer):
    """MLX: one copy of each array into the backend (``autograd.backend.asarray``, dtypes kept)."""

    def __init__(self, asarray: Callable[[Any], Any]) -> None:
        self.asarray = asarray

    def start(self, batch: Any) -> Any:
        return map_arrays(self.asarray, batch)


class CupyTransfer(Transfer):
    """CuPy: pinned staging buffers and an asynchronous copy on a side stream (see the module docstring)."""

    ahead = True
    KEEP = 4  # pinned buffers kept per size: batches in flight plus a few

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.pinned: Dict[int, Deque[Tuple[Any, Any]]] = collections.defaultdict(collections.deque)

    def _buffer(self, nbytes: int) -> Any:
        free = self.pinned[nbytes]
        for k, (mem, done) in enumerate(free):
            if done.done:  # its last copy has finished: reuse without waiting
                del free[k]
                return mem
        if len(free) >= self.KEEP:
            mem, done = free.popleft()
            done.synchronize()  # its last copy must have finished before it is overwritten
            return mem
        return self.cp.cuda.alloc_pinned_memory(max(nbytes, 1))

    def start(self, batch: Any) -> Any:
        cp = self.cp
        compute = cp.cuda.get_current_stream()
        self.stream.wait_event(compute.record())
        used: List[Tuple[int, Any]] = []

        def copy(x: np.ndarray) -> Any:
            x = np.asarray(x, order="C")  # (np.ascontiguousarray would make a 0-d label 1-d)
            mem = self._buffer(x.nbytes)
            host = np.frombuffer(mem, dtype=x.dtype, count=x.size).reshape(x.shape)
            host[...] = x
            dev = cp.empty(x.shape, dtype=x.dtype)
            dev.set(host, stream=self.stream)
            used.append((x.nbytes, mem))
            return dev

        out = map_arrays(copy, batch)
        done = self.stream.record()
        for nbytes, mem in used:
            free = self.pinned[nbytes]
            free.append((mem, done))
            while len(free) > self.KEEP:  # a buffer is let go only once its copy is over (CuPy keeps no reference)
                free.popleft()[1].synchronize()
        return out, done

    def finish(self, started: Any) -> Any:
        out, done = started
        self.cp.cuda.get_current_stream().wait_event(done)
        return out


def make_transfer() -> Transfer:
    """The transfer of the active backend (imports ``autograd.backend`` here, in the main process only)."""
    from autograd import backend

    if backend.BACKEND == "cupy":
        return CupyTransfer(backend.lib)
    if backend.BACKEND == "mlx":
        return AsarrayTransfer(backend.asarray)
    return Transfer()
