"""Element-wise activations and their gradients, each one pass over flat arrays.

Every function takes arrays of any shape (C-contiguous float32 or float64) and
works on their flat views; outputs are new arrays of the input's shape. The
arithmetic follows ``autograd.functional`` operation by operation, so ReLU is
bit-identical to it; sigmoid and tanh differ by the few ulp between
``autograd_kernels_cpu._math`` and NumPy's exp/tanh. GELU (tanh approximation)
is computed in the equal form ``x * sigmoid(2u)``: one exp instead of a tanh,
within a few ulp of the reference, and closer to the exact value in the far
negative tail, where the reference's ``1 + tanh(u)`` rounds to 0.

Large arrays (``chunks`` decides) are cut into one contiguous piece per thread.
"""

from __future__ import annotations

import math
from typing import Any, Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, parallel_kernel
from autograd_kernels_cpu._math import fast_exp, fast_tanh
from autograd_kernels_cpu._threads import chunks

__all__ = [
    "gelu_forward",
    "gelu_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
]

_TWO_SQRT_2_OVER_PI = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_CUBE = 0.044715
_GELU_CUBE3 = 3 * 0.044715  # the reference's constant, rounded once in float64 as Python does
# Element-operations below which an element-wise pass stays on one thread; the transcendental passes
# (exp, tanh) cost about ten times a plain one, so they go parallel at a tenth of the size.
_PLAIN_MIN = 1 << 19
_TRANSCENDENTAL_MIN = 1 << 16


# --- serial kernels on 1-D arrays (one contiguous piece) -----------------------------------------------


@njit(**OPTS)
def _gelu_fwd(x, y):  # type: ignore[no-untyped-def]
    # 0.5 v (1 + tanh(u)) = v sigmoid(2u): one exp and one division, and no cancellation in the far negative
    # tail (where 1 + tanh(u) rounds to 0 but v sigmoid(2u) is still a tiny negative number).
    t_ = x.dtype.type
    c2, a, one = t_(_TWO_SQRT_2_OVER_PI), t_(_GELU_CUBE), t_(1.0)
    for i in range(x.size):
        v = x[i]
        y[i] = v / (one + fast_exp(-(c2 * (v + a * v * v * v))))


@njit(**OPTS)
def _gelu_bwd(g, x, dx):  # type: ignore[no-untyped-def]
    # d/dv [v s] = s + v s (1 - s) 2u' with s = sigmoid(2u), 2u' = 2 sqrt(2/pi) (1 + 3 * 0.044715 v^2): the
    # reference's 0.5 (1 + t) + 0.5 v (1 - t^2) u' with t = 2s - 1. 1 - s is e s where e = exp(-2u) is below 1
    # (no cancellation as s nears 1), else 1 - s (e s would be inf * 0 where e overflows).
    t_ = x.dtype.type
    c2, a, a3, one = t_(_TWO_SQRT_2_OVER_PI), t_(_GELU_CUBE), t_(_GELU_CUBE3), t_(1.0)
    for i in range(x.size):
        v = x[i]
        e = fast_exp(-(c2 * (v + a * v * v * v)))
        s = one / (one + e)
        rest = e * s if e < one else one - s
        dx[i] = g[i] * (s + v * s * rest * c2 * (one + a3 * v * v))


@njit(**OPTS)
def _relu_fwd(x, y):  # type: ignore[no-untyped-def]
    zero = x.dtype.type(0.0)
    for i in range(x.size):
        v = x[i]
        y[i] = v if (v > zero or v != v) else zero  # np.maximum(x, 0): NaN passes, -0.0 becomes +0.0


@njit(**OPTS)
def _relu_bwd(g, x, dx):  # type: ignore[no-untyped-def]
    zero = x.dtype.type(0.0)
    for i in range(x.size):
        dx[i] = g[i] if x[i] > zero else zero


@njit(**OPTS)
def _sigmoid_fwd(x, y):  # type: ignore[no-untyped-def]
    one, zero = x.dtype.type(1.0), x.dtype.type(0.0)
    for i in range(x.size):
        v = x[i]
        e = fast_exp(-abs(v))  # never overflows
        y[i] = one / (one + e) if v >= zero else e / (one + e)


@njit(**OPTS)
def _sigmoid_bwd(g, y, dx):  # type: ignore[no-untyped-def]
    one = y.dtype.type(1.0)
    for i in range(y.size):
        dx[i] = g[i] * y[i] * (one - y[i])


@njit(**OPTS)
def _tanh_fwd(x, y):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        y[i] = fast_tanh(x[i])


@njit(**OPTS)
def _tanh_bwd(g, y, dx):  # type: ignore[no-untyped-def]
    one = y.dtype.type(1.0)
    for i in range(y.size):
        dx[i] = g[i] * (one - y[i] * y[i])


