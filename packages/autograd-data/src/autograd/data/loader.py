"""DataLoader: batches from a data set, in order, optionally made by worker processes, resumable mid-epoch.

Arguments mean what they mean in ``torch.utils.data.DataLoader``. What this
loader adds or fixes:

* **Backend arrays.** Batches come out as arrays of the active backend
  (``autograd.backend``): NumPy arrays as they are, MLX arrays with one copy,
  CuPy arrays copied through pinned memory on a side stream one batch ahead,
  so the copy overlaps the step.
* **Reproducible randomness.** Before each batch, Python's ``random`` and
  NumPy's global generator are seeded from ``(seed, epoch, batch)``, so a
  data set's random crops and flips are the same with 0 or 2 workers, in any
  process, and after a resume. In the main process (``num_workers=0``) the
  caller's generator states are put back afterwards: loading data neither
  uses nor disturbs the training loop's random numbers. Each worker is also
  seeded from ``(seed, epoch, worker id)`` when an epoch starts, before
  ``worker_init_fn``.
* **Exact resume.** :meth:`DataLoader.state_dict` after any number of
  batches, loaded into a new loader with the same arguments (in a new process
  too), makes it yield exactly the batches the first would have yielded
  next, then continue into the next epoch the same way. It holds the epoch,
  the number of batches delivered, the seed and the sampler's state at the
  epoch's start; it is JSON-serialisable.
* **Errors that say where.** An exception of ``__getitem__`` (in a worker or
  not) is re-raised with a note naming the sample index, the batch and the
  worker; a worker that dies (killed, out of memory) raises
  :class:`WorkerDiedError` at once, and ``timeout`` raises
  :class:`LoaderTimeoutError` instead of waiting forever.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
import weakref
from multiprocessing.connection import wait as wait_for
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from autograd.data import _worker
from autograd.data._worker import END, Fetcher
from autograd.data.dataset import IterableDataset
from autograd.data.sampler import BatchSampler, RandomSampler, SequentialSampler, _draw_seed

__all__ = ["DataLoader", "DataLoaderError", "WorkerDiedError", "LoaderTimeoutError"]

STATE_FORMAT = 1
#: How long workers get to stop by themselves at the end of an epoch before they are terminated (seconds). An
#: idle worker stops at once; one still loading a batch nobody will read gains nothing from finishing it.
SHUTDOWN_GRACE_S = 0.5


class DataLoaderError(RuntimeError):
    """The loader could not go on: a worker died or a wait ran out."""


class WorkerDiedError(DataLoaderError):
    """A worker process ended while the loader waited for its batch (killed, crashed, out of memory)."""


class LoaderTimeoutError(DataLoaderError, TimeoutError):
    """No batch arrived within the loader's ``timeout``."""


def _is_iterable_dataset(dataset: Any) -> bool:
    if isinstance(dataset, IterableDataset):
        return True
    return hasattr(dataset, "__iter__") and not hasattr(dataset, "__getitem__")


