"""FlashAttention-2 forward and backward with ``tl.dot`` on the tensor cores, float32 accumulation.

Shapes: ``q`` (B, H, Tq, D), ``k`` (B, H, Tk, D), ``v`` (B, H, Tk, Dv), one
dtype (float16/bfloat16; float32 multiplies in TF32); ``o`` (B, H, Tq, Dv)
and ``lse`` (B, H, Tq) float32, the natural log-sum-exp of each row's scores.
Head dims need not be powers of two: they are padded inside the kernel to the
next power of two (at least 16) with masked loads, zeros that change no dot
product.

Scores are ``s = q k^T * scale`` plus a bias, as in core's dense reference:
forbidden positions get ``NEG`` added (-3e4 for float16, -1e9 otherwise), so a
row keeps the reference's behaviour even when every key is forbidden:

* causal (bottom-right aligned): query ``i`` sees keys ``j <= i + Tk - Tq``;
  key blocks no row of the query block can see are skipped, query rows that see
  no key at all (``Tq > Tk``) output 0;
* a bool mask (True = forbidden) or an additive float mask (``s += mask * NEG``),
  any shape broadcasting to (B, H, Tq, Tk), read with zero strides on
  broadcast axes;
* dropout with probability ``p``: probability (b, h, i, j) is kept and scaled
  by ``1 / (1 - p)`` when core's hash keeps it (:mod:`autograd.kernels.dropout`,
  lowbias32 of the seed and the position), so the decisions equal the dense
  reference's for the same seed, and the backward regenerates them.

Forward (one program per block of ``BM`` query rows and (b, h)): online
softmax over key blocks of ``BN``, in base 2. Backward: ``delta = rowsum(dO *
O)``; one program per key block accumulates ``dK`` and ``dV`` over the query
blocks that see it, another per query block accumulates ``dQ``: no atomics,
deterministic. ``dot_f32`` widens dot operands to float32 (Triton's interpreter
holds bfloat16 as raw bits and its ``tl.dot`` would multiply the bit patterns:
the interpreter tests set it for bfloat16 only).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_kernels.common import dropout_keep, dropout_stream
from autograd_kernels_cuda.triton_support import array_module, dtype_name, launch, next_power_of_2

__all__ = ["attention_forward", "attention_backward", "neg_value", "aot_variants", "MAX_HEAD_DIM"]

MAX_HEAD_DIM = 256
MASK_NONE, MASK_BOOL, MASK_ADDITIVE = 0, 1, 2
LOG2E = 1.4426950408889634


def neg_value(dtype: str) -> float:
    """What a forbidden score gets added (core's dense reference: -3e4 in float16, -1e9 otherwise)."""
    return -3.0e4 if dtype == "float16" else -1.0e9


@triton.jit
def _dot(a, b, acc, PREC: tl.constexpr, DOT_F32: tl.constexpr):
    if DOT_F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PREC)