# --- parallel drivers: one contiguous piece per thread (compiled only when an input is large) -----------


@parallel_kernel
def _gelu_fwd_par(x, y, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _gelu_fwd(x[lo:hi], y[lo:hi])


@parallel_kernel
def _gelu_bwd_par(g, x, dx, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _gelu_bwd(g[lo:hi], x[lo:hi], dx[lo:hi])


@parallel_kernel
def _relu_fwd_par(x, y, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _relu_fwd(x[lo:hi], y[lo:hi])


@parallel_kernel
def _relu_bwd_par(g, x, dx, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _relu_bwd(g[lo:hi], x[lo:hi], dx[lo:hi])


@parallel_kernel
def _sigmoid_fwd_par(x, y, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _sigmoid_fwd(x[lo:hi], y[lo:hi])


@parallel_kernel
def _sigmoid_bwd_par(g, y, dx, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * y.size // pieces, (p + 1) * y.size // pieces
        _sigmoid_bwd(g[lo:hi], y[lo:hi], dx[lo:hi])


@parallel_kernel
def _tanh_fwd_par(x, y, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * x.size // pieces, (p + 1) * x.size // pieces
        _tanh_fwd(x[lo:hi], y[lo:hi])


@parallel_kernel
def _tanh_bwd_par(g, y, dx, pieces):  # type: ignore[no-untyped-def]
    for p in prange(pieces):
        lo, hi = p * y.size // pieces, (p + 1) * y.size // pieces
        _tanh_bwd(g[lo:hi], y[lo:hi], dx[lo:hi])


# (serial kernel, parallel driver, element-operations below which it stays serial)
_GELU = (_gelu_fwd, _gelu_fwd_par, _gelu_bwd, _gelu_bwd_par, _TRANSCENDENTAL_MIN)
_RELU = (_relu_fwd, _relu_fwd_par, _relu_bwd, _relu_bwd_par, _PLAIN_MIN)
_SIGMOID = (_sigmoid_fwd, _sigmoid_fwd_par, _sigmoid_bwd, _sigmoid_bwd_par, _TRANSCENDENTAL_MIN)
_TANH = (_tanh_fwd, _tanh_fwd_par, _tanh_bwd, _tanh_bwd_par, _TRANSCENDENTAL_MIN)


def _unary(op: str, kind: Tuple[Any, ...], x: np.ndarray) -> np.ndarray:
    check_float(op, x=x)
    serial, parallel, _, _, min_work = kind
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    pieces = chunks(xf.size, xf.size, min_work)
    if pieces == 1:
        serial(xf, yf)
    else:
        parallel(xf, yf, pieces)
    return y


def _binary(op: str, kind: Tuple[Any, ...], g: np.ndarray, x: np.ndarray, x_name: str) -> np.ndarray:
    check_float(op, g=g, **{x_name: x})
    if g.shape != x.shape:
        raise ValueError(f"{op}: g has shape {g.shape}, {x_name} has shape {x.shape}")
    _, _, serial, parallel, min_work = kind
    dx = np.empty_like(x)
    gf, xf, df = g.reshape(-1), x.reshape(-1), dx.reshape(-1)
    pieces = chunks(xf.size, xf.size, min_work)
    if pieces == 1:
        serial(gf, xf, df)
    else:
        parallel(gf, xf, df, pieces)
    return dx


def gelu_forward(x: np.ndarray) -> np.ndarray:
    r"""GELU, tanh approximation: :math:`0.5x(1 + \tanh(\sqrt{2/\pi}(x + 0.044715x^3)))`; same shape as ``x``."""
    return _unary("gelu_forward", _GELU, x)


def gelu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of GELU at ``x`` times ``g`` (tanh recomputed, nothing saved); same shape as ``x``."""
    return _binary("gelu_backward", _GELU, g, x, "x")


def relu_forward(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` (NaN stays NaN, as ``np.maximum``); same shape as ``x``."""
    return _unary("relu_forward", _RELU, x)


def relu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``g`` where ``x > 0``, else 0; same shape as ``x``."""
    return _binary("relu_backward", _RELU, g, x, "x")


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """Sigmoid in the overflow-free form ``1/(1+e)`` or ``e/(1+e)`` with ``e = exp(-|x|)``; same shape."""
    return _unary("sigmoid_forward", _SIGMOID, x)


def sigmoid_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``g * y * (1 - y)`` from the forward's output ``y``; same shape."""
    return _binary("sigmoid_backward", _SIGMOID, g, y, "y")


def tanh_forward(x: np.ndarray) -> np.ndarray:
    """tanh, element-wise; same shape as ``x``."""
    return _unary("tanh_forward", _TANH, x)


def tanh_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``g * (1 - y*y)`` from the forward's output ``y``; same shape."""
    return _binary("tanh_backward", _TANH, g, y, "y")
