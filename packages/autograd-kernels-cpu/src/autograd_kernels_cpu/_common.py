"""What every kernel module shares: the Numba options, input checks and vectorized row reductions.

Every kernel is compiled with ``error_model="numpy"`` (IEEE division: a
Python-style zero-division check would stop LLVM from vectorizing any loop
that divides) and ``cache=True`` (compiled code is kept on disk, so only the
first run of a process compiles). No kernel uses fast-math on its element-wise
arithmetic, which therefore rounds exactly like NumPy's; only the reductions
below may reorder their sums (``reassoc``), which is what lets them vectorize,
and the row max also assumes no NaN (``nnan``; see :func:`row_max` for why
NaN inputs still reach the outputs).
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import numpy as np
from numba import njit

from autograd_kernels_cpu._math import fast_exp

__all__ = [
    "OPTS",
    "parallel_kernel",
    "UnsupportedInputError",
    "check_float",
    "check_int",
    "fill_rows",
    "row_sum",
    "row_dot",
    "row_max",
    "exp_sum",
    "exp_sum_inplace",
]

#: Options of every kernel (the parallel ones add ``parallel=True``).
OPTS = {"cache": True, "error_model": "numpy"}
_LAUNCH = threading.Lock()


def parallel_kernel(fn: Callable) -> Callable:
    """``njit(parallel=True, **OPTS)``, launched under one process-wide lock.

    The kernels run on Numba's ``workqueue`` threading layer (see
    :mod:`autograd_kernels_cpu._threads`), whose pool takes one parallel region
    at a time: Python threads calling kernels at once take turns here instead
    of aborting the process. The compiled dispatcher is ``.dispatcher``.
    """
    dispatcher = njit(parallel=True, **OPTS)(fn)

    @functools.wraps(fn)
    def launch(*args: Any) -> Any:
        with _LAUNCH:
            return dispatcher(*args)

    launch.dispatcher = dispatcher  # type: ignore[attr-defined]
    return launch


_REDUCE = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc", "nsz"}}
_MAX = {"cache": True, "error_model": "numpy", "fastmath": {"nnan", "nsz", "reassoc"}}


class UnsupportedInputError(ValueError):
    """A kernel declines these inputs (dtype, layout or shape it does not cover); the message says why."""


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_float(op: str, **arrays: Any) -> np.dtype:
    """The common dtype of ``arrays``: each a C-contiguous float32 or float64 NumPy array, all of one dtype.

    Raises:
        UnsupportedInputError: naming the argument and what is wrong with it.
    """
    dtype = None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise UnsupportedInputError(f"{op}: {name} is a {type(a).__name__}, not a NumPy array")
        if a.dtype not in _FLOATS:
            raise UnsupportedInputError(f"{op}: {name} has dtype {a.dtype}; only float32 and float64 are covered")
        if dtype is not None and a.dtype != dtype:
            raise UnsupportedInputError(f"{op}: {name} has dtype {a.dtype}, the other inputs {dtype}")
        if not a.flags.c_contiguous:
            raise UnsupportedInputError(f"{op}: {name} is not C-contiguous (pass np.ascontiguousarray(...))")
        dtype = a.dtype
    assert dtype is not None
    return dtype


def check_int(op: str, name: str, a: Any) -> None:
    """``a`` is a C-contiguous int32 or int64 NumPy array."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise UnsupportedInputError(f"{op}: {name} must be an int32 or int64 array, got {what}")
    if not a.flags.c_contiguous:
        raise UnsupportedInputError(f"{op}: {name} is not C-contiguous")


@njit(**OPTS)
def fill_rows(a, value):  # type: ignore[no-untyped-def]
    """``a[:, :] = value`` for a 2-D array, row by row (Numba's 2-D slice assignment is several times slower)."""
    for r in range(a.shape[0]):
        row = a[r]
        for c in range(row.size):
            row[c] = value


@njit(**_REDUCE)
def row_sum(a):  # type: ignore[no-untyped-def]
    """Sum of a 1-D array, accumulated in float64."""
    s = 0.0
    for j in range(a.size):
        s += np.float64(a[j])
    return s


@njit(**_REDUCE)
def row_dot(a, b):  # type: ignore[no-untyped-def]
    """Sum of ``a * b`` (each product rounded in the inputs' dtype, as NumPy does), accumulated in float64."""
    s = 0.0
    for j in range(a.size):
        s += np.float64(a[j] * b[j])
    return s


@njit(**_MAX)
def row_max(a):  # type: ignore[no-untyped-def]
    """Max of a non-empty 1-D array.

    Compiled with ``nnan`` so that it vectorizes: with a NaN in the row the
    max is unspecified, but every caller then computes ``exp(NaN - max)``, so
    the NaN still reaches its output, as in the reference.
    """
    m = a[0]
    for j in range(1, a.size):
        m = max(m, a[j])
    return m


#: exp_sum's partial sums: blocks of this many elements are summed in the input's dtype (8 float32 vector lanes
#: of 8 terms each), and the blocks in float64. Summing every element in float64 converts each one and halves the
#: vector width: a 2048-element float32 row took 2.0 ns per element that way, 1.3 ns in blocks. The blocks add at
#: most a few float32 ulp to a sum that is rounded to float32 anyway.
_EXP_BLOCK = 64


@njit(**_REDUCE)
def exp_sum(a, m, out):  # type: ignore[no-untyped-def]
    """``out = fast_exp(a - m)`` element-wise; returns the sum of ``out`` (blocks of ``_EXP_BLOCK`` in float64).

    One loop that both stores and sums: ``reassoc`` lets it vectorize (the exp
    itself is compiled without it, so it rounds as everywhere else).
    """
    s, n, j = 0.0, a.size, 0
    while j + _EXP_BLOCK <= n:
        block = a.dtype.type(0.0)
        for t in range(j, j + _EXP_BLOCK):
            e = fast_exp(a[t] - m)
            out[t] = e
            block += e
        s += np.float64(block)
        j += _EXP_BLOCK
    for t in range(j, n):
        e = fast_exp(a[t] - m)
        out[t] = e
        s += np.float64(e)
    return s


@njit(**_REDUCE)
def exp_sum_inplace(a, m):  # type: ignore[no-untyped-def]
    """``a = fast_exp(a - m)``, returning the sum blocked as in :func:`exp_sum` (``out`` = ``a``; the last bits
    of the sum may differ, as LLVM may order the additions in each block differently).

    A separate function because LLVM cannot prove that two array arguments do
    not overlap: passed the same array twice, ``exp_sum`` fails its runtime
    overlap check and runs scalar (measured 4x slower).
    """
    s, n, j = 0.0, a.size, 0
    while j + _EXP_BLOCK <= n:
        block = a.dtype.type(0.0)
        for t in range(j, j + _EXP_BLOCK):
            e = fast_exp(a[t] - m)
            a[t] = e
            block += e
        s += np.float64(block)
        j += _EXP_BLOCK
    for t in range(j, n):
        e = fast_exp(a[t] - m)
        a[t] = e
        s += np.float64(e)
    return s
