"""The process group: start-up from the launcher's environment, ranks, collectives and fault handling.

Every function initializes the group on first use (``init()`` with its
defaults), so a plain ``python train.py`` is world size 1 and every call is a
cheap no-op: collectives return their input, ``barrier`` returns at once.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any, List, Optional

from autograd import backend
from autograd.distributed.transports import DistributedError, Launch, Transport, create, detect_launch
from autograd.tensor import Tensor

__all__ = [
    "init",
    "is_initialized",
    "transport",
    "rank",
    "world_size",
    "local_rank",
    "barrier",
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_object",
    "set_timeout",
    "DEFAULT_TIMEOUT",
]

#: Seconds a collective may wait before it fails (``AUTOGRAD_DISTRIBUTED_TIMEOUT`` overrides it).
DEFAULT_TIMEOUT = 300.0

_group: Optional[Transport] = None
_lock = threading.Lock()


def _env_timeout() -> float:
    raw = os.environ.get("AUTOGRAD_DISTRIBUTED_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        return _check_timeout(float(raw))
    except ValueError:
        raise DistributedError(f"AUTOGRAD_DISTRIBUTED_TIMEOUT={raw!r} is not a positive number of seconds") from None


def _check_timeout(seconds: float) -> float:
    seconds = float(seconds)
    if not seconds > 0:
        raise ValueError(f"the collective timeout must be > 0 seconds, got {seconds}")
    return seconds


def init(timeout: Optional[float] = None) -> str:
    """Start the process group from the launcher's environment; return the transport's name.

    Reads ``mpiexec``/``mpirun`` (OpenMPI's ``OMPI_COMM_WORLD_*``, MPICH's
    ``PMI_*``), MLX's ``MLX_RANK``/``MLX_HOSTFILE`` or the torchrun variables
    ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``, and
    picks the transport of the active backend: ``"mpi"`` (NumPy), ``"nccl"``
    (CuPy, one GPU per local rank), ``"mlx-mpi"`` or ``"mlx-ring"`` (MLX), or
    ``"single"`` without a launcher. Calling it again returns the same group
    (a ``timeout`` given then replaces the old one).

    With more than one rank, an uncaught exception on any rank prints the
    rank and its traceback and ends the whole job (``MPI_Abort`` under
    mpiexec), so no rank is left waiting in a collective.

    Args:
        timeout: Seconds any collective may wait before it fails with
            :class:`CollectiveTimeoutError` naming the operation (default
            ``AUTOGRAD_DISTRIBUTED_TIMEOUT`` or 300).

    Raises:
        DistributedError: a package is missing (the message names the extra
            to install), or the launch does not fit the backend.

    Examples:
        A plain ``python`` process (no launcher variables) is a world of one; under ``mpiexec -n 2 python train.py``
        on the NumPy backend every rank gets ``'mpi'``:

        >>> from autograd import distributed as dist
        >>> dist.init()
        'single'
        >>> dist.init()  # again: the same group, nothing restarts
        'single'
    """
    global _group
    with _lock:
        if _group is None:
            launch: Launch = detect_launch()
            _group = create(launch, _env_timeout() if timeout is None else _check_timeout(timeout))
            if _group.size > 1:
                _install_fault_handler(_group)
        elif timeout is not None:
            _group.timeout = _check_timeout(timeout)
    return _group.name


def _get() -> Transport:
    if _group is None:
        init()
    assert _group is not None
    return _group


def is_initialized() -> bool:
    """Whether the group has been started (by ``init`` or any other call of this module).

    Examples:
        It is False in a fresh process until :func:`init` (or the first collective, ``rank()`` ...) starts the group:

        >>> from autograd import distributed as dist
        >>> dist.init()
        'single'
        >>> dist.is_initialized()
        True
    """
    return _group is not None


def transport() -> str:
    """``"single"``, ``"mpi"``, ``"nccl"``, ``"mlx-mpi"`` or ``"mlx-ring"``.

    Examples:
        >>> from autograd import distributed as dist
        >>> dist.transport()  # a plain process; 'mpi' under mpiexec on NumPy, 'nccl' on CuPy
        'single'
    """
    return _get().name


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1.

    Examples:
        Under ``mpiexec -n 2`` one process prints ``(0, 2)`` and the other ``(1, 2)``; a plain process is rank 0 of 1.
        Rank 0 is the one that logs and writes files:

        >>> from autograd import distributed as dist
        >>> dist.rank(), dist.world_size()
        (0, 1)
        >>> if dist.rank() == 0:
        ...     print(f"training on {dist.world_size()} process(es)")
        training on 1 process(es)
    """
    return _get().rank