@triton.jit
def _scores(
    q,
    kt,
    rows,
    cols,
    b,
    h,
    mask_ptr,
    msb,
    msh,
    msq,
    msk,
    Tq,
    Tk,
    scale,
    neg,
    CAUSAL: tl.constexpr,
    MASK_KIND: tl.constexpr,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    """Scaled scores of a (BM, BN) tile with the causal/mask bias; keys past Tk are -inf."""
    s = _dot(q, kt, tl.zeros((BM, BN), tl.float32), PREC, DOT_F32) * scale
    if CAUSAL:
        s = tl.where(cols[None, :] > rows[:, None] + (Tk - Tq), s + neg, s)
    if MASK_KIND != 0:
        m_off = b.to(tl.int64) * msb + h.to(tl.int64) * msh + rows[:, None].to(tl.int64) * msq + cols[None, :] * msk
        m_ok = (rows[:, None] < Tq) & (cols[None, :] < Tk)
        if MASK_KIND == 1:
            forbidden = tl.load(mask_ptr + m_off, mask=m_ok, other=0)
            s = tl.where(forbidden != 0, s + neg, s)
        else:
            s += tl.load(mask_ptr + m_off, mask=m_ok, other=0.0).to(tl.float32) * neg
    return tl.where(cols[None, :] < Tk, s, float("-inf"))


@triton.jit(do_not_specialize=["seed"])
def attention_fwd_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    lse_ptr,
    mask_ptr,
    H,
    Tq,
    Tk,
    D,
    DV,
    msb,
    msh,
    msq,
    msk,
    scale,
    neg,
    seed,
    p_drop,
    CAUSAL: tl.constexpr,
    MASK_KIND: tl.constexpr,
    DROPOUT: tl.constexpr,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    DP: tl.constexpr,
    DVP: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    start_m = tl.program_id(0) * BM
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = start_m + tl.arange(0, BM)
    dq = tl.arange(0, DP)
    dv = tl.arange(0, DVP)
    offs_n = tl.arange(0, BN)
    q_base = q_ptr + bh.to(tl.int64) * Tq * D
    k_base = k_ptr + bh.to(tl.int64) * Tk * D
    v_base = v_ptr + bh.to(tl.int64) * Tk * DV
    q = tl.load(q_base + rows[:, None] * D + dq[None, :], mask=(rows[:, None] < Tq) & (dq[None, :] < D), other=0.0)
    m_i = tl.full((BM,), float("-inf"), tl.float32)
    l_i = tl.zeros((BM,), tl.float32)
    acc = tl.zeros((BM, DVP), tl.float32)
    hi = Tk
    if CAUSAL:
        hi = tl.minimum(Tk, tl.maximum(start_m + BM + Tk - Tq, 0))
    if DROPOUT:
        stream = dropout_stream(seed, bh)
        inv_keep = 1.0 / (1.0 - p_drop)
    for start_n in range(0, hi, BN):
        cols = start_n + offs_n
        kt = tl.load(k_base + cols[None, :] * D + dq[:, None], mask=(cols[None, :] < Tk) & (dq[:, None] < D), other=0.0)
        s = _scores(
            q, kt, rows, cols, b, h, mask_ptr, msb, msh, msq, msk, Tq, Tk, scale, neg,
            CAUSAL, MASK_KIND, PREC, DOT_F32, BM, BN,
        )  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.math.exp2((m_i - m_new) * 1.4426950408889634)
        p = tl.math.exp2((s - m_new[:, None]) * 1.4426950408889634)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if DROPOUT:
            p = tl.where(dropout_keep(stream, rows, cols, p_drop), p * inv_keep, 0.0)
        v = tl.load(
            v_base + cols[:, None] * DV + dv[None, :], mask=(cols[:, None] < Tk) & (dv[None, :] < DV), other=0.0
        )
        acc = _dot(p.to(v.dtype), v, acc * alpha[:, None], PREC, DOT_F32)
        m_i = m_new
    seen = l_i > 0
    if CAUSAL:
        seen = seen & (rows + (Tk - Tq) >= 0)  # rows before the diagonal starts see no key: 0 out
    out = tl.where(seen[:, None], acc / tl.where(seen, l_i, 1.0)[:, None], 0.0)
    o_base = o_ptr + bh.to(tl.int64) * Tq * DV
    tl.store(
        o_base + rows[:, None] * DV + dv[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=(rows[:, None] < Tq) & (dv[None, :] < DV),
    )
    # A row that saw no key stores +inf: the backward's exp(s - lse) is then 0 for it.
    lse = tl.where(seen, m_i + tl.log(tl.where(seen, l_i, 1.0)), float("inf"))
    tl.store(lse_ptr + bh.to(tl.int64) * Tq + rows, lse, mask=rows < Tq)


@triton.jit
def attention_bwd_delta_kernel(o_ptr, do_ptr, delta_ptr, Tq, DV, DVP: tl.constexpr, BM: tl.constexpr):
    bh = tl.program_id(1)
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    dv = tl.arange(0, DVP)
    off = bh.to(tl.int64) * Tq * DV + rows[:, None] * DV + dv[None, :]
    ok = (rows[:, None] < Tq) & (dv[None, :] < DV)
    o = tl.load(o_ptr + off, mask=ok, other=0.0).to(tl.float32)
    do = tl.load(do_ptr + off, mask=ok, other=0.0).to(tl.float32)
    tl.store(delta_ptr + bh.to(tl.int64) * Tq + rows, tl.sum(o * do, axis=1), mask=rows < Tq)


@triton.jit(do_not_specialize=["seed"])
def attention_bwd_dkdv_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    do_ptr,
    lse_ptr,
    delta_ptr,
    dk_ptr,
    dv_ptr,
    mask_ptr,
    H,
    Tq,
    Tk,
    D,
    DV,
    msb,
    msh,
    msq,
    msk,
    scale,
    neg,
    seed,
    p_drop,
    CAUSAL: tl.constexpr,
    MASK_KIND: tl.constexpr,
    DROPOUT: tl.constexpr,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    DP: tl.constexpr,
    DVP: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    start_n = tl.program_id(0) * BN
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    cols = start_n + tl.arange(0, BN)
    dq = tl.arange(0, DP)
    dvv = tl.arange(0, DVP)
    offs_m = tl.arange(0, BM)
    q_base = q_ptr + bh.to(tl.int64) * Tq * D
    do_base = do_ptr + bh.to(tl.int64) * Tq * DV
    kt = tl.load(
        k_ptr + bh.to(tl.int64) * Tk * D + cols[None, :] * D + dq[:, None],
        mask=(cols[None, :] < Tk) & (dq[:, None] < D),
        other=0.0,
    )
    vt = tl.load(
        v_ptr + bh.to(tl.int64) * Tk * DV + cols[None, :] * DV + dvv[:, None],
        mask=(cols[None, :] < Tk) & (dvv[:, None] < DV),
        other=0.0,
    )
    dk = tl.zeros((BN, DP), tl.float32)
    dv = tl.zeros((BN, DVP), tl.float32)
    lo = 0
    if CAUSAL:
        lo = tl.maximum(start_n - (Tk - Tq), 0) // BM * BM
    if DROPOUT:
        stream = dropout_stream(seed, bh)
        inv_keep = 1.0 / (1.0 - p_drop)
    for start_m in range(lo, Tq, BM):
        rows = start_m + offs_m
        row_ok = rows < Tq
        q = tl.load(q_base + rows[:, None] * D + dq[None, :], mask=row_ok[:, None] & (dq[None, :] < D), other=0.0)
        do = tl.load(do_base + rows[:, None] * DV + dvv[None, :], mask=row_ok[:, None] & (dvv[None, :] < DV), other=0.0)
        lse = tl.load(lse_ptr + bh.to(tl.int64) * Tq + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(delta_ptr + bh.to(tl.int64) * Tq + rows, mask=row_ok, other=0.0)
        s = _scores(
            q, kt, rows, cols, b, h, mask_ptr, msb, msh, msq, msk, Tq, Tk, scale, neg,
            CAUSAL, MASK_KIND, PREC, DOT_F32, BM, BN,
        )  # fmt: skip
        p = tl.math.exp2((s - lse[:, None]) * 1.4426950408889634)
        dp = _dot(do, vt, tl.zeros((BM, BN), tl.float32), PREC, DOT_F32)
        if DROPOUT:
            keep = dropout_keep(stream, rows, cols, p_drop)
            pd = tl.where(keep, p * inv_keep, 0.0)
            dp = tl.where(keep, dp * inv_keep, 0.0)
        else:
            pd = p
        dv = _dot(tl.trans(pd.to(do.dtype)), do, dv, PREC, DOT_F32)
        ds = p * (dp - delta[:, None])
        dk = _dot(tl.trans(ds.to(q.dtype)), q, dk, PREC, DOT_F32)
    dk_base = dk_ptr + bh.to(tl.int64) * Tk * D
    dv_base = dv_ptr + bh.to(tl.int64) * Tk * DV
    tl.store(
        dk_base + cols[:, None] * D + dq[None, :],
        (dk * scale).to(dk_ptr.dtype.element_ty),
        mask=(cols[:, None] < Tk) & (dq[None, :] < D),
    )
    tl.store(
        dv_base + cols[:, None] * DV + dvv[None, :],
        dv.to(dv_ptr.dtype.element_ty),
        mask=(cols[:, None] < Tk) & (dvv[None, :] < DV),
    )


@triton.jit(do_not_specialize=["seed"])
def attention_bwd_dq_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    do_ptr,
    lse_ptr,
    delta_ptr,
    dq_ptr,
    mask_ptr,
    H,
    Tq,
    Tk,
    D,
    DV,
    msb,
    msh,
    msq,
    msk,
    scale,
    neg,
    seed,
    p_drop,
    CAUSAL: tl.constexpr,
    MASK_KIND: tl.constexpr,
    DROPOUT: tl.constexpr,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    DP: tl.constexpr,
    DVP: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    start_m = tl.program_id(0) * BM
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    rows = start_m + tl.arange(0, BM)
    row_ok = rows < Tq
    dq_r = tl.arange(0, DP)
    dvv = tl.arange(0, DVP)
    offs_n = tl.arange(0, BN)
    q = tl.load(
        q_ptr + bh.to(tl.int64) * Tq * D + rows[:, None] * D + dq_r[None, :],
        mask=row_ok[:, None] & (dq_r[None, :] < D),
        other=0.0,
    )
    do = tl.load(
        do_ptr + bh.to(tl.int64) * Tq * DV + rows[:, None] * DV + dvv[None, :],
        mask=row_ok[:, None] & (dvv[None, :] < DV),
        other=0.0,
    )
    lse = tl.load(lse_ptr + bh.to(tl.int64) * Tq + rows, mask=row_ok, other=float("inf"))
    delta = tl.load(delta_ptr + bh.to(tl.int64) * Tq + rows, mask=row_ok, other=0.0)
    k_base = k_ptr + bh.to(tl.int64) * Tk * D
    v_base = v_ptr + bh.to(tl.int64) * Tk * DV
    acc = tl.zeros((BM, DP), tl.float32)
    hi = Tk
    if CAUSAL:
        hi = tl.minimum(Tk, tl.maximum(start_m + BM + Tk - Tq, 0))
    if DROPOUT:
        stream = dropout_stream(seed, bh)
        inv_keep = 1.0 / (1.0 - p_drop)
    for start_n in range(0, hi, BN):
        cols = start_n + offs_n
        col_ok = cols < Tk
        kt = tl.load(k_base + cols[None, :] * D + dq_r[:, None], mask=col_ok[None, :] & (dq_r[:, None] < D), other=0.0)
        vt = tl.load(v_base + cols[None, :] * DV + dvv[:, None], mask=col_ok[None, :] & (dvv[:, None] < DV), other=0.0)
        s = _scores(
            q, kt, rows, cols, b, h, mask_ptr, msb, msh, msq, msk, Tq, Tk, scale, neg,
            CAUSAL, MASK_KIND, PREC, DOT_F32, BM, BN,
        )  # fmt: skip
        p = tl.math.exp2((s - lse[:, None]) * 1.4426950408889634)
        dp = _dot(do, vt, tl.zeros((BM, BN), tl.float32), PREC, DOT_F32)
        if DROPOUT:
            dp = tl.where(dropout_keep(stream, rows, cols, p_drop), dp * inv_keep, 0.0)
        ds = p * (dp - delta[:, None])
        acc = _dot(ds.to(kt.dtype), tl.trans(kt), acc, PREC, DOT_F32)
    tl.store(
        dq_ptr + bh.to(tl.int64) * Tq * D + rows[:, None] * D + dq_r[None, :],
        (acc * scale).to(dq_ptr.dtype.element_ty),
        mask=row_ok[:, None] & (dq_r[None, :] < D),
    )


# --- launch functions ------------------------------------------------------------------------------------------


def _head_pad(d: int) -> int:
    return max(16, next_power_of_2(d))


def _blocks(dp: int, dtype: str, backward: bool) -> Tuple[int, int, int, int]:
    """(BM, BN, num_warps, num_stages) for a padded head dim and dtype."""
    wide = dtype == "float32"
    if backward:
        if wide and dp >= 128:
            return (32, 32, 4, 2)  # float32 tiles: 64 x 64 would need 193 KiB of shared memory, over sm_80's 163
        return (64, 64, 8, 2) if dp >= 128 else (64, 64, 4, 2)
    if dp >= 256 or (wide and dp >= 128):
        return (64, 32, 8, 2)
    if dp >= 128:
        return (128, 64, 8, 2)
    return (128, 64, 4, 3) if not wide else (64, 64, 4, 3)


def _mask_args(mask: Any, shape: Tuple[int, int, int, int], xp: Any) -> Tuple[Any, int, Tuple[int, int, int, int]]:
    """(array to pass, mask kind, element strides over (B, H, Tq, Tk) with 0 on broadcast axes)."""
    if mask is None:
        return None, MASK_NONE, (0, 0, 0, 0)
    m = xp.ascontiguousarray(mask)
    dims = (1,) * (4 - m.ndim) + tuple(int(s) for s in m.shape)
    if m.ndim > 4 or any(d not in (1, t) for d, t in zip(dims, shape)):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to {shape}")
    m = m.reshape(dims)
    strides, step = [], 1
    for d in reversed(dims):
        strides.append(0 if d == 1 else step)
        step *= d
    strides.reverse()
    if str(m.dtype) == "bool":
        return m.view(xp.uint8), MASK_BOOL, tuple(strides)  # type: ignore[return-value]
    return m, MASK_ADDITIVE, tuple(strides)  # type: ignore[return-value]


def _precision(dtype: str, precision: Optional[str]) -> str:
    if dtype != "float32":
        return "ieee"  # half-precision operands: the tensor cores' own type, whatever was asked
    if precision not in (None, "tf32", "ieee"):
        raise ValueError(f"precision must be 'tf32' or 'ieee', got {precision!r}")
    return precision or "tf32"


def _seed32(seed: int) -> int:
    # The hash works on seed & 0xFFFFFFFF; passing it as a signed 32-bit value keeps one kernel signature.
    s = int(seed) & 0xFFFFFFFF
    return s - (1 << 32) if s >= 1 << 31 else s


def _common(q: Any, k: Any, v: Any, mask: Any, scale: Optional[float]) -> Tuple[Any, ...]:
    xp = array_module(q)
    b, h, tq, d = (int(s) for s in q.shape)
    tk, dv = int(k.shape[2]), int(v.shape[3])
    if d > MAX_HEAD_DIM or dv > MAX_HEAD_DIM:
        raise ValueError(f"head dims up to {MAX_HEAD_DIM}, got {d} and {dv}")
    m, kind, strides = _mask_args(mask, (b, h, tq, tk), xp)
    name = dtype_name(q)
    sc = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return xp, (b, h, tq, tk, d, dv), m, kind, strides, name, sc


def attention_forward(
    q: Any,
    k: Any,
    v: Any,
    *,
    mask: Any = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    seed: int = 0,
    scale: Optional[float] = None,
    block_m: int = 0,
    block_n: int = 0,
    dot_f32: bool = False,
    precision: Optional[str] = None,
) -> Tuple[Any, Any]:
    """``(o, lse)``: o (B, H, Tq, Dv) in q's dtype, lse (B, H, Tq) float32. Inputs C-contiguous.

    ``precision`` is Triton's ``input_precision`` of the float32 products: ``"tf32"`` (the default, tensor
    cores) or ``"ieee"`` (full float32); half-precision inputs always multiply in their own type.
    """
    xp, (b, h, tq, tk, d, dv), m, kind, (msb, msh, msq, msk), name, sc = _common(q, k, v, mask, scale)
    o = xp.empty((b, h, tq, dv), dtype=q.dtype)
    lse = xp.empty((b, h, tq), dtype=xp.float32)
    dp, dvp = _head_pad(d), _head_pad(dv)
    bm, bn, warps, stages = _blocks(max(dp, dvp), name, backward=False)
    bm, bn = block_m or bm, block_n or bn
    if b * h * tq:
        launch(
            attention_fwd_kernel,
            (triton.cdiv(tq, bm), b * h),
            q, k, v, o, lse, m if m is not None else lse,
            h, tq, tk, d, dv, msb, msh, msq, msk, sc, neg_value(name), _seed32(seed), float(dropout_p),
            CAUSAL=bool(is_causal), MASK_KIND=kind, DROPOUT=dropout_p > 0.0,
            PREC=_precision(name, precision), DOT_F32=dot_f32,
            DP=dp, DVP=dvp, BM=bm, BN=bn, num_warps=warps, num_stages=stages,
        )  # fmt: skip
    return o, lse


def attention_backward(
    q: Any,
    k: Any,
    v: Any,
    o: Any,
    lse: Any,
    grad: Any,
    *,
    mask: Any = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    seed: int = 0,
    scale: Optional[float] = None,
    block_m: int = 0,
    block_n: int = 0,
    dot_f32: bool = False,
    precision: Optional[str] = None,
) -> Tuple[Any, Any, Any]:
    """``(dq, dk, dv)`` like q, k, v, from the forward's inputs, output, lse and the upstream ``grad`` (like o)."""
    xp, (b, h, tq, tk, d, dv), m, kind, (msb, msh, msq, msk), name, sc = _common(q, k, v, mask, scale)
    dq, dk, dvv = xp.empty_like(q), xp.empty_like(k), xp.empty_like(v)
    delta = xp.empty((b, h, tq), dtype=xp.float32)
    dp, dvp = _head_pad(d), _head_pad(dv)
    bm, bn, warps, stages = _blocks(max(dp, dvp), name, backward=True)
    bm, bn = block_m or bm, block_n or bn
    m_arg = m if m is not None else lse
    consts = dict(
        CAUSAL=bool(is_causal), MASK_KIND=kind, DROPOUT=dropout_p > 0.0,
        PREC=_precision(name, precision), DOT_F32=dot_f32,
        DP=dp, DVP=dvp, BM=bm, BN=bn, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    scalars = (h, tq, tk, d, dv, msb, msh, msq, msk, sc, neg_value(name), _seed32(seed), float(dropout_p))
    if b * h * tq:
        launch(attention_bwd_delta_kernel, (triton.cdiv(tq, bm), b * h), o, grad, delta, tq, dv, DVP=dvp, BM=bm)
    if b * h * tk:
        launch(
            attention_bwd_dkdv_kernel,
            (triton.cdiv(tk, bn), b * h),
            q,
            k,
            v,
            grad,
            lse,
            delta,
            dk,
            dvv,
            m_arg,
            *scalars,
            **consts,
        )
    if b * h * tq:
        launch(
            attention_bwd_dq_kernel,
            (triton.cdiv(tq, bm), b * h),
            q,
            k,
            v,
            grad,
            lse,
            delta,
            dq,
            m_arg,
            *scalars,
            **consts,
        )
    return dq, dk, dvv


def aot_variants() -> List[dict]:
    """Forward and backward per dtype and head dim (64, 128, the odd 80 and 40, and 256 forward), causal or
    not, with each mask kind and dropout; float32 in TF32 and, as the plugin runs it by default, in full
    float32 (``ieee``: no tensor cores, so those labels start with ``ieee_``)."""
    out = []
    cases = [
        # (dtype, head dim, causal, mask kind, dropout)
        ("fp16", 64, True, MASK_NONE, False),
        ("fp16", 64, False, MASK_NONE, False),
        ("fp16", 128, True, MASK_NONE, False),
        ("fp16", 80, True, MASK_NONE, True),
        ("fp16", 64, False, MASK_BOOL, False),
        ("fp16", 64, False, MASK_ADDITIVE, True),
        ("bf16", 64, True, MASK_NONE, False),
        ("bf16", 128, True, MASK_NONE, True),
        ("bf16", 40, False, MASK_ADDITIVE, False),
        ("fp32", 64, True, MASK_NONE, False),
        ("fp32", 128, False, MASK_BOOL, True),
        ("fp16", 256, True, MASK_NONE, False),
        ("fp32", 64, True, MASK_NONE, False, "ieee"),
        ("fp32", 128, False, MASK_ADDITIVE, True, "ieee"),
    ]
    names = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
    for dt, d, causal, kind, drop, *ieee in cases:
        dp = _head_pad(d)
        mask_t = {MASK_NONE: "fp32", MASK_BOOL: "u8", MASK_ADDITIVE: dt}[kind]
        tag = f"{dt}_d{d}{'_causal' if causal else ''}{['', '_bool', '_additive'][kind]}{'_dropout' if drop else ''}"
        prec = "ieee" if ieee or dt != "fp32" else "tf32"
        lead = "ieee_" if ieee else ""
        for backward in (False, True):
            if backward and d > 128:
                continue
            bm, bn, warps, stages = _blocks(dp, names[dt], backward)
            consts = dict(
                CAUSAL=causal, MASK_KIND=kind, DROPOUT=drop, PREC=prec, DOT_F32=False, DP=dp, DVP=dp, BM=bm, BN=bn
            )
            opts = {"num_warps": warps, "num_stages": stages}
            if not backward:
                out.append(
                    dict(
                        kernel=attention_fwd_kernel,
                        label=f"{lead}fwd_{tag}",
                        pointers={
                            "q_ptr": dt,
                            "k_ptr": dt,
                            "v_ptr": dt,
                            "o_ptr": dt,
                            "lse_ptr": "fp32",
                            "mask_ptr": mask_t,
                        },
                        constexprs=consts,
                        options=opts,
                    )
                )
                continue
            io = {
                "q_ptr": dt,
                "k_ptr": dt,
                "v_ptr": dt,
                "do_ptr": dt,
                "lse_ptr": "fp32",
                "delta_ptr": "fp32",
                "mask_ptr": mask_t,
            }
            out.append(
                dict(
                    kernel=attention_bwd_dkdv_kernel,
                    label=f"{lead}bwd_dkdv_{tag}",
                    pointers={**io, "dk_ptr": dt, "dv_ptr": dt},
                    constexprs=consts,
                    options=opts,
                )
            )
            out.append(
                dict(
                    kernel=attention_bwd_dq_kernel,
                    label=f"{lead}bwd_dq_{tag}",
                    pointers={**io, "dq_ptr": dt},
                    constexprs=consts,
                    options=opts,
                )
            )
            out.append(
                dict(
                    kernel=attention_bwd_delta_kernel,
                    label=f"{lead}bwd_delta_{tag}",
                    pointers={"o_ptr": dt, "do_ptr": dt, "delta_ptr": "fp32"},
                    constexprs={"DVP": dp, "BM": bm},
                )
            )
    return out
