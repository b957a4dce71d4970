"""What a DataLoader worker process runs, the fetching both it and the main process do, and the result pipe.

This module imports only the standard library, NumPy and this package's
sampler-free helpers: a worker never imports ``autograd.backend`` (so it never
loads MLX or initialises CUDA), which keeps spawned workers quick to start and
safe next to a GPU process.

Wire format of a worker's result pipe: one pickled header ``(message,
buffer sizes)`` sent as a ``Connection`` message, then the raw bytes of each
out-of-band buffer (pickle protocol 5: NumPy arrays are not copied into the
pickle) written straight to the pipe and read straight into fresh arrays. A
batch crosses with one copy on each side, the kernel's.
"""

from __future__ import annotations

import mmap
import os
import pickle
import queue
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from autograd.data._random import global_rng_scope, mix, seed_globals
from autograd.data.dataset import ArrayDataset, TokenDataset

__all__ = ["WorkerInfo", "get_worker_info"]

#: How often a waiting worker checks that the main process is still alive (seconds).
PARENT_CHECK_S = 1.0
#: Returned by Fetcher.iterable_batch when the worker's stream has no further batch.
END = ("__autograd_data_end__",)


@dataclass(frozen=True)
class WorkerInfo:
    """What :func:`get_worker_info` returns inside a worker process.

    Attributes:
        id: This worker, ``0 .. num_workers - 1``.
        num_workers: How many workers the loader runs.
        seed: This worker's seed for the epoch, derived from the loader's
            ``(seed, epoch, id)``; Python's ``random`` and NumPy's global
            generator were seeded from it when the epoch started.
        epoch: The loader's epoch.
        dataset: This worker's copy of the data set.
    """

    id: int
    num_workers: int
    seed: int
    epoch: int
    dataset: Any


_INFO: Optional[WorkerInfo] = None


def get_worker_info() -> Optional[WorkerInfo]:
    """In a DataLoader worker process, its :class:`WorkerInfo`; ``None`` in the main process.

    An :class:`~autograd.data.IterableDataset` uses it to split its stream
    between workers (``info.id`` of ``info.num_workers``).

    Examples:
        >>> from autograd.data import DataLoader, get_worker_info
        >>> print(get_worker_info())  # the main process
        None
        >>> class WhoLoads:
        ...     def __len__(self):
        ...         return 4
        ...     def __getitem__(self, i):
        ...         return get_worker_info().id
        >>> loader = DataLoader(WhoLoads(), batch_size=2, num_workers=2, multiprocessing_context="fork")
        >>> [batch.tolist() for batch in loader]  # batch b comes from worker b % num_workers
        [[0, 0], [1, 1]]
    """
    return _INFO


def _note_where(exc: BaseException, where: dict) -> None:
    # The first site to see an exception records where it happened; the process that reports it words it.
    if not hasattr(exc, "_autograd_data_where"):
        try:
            exc._autograd_data_where = where  # type: ignore[attr-defined]
        except AttributeError:  # exceptions with __slots__
            pass


def where_of(exc: BaseException) -> dict:
    return getattr(exc, "_autograd_data_where", {})


def describe(where: dict) -> str:
    """``"dataset[17] (batch 3 of epoch 0)"`` and the like, from what _note_where recorded."""
    batch = f"batch {where['batch']} of epoch {where['epoch']}" if "batch" in where else "the epoch's start"
    stage = where.get("stage")
    if stage == "sample":
        return f"dataset[{where['index']!r}] while loading {batch}"
    if stage == "collate":
        return f"collate_fn while collating {batch} (indices {where.get('indices')})"
    if stage == "get_batch":
        return f"dataset.get_batch(...) while loading {batch} (indices {where.get('indices')})"
    if stage == "iterate":
        return f"the iterable dataset's iterator while producing sample {where.get('sample')} of {batch}"
    if stage == "worker_init_fn":
        return "worker_init_fn"
    if stage == "set_epoch":
        return f"dataset.set_epoch({where.get('epoch')})"
    if stage == "iter":
        return "iter(dataset)"
    if stage == "unpickle":
        return "unpickling the data set, collate_fn and worker_init_fn in the worker (spawn start method)"
    if stage == "send":
        return f"pickling {batch} to send it to the main process"
    return batch


def _short(indices: Any) -> str:
    items = indices.tolist() if isinstance(indices, np.ndarray) else list(indices)
    return str(items) if len(items) <= 8 else f"[{', '.join(map(str, items[:8]))}, ... ({len(items)} in all)]"


