"""Memory-linear attention for NumPy: BLAS for the products, one fused Numba pass per score block.

Shapes: q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv); out (B, H, Tq, Dv)
and the per-row log-sum-exp ``lse`` (B, H, Tq). Semantics are those of
``autograd.kernels.tiled`` (numpy_tiled): ``scores = (q * scale) @ k^T + bias``;
causal attention lets query ``i`` see keys ``j <= i + Tk - Tq``; dropout keeps
element (b, h, i, j) by core's ``keep_scale`` hash of the seed and that
position (reproduced here bit for bit), so the backward regenerates it; rows
that see no key give 0 output, ``lse = +inf`` and 0 gradients.

Work is split by (batch, head): each of ``num_threads()`` Python threads
takes whole heads and runs their GEMMs with BLAS limited to one thread (via
threadpoolctl) and their Numba passes without the GIL. The threads never wait
on each other until the end (no fork/join per GEMM or per pass), and the cores
never hold more busy threads than there are cores. With one thread, or one
head, everything runs on the calling thread with BLAS's own threads.

Forward, per head and block of ``_Q_BLOCK`` query rows, against every key
those rows can see:

    S = q_blk @ k^T                          (BLAS)
    E = exp(S + bias - rowmax) * keep, l = rowsum(exp(...)), lse   (one Numba pass)
    out_blk = (E @ v) / l                     (BLAS, written in place; then Dv values per row)

Backward, per head and block of ``_K_BLOCK`` keys, against every query row
that sees them (so dK and dV of the block are complete sums):

    S = q @ k_blk^T, dP = dO @ v_blk^T        (BLAS)
    P = exp(S + bias - lse), dS = P (dP keep - rowsum(dO O))   (one Numba pass)
    dV_blk = (P keep)^T dO, dK_blk = dS^T q, dQ += dS k_blk     (BLAS)

Extra memory is a few (rows, block) score arrays per thread plus transposed
copies of k and v, so it grows linearly with T (about 60 MiB at B2 H8 T2048
D64, against 80 MiB for numpy_tiled and 140 MiB for PyTorch's SDPA). Results
match the reference to float rounding (blocks and exp differ).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from numba import njit

from autograd_kernels_cpu._common import OPTS, UnsupportedInputError, check_float, exp_sum_inplace, row_max
from autograd_kernels_cpu._math import fast_exp
from autograd_kernels_cpu._threads import num_threads

__all__ = ["attention_forward", "attention_backward", "keep_scale"]

#: From this many keys on, heads are split across threads with single-threaded BLAS. Below it a head's work is
#: a few small GEMMs: handing heads to threads and switching BLAS's thread count cost more than they save, and
#: inside a training step OpenBLAS's own workers, still spinning after the previous product, compete with them
#: (a GPT step at 128 keys measured about 10% faster with the heads run in order on multithreaded BLAS).
_THREADED_MIN_KEYS = 512
#: Below this many bytes of scores for all heads together (and one block per head), attention runs every head in
#: one batched product each way: at 128 keys a head's products are tiny, and a Python loop over the heads costs
#: more than they do.
_ONE_BLOCK_BYTES = 64 << 20
#: From this many multiply-adds per head in the half-block product (rows/2 x keys x head_dim), causal one-block
#: attention splits its rows (see _row_parts). Below it the halves' products are too small for BLAS to run at
#: speed: measured fwd+bwd at B8 H4 T128 D32 (the GPT benchmark's) 1.02-1.08x the unsplit time, at B2 H8 T128
#: D64 0.82x, at T256 D64 0.87x.
_CAUSAL_SPLIT_WORK = 1 << 19
#: Query rows per forward step and keys per backward step. With causal attention the block on the diagonal is
#: half masked but computed whole, so smaller blocks waste less (about 11% of the products at 256, 6% at 128,
#: for 2048 keys) while the products stay large enough for BLAS. Fwd+bwd at B2 H8 D64 causal, 128 against 256
#: in interleaved rounds on a noisy 2-core VM: at T2048 faster in 9 of 10 rounds of one run (median -10%), at
#: T512 and T1024 best rounds equal within 2% and medians 5-14% lower in a second run; 64 was no faster.
_Q_BLOCK = 128
_K_BLOCK = 128
#: Sequences up to this many queries and keys take the one-block path (see _one_block).
_ONE_BLOCK_MAX = 256


@njit(**OPTS)
def _mix(x):  # type: ignore[no-untyped-def]
    """lowbias32 on a uint32 (the products are taken modulo 2**32, as NumPy's uint32 arrays do)."""
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    return np.uint32(x ^ (x >> np.uint32(16)))


@njit(**OPTS)
def _row_stream(seed, bh, i):  # type: ignore[no-untyped-def]
    """The part of the keep hash shared by one query row: mix(stream(b, h) ^ mix(i + 1))."""
    stream = _mix(np.uint32(np.uint32(seed) + np.uint32((bh + 1) * np.uint32(0x9E3779B9))))
    return _mix(np.uint32(stream ^ _mix(np.uint32(i + 1))))


@njit(**OPTS)
def _keep(row_stream, j, p32, keep_value, zero):  # type: ignore[no-untyped-def]
    """``keep / (1 - p)`` of key ``j`` in a row: uniform = (hash >> 8) / 2**24, kept when uniform >= p."""
    x = _mix(np.uint32(row_stream + np.uint32(np.uint32(j) * np.uint32(0x85EBCA6B))))
    uniform = np.float64(x >> np.uint32(8)) * (1.0 / (1 << 24))
    return keep_value if uniform >= p32 else zero


@njit(**OPTS)
def _softmax_row(row, brow, has_bias, limit, bh, i, j0, seed, p32, keep_value):  # type: ignore[no-untyped-def]
    """Scores of one query row -> ``exp(s - max)`` (times the dropout keep) in place.

    Returns ``(lse, total)``: the caller divides the row's output by ``total``
    after the P @ V product, as the reference divides its accumulator (a pass
    over Dv values instead of over every key). A row that sees no key gets
    zeros, ``lse = inf`` and ``total = 1``.
    """
    t_ = row.dtype.type
    zero = t_(0.0)
    if limit <= 0:
        row[:] = zero
        return np.inf, 1.0
    if has_bias:
        for j in range(limit):
            row[j] += brow[j]
    live = row[:limit]
    m = row_max(live)
    total = exp_sum_inplace(live, m)
    if p32 > 0.0:
        stream = _row_stream(seed, bh, i)
        kept = t_(keep_value)  # rounded to the dtype, as the reference's keep_scale array is
        for j in range(limit):
            row[j] = row[j] * _keep(stream, j0 + j, p32, kept, zero)
    row[limit:] = zero
    return np.float64(m) + np.log(total), total


@njit(nogil=True, **OPTS)
def _fwd_head(s, lse, norm, bias, has_bias, r0, offset, causal, bh, seed, p32, keep_value):  # type: ignore[no-untyped-def]
    # One head: s (nq, kend) scores of query rows r0.. -> exp(s - max) * keep; lse (Tq,), bias (Tq, Tk) of this
    # head; norm (nq, 1) <- each row's sum of exp, by which the caller divides the row's output.
    kend = s.shape[1]
    for r in range(s.shape[0]):
        i = r0 + r
        limit = min(kend, i + offset + 1) if causal else kend
        lse[i], total = _softmax_row(s[r], bias[i], has_bias, limit, bh, i, 0, seed, p32, keep_value)
        norm[r, 0] = total


@njit(nogil=True, **OPTS)
def _bwd_head(s, dp, pd, lse, delta, bias, has_bias, r0, c0, offset, causal, bh, seed, p32, keep_value):  # type: ignore[no-untyped-def]
    # One head: s (nr, nk) scores of rows r0.. against keys c0.. -> P; dp = dO v^T -> dS; pd <- P * keep
    # (written only with dropout). lse, delta: (Tq,); bias: (Tq, Tk).
    nk = s.shape[1]
    t_ = s.dtype.type
    zero, kept = t_(0.0), t_(keep_value)
    for r in range(s.shape[0]):
        i = r0 + r
        srow, drow = s[r], dp[r]
        limit = max(0, min(nk, i + offset + 1 - c0)) if causal else nk
        m, d = lse[i], t_(delta[i])
        if has_bias:
            brow = bias[i, c0:]
            for j in range(limit):
                srow[j] += brow[j]
        for j in range(limit):
            srow[j] = fast_exp(srow[j] - m)  # lse = +inf for rows that see nothing: p = 0
        srow[limit:] = zero
        if p32 > 0.0:
            stream = _row_stream(seed, bh, i)
            prow = pd[r]
            for j in range(limit):
                keep = _keep(stream, c0 + j, p32, kept, zero)
                prow[j] = srow[j] * keep
                drow[j] = srow[j] * (drow[j] * keep - d)
            prow[limit:] = zero
        else:
            for j in range(limit):
                drow[j] = srow[j] * (drow[j] - d)
        drow[limit:] = zero


@njit(nogil=True, **OPTS)
def _row_dots(a, b, out):  # type: ignore[no-untyped-def]
    # One head: out[i] = sum_d a[i, d] * b[i, d], accumulated in float64.
    for i in range(a.shape[0]):
        ra, rb = a[i], b[i]
        s = 0.0
        for d in range(ra.size):
            s += np.float64(ra[d] * rb[d])
        out[i] = s


@njit(nogil=True, **OPTS)
def _fwd_heads(s, lse, norm, bias, has_bias, r0, offset, causal, heads, seed, p32, keep_value):  # type: ignore[no-untyped-def]
    # Every head at once: s (B*H, nq, kend) scores of query rows r0.., lse (B*H, Tq), norm (B*H, nq, 1),
    # bias (B, H, Tq, Tk).
    for bh in range(s.shape[0]):
        b, h = bh // heads, bh % heads
        _fwd_head(s[bh], lse[bh], norm[bh], bias[b, h], has_bias, r0, offset, causal, bh, seed, p32, keep_value)


@njit(nogil=True, **OPTS)
def _bwd_heads(s, dp, pd, lse, delta, bias, has_bias, r0, offset, causal, heads, seed, p32, keep_value):  # type: ignore[no-untyped-def]
    # Every head at once, query rows r0.. against keys 0..: s, dp, pd (B*H, nq, kend); lse, delta (B*H, Tq).
    for bh in range(s.shape[0]):
        b, h = bh // heads, bh % heads
        _bwd_head(
            s[bh], dp[bh], pd[bh], lse[bh], delta[bh], bias[b, h], has_bias, r0, 0, offset, causal, bh, seed,
            p32, keep_value,
        )  # fmt: skip


@njit(nogil=True, **OPTS)
def _row_dots_heads(a, b, out):  # type: ignore[no-untyped-def]
    for bh in range(a.shape[0]):
        _row_dots(a[bh], b[bh], out[bh])


def _one_block(tq: int, tk: int, heads: int, itemsize: int) -> bool:
    """Short sequences: one score block per head, and every head's scores together take little memory."""
    return tq <= _ONE_BLOCK_MAX and tk <= _ONE_BLOCK_MAX and heads * tq * tk * itemsize <= _ONE_BLOCK_BYTES


def _row_parts(tq: int, tk: int, d: int, causal: bool) -> List[Tuple[int, int, int]]:
    """``(r0, r1, kend)``: the one-block path's query rows r0:r1 and the keys 0:kend they can see.

    Causal attention splits the rows in two halves: the first half sees at most half the keys (plus the
    bottom-right offset), so its products skip the masked upper-right quarter of the scores, which the full
    block would compute and zero (a quarter of the products' work at Tq = Tk). The later half comes first,
    so the backward can write dK and dV over every key before the first half adds its part.
    """
    offset = tk - tq
    half = tq // 2
    if not causal or half * tk * d < _CAUSAL_SPLIT_WORK:
        return [(0, tq, tk)]
    parts = [(half, tq, min(tk, tq + offset)), (0, half, min(tk, half + offset))]
    return [(r0, r1, kend) for r0, r1, kend in parts if kend > 0]


_pools: Dict[int, ThreadPoolExecutor] = {}
_controller: List[Any] = []


def _blas_single_threaded() -> Any:
    """A context in which BLAS runs on one thread (threadpoolctl), or None without threadpoolctl."""
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller.append(None)
        else:
            _controller.append(ThreadpoolController())
    return None if _controller[0] is None else _controller[0].limit(limits=1, user_api="blas")


def _over_heads(n_heads: int, work: Callable[[int, int], None], seq: int = 1 << 30) -> None:
    """Run ``work(first_head, end_head)`` over every (batch, head), split across threads when ``seq`` keys are many.

    Each thread takes whole heads and runs their GEMMs with single-threaded
    BLAS and their Numba passes without the GIL, so the threads never wait on
    each other until the end (no fork/join per GEMM or per pass) and the cores
    never hold more threads than there are cores. With one thread, or a
    single head, BLAS keeps its own threads instead.
    """
    threads = min(num_threads(), n_heads) if seq >= _THREADED_MIN_KEYS else 1
    limit = _blas_single_threaded() if threads > 1 else None
    if limit is None:
        work(0, n_heads)
        return
    pool = _pools.get(threads)
    if pool is None:
        pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="autograd-attention")
    with limit:
        futures = [pool.submit(work, t * n_heads // threads, (t + 1) * n_heads // threads) for t in range(threads)]
        for future in futures:
            future.result()


def keep_scale(seed: int, batch: int, heads: int, rows: range, cols: range, p: float, dtype: Any) -> np.ndarray:
    """``keep / (1 - p)`` for the (batch, heads, rows, cols) tile, as ``autograd.kernels.tiled.keep_scale``.

    The same hash as the kernels use inside (for tests and for callers that need the mask).
    """
    out = np.empty((batch, heads, len(rows), len(cols)), dtype)
    _keep_tile(out, int(seed) & 0xFFFFFFFF, rows.start, cols.start, _p_in(dtype, p), float(1.0 / (1.0 - p)))
    return out


@njit(**OPTS)
def _keep_tile(out, seed, i0, j0, p32, keep_value):  # type: ignore[no-untyped-def]
    t_ = out.dtype.type
    heads = out.shape[1]
    for b in range(out.shape[0]):
        for h in range(heads):
            for r in range(out.shape[2]):
                stream = _row_stream(seed, b * heads + h, i0 + r)
                for c in range(out.shape[3]):
                    out[b, h, r, c] = _keep(stream, j0 + c, p32, t_(keep_value), t_(0.0))


def _p_in(dtype: Any, p: float) -> float:
    # The reference compares the uniform draw with p as an array of `dtype` meets a Python float: in dtype.
    return float(np.dtype(dtype).type(p))


def _check(
    op: str, q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: Optional[np.ndarray], dropout_p: float
) -> Tuple[np.dtype, np.ndarray, bool]:
    dtype = check_float(op, q=q, k=k, v=v)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4 or q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        raise ValueError(
            f"{op}: expected q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv); got {q.shape}, {k.shape}, {v.shape}"
        )
    if q.shape[3] != k.shape[3]:
        raise ValueError(f"{op}: q and k head dims differ: {q.shape} and {k.shape}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if bias is None:
        # A zero-strided stand-in keeps one compiled signature with and without a bias.
        return dtype, np.broadcast_to(np.zeros((1, 1, 1, 1), dtype), target), False
    if not isinstance(bias, np.ndarray) or bias.dtype.kind != "f":
        raise UnsupportedInputError(f"{op}: bias must be a floating NumPy array (an additive mask)")
    if bias.ndim > 4:
        raise ValueError(f"{op}: bias of shape {bias.shape} does not broadcast to {target}")
    b4 = bias.astype(dtype, copy=False).reshape((1,) * (4 - bias.ndim) + bias.shape)
    try:
        return dtype, np.broadcast_to(b4, target), True
    except ValueError:
        raise ValueError(f"{op}: bias of shape {bias.shape} does not broadcast to {target}") from None


def _transposed(a: np.ndarray) -> np.ndarray:
    # (B, H, D, T) in C order: slices of it are row-contiguous matrices, which batched matmul hands to BLAS.
    return np.ascontiguousarray(a.swapaxes(-1, -2))


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale: float,
    causal: bool = False,
    bias: Optional[np.ndarray] = None,
    dropout_p: float = 0.0,
    seed: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """``softmax(q k^T * scale + bias) (dropped out) @ v``, memory-linear in the sequence length.

    Args:
        q: (B, H, Tq, D) queries, float32 or float64.
        k: (B, H, Tk, D) keys, q's dtype.
        v: (B, H, Tk, Dv) values, q's dtype.
        scale: multiplies the scores (usually ``1/sqrt(D)``).
        causal: query ``i`` sees keys ``j <= i + Tk - Tq``.
        bias: None, or an additive array broadcastable to (B, H, Tq, Tk), already scaled
            (0 allows, -1e9 forbids).
        dropout_p: Dropout on the probabilities.
        seed: Seed of the dropout decisions, through core's keep hash.

    Returns:
        ``(out, lse)``: (B, H, Tq, Dv) and the (B, H, Tq) log-sum-exp of each row's scores
        (``+inf`` for rows that see no key, whose output is 0).
    """
    op = "attention_forward"
    dtype, bias4, has_bias = _check(op, q, k, v, bias, dropout_p)
    bsz, heads, tq, _ = q.shape
    tk, dv = k.shape[2], v.shape[3]
    offset = tk - tq
    qs = q * dtype.type(scale)
    k_t = _transposed(k)
    out = np.zeros((bsz, heads, tq, dv), dtype)
    lse = np.full((bsz, heads, tq), np.inf, dtype)
    p32, keep_value, seed32 = _p_in(dtype, dropout_p), float(1.0 / (1.0 - dropout_p)), int(seed) & 0xFFFFFFFF
    if _one_block(tq, tk, bsz * heads, dtype.itemsize):
        # Every head in one batched product each way (NumPy loops over the heads in C, not in Python), with
        # the same per-row Numba pass as the blocked path.
        bh_count = bsz * heads
        q3, k_t3, v3 = qs.reshape(bh_count, tq, -1), k_t.reshape(bh_count, -1, tk), v.reshape(bh_count, tk, dv)
        out3, lse2 = out.reshape(bh_count, tq, dv), lse.reshape(bh_count, tq)
        for r0, r1, kend in _row_parts(tq, tk, q.shape[3], bool(causal)):
            s = np.matmul(q3[:, r0:r1], k_t3[:, :, :kend])
            norm = np.empty((bh_count, r1 - r0, 1), dtype)
            _fwd_heads(s, lse2, norm, bias4, has_bias, r0, offset, bool(causal), heads, seed32, p32, keep_value)
            rows = out3[:, r0:r1]
            np.matmul(s, v3[:, :kend], out=rows)
            rows /= norm
        return out, lse
    block = min(_Q_BLOCK, tq)

    def work(first: int, end: int) -> None:
        scores = np.empty(block * tk, dtype)  # this thread's score block
        norm = np.empty((block, 1), dtype)
        for bh in range(first, end):
            b, h = divmod(bh, heads)
            qh, kh_t, vh, oh = qs[b, h], k_t[b, h], v[b, h], out[b, h]
            for r0 in range(0, tq, block):
                r1 = min(tq, r0 + block)
                kend = min(tk, r1 + offset) if causal else tk
                if kend <= 0:
                    continue  # no row of this block sees a key: out stays 0, lse +inf
                s = scores[: (r1 - r0) * kend].reshape(r1 - r0, kend)
                np.matmul(qh[r0:r1], kh_t[:, :kend], out=s)
                args = (lse[b, h], norm[: r1 - r0], bias4[b, h], has_bias, r0, offset, bool(causal), bh, seed32)
                _fwd_head(s, *args, p32, keep_value)
                np.matmul(s, vh[:kend], out=oh[r0:r1])
                oh[r0:r1] /= norm[: r1 - r0]

    _over_heads(bsz * heads, work, tk)
    return out, lse


def attention_backward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    lse: np.ndarray,
    dout: np.ndarray,
    scale: float,
    causal: bool = False,
    bias: Optional[np.ndarray] = None,
    dropout_p: float = 0.0,
    seed: int = 0,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`attention_forward` from its ``out`` and ``lse`` and the output gradient ``dout``.

    Returns:
        ``(dq, dk, dv)`` in the inputs' shapes and dtype.
    """
    op = "attention_backward"
    dtype, bias4, has_bias = _check(op, q, k, v, bias, dropout_p)
    check_float(op, q=q, out=out, lse=lse, dout=dout)
    bsz, heads, tq, d = q.shape
    tk, dv_dim = k.shape[2], v.shape[3]
    if out.shape != (bsz, heads, tq, dv_dim) or dout.shape != out.shape or lse.shape != (bsz, heads, tq):
        raise ValueError(
            f"{op}: out {out.shape}, dout {dout.shape} or lse {lse.shape} do not fit q {q.shape}, v {v.shape}"
        )
    offset = tk - tq
    t_ = dtype.type
    qs = q * t_(scale)
    k_t, v_t = _transposed(k), _transposed(v)
    p32, keep_value, seed32 = _p_in(dtype, dropout_p), float(1.0 / (1.0 - dropout_p)), int(seed) & 0xFFFFFFFF
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if _one_block(tq, tk, bsz * heads, dtype.itemsize):
        bh_count = bsz * heads
        q2, k2, do2 = qs.reshape(bh_count, tq, d), k.reshape(bh_count, tk, d), dout.reshape(bh_count, tq, dv_dim)
        k_t3, v_t3 = k_t.reshape(bh_count, d, tk), v_t.reshape(bh_count, dv_dim, tk)
        dq3, dk3, dv3 = dq.reshape(bh_count, tq, d), dk.reshape(bh_count, tk, d), dv.reshape(bh_count, tk, dv_dim)
        lse2, delta = lse.reshape(bh_count, tq), np.empty((bh_count, tq))
        _row_dots_heads(do2, out.reshape(bh_count, tq, dv_dim), delta)
        for part, (r0, r1, kend) in enumerate(_row_parts(tq, tk, d, bool(causal))):
            s = np.matmul(q2[:, r0:r1], k_t3[:, :, :kend])
            dp = np.matmul(do2[:, r0:r1], v_t3[:, :, :kend])
            pd = np.empty_like(s) if p32 > 0.0 else s
            _bwd_heads(
                s, dp, pd, lse2, delta, bias4, has_bias, r0, offset, bool(causal), heads, seed32, p32, keep_value
            )
            # s holds P, dp holds dS, pd holds P * keep. The first part covers every key (see _row_parts).
            if part == 0:
                np.matmul(pd.transpose(0, 2, 1), do2[:, r0:r1], out=dv3[:, :kend])
                np.matmul(dp.transpose(0, 2, 1), q2[:, r0:r1], out=dk3[:, :kend])
            else:
                dv3[:, :kend] += np.matmul(pd.transpose(0, 2, 1), do2[:, r0:r1])
                dk3[:, :kend] += np.matmul(dp.transpose(0, 2, 1), q2[:, r0:r1])
            np.matmul(dp, k2[:, :kend], out=dq3[:, r0:r1])
        dq *= t_(scale)
        return dq, dk, dv
    block = min(_K_BLOCK, tk)

    def work(first: int, end: int) -> None:
        # This thread's scratch: scores/P, dP/dS, P*keep (B*H times smaller than a batched block).
        s_buf, dp_buf = np.empty(tq * block, dtype), np.empty(tq * block, dtype)
        pd_buf = np.empty(tq * block, dtype) if p32 > 0.0 else s_buf
        part, delta = np.empty((tq, d), dtype), np.empty(tq)
        for bh in range(first, end):
            b, h = divmod(bh, heads)
            qh, kh, kh_t, vh_t, doh = qs[b, h], k[b, h], k_t[b, h], v_t[b, h], dout[b, h]
            _row_dots(doh, out[b, h], delta)
            for c0 in range(0, tk, block):
                c1 = min(tk, c0 + block)
                r0 = max(0, c0 - offset) if causal else 0
                if r0 >= tq:
                    continue  # no query row sees these keys: their gradients stay 0
                nr, nk = tq - r0, c1 - c0
                s, dp = s_buf[: nr * nk].reshape(nr, nk), dp_buf[: nr * nk].reshape(nr, nk)
                pd = pd_buf[: nr * nk].reshape(nr, nk) if p32 > 0.0 else s
                np.matmul(qh[r0:], kh_t[:, c0:c1], out=s)
                np.matmul(doh[r0:], vh_t[:, c0:c1], out=dp)
                _bwd_head(
                    s, dp, pd, lse[b, h], delta, bias4[b, h], has_bias, r0, c0, offset, bool(causal), bh, seed32,
                    p32, keep_value,
                )  # fmt: skip
                # s now holds P, dp holds dS, pd holds P * keep.
                np.matmul(pd.T, doh[r0:], out=dv[b, h, c0:c1])
                np.matmul(dp.T, qh[r0:], out=dk[b, h, c0:c1])
                np.matmul(dp, kh[c0:c1], out=part[:nr])
                dq[b, h, r0:] += part[:nr]

    _over_heads(bsz * heads, work, tk)
    dq *= t_(scale)
    return dq, dk, dv
