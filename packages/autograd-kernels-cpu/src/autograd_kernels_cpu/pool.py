"""2-D max pooling over valid k x k windows of (N, C, H, W) arrays, forward and backward.

Backward follows ``autograd.nn.MaxPool2dFunction``: each window's gradient is
split equally among all its elements equal to the window's max (ties are
common after ReLU, e.g. all-zero windows), and overlapping windows
(stride < k) accumulate. Contributions are added to each input pixel in the
reference's order (kernel offset by offset), so the result is bit-identical
to it, as is the forward (a max is exact).

Threads take whole (n, c) planes: no two ever write the same pixel.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, fill_rows, parallel_kernel
from autograd_kernels_cpu._threads import chunks

__all__ = ["max_pool2d_forward", "max_pool2d_backward"]

_MIN_WORK = 1 << 20  # ~0.5 ms of work: below it the wake-up and the extra compile are not worth it


@njit(**OPTS)
def _fwd_plane(x, y, k, s):  # type: ignore[no-untyped-def]
    # Offset by offset, each a max over a strided row (vectorizable), as the reference's np.maximum chain.
    ho, wo = y.shape
    for i in range(ho):
        yr = y[i]
        for di in range(k):
            for dj in range(k):
                xr = x[i * s + di, dj::s]  # strided view indexed from 0 (see _counts)
                if di == 0 and dj == 0:
                    for j in range(wo):
                        yr[j] = xr[j]
                    continue
                for j in range(wo):
                    v, m = xr[j], yr[j]
                    yr[j] = v if (v > m or v != v) else m  # NaN wins, as with np.maximum


@njit(**OPTS)
def _counts(g, x, y, share, k, s):  # type: ignore[no-untyped-def]
    # share <- g / (number of elements equal to the window's max); branch-free, offset by offset.
    ho, wo = y.shape
    one, zero = x.dtype.type(1.0), x.dtype.type(0.0)
    fill_rows(share, zero)
    for di in range(k):
        for dj in range(k):
            for i in range(ho):
                # A strided view indexed from 0: Numba adds a negative-index check to an index such as
                # j * s + dj that it cannot prove >= 0, and that check keeps LLVM from vectorizing.
                xr, yr, cr = x[i * s + di, dj::s], y[i], share[i]
                for j in range(wo):
                    cr[j] += one if xr[j] == yr[j] else zero
    for i in range(ho):
        cr, gr = share[i], g[i]
        for j in range(wo):
            cr[j] = gr[j] / cr[j]  # a NaN max has no equal element: 0/0, never added below


@njit(**OPTS)
def _bwd_plane(g, x, y, dx, share, k, s):  # type: ignore[no-untyped-def]
    # A non-maximal element receives +0.0, exactly as the reference's where(hit, share, 0) adds.
    ho, wo = y.shape
    zero = x.dtype.type(0.0)
    _counts(g, x, y, share, k, s)
    fill_rows(dx, zero)
    if s >= k:
        # Windows do not overlap: each pixel gets at most one contribution, written row by row.
        for i in range(ho):
            yr, cr = y[i], share[i]
            for di in range(k):
                xr, dr = x[i * s + di], dx[i * s + di]
                for dj in range(k):
                    xv, dv = xr[dj::s], dr[dj::s]
                    for j in range(wo):
                        # zero + ... keeps the reference's -0.0 -> +0.0 (it adds into zeros)
                        dv[j] = zero + (cr[j] if xv[j] == yr[j] else zero)
        return
    # Overlapping windows: offset by offset, in the reference's order, so each pixel sums in its order.
    for di in range(k):
        for dj in range(k):
            for i in range(ho):
                xr, yr, cr, dr = x[i * s + di, dj::s], y[i], share[i], dx[i * s + di, dj::s]
                for j in range(wo):
                    dr[j] += cr[j] if xr[j] == yr[j] else zero


@njit(**OPTS)
def _max4(a, b, c, d):  # type: ignore[no-untyped-def]
    # np.maximum(np.maximum(np.maximum(a, b), c), d), NaN winning as there.
    m = b if (b > a or b != b) else a
    m = c if (c > m or c != c) else m
    return d if (d > m or d != d) else m


@njit(**OPTS)
def _fwd_plane2(x, y):  # type: ignore[no-untyped-def]
    # k = stride = 2, the common case: one pass over each 2 x 2 window (even/odd columns as strided views,
    # indexed from 0 so that no negative-index check blocks vectorization).
    for i in range(y.shape[0]):
        a, b, c, d, yr = x[2 * i, 0::2], x[2 * i, 1::2], x[2 * i + 1, 0::2], x[2 * i + 1, 1::2], y[i]
        for j in range(y.shape[1]):
            yr[j] = _max4(a[j], b[j], c[j], d[j])


@njit(**OPTS)
def _bwd_plane2(g, x, y, dx):  # type: ignore[no-untyped-def]
    t_ = x.dtype.type
    one, two, three, zero, half, quarter = t_(1.0), t_(2.0), t_(3.0), t_(0.0), t_(0.5), t_(0.25)
    fill_rows(dx, zero)  # pixels outside every window (odd H or W)
    for i in range(y.shape[0]):
        a, b, c, d = x[2 * i, 0::2], x[2 * i, 1::2], x[2 * i + 1, 0::2], x[2 * i + 1, 1::2]
        da, db, dc, dd = dx[2 * i, 0::2], dx[2 * i, 1::2], dx[2 * i + 1, 0::2], dx[2 * i + 1, 1::2]
        yr, gr = y[i], g[i]
        for j in range(y.shape[1]):
            m = yr[j]
            ha, hb, hc, hd = a[j] == m, b[j] == m, c[j] == m, d[j] == m
            count = (one if ha else zero) + (one if hb else zero) + (one if hc else zero) + (one if hd else zero)
            # g / count, with the counts 1, 2 and 4 as multiplications by their exact reciprocals (the same
            # correctly rounded value; measured 3x faster than dividing); 3 divides. 0 (a NaN max) hits nothing.
            if count == three:
                share = gr[j] / three
            else:
                share = gr[j] * (one if count == one else (half if count == two else quarter))
            # zero + ...: the reference adds into zeros, which turns a -0.0 share into +0.0.
            da[j] = zero + (share if ha else zero)
            db[j] = zero + (share if hb else zero)
            dc[j] = zero + (share if hc else zero)
            dd[j] = zero + (share if hd else zero)


# Plane loops: one serial and one parallel entry per window kind, so only the kind in use compiles.


@njit(**OPTS)
def _fwd_planes(x, y, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    for q in range(lo, hi):
        _fwd_plane(x[q // c, q % c], y[q // c, q % c], k, s)


@njit(**OPTS)
def _fwd_planes2(x, y, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    for q in range(lo, hi):
        _fwd_plane2(x[q // c, q % c], y[q // c, q % c])


@njit(**OPTS)
def _bwd_planes(g, x, y, dx, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    share = np.empty(y.shape[2:], x.dtype)
    for q in range(lo, hi):
        _bwd_plane(g[q // c, q % c], x[q // c, q % c], y[q // c, q % c], dx[q // c, q % c], share, k, s)


@njit(**OPTS)
def _bwd_planes2(g, x, y, dx, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    for q in range(lo, hi):
        _bwd_plane2(g[q // c, q % c], x[q // c, q % c], y[q // c, q % c], dx[q // c, q % c])


@parallel_kernel
def _fwd_par(x, y, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _fwd_planes(x, y, k, s, p * planes // pieces, (p + 1) * planes // pieces)


@parallel_kernel
def _fwd_par2(x, y, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _fwd_planes2(x, y, k, s, p * planes // pieces, (p + 1) * planes // pieces)


@parallel_kernel
def _bwd_par(g, x, y, dx, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _bwd_planes(g, x, y, dx, k, s, p * planes // pieces, (p + 1) * planes // pieces)


@parallel_kernel
def _bwd_par2(g, x, y, dx, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _bwd_planes2(g, x, y, dx, k, s, p * planes // pieces, (p + 1) * planes // pieces)


def _run(kernels: Tuple[Any, Any, Any, Any], x: np.ndarray, k: int, s: int, *arrays: np.ndarray) -> None:
    """Run the serial or parallel (generic or 2x2) kernel over every (n, c) plane."""
    serial, parallel, serial2, parallel2 = kernels
    if k == 2 and s == 2:
        serial, parallel = serial2, parallel2
    planes = x.shape[0] * x.shape[1]
    pieces = chunks(planes, x.size * k, _MIN_WORK)
    if pieces == 1:
        serial(*arrays, k, s, 0, planes)
    else:
        parallel(*arrays, k, s, pieces)


_FWD = (_fwd_planes, _fwd_par, _fwd_planes2, _fwd_par2)
_BWD = (_bwd_planes, _bwd_par, _bwd_planes2, _bwd_par2)


def _out_size(op: str, x: np.ndarray, k: int, stride: int) -> Tuple[int, int]:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got {x.shape}")
    if k < 1 or stride < 1:
        raise ValueError(f"{op}: kernel size {k} and stride {stride} must be >= 1")
    if x.shape[2] < k or x.shape[3] < k:
        raise ValueError(f"{op}: a {k} x {k} window does not fit in H x W = {x.shape[2]} x {x.shape[3]}")
    return (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1


def max_pool2d_forward(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Max over every valid k x k window: (N, C, H, W) -> (N, C, (H-k)//stride+1, (W-k)//stride+1).

    For "same" pooling the caller pads with -inf first.
    """
    check_float("max_pool2d_forward", x=x)
    ho, wo = _out_size("max_pool2d_forward", x, int(k), int(stride))
    y = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    _run(_FWD, x, int(k), int(stride), x, y)
    return y


def max_pool2d_backward(g: np.ndarray, x: np.ndarray, y: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Gradient w.r.t. x (N, C, H, W) from g and the forward's output y (N, C, Ho, Wo).

    Each window's gradient is shared equally by the elements equal to its max;
    overlapping windows add up.
    """
    check_float("max_pool2d_backward", g=g, x=x, y=y)
    ho, wo = _out_size("max_pool2d_backward", x, int(k), int(stride))
    if y.shape != x.shape[:2] + (ho, wo) or g.shape != y.shape:
        raise ValueError(f"max_pool2d_backward: g {g.shape} and y {y.shape} do not fit x {x.shape} (k={k})")
    dx = np.empty_like(x)
    _run(_BWD, x, int(k), int(stride), g, x, y, dx)
    return dx
