"""Cross entropy on (N, C) logits with class-index targets, ``ignore_index`` and label smoothing.

One pass per row each way, never building log-probabilities or a one-hot:
the forward keeps only the per-row log-sum-exp ``lse``, and the backward
recomputes ``softmax = exp(logits - lse)``. The formulas are
``autograd.functional.CrossEntropy``'s; the loss is summed in float64 and
returned in the logits' dtype, so it matches to float rounding.

Targets outside ``0..C-1`` that are not ``ignore_index`` raise ``ValueError``
naming the value, as the reference does (the kernel flags the first such row
of each block; the check costs nothing extra).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, check_int, exp_sum, parallel_kernel, row_max, row_sum
from autograd_kernels_cpu._math import fast_exp
from autograd_kernels_cpu._threads import chunks

__all__ = ["cross_entropy_forward", "cross_entropy_backward"]

_MIN_WORK = 1 << 16


@njit(**OPTS)
def _fwd_rows(logits, targets, ignore_index, eps, lse, out):  # type: ignore[no-untyped-def]
    # out: [loss sum, count of valid rows, first bad row or -1] for these rows (float64).
    t_ = logits.dtype.type
    c = logits.shape[1]
    total, count, bad = 0.0, 0, -1
    scratch = np.empty(c, logits.dtype)
    for r in range(logits.shape[0]):
        xr = logits[r]
        m = row_max(xr)
        s = exp_sum(xr, m, scratch)
        lse_r = t_(m + t_(np.log(s)))
        lse[r] = lse_r
        t = targets[r]
        if t == ignore_index:
            continue
        if t < 0 or t >= c:
            if bad < 0:
                bad = r
            continue
        count += 1
        # log p_j = x_j - lse; the smoothing term needs sum_j log p_j = sum_j x_j - C * lse.
        loss = -(1.0 - eps) * np.float64(xr[t] - lse_r)
        if eps != 0.0:
            loss -= (eps / c) * (row_sum(xr) - c * np.float64(lse_r))
        total += loss
    out[0], out[1], out[2] = total, count, bad


@parallel_kernel
def _fwd_par(logits, targets, ignore_index, eps, lse, parts):  # type: ignore[no-untyped-def]
    pieces = parts.shape[0]
    n = logits.shape[0]
    for p in prange(pieces):
        lo, hi = p * n // pieces, (p + 1) * n // pieces
        _fwd_rows(logits[lo:hi], targets[lo:hi], ignore_index, eps, lse[lo:hi], parts[p])
        if parts[p, 2] >= 0:
            parts[p, 2] += lo


@njit(**OPTS)
def _bwd_rows(logits, lse, targets, ignore_index, eps, scale, dx):  # type: ignore[no-untyped-def]
    t_ = logits.dtype.type
    c = logits.shape[1]
    smooth, hit, k = t_(eps / c), t_(-(1.0 - eps)), t_(scale)
    zero = t_(0.0)
    for r in range(logits.shape[0]):
        xr, dr = logits[r], dx[r]
        t = targets[r]
        if t == ignore_index or t < 0 or t >= c:
            for j in range(c):
                dr[j] = zero
            continue
        m = lse[r]
        for j in range(c):
            dr[j] = fast_exp(xr[j] - m) - smooth
        dr[t] = dr[t] + hit
        for j in range(c):
            dr[j] = dr[j] * k


@parallel_kernel
def _bwd_par(logits, lse, targets, ignore_index, eps, scale, dx, pieces):  # type: ignore[no-untyped-def]
    n = logits.shape[0]
    for p in prange(pieces):
        lo, hi = p * n // pieces, (p + 1) * n // pieces
        _bwd_rows(logits[lo:hi], lse[lo:hi], targets[lo:hi], ignore_index, eps, scale, dx[lo:hi])


def _check(op: str, logits: np.ndarray, targets: np.ndarray, label_smoothing: float) -> None:
    check_float(op, logits=logits)
    check_int(op, "targets", targets)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"{op}: logits must be (N, C) with C > 0, got shape {logits.shape}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"{op}: targets of shape {targets.shape} do not match logits of shape {logits.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")


def cross_entropy_forward(
    logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100, label_smoothing: float = 0.0
) -> Tuple[np.ndarray, int, np.ndarray]:
    r"""Summed cross entropy over the rows whose target is not ``ignore_index``.

    Per valid row :math:`i`, with :math:`\log p_{ij} = x_{ij} - lse_i` and :math:`\epsilon` the smoothing:
    :math:`-(1-\epsilon)\log p_{i,t_i} - (\epsilon/C)\sum_j \log p_{ij}`.

    Args:
        logits: (N, C), float32 or float64.
        targets: (N,) class indices, int32 or int64.

    Returns:
        ``(loss_sum, count, lse)``: a 0-d array in the logits' dtype (accumulated in float64),
        the number of non-ignored rows, and the (N,) per-row log-sum-exp for :func:`cross_entropy_backward`.

    Raises:
        ValueError: a target outside ``0..C-1`` that is not ``ignore_index`` (the message names it).
    """
    op = "cross_entropy_forward"
    _check(op, logits, targets, label_smoothing)
    n, c = logits.shape
    lse = np.empty(n, logits.dtype)
    parts = np.zeros((chunks(n, logits.size * 4, _MIN_WORK), 3))
    if parts.shape[0] == 1:
        _fwd_rows(logits, targets, int(ignore_index), float(label_smoothing), lse, parts[0])
    else:
        _fwd_par(logits, targets, int(ignore_index), float(label_smoothing), lse, parts)
    bad = parts[:, 2][parts[:, 2] >= 0]
    if bad.size:
        value = int(targets[int(bad[0])])
        raise ValueError(
            f"cross_entropy: target {value} is out of range for {c} classes "
            f"(valid: 0..{c - 1}, or ignore_index={ignore_index})"
        )
    return np.asarray(parts[:, 0].sum(), dtype=logits.dtype), int(parts[:, 1].sum()), lse


def cross_entropy_backward(
    logits: np.ndarray,
    lse: np.ndarray,
    targets: np.ndarray,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    r"""Gradient of the summed loss times ``scale``: :math:`scale \cdot (p_{ij} - \epsilon/C - (1-\epsilon)[j = t_i])`.

    Rows whose target is ``ignore_index`` get 0. ``scale`` is the upstream
    gradient, divided by the count for a mean.

    Args:
        logits: (N, C), the forward's input.
        lse: (N,) per-row log-sum-exp, from :func:`cross_entropy_forward`.
        targets: (N,) class indices, int32 or int64.

    Returns:
        dlogits (N, C) in the logits' dtype.
    """
    op = "cross_entropy_backward"
    _check(op, logits, targets, label_smoothing)
    check_float(op, logits=logits, lse=lse)
    if lse.shape != (logits.shape[0],):
        raise ValueError(f"{op}: lse has shape {lse.shape}, expected ({logits.shape[0]},)")
    dx = np.empty_like(logits)
    pieces = chunks(logits.shape[0], logits.size * 4, _MIN_WORK)
    args = (logits, lse, targets, int(ignore_index), float(label_smoothing), float(scale), dx)
    if pieces == 1:
        _bwd_rows(*args)
    else:
        _bwd_par(*args, pieces)
    return dx
