"""2-D convolution (cross-correlation) as im2col + BLAS, with the copies fused and parallel.

Layout: the columns of the whole batch side by side, a (C*k*k, N*Ho*Wo)
matrix, so each product is one GEMM: ``y = W (O, C*k*k) @ cols`` forward,
``dW = g (O, N*Ho*Wo) @ cols^T`` and ``dcols = W^T @ g`` backward (one large
GEMM measured 2-3x faster than NumPy's batched matmul over the samples). The
bias rides in the forward GEMM as one more kernel column against a row of
ones. Numba passes move (O, N, Ho, Wo) to and from NCHW.

* im2col: one Numba pass per (n, c) plane writes the zero padding and the
  shifted copies into a scratch buffer reused between calls (per thread). For
  stride 1 the rows are laid out at the padded width (see "wide columns"
  below), so every copy is one contiguous run.
* backward: the weight gradient needs the columns again. The forward can
  hand them over (``return_columns=True``, in a fresh array rather than the
  scratch buffer); otherwise they are recomputed from x. col2im adds the
  column gradients back into each (n, c) plane, offset by offset, in parallel
  over planes (no two threads share a plane: no races).

BLAS runs from Python with its own threads; Numba's threads run only in the
im2col/col2im passes between the BLAS calls. Results match the reference to
float rounding (the products sum in another order).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, fill_rows, parallel_kernel
from autograd_kernels_cpu._threads import chunks

__all__ = ["conv2d_forward", "conv2d_backward", "columns_nbytes"]

_MIN_WORK = 1 << 19  # elements copied by im2col / col2im
_scratch = threading.local()


def _buffer(name: str, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A scratch array of ``shape``, reused between calls of this thread (never returned to callers)."""
    size = int(np.prod(shape))
    key = (name, dtype)
    pool = getattr(_scratch, "pool", None)
    if pool is None:
        pool = _scratch.pool = {}
    buf = pool.get(key)
    if buf is None or buf.size < size:
        buf = pool[key] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