def _signal_name(code: Optional[int]) -> str:
    if code is None:
        return "is gone"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class _Pool:
    """The worker processes of one loader: a task queue each, a result pipe each, read in batch order."""

    def __init__(self, loader: "DataLoader") -> None:
        ctx = loader._context()
        self.size = loader.num_workers
        payload: Any = (loader._fetcher(restore_rng=False), loader.worker_init_fn)
        method = ctx.get_start_method()
        if method != "fork":
            # Pickled once here (not once per worker), memory maps as file references: see _worker._Pickler.
            try:
                payload = _worker.dumps_for_worker(payload)
            except Exception as exc:  # noqa: BLE001 - re-raised with what to change
                raise TypeError(
                    f"DataLoader: num_workers={self.size} with the {method!r} start method sends the dataset, "
                    f"collate_fn and worker_init_fn to each worker by pickling them, and that failed: "
                    f"{type(exc).__name__}: {exc}. Define them at module level (not inside a function, not as "
                    "lambdas), or use multiprocessing_context='fork' (Linux)"
                ) from exc
        self.tasks = [ctx.Queue() for _ in range(self.size)]
        self.conns: List[Any] = []
        self.procs: List[Any] = []
        self.pending = [0] * self.size  # tasks sent whose reply has not been read
        self._finalizer = weakref.finalize(self, _shutdown, self.procs, self.tasks, self.conns)
        try:
            self._start(ctx, method, payload, loader.seed)
        except BaseException:
            self.shutdown(grace=0.0)  # the workers already started
            raise
        self.epoch = -1

    def _start(self, ctx: Any, method: str, payload: Any, seed: int) -> None:
        for w in range(self.size):
            reader, writer = ctx.Pipe(duplex=False)
            _worker.widen_pipe(writer)
            # A forked child inherits every read end made so far, its own included: it closes them, so that its
            # writes fail (EPIPE) once the main process closes them, instead of blocking forever.
            inherited = self.conns + [reader] if method == "fork" else []
            proc = ctx.Process(
                target=_worker.worker_loop,
                args=(w, self.size, payload, self.tasks[w], writer, os.getpid(), seed, inherited),
                name=f"autograd-data-worker-{w}",
                daemon=True,
            )
            self.conns.append(reader)
            try:
                proc.start()
            finally:
                writer.close()  # the worker holds the writing end: its death closes the pipe
            self.procs.append(proc)

    @property
    def alive(self) -> bool:
        return self._finalizer.alive

    def start_epoch(self, epoch: int, seed: int, timeout: float) -> None:
        self.drain(timeout)
        for q in self.tasks:
            q.put(("epoch", epoch, seed))  # the seed too: load_state_dict may have changed it since the start
        self.epoch = epoch

    def send(self, w: int, task: Tuple[Any, ...]) -> None:
        self.tasks[w].put(task)
        self.pending[w] += 1

    def recv(self, w: int, timeout: float, waiting_for: str) -> Any:
        """The next reply of worker ``w``; raises WorkerDiedError or LoaderTimeoutError instead of waiting forever."""
        conn, proc = self.conns[w], self.procs[w]
        ready = wait_for([conn, proc.sentinel], timeout=timeout if timeout > 0 else None)
        if conn in ready:
            try:
                reply = _worker.recv(conn)
            except (EOFError, OSError):
                proc.join(0.5)
                raise self._died(w, waiting_for) from None
            self.pending[w] -= 1
            return reply
        if ready:
            proc.join(0.5)
            raise self._died(w, waiting_for)
        raise LoaderTimeoutError(
            f"DataLoader timed out: no batch from worker {w} (pid {proc.pid}) within timeout={timeout:g} s while "
            f"waiting for {waiting_for}. The worker is still alive: its dataset, collate_fn or worker_init_fn is "
            "slow or stuck (raise the timeout, or look at the worker with py-spy dump --pid)"
        )

    def _died(self, w: int, waiting_for: str) -> WorkerDiedError:
        proc = self.procs[w]
        return WorkerDiedError(
            f"DataLoader worker {w} (pid {proc.pid}) {_signal_name(proc.exitcode)} while the loader waited for "
            f"{waiting_for}"
        )

    def drain(self, timeout: float) -> None:
        """Read and drop the replies of an iteration that was abandoned (persistent workers)."""
        for w in range(self.size):
            while self.pending[w]:
                self.recv(w, timeout, "the replies of an abandoned iteration")

    def shutdown(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop the workers: ``grace`` seconds to finish what they are doing, then they are terminated."""
        found = self._finalizer.detach()
        if found is not None:
            _shutdown(*found[2], grace=grace)


def _shutdown(procs: List[Any], tasks: List[Any], conns: List[Any], grace: float = 0.0) -> None:
    for q in tasks:
        try:
            q.put(None)
        except (OSError, ValueError):
            pass
    # Closing the read ends first unblocks a worker stuck writing a batch nobody will read (it gets EPIPE).
    for c in conns:
        c.close()
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(1.0)
    for q in tasks:
        q.cancel_join_thread()  # never block on a feeder thread whose reader is gone
        q.close()


class DataLoader:
    """Batches of a data set, in order, with optional worker processes and exact mid-epoch resume.

    Args:
        dataset: A map-style data set (``__len__`` and ``__getitem__``) or an
            :class:`~autograd.data.IterableDataset`.
        batch_size: Samples per batch; ``None`` yields samples one at a time,
            not collated.
        shuffle: A new random order each epoch (a
            :class:`~autograd.data.RandomSampler` seeded with ``seed``).
        sampler: The order of the indices (excludes ``shuffle``).
        batch_sampler: Yields whole lists of indices (excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``).
        num_workers: Worker processes making batches (0: the main process).
        collate_fn: Turns a list of samples into a batch (default:
            :func:`~autograd.data.default_collate`).
        drop_last: Drop the last batch when it is smaller than ``batch_size``.
        seed: Seed of the shuffle and of the per-batch and per-worker seeds;
            ``None`` draws one from NumPy's global generator (so
            ``np.random.seed`` makes runs reproducible). Kept in the state.
        prefetch: Batches each worker prepares ahead (``prefetch *
            num_workers`` in flight), as PyTorch's ``prefetch_factor``.
        pin_memory: Kept for PyTorch's signature: on CuPy batches always go
            through pinned memory (that is what makes the copy asynchronous);
            NumPy and MLX have no device copy to pin for.
        worker_init_fn: Called as ``worker_init_fn(worker_id)`` in each worker
            once, after it was seeded and before its first sample.
        persistent_workers: Keep the workers between epochs (needs
            ``num_workers > 0``).
        timeout: Seconds to wait for a batch from the workers before raising
            :class:`LoaderTimeoutError` (0: wait as long as the workers live).
            The first batch's wait includes the workers' start-up (imports,
            with the ``spawn`` start method).
        multiprocessing_context: ``"fork"``, ``"spawn"``, ``"forkserver"`` or a
            context (default: the platform's default start method, as in
            PyTorch).

    Iterating yields batches in sampler order. Each ``iter(loader)`` is one
    epoch; the next ``iter`` moves to the next epoch unless
    :meth:`set_epoch` chose one. With workers, the data set,
    ``collate_fn`` and ``worker_init_fn`` must be picklable for the
    ``spawn`` and ``forkserver`` start methods (define them at module level),
    and a script that starts workers that way needs the usual
    ``if __name__ == "__main__":`` guard.

    Raises:
        ValueError: arguments that contradict each other or are out of range
            (the message says which).
        TypeError: a data set that is neither map-style nor iterable.

    Examples:
        >>> import numpy as np
        >>> from autograd.data import ArrayDataset, DataLoader
        >>> ds = ArrayDataset(np.random.randn(10, 3).astype(np.float32), np.arange(10))  # 10 samples (x, y)
        >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
        >>> [(x.shape, y.shape) for x, y in loader]  # one epoch: batches [X (B, 3), Y (B,)]
        [((4, 3), (4,)), ((4, 3), (4,)), ((2, 3), (2,))]
        >>> [y.tolist() for x, y in loader]  # the next epoch, in a new order
        [[9, 1, 3, 8], [7, 6, 0, 4], [2, 5]]
        >>> len(loader), len(DataLoader(ds, batch_size=4, drop_last=True))  # drop_last drops the batch of 2
        (3, 2)
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: Optional[int] = 1,
        shuffle: bool = False,
        sampler: Optional[Any] = None,
        batch_sampler: Optional[Any] = None,
        num_workers: int = 0,
        collate_fn: Optional[Callable[[List[Any]], Any]] = None,
        drop_last: bool = False,
        seed: Optional[int] = None,
        prefetch: int = 2,
        pin_memory: bool = False,
        worker_init_fn: Optional[Callable[[int], None]] = None,
        persistent_workers: bool = False,
        timeout: float = 0,
        *,
        multiprocessing_context: Union[None, str, Any] = None,
    ) -> None:
        self.dataset = dataset
        self._iterable = _is_iterable_dataset(dataset)
        if not self._iterable and not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader: the dataset must be map-style (__len__ and __getitem__) or iterable "
                f"(an IterableDataset with __iter__); {type(dataset).__name__} is neither"
            )
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch must be an int >= 1, got {prefetch!r}")
        if not timeout >= 0:
            raise ValueError(f"DataLoader: timeout must be >= 0 seconds, got {timeout!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers=True needs num_workers > 0")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"DataLoader: batch_size must be a positive int or None, got {batch_size!r}")
        if self._iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError(
                "DataLoader: an iterable dataset has no indices, so shuffle, sampler and batch_sampler do not apply "
                "(shuffle inside the dataset's __iter__)"
            )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last "
                    "(it decides the batches itself)"
                )
            batch_size = None if batch_size is None else 1
        elif sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (the sampler sets the order)")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: drop_last needs a batch_size (batch_size=None yields single samples)")
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = bool(drop_last)
        self.seed = _draw_seed() if seed is None else int(seed)
        self.prefetch = prefetch
        self.pin_memory = bool(pin_memory)
        self.worker_init_fn = worker_init_fn
        self.persistent_workers = bool(persistent_workers)
        self.timeout = float(timeout)
        self.multiprocessing_context = multiprocessing_context
        if self._iterable:
            self.sampler: Any = None
            self.batch_sampler: Any = None
            self.batch_size = batch_size
        elif batch_sampler is not None:
            self.sampler = None
            self.batch_sampler = batch_sampler
            self.batch_size = None
        else:
            if sampler is None:
                sampler = RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            self.sampler = sampler
            self.batch_size = batch_size
            self.batch_sampler = None if batch_size is None else BatchSampler(sampler, batch_size, self.drop_last)
        # Whether each iteration yields collated batches (batch_sampler: always).
        self._batched = batch_sampler is not None or batch_size is not None
        self._fetch_batch_size = batch_size if batch_sampler is None else 1
        # Epoch bookkeeping (see state_dict).
        self._epoch = 0
        self._started = False  # an iteration of _epoch has begun: the next one moves on
        self._finished = False  # that iteration ran to its end
        self._position = 0  # batches delivered in _epoch
        self._snapshot: Optional[Dict[str, Any]] = None  # the sampler's state when _epoch began
        self._resume: Optional[Tuple[int, int, Optional[Dict[str, Any]]]] = None
        self._generation = 0
        self._pool: Optional[_Pool] = None
        self._transfer: Any = None
        self._current: Callable[[], Any] = lambda: None  # weak reference to the newest iterator

    # --- what the loader iterates ----------------------------------------------------------------------------

    @property
    def _order(self) -> Any:
        """The object that owns the order's state: the batch sampler or the sampler."""
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def __len__(self) -> int:
        """Batches per epoch (an iterable dataset needs ``__len__``)."""
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._order)

    @property
    def epoch(self) -> int:
        """The epoch of the iteration in progress (or of the next one, before any)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch``; passed on to the sampler's and the dataset's ``set_epoch``.

        After :meth:`load_state_dict`, setting the epoch the state was saved in
        keeps its position (the iteration resumes); any other epoch starts
        from its first batch.
        """
        epoch = int(epoch)
        if self._resume is not None and self._resume[0] != epoch:
            self._resume = None
        self._epoch = epoch
        self._started = False
        self._finished = False
        self._position = 0 if self._resume is None else self._resume[1]
        if self._resume is None and hasattr(self._order, "set_epoch"):
            self._order.set_epoch(epoch)

    def _context(self) -> Any:
        ctx = self.multiprocessing_context
        if ctx is None:
            return multiprocessing.get_context()
        if isinstance(ctx, str):
            try:
                return multiprocessing.get_context(ctx)
            except ValueError:
                methods = multiprocessing.get_all_start_methods()
                raise ValueError(
                    f"DataLoader: multiprocessing_context={ctx!r} is not a start method here; use one of {methods}"
                ) from None
        return ctx

    def _begin_epoch(self) -> Tuple[int, int]:
        """Decide the epoch and first batch of a new iteration; restore or snapshot the order's state."""
        order = self._order
        if self._resume is not None:
            epoch, skip, snapshot = self._resume
            self._resume = None
            if snapshot is not None and hasattr(order, "load_state_dict"):
                order.load_state_dict(snapshot)
        else:
            if self._started:
                self._epoch += 1
            epoch, skip = self._epoch, 0
            snapshot = order.state_dict() if hasattr(order, "state_dict") else None
        self._epoch, self._position, self._snapshot = epoch, skip, snapshot
        self._started, self._finished = True, False
        self._generation += 1
        return epoch, skip

    def _index_stream(self, skip: int) -> Iterator[Any]:
        """The epoch's batches of indices (single indices with batch_size=None), from batch ``skip`` on."""
        order = self._order
        stream = order.index_batches() if isinstance(order, BatchSampler) else iter(order)
        return itertools.islice(stream, skip, None)

    def __iter__(self) -> "_LoaderIterator":
        return _LoaderIterator(self)

    # --- state ---------------------------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Where the loader is: enough for a new loader with the same arguments to go on exactly from here.

        Returns a JSON-serialisable dict: ``format``, ``epoch``, ``batches``
        (delivered in that epoch), ``finished`` (that epoch ran to its end),
        ``seed``, ``sampler`` (the order's state at the epoch's start, or now
        when the epoch is finished or has not begun), and ``num_batches`` /
        ``dataset_size`` to check the new loader against.

        Examples:
            >>> import numpy as np
            >>> from autograd.data import ArrayDataset, DataLoader
            >>> ds = ArrayDataset(np.arange(10))
            >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
            >>> batches = iter(loader)
            >>> next(batches)  # the first batch of epoch 0 (a list [Y] of one array), then a checkpoint
            [array([4, 6, 2, 7])]
            >>> state = loader.state_dict()  # JSON-serialisable
            >>> resumed = DataLoader(ds, batch_size=4, shuffle=True, seed=0)  # e.g. in a new process
            >>> resumed.load_state_dict(state)
            >>> [y.tolist() for (y,) in resumed]  # the rest of epoch 0
            [[3, 5, 9, 0], [8, 1]]
        """
        if self._resume is not None:
            epoch, batches, sampler = self._resume
            finished = False
        else:
            epoch, batches, finished = self._epoch, self._position, self._finished
            now = self._order.state_dict() if hasattr(self._order, "state_dict") else None
            sampler = self._snapshot if self._started and not finished else now
        return {
            "format": STATE_FORMAT,
            "epoch": epoch,
            "batches": batches,
            "finished": finished,
            "seed": self.seed,
            "sampler": sampler,
            "num_batches": self._safe_len(),
            "dataset_size": _safe_len(self.dataset),
        }

    def _safe_len(self) -> Optional[int]:
        try:
            return len(self)
        except TypeError:
            return None

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration yields the batches the saved loader would have.

        Raises:
            ValueError: a state of another format, or from a loader over a data
                set of another size or with another number of batches.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"DataLoader.load_state_dict: not a DataLoader state of format {STATE_FORMAT} "
                f"(got {dict(state) if isinstance(state, Mapping) else type(state).__name__})"
            )
        for key, mine in (("dataset_size", _safe_len(self.dataset)), ("num_batches", self._safe_len())):
            saved = state.get(key)
            if saved is not None and mine is not None and saved != mine:
                raise ValueError(
                    f"DataLoader.load_state_dict: the state was saved with {key}={saved}, this loader has {mine}: "
                    "resume with the same dataset and arguments"
                )
        self.seed = int(state["seed"])
        epoch, batches = int(state["epoch"]), int(state["batches"])
        sampler = state.get("sampler")
        if state.get("finished"):
            # The saved epoch ran out: the next iteration is the next epoch, from the order's state after it.
            if sampler is not None and hasattr(self._order, "load_state_dict"):
                self._order.load_state_dict(sampler)
            self._resume = None
            self._epoch, self._position, self._started, self._finished = epoch, batches, True, True
        else:
            self._resume = (epoch, batches, sampler)
            self._epoch, self._position, self._started, self._finished = epoch, batches, False, False

    # --- workers -------------------------------------------------------------------------------------------

    def _get_pool(self) -> Optional[_Pool]:
        if self.num_workers == 0:
            return None
        if self.persistent_workers and self._pool is not None and self._pool.alive:
            return self._pool
        pool = _Pool(self)
        if self.persistent_workers:
            self._pool = pool
        return pool

    def _fetcher(self, restore_rng: bool) -> Fetcher:
        batch_size = self._fetch_batch_size if self._batched else None
        return Fetcher(self.dataset, self.collate_fn, batch_size, self.drop_last, self._iterable, restore_rng)

    def _get_transfer(self) -> Any:
        if self._transfer is None:
            from autograd.data._device import make_transfer

            self._transfer = make_transfer()
        return self._transfer

    def close(self) -> None:
        """Stop the persistent workers now (they also stop when the loader is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_pool"] = None
        state["_transfer"] = None
        state["_current"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._current = lambda: None


def _safe_len(obj: Any) -> Optional[int]:
    try:
        return len(obj)
    except TypeError:
        return None


# --- iteration ------------------------------------------------------------------------------------------------


def _single(loader: DataLoader, epoch: int, skip: int) -> Iterator[Any]:
    """Host batches made in the main process."""
    fetcher = loader._fetcher(restore_rng=True)
    try:
        fetcher.start_epoch(epoch)
    except BaseException as exc:
        _note_main(exc)
        raise
    seed = loader.seed
    if loader._iterable:
        b = 0
        while True:
            try:
                batch = fetcher.iterable_batch(seed, epoch, -1, b)
            except BaseException as exc:
                _note_main(exc)
                raise
            if batch is END:
                return
            if b >= skip:
                yield batch
            b += 1
    for b, indices in enumerate(loader._index_stream(skip), start=skip):
        try:
            batch = fetcher.map_batch(seed, epoch, b, indices)
        except BaseException as exc:
            _note_main(exc)
            raise
        yield batch


def _note_main(exc: BaseException) -> None:
    where = _worker.where_of(exc)
    if where and not getattr(exc, "_autograd_data_noted", False):
        exc.add_note(f"raised by {_worker.describe(where)}, in the main process (num_workers=0)")
        try:
            exc._autograd_data_noted = True  # type: ignore[attr-defined]
        except AttributeError:
            pass


def _raise_reply(pool: _Pool, w: int, reply: Tuple[Any, ...]) -> None:
    if reply[0] == "error":
        raise _worker.unpack_exception(reply[3], w, pool.procs[w].pid)


def _workers(loader: DataLoader, pool: _Pool, epoch: int, skip: int, gen: int) -> Iterator[Any]:
    """Host batches made by the pool's workers, in order: batch ``b`` is worker ``b % W``'s task."""
    timeout = loader.timeout
    pool.start_epoch(epoch, loader.seed, timeout)
    size = pool.size
    if loader._iterable:
        # Every worker streams its own copy; batches go round robin over the workers that still have some.
        active = list(range(size))
        requested = [0] * size  # the worker's own batch numbers, for its error notes

        def request(w: int) -> None:
            pool.send(w, ("next", gen, requested[w]))
            requested[w] += 1

        for w in active:
            for _ in range(loader.prefetch):
                request(w)
        b = 0
        turn = 0
        while active:
            w = active[turn % len(active)]
            reply = pool.recv(w, timeout, f"batch {b} of epoch {epoch}")
            _raise_reply(pool, w, reply)
            if reply[0] == "end":
                # Its other requests answer "end" too: read them so the pipe is clean for the next epoch.
                while pool.pending[w]:
                    _raise_reply(pool, w, pool.recv(w, timeout, f"the end of worker {w}'s stream"))
                active.remove(w)
                continue
            request(w)
            turn += 1
            if b >= skip:
                yield reply[3]
            b += 1
        return
    stream = enumerate(loader._index_stream(skip), start=skip)
    in_flight: List[Tuple[int, int]] = []

    def submit() -> bool:
        nxt = next(stream, None)
        if nxt is None:
            return False
        b, indices = nxt
        pool.send(b % size, ("batch", gen, b, indices))
        in_flight.append((b, b % size))
        return True

    for _ in range(loader.prefetch * size):
        if not submit():
            break
    head = 0
    while head < len(in_flight):
        b, w = in_flight[head]
        head += 1
        reply = pool.recv(w, timeout, f"batch {b} of epoch {epoch}")
        submit()
        _raise_reply(pool, w, reply)
        if head > 1024:  # keep the list short on long epochs
            del in_flight[:head]
            head = 0
        yield reply[3]


class _LoaderIterator:
    """One epoch of a DataLoader (``iter(loader)``)."""

    def __init__(self, loader: DataLoader) -> None:
        self._loader = loader
        epoch, skip = loader._begin_epoch()
        self._gen = loader._generation
        self._epoch = epoch
        previous = loader._current() if loader.persistent_workers else None
        if previous is not None:
            previous.close()  # it shares the persistent workers; its unread replies are drained
        loader._current = weakref.ref(self)
        self._pool = loader._get_pool()
        self._owns_pool = self._pool is not None and not loader.persistent_workers
        if self._pool is None:
            self._host: Iterator[Any] = _single(loader, epoch, skip)
        else:
            self._host = _workers(loader, self._pool, epoch, skip, self._gen)
        self._transfer = loader._get_transfer()
        self._ahead: Any = None  # a batch whose device copy has started (CuPy)
        self._ahead_error: Optional[BaseException] = None
        self._exhausted = False
        self._closed = False
        self._clean = True

    def __iter__(self) -> "_LoaderIterator":
        return self

    def __len__(self) -> int:
        return len(self._loader)

    def _next_host(self) -> Any:
        return next(self._host)

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            if not self._transfer.ahead:
                batch = self._transfer.finish(self._transfer.start(self._next_host()))
            else:
                batch = self._next_ahead()
        except StopIteration:
            self._end(finished=True)
            raise
        except BaseException as exc:
            self._clean = False  # a worker died, timed out or raised: no point waiting for the others
            if isinstance(exc, DataLoaderError) and self._pool is not None and not self._owns_pool:
                # Persistent workers with a dead or stuck one among them: the next epoch starts new ones.
                self._pool.shutdown(grace=0.0)
                if self._loader._pool is self._pool:
                    self._loader._pool = None
            self._end(finished=False)
            raise
        loader = self._loader
        if loader._generation == self._gen:
            loader._position += 1
        return batch

    def _next_ahead(self) -> Any:
        # Batch i + 1's copy starts before batch i is returned; its error (or the end) waits its turn.
        if self._ahead is None:
            if self._ahead_error is not None:
                raise self._ahead_error
            if self._exhausted:
                raise StopIteration
            self._ahead = self._transfer.start(self._next_host())
        current, self._ahead = self._ahead, None
        try:
            self._ahead = self._transfer.start(self._next_host())
        except StopIteration:
            self._exhausted = True
        except BaseException as exc:  # noqa: BLE001 - raised at the next call, in order
            self._ahead_error = exc
        return self._transfer.finish(current)

    def _end(self, finished: bool) -> None:
        loader = self._loader
        if finished and loader._generation == self._gen:
            loader._finished = True
        self.close()

    def close(self) -> None:
        """Stop this iteration (and its workers, unless they are persistent)."""
        if self._closed:
            return
        self._closed = True
        if hasattr(self._host, "close"):
            try:
                self._host.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                pass
        if self._owns_pool and self._pool is not None:
            self._pool.shutdown(grace=SHUTDOWN_GRACE_S if self._clean else 0.0)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass
