"""Thread policy: the kernels use as many threads as BLAS does, and stay serial for small inputs.

The count is BLAS's own setting (threadpoolctl's view of the loaded BLAS
libraries), else ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` /
``MKL_NUM_THREADS``, else ``os.cpu_count()``, capped by the threads Numba
started with (``NUMBA_NUM_THREADS``). It is read once; call :func:`refresh`
after changing BLAS's thread count.

Why serial for small inputs: waking Numba's worker threads costs tens of
microseconds (measured 20-100 us on a 2-core VM), more than a fused pass over
a few hundred KiB takes on one core. Each kernel asks :func:`chunks` how many
pieces to cut its work into; 1 means "call the serial kernel".

BLAS is never called from inside a Numba parallel region: the kernels run
between BLAS calls (BLAS from Python, multithreaded; Numba regions in between),
so the two pools take turns. Taking turns only works if a pool's threads go
to sleep when their work is done: GNU OpenMP (Numba's usual threading layer)
spins its idle workers for a while after each region, on the very cores the
next GEMM's threads need. Measured on a 2-core VM, ten (1024x128)@(128x512)
GEMMs each followed by a parallel pass took 72 ms with OpenMP's spinning
default, 11 ms with ``OMP_WAIT_POLICY=PASSIVE``, and 14 ms with serial passes;
a GPT training step 390 ms with spinning OpenMP against 140-180 ms with either
remedy. ``OMP_WAIT_POLICY`` is process-wide, though: it would also change how
every other OpenMP library in the process behaves (PyTorch's small-op steps
were measured up to 2x slower with it). So this package leaves it alone and
runs Numba on its ``workqueue`` layer instead, whose idle workers sleep on a
condition variable: unless ``NUMBA_THREADING_LAYER`` says otherwise, it is
selected before Numba starts its pool. That layer runs one parallel region at
a time, so every parallel kernel is launched under one lock
(:func:`autograd_kernels_cpu._common.parallel_kernel`).
"""

from __future__ import annotations

import os
import threading
from typing import Optional

__all__ = ["blas_threads", "num_threads", "chunks", "refresh"]

_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_count: Optional[int] = None
_local = threading.local()  # numba.set_num_threads is per calling thread


def _from_threadpoolctl() -> Optional[int]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(info["num_threads"]) for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None


def _from_env() -> Optional[int]:
    for name in _ENV_VARS:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def blas_threads() -> int:
    """BLAS's thread count: threadpoolctl if installed, else the usual environment variables, else the CPU count."""
    return _from_threadpoolctl() or _from_env() or os.cpu_count() or 1


def num_threads() -> int:
    """The thread count the kernels use (set into Numba once per calling thread)."""
    global _count
    if _count is None:
        import numba

        if not os.environ.get("NUMBA_THREADING_LAYER"):
            numba.config.THREADING_LAYER = "workqueue"  # read when Numba starts its pool (the first parallel call)

        _count = max(1, min(blas_threads(), int(numba.config.NUMBA_NUM_THREADS)))
    if getattr(_local, "count", None) != _count:
        import numba

        numba.set_num_threads(_count)
        _local.count = _count
    return _count


def refresh() -> int:
    """Read BLAS's thread setting again (after ``threadpool_limits`` or an environment change)."""
    global _count
    _count = None
    _local.count = None
    return num_threads()


#: No job below this many element-operations runs in parallel, whatever its own threshold. Inside a training
#: step nearly every kernel runs right after a matrix product, whose OpenBLAS workers keep spinning for a while
#: on the very cores a parallel region needs: measured in one process with the settings interleaved (2 cores,
#: OpenBLAS at 2 threads), a GPT step took 144 ms with the kernels' own thresholds, 124 ms with this floor and
#: 120 ms all serial; an MLP step 5.4, 3.8 and 3.1 ms; a small CNN 15 ms in every setting. Jobs this large last
#: milliseconds, long enough for the threads to pay off.
PARALLEL_FLOOR = 1 << 23


def chunks(items: int, work: float, min_work: float = 1 << 17) -> int:
    """How many parallel pieces to cut ``items`` independent items into; 1 means run serially.

    ``work`` is the whole job's cost in element-operations; below ``min_work``
    (and :data:`PARALLEL_FLOOR`) the job stays on one thread. Numba's scheduler
    gives each thread an equal share of the pieces, so one piece per thread is
    enough for uniform work.
    """
    threads = num_threads()
    if threads <= 1 or items <= 1 or work < max(min_work, PARALLEL_FLOOR):
        return 1
    return int(min(items, threads))
