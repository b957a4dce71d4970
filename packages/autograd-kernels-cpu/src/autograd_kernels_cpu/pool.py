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

from typing import Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float
from autograd_kernels_cpu._threads import chunks

__all__ = ["max_pool2d_forward", "max_pool2d_backward"]

_MIN_WORK = 1 << 17


@njit(**OPTS)
def _fwd_plane(x, y, k, s):  # type: ignore[no-untyped-def]
    ho, wo = y.shape
    for i in range(ho):
        for j in range(wo):
            m = x[i * s, j * s]
            for di in range(k):
                row = x[i * s + di]
                for dj in range(k):
                    v = row[j * s + dj]
                    m = v if (v > m or v != v) else m  # NaN wins, as with np.maximum
            y[i, j] = m


@njit(**OPTS)
def _bwd_plane(g, x, y, dx, share, k, s):  # type: ignore[no-untyped-def]
    ho, wo = y.shape
    one, zero = x.dtype.type(1.0), x.dtype.type(0.0)
    for i in range(ho):
        for j in range(wo):
            count = zero
            for di in range(k):
                for dj in range(k):
                    if x[i * s + di, j * s + dj] == y[i, j]:
                        count += one
            share[i, j] = g[i, j] / count  # no element equals a NaN max: nothing is added below
    dx[:, :] = zero
    # Offset by offset, as the reference adds them, so overlapping windows sum in its order.
    for di in range(k):
        for dj in range(k):
            for i in range(ho):
                for j in range(wo):
                    if x[i * s + di, j * s + dj] == y[i, j]:
                        dx[i * s + di, j * s + dj] += share[i, j]


@njit(**OPTS)
def _fwd_planes(x, y, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    for q in range(lo, hi):
        _fwd_plane(x[q // c, q % c], y[q // c, q % c], k, s)


@njit(**OPTS)
def _bwd_planes(g, x, y, dx, k, s, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    share = np.empty(y.shape[2:], x.dtype)
    for q in range(lo, hi):
        _bwd_plane(g[q // c, q % c], x[q // c, q % c], y[q // c, q % c], dx[q // c, q % c], share, k, s)


@njit(parallel=True, **OPTS)
def _fwd_par(x, y, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _fwd_planes(x, y, k, s, p * planes // pieces, (p + 1) * planes // pieces)


@njit(parallel=True, **OPTS)
def _bwd_par(g, x, y, dx, k, s, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _bwd_planes(g, x, y, dx, k, s, p * planes // pieces, (p + 1) * planes // pieces)


def _out_size(op: str, x: np.ndarray, k: int, stride: int) -> Tuple[int, int]:
    if x.ndim != 4:
        raise ValueError(f"{op}: expected x of shape (N, C, H, W), got {x.shape}")
    if k < 1 or stride < 1:
        raise ValueError(f"{op}: kernel size {k} and stride {stride} must be >= 1")
    if x.shape[2] < k or x.shape[3] < k:
        raise ValueError(f"{op}: a {k} x {k} window does not fit in H x W = {x.shape[2]} x {x.shape[3]}")
    return (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1


def _pieces(x: np.ndarray, k: int) -> int:
    return chunks(x.shape[0] * x.shape[1], x.size * k, _MIN_WORK)


def max_pool2d_forward(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Max over every valid k x k window: (N, C, H, W) -> (N, C, (H-k)//stride+1, (W-k)//stride+1).

    For "same" pooling the caller pads with -inf first.
    """
    check_float("max_pool2d_forward", x=x)
    ho, wo = _out_size("max_pool2d_forward", x, int(k), int(stride))
    y = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    pieces = _pieces(x, int(k))
    if pieces == 1:
        _fwd_planes(x, y, int(k), int(stride), 0, x.shape[0] * x.shape[1])
    else:
        _fwd_par(x, y, int(k), int(stride), pieces)
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
    pieces = _pieces(x, int(k))
    if pieces == 1:
        _bwd_planes(g, x, y, dx, int(k), int(stride), 0, x.shape[0] * x.shape[1])
    else:
        _bwd_par(g, x, y, dx, int(k), int(stride), pieces)
    return dx
