"""Softmax and log-softmax over the last axis of a (rows, C) array, forward and backward, one pass per row.

The formulas are ``autograd.functional``'s (Softmax, LogSoftmax), in the
input's dtype; row sums are accumulated in float64 and exp is
``autograd_kernels_cpu._math.fast_exp``, so results match to float rounding.
Rows are independent: large inputs are cut into one block of rows per thread.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, exp_sum, parallel_kernel, row_dot, row_max, row_sum
from autograd_kernels_cpu._math import fast_exp
from autograd_kernels_cpu._threads import chunks

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"]

_MIN_WORK = 1 << 16
_SOFTMAX, _LOG_SOFTMAX = 0, 1


@njit(**OPTS)
def _fwd_rows(kind, x, y):  # type: ignore[no-untyped-def]
    t_ = x.dtype.type
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        m = row_max(xr)
        s = exp_sum(xr, m, yr)
        if kind == _SOFTMAX:
            total = t_(s)
            for j in range(xr.size):
                yr[j] = yr[j] / total
        else:
            log_s = t_(np.log(s))
            for j in range(xr.size):
                yr[j] = (xr[j] - m) - log_s


@njit(**OPTS)
def _bwd_rows(kind, g, y, dx):  # type: ignore[no-untyped-def]
    t_ = y.dtype.type
    for r in range(y.shape[0]):
        gr, yr, dr = g[r], y[r], dx[r]
        if kind == _SOFTMAX:
            dot = t_(row_dot(gr, yr))
            for j in range(yr.size):
                dr[j] = yr[j] * (gr[j] - dot)
        else:
            total = t_(row_sum(gr))
            for j in range(yr.size):
                dr[j] = gr[j] - fast_exp(yr[j]) * total


@parallel_kernel
def _fwd_par(kind, x, y, pieces):  # type: ignore[no-untyped-def]
    n = x.shape[0]
    for p in prange(pieces):
        lo, hi = p * n // pieces, (p + 1) * n // pieces
        _fwd_rows(kind, x[lo:hi], y[lo:hi])


@parallel_kernel
def _bwd_par(kind, g, y, dx, pieces):  # type: ignore[no-untyped-def]
    n = y.shape[0]
    for p in prange(pieces):
        lo, hi = p * n // pieces, (p + 1) * n // pieces
        _bwd_rows(kind, g[lo:hi], y[lo:hi], dx[lo:hi])


def _check(op: str, x: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{op}: expected a (rows, C) array with C > 0, got shape {x.shape}")


def _forward(op: str, kind: int, x: np.ndarray) -> np.ndarray:
    check_float(op, x=x)
    _check(op, x)
    y = np.empty_like(x)
    pieces = chunks(x.shape[0], x.size * 8, _MIN_WORK)
    if pieces == 1:
        _fwd_rows(kind, x, y)
    else:
        _fwd_par(kind, x, y, pieces)
    return y


def _backward(op: str, kind: int, g: np.ndarray, y: np.ndarray) -> np.ndarray:
    check_float(op, g=g, y=y)
    _check(op, y)
    if g.shape != y.shape:
        raise ValueError(f"{op}: g has shape {g.shape}, y has shape {y.shape}")
    dx = np.empty_like(y)
    pieces = chunks(y.shape[0], y.size * 4, _MIN_WORK)
    if pieces == 1:
        _bwd_rows(kind, g, y, dx)
    else:
        _bwd_par(kind, g, y, dx, pieces)
    return dx


def softmax_forward(x: np.ndarray) -> np.ndarray:
    r""":math:`e^{x - \max x} / \sum e^{x - \max x}` over the last axis of ``x`` (rows, C); same shape."""
    return _forward("softmax_forward", _SOFTMAX, x)


def softmax_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    r""":math:`y (g - \sum_j g_j y_j)` per row, from the forward's output ``y`` (rows, C); same shape."""
    return _backward("softmax_backward", _SOFTMAX, g, y)


def log_softmax_forward(x: np.ndarray) -> np.ndarray:
    r""":math:`(x - \max x) - \log \sum e^{x - \max x}` over the last axis of ``x`` (rows, C); same shape."""
    return _forward("log_softmax_forward", _LOG_SOFTMAX, x)


def log_softmax_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    r""":math:`g - e^{y} \sum_j g_j` per row, from the forward's output ``y`` (rows, C); same shape."""
    return _backward("log_softmax_backward", _LOG_SOFTMAX, g, y)
