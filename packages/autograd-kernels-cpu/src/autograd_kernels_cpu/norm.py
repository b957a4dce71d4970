"""LayerNorm over the last axis of a (rows, F) array: forward and backward, one pass per row.

The arithmetic follows ``autograd.nn.LayerNormFunction`` in the input's
dtype; only the row sums differ (accumulated in float64, where NumPy sums
pairwise in the input's dtype), so results match it to float rounding.

The backward's weight and bias gradients are sums over rows: each block of
``_BLOCK`` rows writes its own partial sums (float64), and the partials are
added afterwards. Blocks never share an output row, so threads never race,
and the block layout does not depend on the thread count, so results do not
either.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, parallel_kernel, row_dot, row_sum
from autograd_kernels_cpu._threads import chunks

__all__ = ["layer_norm_forward", "layer_norm_backward"]

_BLOCK = 64  # rows per partial sum of the backward's dw/db
_MIN_WORK = 1 << 17


@njit(**OPTS)
def _fwd_rows(x, w, b, eps, y, mean, rstd):  # type: ignore[no-untyped-def]
    t_ = x.dtype.type
    f = x.shape[1]
    for r in range(x.shape[0]):
        xr, yr = x[r], y[r]
        mu = t_(row_sum(xr) / f)
        ss = 0.0
        for j in range(f):
            d = xr[j] - mu
            ss += np.float64(d * d)
        rs = t_(1.0) / np.sqrt(t_(ss / f) + eps)
        mean[r], rstd[r] = mu, rs
        for j in range(f):
            yr[j] = (xr[j] - mu) * rs * w[j] + b[j]


@parallel_kernel
def _fwd_par(x, w, b, eps, y, mean, rstd, pieces):  # type: ignore[no-untyped-def]
    n = x.shape[0]
    for p in prange(pieces):
        lo, hi = p * n // pieces, (p + 1) * n // pieces
        _fwd_rows(x[lo:hi], w, b, eps, y[lo:hi], mean[lo:hi], rstd[lo:hi])


@njit(**OPTS)
def _bwd_block(g, x, w, mean, rstd, dx, dw, db, need_dx, need_dwb):  # type: ignore[no-untyped-def]
    # One block of rows; dw/db are this block's float64 partial sums (F,).
    t_ = x.dtype.type
    f = x.shape[1]
    xhat = np.empty(f, x.dtype)
    dxhat = np.empty(f, x.dtype)
    for r in range(x.shape[0]):
        xr, gr = x[r], g[r]
        mu, rs = mean[r], rstd[r]
        for j in range(f):
            xhat[j] = (xr[j] - mu) * rs
        if need_dwb:
            for j in range(f):
                dw[j] += np.float64(gr[j] * xhat[j])
                db[j] += np.float64(gr[j])
        if need_dx:
            for j in range(f):
                dxhat[j] = gr[j] * w[j]
            m1 = t_(row_sum(dxhat) / f)
            m2 = t_(row_dot(dxhat, xhat) / f)
            dr = dx[r]
            for j in range(f):
                dr[j] = rs * (dxhat[j] - m1 - xhat[j] * m2)


@njit(**OPTS)
def _bwd(g, x, w, mean, rstd, dx, dw_parts, db_parts, need_dx, need_dwb):  # type: ignore[no-untyped-def]
    n = x.shape[0]
    for k in range(dw_parts.shape[0]):
        lo, hi = k * _BLOCK, min(n, (k + 1) * _BLOCK)
        _bwd_block(
            g[lo:hi], x[lo:hi], w, mean[lo:hi], rstd[lo:hi], dx[lo:hi], dw_parts[k], db_parts[k], need_dx, need_dwb
        )


@parallel_kernel
def _bwd_par(g, x, w, mean, rstd, dx, dw_parts, db_parts, need_dx, need_dwb):  # type: ignore[no-untyped-def]
    n = x.shape[0]
    for k in prange(dw_parts.shape[0]):
        lo, hi = k * _BLOCK, min(n, (k + 1) * _BLOCK)
        _bwd_block(
            g[lo:hi], x[lo:hi], w, mean[lo:hi], rstd[lo:hi], dx[lo:hi], dw_parts[k], db_parts[k], need_dx, need_dwb
        )


def _check_rows(op: str, x: np.ndarray, weight: np.ndarray) -> Tuple[int, int]:
    if x.ndim != 2:
        raise ValueError(f"{op}: x must be (rows, F), got shape {x.shape} (reshape the leading axes into rows)")
    rows, f = x.shape
    if weight.shape != (f,):
        raise ValueError(f"{op}: weight has shape {weight.shape}, expected ({f},)")
    if f == 0:
        raise ValueError(f"{op}: the normalized axis is empty")
    return rows, f


def layer_norm_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm of each row: ``y = (x - mean) * rstd * weight + bias``.

    Args:
        x: (rows, F), float32 or float64.
        weight: (F,), x's dtype.
        bias: (F,), x's dtype.
        eps: Added to the variance.

    Returns:
        ``(y, mean, rstd)``: y (rows, F); mean and ``rstd = 1/sqrt(var + eps)`` (rows,), in x's dtype.
    """
    dtype = check_float("layer_norm_forward", x=x, weight=weight, bias=bias)
    rows, f = _check_rows("layer_norm_forward", x, weight)
    if bias.shape != (f,):
        raise ValueError(f"layer_norm_forward: bias has shape {bias.shape}, expected ({f},)")
    y = np.empty_like(x)
    mean, rstd = np.empty(rows, dtype), np.empty(rows, dtype)
    e = dtype.type(eps)
    pieces = chunks(rows, x.size * 4, _MIN_WORK)
    if pieces == 1:
        _fwd_rows(x, weight, bias, e, y, mean, rstd)
    else:
        _fwd_par(x, weight, bias, e, y, mean, rstd, pieces)
    return y, mean, rstd