def world_size() -> int:
    """The number of processes in the job (1 without a launcher).

    Examples:
        Scale the global batch (and often the learning rate) with it: under ``mpiexec -n 2`` this prints ``64``.

        >>> from autograd import distributed as dist
        >>> per_rank_batch = 32
        >>> per_rank_batch * dist.world_size()  # the global batch of one optimizer step
        32
    """
    return _get().size


def local_rank() -> int:
    """This process's index among the processes of its node (it picks the GPU under NCCL).

    Examples:
        Under ``mpiexec -n 2`` on one node the two ranks read ``0`` and ``1``; on two nodes of one process each,
        both read ``0``. Use it for once-per-node work such as unpacking a data set onto local disk:

        >>> from autograd import distributed as dist
        >>> dist.local_rank()
        0
    """
    return _get().local_rank


def set_timeout(seconds: float) -> None:
    """Change the collective timeout (seconds, > 0).

    Examples:
        >>> from autograd import distributed as dist
        >>> dist.set_timeout(30.0)  # a collective that waits longer than 30 s raises CollectiveTimeoutError
        >>> dist.set_timeout(0)
        Traceback (most recent call last):
        ...
        ValueError: the collective timeout must be > 0 seconds, got 0.0
        >>> dist.set_timeout(dist.DEFAULT_TIMEOUT)  # back to the default, 300 s
    """
    _get().timeout = _check_timeout(seconds)


def barrier() -> None:
    """Wait until every rank has called ``barrier``.

    Examples:
        Rank 0 prepares something the others need; under ``mpiexec -n 2`` rank 1 waits in ``barrier()`` until
        rank 0 reaches it too. With one process it returns at once:

        >>> from autograd import distributed as dist
        >>> if dist.rank() == 0:
        ...     print("rank 0 prepares the data set")
        rank 0 prepares the data set
        >>> dist.barrier()
    """
    _get().barrier()


def _as_array(x: Any, op: str) -> tuple[Any, bool]:
    if isinstance(x, Tensor):
        return x.data, True
    if backend.is_array(x):
        return x, False
    raise TypeError(f"{op} takes a Tensor or a {backend.BACKEND} array, got {type(x).__name__}")


def _wrap(arr: Any, was_tensor: bool) -> Any:
    return Tensor(arr, requires_grad=False) if was_tensor else arr


def _agree(g: Transport, arr: Any, op: str) -> None:
    # The transports need the same shape and dtype on every rank; say which rank differs instead of failing deep in
    # MPI or returning garbage.
    mine = (tuple(arr.shape), backend.dtype_name(arr.dtype))
    every = g.all_gather_object(mine, op)
    for r, theirs in enumerate(every):
        if theirs != every[0]:
            raise DistributedError(
                f"{op}: ranks disagree on the array: rank 0 has shape {every[0][0]} {every[0][1]}, "
                f"rank {r} has shape {theirs[0]} {theirs[1]}"
            )