class Fetcher:
    """Makes batches from indices (map-style) or from an iterator (iterable data sets), in any process.

    Args:
        dataset: The data set.
        collate_fn: The loader's collate_fn, or None for the default collation.
        batch_size: Samples per batch; None disables batching (one sample at a time, not collated).
        drop_last: Iterable data sets: drop a last batch smaller than ``batch_size``.
        iterable: Whether ``dataset`` is an iterable data set.
        restore_rng: Put the caller's global generator states back after each batch (the main process).
    """

    def __init__(
        self,
        dataset: Any,
        collate_fn: Optional[Callable[[List[Any]], Any]],
        batch_size: Optional[int],
        drop_last: bool,
        iterable: bool,
        restore_rng: bool,
    ) -> None:
        from autograd.data.collate import default_collate, default_convert

        self.dataset = dataset
        self.batched = batch_size is not None
        self.collate = collate_fn or (default_collate if self.batched else default_convert)
        self.fast = collate_fn is None and self.batched and callable(getattr(dataset, "get_batch", None))
        # The library's own get_batch methods draw no random numbers: seeding around them would only cost time
        # (about 60 us a batch, mostly saving and restoring NumPy's generator state in the main process).
        self.rng_free = self.fast and getattr(type(dataset), "get_batch", None) in _RNG_FREE
        self.many = self.batched and callable(getattr(dataset, "__getitems__", None))
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.iterable = iterable
        self.restore_rng = restore_rng
        self._iter: Optional[Iterator[Any]] = None
        self._count = 0  # batches this process produced from its iterator this epoch

    def start_epoch(self, epoch: int) -> None:
        """Tell the data set its epoch; iterable data sets start a new pass."""
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            try:
                set_epoch(epoch)
            except BaseException as exc:
                _note_where(exc, {"stage": "set_epoch", "epoch": epoch})
                raise
        if self.iterable:
            try:
                self._iter = iter(self.dataset)
            except BaseException as exc:
                _note_where(exc, {"stage": "iter"})
                raise
            self._count = 0

    def _samples(self, indices: Any, where: dict) -> List[Any]:
        if self.many:
            return list(self.dataset.__getitems__(_index_list(indices)))
        samples = []
        for i in _index_list(indices):
            try:
                samples.append(self.dataset[i])
            except BaseException as exc:
                _note_where(exc, {**where, "stage": "sample", "index": i})
                raise
        return samples

    def map_batch(self, seed: int, epoch: int, b: int, indices: Any) -> Any:
        """Batch ``b`` of ``epoch`` from ``indices`` (one index when batching is off)."""
        where = {"batch": b, "epoch": epoch}
        if self.rng_free:
            try:
                return self.dataset.get_batch(indices)
            except BaseException as exc:
                self._samples(indices, where)  # find the sample that fails on its own, so the error can name it
                _note_where(exc, {**where, "stage": "get_batch", "indices": _short(indices)})
                raise
        with global_rng_scope(mix(seed, epoch, b), self.restore_rng):
            if not self.batched:
                try:
                    return self.collate(self.dataset[indices])
                except BaseException as exc:
                    _note_where(exc, {**where, "stage": "sample", "index": indices})
                    raise
            if self.fast:
                try:
                    return self.dataset.get_batch(indices)
                except BaseException as exc:
                    # Find the sample that fails on its own, so the error can name it.
                    self._samples(indices, where)
                    _note_where(exc, {**where, "stage": "get_batch", "indices": _short(indices)})
                    raise
            samples = self._samples(indices, where)
            try:
                return self.collate(samples)
            except BaseException as exc:
                _note_where(exc, {**where, "stage": "collate", "indices": _short(indices)})
                raise

    def iterable_batch(self, seed: int, epoch: int, worker: int, b: int) -> Any:
        """The next batch of this process's iterator, or ``END``; ``b`` is the loader's batch number."""
        assert self._iter is not None, "start_epoch() was not called"
        where = {"batch": b, "epoch": epoch}
        with global_rng_scope(mix(seed, epoch, worker, self._count), self.restore_rng):
            self._count += 1
            want = self.batch_size if self.batched else 1
            samples: List[Any] = []
            while len(samples) < want:
                try:
                    samples.append(next(self._iter))
                except StopIteration:
                    break
                except BaseException as exc:
                    _note_where(exc, {**where, "stage": "iterate", "sample": len(samples)})
                    raise
            if not samples or (self.batched and self.drop_last and len(samples) < want):
                return END
            if not self.batched:
                return self.collate(samples[0])
            try:
                return self.collate(samples)
            except BaseException as exc:
                _note_where(exc, {**where, "stage": "collate", "indices": f"{len(samples)} streamed samples"})
                raise