def layer_norm_backward(
    g: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    mean: np.ndarray,
    rstd: np.ndarray,
    need_dx: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    r"""Gradients of :func:`layer_norm_forward`, from its saved ``mean`` and ``rstd``.

    With :math:`\hat{x} = (x - mean) \cdot rstd` and :math:`d\hat{x} = g w`:
    :math:`dx = rstd\,(d\hat{x} - \overline{d\hat{x}} - \hat{x}\,\overline{d\hat{x}\hat{x}})` (row means),
    :math:`dw = \sum_{rows} g\hat{x}`, :math:`db = \sum_{rows} g`.

    Args:
        g: (rows, F), the gradient of y.
        x: (rows, F), the forward's input.
        weight: (F,).
        mean: (rows,), from :func:`layer_norm_forward`.
        rstd: (rows,), from :func:`layer_norm_forward`.

    Returns:
        ``(dx, dw, db)``: (rows, F), (F,), (F,); None for each one not asked for.
    """
    dtype = check_float("layer_norm_backward", g=g, x=x, weight=weight, mean=mean, rstd=rstd)
    rows, f = _check_rows("layer_norm_backward", x, weight)
    if g.shape != x.shape or mean.shape != (rows,) or rstd.shape != (rows,):
        raise ValueError(
            f"layer_norm_backward: g {g.shape}, mean {mean.shape} and rstd {rstd.shape} do not fit x {x.shape}"
        )
    need_dwb = bool(need_dw or need_db)
    # Outputs not asked for are zero-width arrays: the kernel keeps one signature and never touches them.
    dx = np.empty_like(x) if need_dx else np.empty((rows, 0), dtype)
    blocks = max(1, -(-rows // _BLOCK))
    dw_parts = np.zeros((blocks, f if need_dwb else 0))
    db_parts = np.zeros_like(dw_parts)
    kernel = _bwd_par if chunks(blocks, x.size * 6, _MIN_WORK) > 1 else _bwd
    kernel(g, x, weight, mean, rstd, dx, dw_parts, db_parts, bool(need_dx), need_dwb)
    dw = dw_parts.sum(axis=0).astype(dtype) if need_dw else None
    db = db_parts.sum(axis=0).astype(dtype) if need_db else None
    return (dx if need_dx else None), dw, db