@njit(**OPTS)
def _valid_cols(j, s, left, w, wo):  # type: ignore[no-untyped-def]
    """The output columns ``[lo, hi)`` whose input column ``ow * s + j - left`` lies inside ``0..w-1``."""
    lo = max(0, (left - j + s - 1) // s)
    hi = min(wo, (w - 1 + left - j) // s + 1)
    return lo, max(lo, hi)


@njit(**OPTS)
def _im2col_plane(x, cols, k, s, d, top, left, ho, wo):  # type: ignore[no-untyped-def]
    # x: (H, W) one input plane; cols: (k*k, Ho*Wo), this plane's rows of the column matrix. Kernel offset
    # (i, j) reads input pixel (oh * s + i * d - top, ow * s + j * d - left).
    h, w = x.shape
    zero = x.dtype.type(0.0)
    for i in range(k):
        for j in range(k):
            row = cols[i * k + j]
            lo, hi = _valid_cols(j * d, s, left, w, wo)
            for oh in range(ho):
                src = oh * s + i * d - top
                base = oh * wo
                if src < 0 or src >= h:
                    row[base : base + wo] = zero
                    continue
                xr, dst = x[src][lo * s + j * d - left :], row[base:]
                for ow in range(lo):
                    dst[ow] = zero
                for ow in range(hi - lo):
                    dst[lo + ow] = xr[ow * s]
                for ow in range(hi, wo):
                    dst[ow] = zero


@njit(**OPTS)
def _im2col_planes(x, cols, k, s, d, top, left, ho, wo, lo, hi):  # type: ignore[no-untyped-def]
    # cols: (C*k*k, N*Ho*Wo); plane q = (n, c) fills rows c*k*k.. and columns n*Ho*Wo..
    c = x.shape[1]
    kk, hw = k * k, ho * wo
    for q in range(lo, hi):
        n, ci = q // c, q % c
        _im2col_plane(x[n, ci], cols[ci * kk : (ci + 1) * kk, n * hw : (n + 1) * hw], k, s, d, top, left, ho, wo)


@parallel_kernel
def _im2col_par(x, cols, k, s, d, top, left, ho, wo, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _im2col_planes(x, cols, k, s, d, top, left, ho, wo, p * planes // pieces, (p + 1) * planes // pieces)


@njit(**OPTS)
def _col2im_plane(cols, dx, k, s, d, top, left, ho, wo):  # type: ignore[no-untyped-def]
    # cols: (k*k, Ho*Wo) gradient columns of one plane; dx: (H, W), overwritten. Offsets are added in the
    # reference's order (i, j), each a strided add.
    h, w = dx.shape
    fill_rows(dx, dx.dtype.type(0.0))
    for i in range(k):
        for j in range(k):
            row = cols[i * k + j]
            lo, hi = _valid_cols(j * d, s, left, w, wo)
            for oh in range(ho):
                dst = oh * s + i * d - top
                if dst < 0 or dst >= h:
                    continue
                dr, src = dx[dst][lo * s + j * d - left :], row[oh * wo + lo :]
                for ow in range(hi - lo):
                    dr[ow * s] += src[ow]


@njit(**OPTS)
def _col2im_planes(cols, dx, k, s, d, top, left, ho, wo, lo, hi):  # type: ignore[no-untyped-def]
    c = dx.shape[1]
    kk, hw = k * k, ho * wo
    for q in range(lo, hi):
        n, ci = q // c, q % c
        _col2im_plane(cols[ci * kk : (ci + 1) * kk, n * hw : (n + 1) * hw], dx[n, ci], k, s, d, top, left, ho, wo)


@parallel_kernel
def _col2im_par(cols, dx, k, s, d, top, left, ho, wo, pieces):  # type: ignore[no-untyped-def]
    planes = dx.shape[0] * dx.shape[1]
    for p in prange(pieces):
        _col2im_planes(cols, dx, k, s, d, top, left, ho, wo, p * planes // pieces, (p + 1) * planes // pieces)


# --- stride 1: "wide" columns -------------------------------------------------------------------------------
# With stride 1, output pixel (oh, ow) of kernel offset (i, j) reads padded pixel (oh + i d, ow + j d) (d the
# dilation). Computing every output row at the padded width Wp instead of Wo (Wp - Wo = d (k - 1) extra
# columns, dropped afterwards)
# makes each offset's column row one contiguous run of the flat padded plane: im2col becomes k*k memcpy-like
# copies per plane and col2im k*k contiguous adds, where the exact layout needs a short copy per output row.
# The GEMMs do (Wp / Wo) more work (16/14 for the CNN's 3x3 "same" layers); the extra columns of the gradient
# are zeros, so they add nothing to dW or dx.


@njit(**OPTS)
def _im2col_wide_plane(x, cols, xp, k, d, top, left, hp, wp, ho):  # type: ignore[no-untyped-def]
    # x: (H, W) one plane; cols: (k*k, Ho*Wp) its rows; xp: flat scratch of Hp*Wp + d*(k - 1).
    h, w = x.shape
    zero = x.dtype.type(0.0)
    xp[:] = zero
    # Every inner loop indexes slices from 0: an index Numba cannot prove non-negative gets a wrap-around
    # check (negative indices count from the end) that keeps LLVM from vectorizing the loop.
    for r in range(h):
        dst, xr = xp[(r + top) * wp + left :], x[r]
        for c in range(w):
            dst[c] = xr[c]
    span = ho * wp
    for i in range(k):
        for j in range(k):
            row, src = cols[i * k + j], xp[(i * wp + j) * d :]
            for t in range(span):
                row[t] = src[t]


@njit(**OPTS)
def _im2col_wide_planes(x, cols, k, d, top, left, hp, wp, ho, lo, hi):  # type: ignore[no-untyped-def]
    c = x.shape[1]
    kk, span = k * k, ho * wp
    xp = np.empty(hp * wp + d * (k - 1), x.dtype)
    for q in range(lo, hi):
        n, ci = q // c, q % c
        _im2col_wide_plane(
            x[n, ci], cols[ci * kk : (ci + 1) * kk, n * span : (n + 1) * span], xp, k, d, top, left, hp, wp, ho
        )


@parallel_kernel
def _im2col_wide_par(x, cols, k, d, top, left, hp, wp, ho, pieces):  # type: ignore[no-untyped-def]
    planes = x.shape[0] * x.shape[1]
    for p in prange(pieces):
        _im2col_wide_planes(x, cols, k, d, top, left, hp, wp, ho, p * planes // pieces, (p + 1) * planes // pieces)


@njit(**OPTS)
def _col2im_wide_plane(cols, dx, dxp, k, d, top, left, wp, ho):  # type: ignore[no-untyped-def]
    # cols: (k*k, Ho*Wp) gradient columns of one plane; dx: (H, W) overwritten; dxp: flat scratch.
    h, w = dx.shape
    dxp[:] = dx.dtype.type(0.0)
    span = ho * wp
    for i in range(k):
        for j in range(k):
            row, dst = cols[i * k + j], dxp[(i * wp + j) * d :]
            for t in range(span):
                dst[t] += row[t]
    for r in range(h):
        src, dr = dxp[(r + top) * wp + left :], dx[r]
        for c in range(w):
            dr[c] = src[c]


@njit(**OPTS)
def _col2im_wide_planes(cols, dx, k, d, top, left, hp, wp, ho, lo, hi):  # type: ignore[no-untyped-def]
    c = dx.shape[1]
    kk, span = k * k, ho * wp
    dxp = np.empty(hp * wp + d * (k - 1), dx.dtype)
    for q in range(lo, hi):
        n, ci = q // c, q % c
        _col2im_wide_plane(
            cols[ci * kk : (ci + 1) * kk, n * span : (n + 1) * span], dx[n, ci], dxp, k, d, top, left, wp, ho
        )


@parallel_kernel
def _col2im_wide_par(cols, dx, k, d, top, left, hp, wp, ho, pieces):  # type: ignore[no-untyped-def]
    planes = dx.shape[0] * dx.shape[1]
    for p in prange(pieces):
        _col2im_wide_planes(cols, dx, k, d, top, left, hp, wp, ho, p * planes // pieces, (p + 1) * planes // pieces)


@njit(**OPTS)
def _to_nchw(y, out):  # type: ignore[no-untyped-def]
    # y: (O, N, Ho, width) GEMM output -> out: (N, O, Ho, Wo), dropping the wide layout's extra columns.
    wo = out.shape[3]
    for o in range(y.shape[0]):
        for n in range(y.shape[1]):
            for h in range(y.shape[2]):
                src, dst = y[o, n, h], out[n, o, h]
                for c in range(wo):
                    dst[c] = src[c]


@njit(**OPTS)
def _from_nchw(g, g_t):  # type: ignore[no-untyped-def]
    # g: (N, O, Ho, Wo) -> g_t: (O, N, Ho, width), zeros in the extra columns.
    wo, width = g.shape[3], g_t.shape[3]
    zero = g.dtype.type(0.0)
    for o in range(g_t.shape[0]):
        for n in range(g_t.shape[1]):
            for h in range(g_t.shape[2]):
                src, dst = g[n, o, h], g_t[o, n, h]
                for c in range(wo):
                    dst[c] = src[c]
                for c in range(wo, width):
                    dst[c] = zero


def _geometry(
    op: str, x: np.ndarray, w: np.ndarray, stride: int, pad: Tuple[int, int, int, int], dilation: int = 1
) -> Tuple[int, ...]:
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != x.shape[1] or w.shape[2] != w.shape[3]:
        raise ValueError(f"{op}: expected x (N, C, H, W) and w (O, C, k, k), got {x.shape} and {w.shape}")
    if stride < 1 or dilation < 1 or len(pad) != 4 or min(pad) < 0:
        raise ValueError(
            f"{op}: stride {stride} and dilation {dilation} must be >= 1 and pad {pad} four non-negative ints"
        )
    k = w.shape[2]
    span = dilation * (k - 1) + 1
    top, bottom, left, right = (int(p) for p in pad)
    hp, wp = x.shape[2] + top + bottom, x.shape[3] + left + right
    if hp < span or wp < span:
        raise ValueError(f"{op}: a {k} x {k} kernel spanning {span} pixels does not fit the padded input {hp} x {wp}")
    return k, top, left, (hp - span) // stride + 1, (wp - span) // stride + 1


def _row_width(k: int, s: int, wo: int, d: int = 1) -> int:
    """Columns per output row in the column matrix: the padded width Wp for stride 1 (the wide layout), else Wo."""
    return wo + d * (k - 1) if s == 1 else wo


def _im2col(
    x: np.ndarray,
    k: int,
    s: int,
    top: int,
    left: int,
    ho: int,
    wo: int,
    extra: int,
    fresh: bool = False,
    d: int = 1,
) -> Tuple[np.ndarray, int]:
    """Columns (C*k*k + extra, N*Ho*width) in a scratch buffer (a new array if ``fresh``), and the width of
    their output rows.

    The width is :func:`_row_width`. The ``extra`` rows are left to the caller.
    """
    n, c, h, w = x.shape
    planes = n * c
    width = _row_width(k, s, wo, d)
    shape = (c * k * k + extra, n * ho * width)
    cols = np.empty(shape, x.dtype) if fresh else _buffer("cols", shape, x.dtype)
    pieces = chunks(planes, cols.size, _MIN_WORK)
    if s == 1:
        hp = ho + d * (k - 1)
        if pieces == 1:
            _im2col_wide_planes(x, cols, k, d, top, left, hp, width, ho, 0, planes)
        else:
            _im2col_wide_par(x, cols, k, d, top, left, hp, width, ho, pieces)
        return cols, width
    if pieces == 1:
        _im2col_planes(x, cols, k, s, d, top, left, ho, wo, 0, planes)
    else:
        _im2col_par(x, cols, k, s, d, top, left, ho, wo, pieces)
    return cols, width


def columns_nbytes(
    x: np.ndarray, w: np.ndarray, stride: int, pad: Tuple[int, int, int, int], bias: bool, dilation: int = 1
) -> int:
    """Bytes of the columns ``conv2d_forward(..., return_columns=True)`` returns for these inputs."""
    k, _, _, ho, wo = _geometry("columns_nbytes", x, w, int(stride), pad, int(dilation))
    width = _row_width(k, int(stride), wo, int(dilation))
    rows = x.shape[1] * k * k + (1 if bias else 0)
    return rows * x.shape[0] * ho * width * x.dtype.itemsize


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: Optional[np.ndarray],
    stride: int,
    pad: Tuple[int, int, int, int],
    return_columns: bool = False,
    dilation: int = 1,
) -> Any:
    """Cross-correlation of x (N, C, H, W) with w (O, C, k, k), plus b (O,) or None.

    ``pad`` = (top, bottom, left, right) zero padding; kernel elements ``dilation`` pixels apart. Returns
    y (N, O, Ho, Wo) with ``Ho = (H + top + bottom - dilation (k - 1) - 1) // stride + 1`` (likewise Wo).
    With ``return_columns``, returns
    ``(y, cols)``: the im2col matrix in an array of its own, to pass to :func:`conv2d_backward`, which then
    skips rebuilding it (it is k*k times the size of x; the caller decides whether that memory is worth it).
    """
    op = "conv2d_forward"
    if b is None:
        check_float(op, x=x, w=w)
    else:
        check_float(op, x=x, w=w, b=b)
    d = int(dilation)
    k, top, left, ho, wo = _geometry(op, x, w, int(stride), pad, d)
    n, o = x.shape[0], w.shape[0]
    ckk = w.shape[1] * k * k
    if b is not None and b.shape != (o,):
        raise ValueError(f"{op}: b has shape {b.shape}, expected ({o},)")
    extra = 1 if b is not None else 0
    cols, width = _im2col(x, k, int(stride), top, left, ho, wo, extra, fresh=return_columns, d=d)
    wmat = w.reshape(o, ckk)
    if b is not None:
        # The bias rides along as one more kernel column against a row of ones.
        cols[ckk] = 1
        wmat = np.concatenate([wmat, b.reshape(o, 1)], axis=1)
    y = wmat @ cols  # (O, N*Ho*width): one GEMM for the whole batch
    out = np.empty((n, o, ho, wo), x.dtype)
    _to_nchw(y.reshape(o, n, ho, width), out)
    return (out, cols) if return_columns else out


def conv2d_backward(
    g: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: int,
    pad: Tuple[int, int, int, int],
    need_dx: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
    cols: Optional[np.ndarray] = None,
    dilation: int = 1,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Gradients of :func:`conv2d_forward` from g (N, O, Ho, Wo).

    ``cols`` is what ``conv2d_forward(..., return_columns=True)`` returned for the same x, w, stride, pad
    and dilation; without it the weight gradient rebuilds the columns from x.

    Returns:
        ``(dx, dw, db)``: (N, C, H, W), (O, C, k, k), (O,); None for each one not asked for.
    """
    op = "conv2d_backward"
    check_float(op, g=g, x=x, w=w)
    d = int(dilation)
    k, top, left, ho, wo = _geometry(op, x, w, int(stride), pad, d)
    n, c = x.shape[:2]
    o, s = w.shape[0], int(stride)
    if g.shape != (n, o, ho, wo):
        raise ValueError(f"{op}: g has shape {g.shape}, expected {(n, o, ho, wo)}")
    # (O, N*Ho*width): the batch side by side, so each product below is one GEMM (a small copy of g; with the
    # wide layout of stride 1 the extra columns are zeros).
    width = _row_width(k, s, wo, d)
    g_t = _buffer("g_t", (o, n, ho, width), g.dtype)
    _from_nchw(g, g_t)
    g_t = g_t.reshape(o, n * ho * width)
    dw = db = dx = None
    if need_dw:
        ckk = c * k * k
        if cols is None:
            cols, _ = _im2col(x, k, s, top, left, ho, wo, 0, d=d)
        elif (
            cols.dtype != x.dtype
            or cols.ndim != 2
            or cols.shape[0] not in (ckk, ckk + 1)
            or cols.shape[1] != g_t.shape[1]
        ):
            raise ValueError(
                f"{op}: cols {cols.dtype} {cols.shape} are not the columns conv2d_forward returned for x "
                f"{x.dtype} {x.shape} and w {w.shape} (expected {ckk} or {ckk + 1} rows of {g_t.shape[1]})"
            )
        # The forward's columns may carry the bias's row of ones last: only the kernel's rows take part.
        dw = (g_t @ cols[:ckk].T).reshape(w.shape)
    if need_db:
        db = g_t.sum(axis=1, dtype=np.float64).astype(g.dtype)
    if need_dx:
        dcols = _buffer("dcols", (c * k * k, n * ho * width), x.dtype)
        np.matmul(w.reshape(o, c * k * k).T, g_t, out=dcols)
        dx = np.empty_like(x)
        planes = n * c
        pieces = chunks(planes, dcols.size, _MIN_WORK)
        if s == 1:
            hp, wp = ho + d * (k - 1), width
            if pieces == 1:
                _col2im_wide_planes(dcols, dx, k, d, top, left, hp, wp, ho, 0, planes)
            else:
                _col2im_wide_par(dcols, dx, k, d, top, left, hp, wp, ho, pieces)
        elif pieces == 1:
            _col2im_planes(dcols, dx, k, s, d, top, left, ho, wo, 0, planes)
        else:
            _col2im_par(dcols, dx, k, s, d, top, left, ho, wo, pieces)
    return dx, dw, db