_RNG_FREE = (ArrayDataset.get_batch, TokenDataset.get_batch)


def _index_list(indices: Any) -> List[Any]:
    # Python ints for __getitem__: a user's data set may index a list or a dict with them.
    return indices.tolist() if isinstance(indices, np.ndarray) else list(indices)


# --- exceptions across processes ----------------------------------------------------------------------------


def pack_exception(exc: BaseException) -> dict:
    """A worker's exception as data the main process can rebuild, with its traceback as text."""
    blob: Optional[bytes]
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)  # exceptions whose __init__ takes other arguments than .args fail here
    except Exception:  # noqa: BLE001 - any failure means "send it as text"
        blob = None
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "pickled": blob,
        "traceback": "".join(traceback.format_exception(exc)),
        "where": where_of(exc),
    }


class WorkerError(RuntimeError):
    """An exception from a worker process that could not be rebuilt as its own type (its type is in the message)."""


def unpack_exception(info: dict, worker: int, pid: Optional[int]) -> BaseException:
    """The worker's exception, of its own type where it unpickles, with notes naming the worker and the sample."""
    exc: Optional[BaseException] = None
    if info.get("pickled"):
        try:
            exc = pickle.loads(info["pickled"])
        except Exception:  # noqa: BLE001 - fall back to the text
            exc = None
    if not isinstance(exc, BaseException):
        exc = WorkerError(f"{info['type']}: {info['message']}")
    who = f"DataLoader worker {worker}" + (f" (pid {pid})" if pid else "")
    exc.add_note(f"raised in {who} by {describe(info.get('where', {}))}")
    exc.add_note(f"{who}'s traceback:\n{info['traceback'].rstrip()}")
    return exc


# --- the result pipe ----------------------------------------------------------------------------------------