def all_reduce(x: Any, op: str = "sum") -> Any:
    """Reduce ``x`` over all ranks: ``"sum"``, ``"mean"`` or ``"max"`` (elementwise, same shape on every rank).

    Takes a Tensor (returns a Tensor that does not require grad) or a backend
    array (returns an array); the input is left unchanged. For world size 1
    the input itself is returned.

    Raises:
        ValueError: an unknown ``op``.
        TypeError: ``"mean"`` of an integer or bool array, or a non-array input.
        DistributedError: the ranks passed different shapes or dtypes.

    Examples:
        Add up a metric over the ranks' shards, average a loss for logging. Under ``mpiexec -n 2``, with rank 0
        counting 42 correct predictions and rank 1 counting 40, both ranks get ``array([82])``; with one process
        the input comes back:

        >>> from autograd import distributed as dist
        >>> from autograd.tensor import Tensor
        >>> correct = xp.asarray([42])
        >>> dist.all_reduce(correct, "sum")
        array([42])
        >>> loss = Tensor([0.5, 0.25])
        >>> dist.all_reduce(loss, "mean").numpy()  # the elementwise mean over the ranks
        array([0.5 , 0.25], dtype=float32)
    """
    if op not in ("sum", "mean", "max"):
        raise ValueError(f"all_reduce: op must be 'sum', 'mean' or 'max', got {op!r}")
    arr, was_tensor = _as_array(x, "all_reduce")
    if backend.dtype_name(arr.dtype) == "bool" or (op == "mean" and not backend.is_floating(arr.dtype)):
        name = backend.dtype_name(arr.dtype)
        raise TypeError(f"all_reduce({op!r}) needs a numeric (for 'mean' a floating) array, got dtype {name}")
    g = _get()
    if g.size == 1:
        return x
    _agree(g, arr, f"all_reduce({op!r})")
    out = g.all_reduce(arr, "sum" if op == "mean" else op, f"all_reduce({op!r})")
    if op == "mean":
        out = (out / g.size).astype(arr.dtype)
    return _wrap(out, was_tensor)


def broadcast(x: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``x`` on every rank (every rank passes an array of that shape and dtype).

    Returns a new Tensor/array; for world size 1 the input itself.

    Examples:
        Every rank uses rank 0's random seed; under ``mpiexec -n 2`` rank 1 passes ``[0]`` and gets ``[1234]`` back:

        >>> from autograd import distributed as dist
        >>> seed = xp.asarray([1234 if dist.rank() == 0 else 0])
        >>> dist.broadcast(seed, root=0)
        array([1234])
    """
    arr, was_tensor = _as_array(x, "broadcast")
    g = _get()
    if not 0 <= int(root) < g.size:
        raise ValueError(f"broadcast: root {root} is not a rank of this world of {g.size}")
    if g.size == 1:
        return x
    _agree(g, arr, f"broadcast(root={root})")
    return _wrap(g.broadcast(arr, int(root), f"broadcast(root={root})"), was_tensor)


def all_gather(x: Any) -> Any:
    """Every rank's ``x`` stacked in rank order: shape ``(world_size, *x.shape)``.

    ``x`` must have the same shape and dtype on every rank.

    Examples:
        Collect each rank's predictions; under ``mpiexec -n 2`` the result has shape ``(2, 2)``, rank 0's row
        first, on every rank:

        >>> from autograd import distributed as dist
        >>> from autograd.tensor import Tensor
        >>> everyone = dist.all_gather(Tensor([0.1, 0.9]))
        >>> everyone.shape
        (1, 2)
        >>> everyone.numpy()
        array([[0.1, 0.9]], dtype=float32)
    """
    arr, was_tensor = _as_array(x, "all_gather")
    g = _get()
    if g.size > 1:
        _agree(g, arr, "all_gather")
    return _wrap(g.all_gather(arr, "all_gather"), was_tensor)


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's picklable ``obj``, as a list in rank order (small objects: it pickles them).

    Examples:
        Under ``mpiexec -n 2`` every rank gets ``[{'rank': 0, 'samples': 128}, {'rank': 1, 'samples': 128}]``:

        >>> from autograd import distributed as dist
        >>> dist.all_gather_object({"rank": dist.rank(), "samples": 128})
        [{'rank': 0, 'samples': 128}]
    """
    return _get().all_gather_object(obj)


# --- faults -------------------------------------------------------------------------


def _install_fault_handler(g: Transport) -> None:
    """An uncaught exception on any rank prints the rank and traceback, then ends every rank of the job."""

    def report_and_abort(exc_type: Any, exc: Any, tb: Any, where: str = "") -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(
            f"autograd.distributed: rank {g.rank} of {g.size} failed{where}; ending the whole job:\n{text}"
        )
        g.abort(1)

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        if issubclass(exc_type, SystemExit):
            return
        report_and_abort(exc_type, exc, tb)

    def thread_hook(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        report_and_abort(args.exc_type, args.exc_value, args.exc_traceback, f" in thread {args.thread.name!r}")

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