def send(conn: Any, message: Any) -> None:
    """Send ``message`` over ``conn`` (the writing end of a worker's result pipe)."""
    buffers: List[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    conn.send_bytes(pickle.dumps((head, [r.nbytes for r in raws]), protocol=5))
    fd = conn.fileno() if _RAW_PIPES else None
    for raw in raws:
        if fd is None:
            conn.send_bytes(raw)
            continue
        view = raw.cast("B")
        while len(view):
            view = view[os.write(fd, view) :]


def recv(conn: Any) -> Any:
    """Receive one message sent by :func:`send` (raises EOFError when the writer is gone)."""
    head, sizes = pickle.loads(conn.recv_bytes())
    buffers = []
    fd = conn.fileno() if _RAW_PIPES else None
    for n in sizes:
        buf = np.empty(n, dtype=np.uint8)
        if fd is None:
            conn.recv_bytes_into(buf)
        else:
            view = memoryview(buf)
            while len(view):
                got = os.readv(fd, [view])
                if got == 0:
                    raise EOFError("the worker's pipe closed in the middle of a batch")
                view = view[got:]
        buffers.append(buf)
    return pickle.loads(head, buffers=buffers)


# Raw reads and writes on the pipe's file descriptor need os.readv (POSIX); elsewhere Connection messages carry
# the buffers (one more copy on the receiving side).
_RAW_PIPES = hasattr(os, "readv") and sys.platform != "win32"


def widen_pipe(conn: Any) -> None:
    """Ask Linux for a 1 MiB pipe buffer (default 64 KiB): fewer wake-ups per batch. Best effort."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass


# --- memory maps across processes ---------------------------------------------------------------------------


def _reopen_memmap(filename: str, dtype: str, shape: Tuple[int, ...], offset: int) -> np.ndarray:
    return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def _memmap_ref(a: np.ndarray) -> Optional[Tuple[str, str, Tuple[int, ...], int]]:
    """``(file, dtype, shape, byte offset)`` of a C-contiguous view of a file mapping, or None."""
    if a.size == 0 or not a.flags.c_contiguous:
        return None
    base: Any = a
    holder = None
    while base is not None and not isinstance(base, mmap.mmap):
        if isinstance(base, np.memmap) and base.filename and isinstance(base.base, mmap.mmap):
            holder = base
        base = getattr(base, "base", None)
    if holder is None or base is None:
        return None
    try:
        map_start = np.frombuffer(base, dtype=np.uint8).ctypes.data
    except (ValueError, TypeError):  # a closed mapping
        return None
    # np.memmap maps from the offset rounded down to the allocation granularity.
    file_start = holder.offset - holder.offset % mmap.ALLOCATIONGRANULARITY
    return (holder.filename, a.dtype.str, tuple(a.shape), file_start + (a.ctypes.data - map_start))


class _Pickler(pickle.Pickler):
    """Pickles memory-mapped arrays as (file, offset, shape), so a spawned worker maps the file instead of a copy."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            ref = _memmap_ref(obj)
            if ref is not None:
                return _reopen_memmap, ref
        return NotImplemented


def dumps_for_worker(obj: Any) -> bytes:
    import io

    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


# --- the worker process -------------------------------------------------------------------------------------


def worker_loop(
    worker: int,
    num_workers: int,
    payload: Any,
    tasks: Any,
    conn: Any,
    parent_pid: int,
    seed: int,
    inherited: Sequence[Any] = (),
) -> None:
    """The body of worker process ``worker``: read tasks, send batches (or exceptions), until told to stop.

    Tasks: ``("epoch", e, seed)`` starts epoch ``e`` (seeds the global
    generators from ``(seed, e, worker)``, calls ``worker_init_fn`` the first
    time, tells the data set); ``("batch", gen, b, indices)`` makes map-style batch ``b``;
    ``("next", gen, b)`` makes the next batch of this worker's stream;
    ``None`` ends the process. Replies: ``("batch", gen, b, data)``,
    ``("end", gen, b)``, ``("error", gen, b, packed exception)``.
    """
    global _INFO
    for c in inherited:  # read ends a forked child got by accident (see _Pool)
        c.close()
    # Ctrl-C reaches the whole process group: the main process handles it and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if isinstance(payload, bytes):
            payload = pickle.loads(payload)
        fetcher, worker_init_fn = payload
    except BaseException as exc:  # noqa: BLE001 - reported to the main process, which raises it
        _note_where(exc, {"stage": "unpickle"})
        _safe_send(conn, ("error", -1, -1, pack_exception(exc)))
        return
    initialized = False
    epoch = 0
    failed: Optional[BaseException] = None  # an error of the epoch's start, reported with the next task
    while True:
        try:
            task = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the main process died without stopping us
                return
            continue
        except (EOFError, OSError):
            return
        if task is None:
            return
        kind = task[0]
        if kind == "epoch":
            epoch, seed = task[1], task[2]
            worker_seed = mix(seed, epoch, worker)
            seed_globals(worker_seed)
            _INFO = WorkerInfo(worker, num_workers, worker_seed, epoch, fetcher.dataset)
            failed = None
            try:
                if not initialized and worker_init_fn is not None:
                    initialized = True
                    try:
                        worker_init_fn(worker)
                    except BaseException as exc:
                        _note_where(exc, {"stage": "worker_init_fn"})
                        raise
                fetcher.start_epoch(epoch)
            except BaseException as exc:  # noqa: BLE001 - reported with the next task
                failed = exc
            continue
        gen, b = task[1], task[2]
        try:
            if failed is not None:
                raise failed
            if kind == "batch":
                reply: Any = ("batch", gen, b, fetcher.map_batch(seed, epoch, b, task[3]))
            else:
                data = fetcher.iterable_batch(seed, epoch, worker, b)
                reply = ("end", gen, b) if data is END else ("batch", gen, b, data)
        except BaseException as exc:  # noqa: BLE001 - the main process re-raises it
            reply = ("error", gen, b, pack_exception(exc))
        if not _safe_send(conn, reply):
            return


def _safe_send(conn: Any, message: Any) -> bool:
    """Send; False when the main process has closed the pipe (it is shutting the workers down)."""
    try:
        send(conn, message)
    except (BrokenPipeError, EOFError, OSError):
        return False
    except BaseException as exc:  # noqa: BLE001 - e.g. a batch that cannot be pickled
        _note_where(exc, {"stage": "send"})
        try:
            send(conn, ("error", message[1], message[2], pack_exception(exc)))
        except (BrokenPipeError, EOFError, OSError):
            return False
    return True
