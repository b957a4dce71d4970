"""2-D convolution (cross-correlation) as implicit GEMM on the tensor cores: forward, dgrad and wgrad.

Shapes: ``x`` (N, C, H, W), ``weight`` (O, C/groups, KH, KW), ``bias`` (O,)
or None, ``y`` (N, O, Ho, Wo) with ``Ho = (H + top + bottom - dh (KH - 1) - 1)
// sh + 1``; stride (sh, sw), zero padding (top, bottom, left, right),
dilation (dh, dw), groups. Nothing is unfolded in memory: each program loads
its (BM x BK) tile of the virtual im2col matrix straight from ``x`` (the
padding is the load mask) and multiplies with ``tl.dot``, accumulating in
float32. For group ``gi``:

* forward: ``y[(n, oh, ow), o] = sum_(c, kh, kw) x[n, c, oh sh - top + kh dh, ow sw - left + kw dw] w[o, (c, kh, kw)]``;
* dgrad: ``dx[(n, h, w), c] = sum_(o, kh, kw) dy[n, o, (h + top - kh dh) / sh, ...] w[o, c, kh, kw]``,
  terms where the division is not exact or falls outside the output being 0;
* wgrad: ``dw[o, (c, kh, kw)] = sum_(n, oh, ow) dy[n, o, oh, ow] x[n, c, ih, iw]``, the reduction over
  ``N Ho Wo`` split in ``SPLIT`` slices written to a float32 buffer and summed by a column-sum kernel;
* dbias: one program per output channel sums ``dy``.

float32 inputs multiply in TF32 on the GPU (``precision="tf32"``, the
default; ``"ieee"`` for full float32); float16/bfloat16 in their own type.
``dot_f32`` widens the operands to float32 first: Triton's interpreter (3.9)
holds bfloat16 as raw bits and its ``tl.dot`` would multiply the bit patterns,
so the interpreter tests set it for bfloat16; compiled code never needs it.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_kernels.norm import column_sum
from autograd_kernels_cuda.triton_support import array_module, launch

__all__ = ["conv2d_forward", "conv2d_backward", "conv2d_output_shape", "aot_variants"]

IntPair = Union[int, Tuple[int, int]]
BM, BN, BK = 64, 64, 32
WGRAD_SPLIT = 8


def _pair(v: IntPair) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _padding(p: Union[int, Sequence[int]]) -> Tuple[int, int, int, int]:
    if isinstance(p, int):
        return (p, p, p, p)
    if len(p) == 2:
        return (int(p[0]), int(p[0]), int(p[1]), int(p[1]))
    top, bottom, left, right = (int(v) for v in p)
    return (top, bottom, left, right)


def conv2d_output_shape(
    x_shape: Sequence[int], w_shape: Sequence[int], stride: IntPair, padding: Any, dilation: IntPair
) -> Tuple[int, int, int, int]:
    n, _, h, w = x_shape
    o, _, kh, kw = w_shape
    sh, sw = _pair(stride)
    top, bottom, left, right = _padding(padding)
    dh, dw = _pair(dilation)
    return (n, o, (h + top + bottom - dh * (kh - 1) - 1) // sh + 1, (w + left + right - dw * (kw - 1) - 1) // sw + 1)


@triton.jit
def _mma(acc, a, b, PREC: tl.constexpr, DOT_F32: tl.constexpr):
    if DOT_F32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PREC)


@triton.jit
def conv2d_fwd_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    N,
    C,
    H,
    W,
    O,
    Ho,
    Wo,
    Cg,
    Og,
    KH,
    KW,
    sh,
    sw,
    top,
    left,
    dh,
    dw,
    HAS_BIAS: tl.constexpr,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
):
    gi = tl.program_id(2)
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    ro = tl.program_id(1) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    M = N * Ho * Wo
    K = Cg * KH * KW
    n = rm // (Ho * Wo)
    ohw = rm % (Ho * Wo)
    ih0 = (ohw // Wo) * sh - top
    iw0 = (ohw % Wo) * sw - left
    x_row = (n.to(tl.int64) * C + gi * Cg) * H * W
    oc = gi * Og + ro
    acc = tl.zeros((BM, BN), tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + rk
        c = k // (KH * KW)
        kr = k % (KH * KW)
        ih = ih0[:, None] + (kr // KW)[None, :] * dh
        iw = iw0[:, None] + (kr % KW)[None, :] * dw
        a_mask = (rm[:, None] < M) & (k[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(x_ptr + x_row[:, None] + c[None, :].to(tl.int64) * H * W + ih * W + iw, mask=a_mask, other=0.0)
        b_mask = (k[:, None] < K) & (ro[None, :] < Og)
        b = tl.load(w_ptr + oc[None, :].to(tl.int64) * K + k[:, None], mask=b_mask, other=0.0)
        acc = _mma(acc, a, b, PREC, DOT_F32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + oc, mask=ro < Og, other=0.0).to(tl.float32)[None, :]
    y_off = (n.to(tl.int64) * O)[:, None] * Ho * Wo + oc[None, :].to(tl.int64) * Ho * Wo + ohw[:, None]
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (ro[None, :] < Og))


@triton.jit
def conv2d_dgrad_kernel(
    dy_ptr,
    w_ptr,
    dx_ptr,
    N,
    C,
    H,
    W,
    O,
    Ho,
    Wo,
    Cg,
    Og,
    KH,
    KW,
    sh,
    sw,
    top,
    left,
    dh,
    dw,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
):
    gi = tl.program_id(2)
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rc = tl.program_id(1) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    M = N * H * W
    K = Og * KH * KW
    n = rm // (H * W)
    hw = rm % (H * W)
    th0 = hw // W + top
    tw0 = hw % W + left
    dy_row = (n.to(tl.int64) * O + gi * Og) * Ho * Wo
    acc = tl.zeros((BM, BN), tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + rk
        o = k // (KH * KW)
        kr = k % (KH * KW)
        th = th0[:, None] - (kr // KW)[None, :] * dh
        tw = tw0[:, None] - (kr % KW)[None, :] * dw
        oh = th // sh
        ow = tw // sw
        ok = (th >= 0) & (tw >= 0) & (th % sh == 0) & (tw % sw == 0) & (oh < Ho) & (ow < Wo)
        a_mask = (rm[:, None] < M) & (k[None, :] < K) & ok
        a = tl.load(dy_ptr + dy_row[:, None] + o[None, :].to(tl.int64) * Ho * Wo + oh * Wo + ow, mask=a_mask, other=0.0)
        b_mask = (k[:, None] < K) & (rc[None, :] < Cg)
        w_off = ((gi * Og + o[:, None]).to(tl.int64) * Cg + rc[None, :]) * KH * KW + kr[:, None]
        b = tl.load(w_ptr + w_off, mask=b_mask, other=0.0)
        acc = _mma(acc, a, b, PREC, DOT_F32)
    x_off = (n.to(tl.int64) * C + gi * Cg)[:, None] * H * W + rc[None, :].to(tl.int64) * H * W + hw[:, None]
    tl.store(dx_ptr + x_off, acc.to(dx_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rc[None, :] < Cg))


@triton.jit
def conv2d_wgrad_kernel(
    x_ptr,
    dy_ptr,
    part_ptr,
    N,
    C,
    H,
    W,
    O,
    Ho,
    Wo,
    Cg,
    Og,
    KH,
    KW,
    sh,
    sw,
    top,
    left,
    dh,
    dw,
    slice_len,
    PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
):
    """part[split, gi*Og + o, kk] = sum over this split's (n, oh, ow) of dy[n, o, oh, ow] x[n, c, ih, iw]."""
    gi = tl.program_id(2) % (C // Cg)
    split = tl.program_id(2) // (C // Cg)
    ro = tl.program_id(0) * BM + tl.arange(0, BM)
    rq = tl.program_id(1) * BN + tl.arange(0, BN)
    rr = tl.arange(0, BK)
    R = N * Ho * Wo
    Kf = Cg * KH * KW
    c = rq // (KH * KW)
    kr = rq % (KH * KW)
    kh = kr // KW
    kw = kr % KW
    acc = tl.zeros((BM, BN), tl.float32)
    r_first = split * slice_len
    r_last = tl.minimum(r_first + slice_len, R)
    for r0 in range(r_first, r_last, BK):
        r = r0 + rr
        n = r // (Ho * Wo)
        ohw = r % (Ho * Wo)
        a_mask = (ro[:, None] < Og) & (r[None, :] < r_last)
        a_off = (n.to(tl.int64) * O + gi * Og)[None, :] * Ho * Wo + ro[:, None].to(tl.int64) * Ho * Wo + ohw[None, :]
        a = tl.load(dy_ptr + a_off, mask=a_mask, other=0.0)
        ih = ((ohw // Wo) * sh - top)[:, None] + kh[None, :] * dh
        iw = ((ohw % Wo) * sw - left)[:, None] + kw[None, :] * dw
        b_mask = (r[:, None] < r_last) & (rq[None, :] < Kf) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        b_off = (n.to(tl.int64) * C + gi * Cg)[:, None] * H * W + c[None, :].to(tl.int64) * H * W + ih * W + iw
        b = tl.load(x_ptr + b_off, mask=b_mask, other=0.0)
        acc = _mma(acc, a, b, PREC, DOT_F32)
    out = (split.to(tl.int64) * O + gi * Og + ro[:, None]) * Kf + rq[None, :]
    tl.store(part_ptr + out, acc, mask=(ro[:, None] < Og) & (rq[None, :] < Kf))


@triton.jit
def bias_grad_kernel(dy_ptr, db_ptr, N, O, HW, BLOCK: tl.constexpr):
    o = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK,), tl.float32)
    for n in range(0, N):
        base = (tl.cast(n, tl.int64) * O + o) * HW
        for start in range(0, HW, BLOCK):
            acc += tl.load(dy_ptr + base + start + offs, mask=start + offs < HW, other=0.0).to(tl.float32)
    tl.store(db_ptr + o, tl.sum(acc, axis=0).to(db_ptr.dtype.element_ty))


def _geometry(x_shape: Sequence[int], w_shape: Sequence[int], stride: Any, padding: Any, dilation: Any, groups: int):
    n, c, h, w = (int(s) for s in x_shape)
    o, cg, kh, kw = (int(s) for s in w_shape)
    if c != cg * groups or o % groups:
        raise ValueError(f"conv2d: x {tuple(x_shape)} and weight {tuple(w_shape)} do not fit groups={groups}")
    sh, sw = _pair(stride)
    top, bottom, left, right = _padding(padding)
    dh, dw = _pair(dilation)
    _, _, ho, wo = conv2d_output_shape(x_shape, w_shape, (sh, sw), (top, bottom, left, right), (dh, dw))
    return (n, c, h, w, o, ho, wo, cg, o // groups, kh, kw, sh, sw, top, left, dh, dw)


def _precision(x: Any, precision: Optional[str]) -> str:
    """Triton's ``input_precision``: ``precision`` (default ``"tf32"``) for float32, the operands' own type else."""
    if str(x.dtype) != "float32":
        return "ieee"
    if precision not in (None, "tf32", "ieee"):
        raise ValueError(f"precision must be 'tf32' or 'ieee', got {precision!r}")
    return precision or "tf32"


def conv2d_forward(
    x: Any,
    weight: Any,
    bias: Any = None,
    *,
    stride: IntPair = 1,
    padding: Any = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    precision: Optional[str] = None,
    dot_f32: bool = False,
) -> Any:
    """``y`` (N, O, Ho, Wo) in x's dtype. ``padding``: int, (ph, pw) or (top, bottom, left, right)."""
    xp = array_module(x)
    geo = _geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    n, c, h, w, o, ho, wo, cg, og = geo[:9]
    y = xp.empty((n, o, ho, wo), dtype=x.dtype)
    if y.size:
        grid = (triton.cdiv(n * ho * wo, BM), triton.cdiv(og, BN), groups)
        launch(
            conv2d_fwd_kernel,
            grid,
            x,
            weight,
            bias if bias is not None else weight,
            y,
            *geo,
            HAS_BIAS=bias is not None,
            PREC=_precision(x, precision),
            DOT_F32=dot_f32,
            BM=BM,
            BN=BN,
            BK=BK,
        )
    return y


def conv2d_backward(
    x: Any,
    weight: Any,
    grad: Any,
    *,
    has_bias: bool = True,
    stride: IntPair = 1,
    padding: Any = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    precision: Optional[str] = None,
    dot_f32: bool = False,
    need_dx: bool = True,
    need_dw: bool = True,
    split: int = WGRAD_SPLIT,
) -> Tuple[Any, Any, Any]:
    """``(dx, dweight, dbias)`` from ``x``, ``weight`` and ``grad`` (like y); None where not asked for."""
    xp = array_module(x)
    geo = _geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    n, c, h, w, o, ho, wo, cg, og, kh, kw = geo[:11]
    prec = _precision(x, precision)
    dx = dw = db = None
    if need_dx:
        dx = xp.empty_like(x)
        if dx.size:
            grid = (triton.cdiv(n * h * w, BM), triton.cdiv(cg, BN), groups)
            launch(conv2d_dgrad_kernel, grid, grad, weight, dx, *geo, PREC=prec, DOT_F32=dot_f32, BM=BM, BN=BN, BK=BK)
    if need_dw:
        rows = n * ho * wo
        split = max(1, min(split, triton.cdiv(rows, BK)))
        slice_len = triton.cdiv(triton.cdiv(rows, split), BK) * BK
        split = triton.cdiv(rows, slice_len) if rows else 1
        kf = cg * kh * kw
        part = xp.zeros((split, o * kf), dtype=xp.float32)
        if rows:
            grid = (triton.cdiv(og, BM), triton.cdiv(kf, BN), groups * split)
            launch(
                conv2d_wgrad_kernel,
                grid,
                x,
                grad,
                part,
                *geo,
                slice_len,
                PREC=prec,
                DOT_F32=dot_f32,
                BM=BM,
                BN=BN,
                BK=BK,
            )
        dw = column_sum(part, weight.dtype).reshape(weight.shape)
    if has_bias:
        db = xp.empty((o,), dtype=weight.dtype)
        launch(bias_grad_kernel, (o,), grad, db, n, o, ho * wo, BLOCK=256)
    return dx, dw, db


def aot_variants() -> List[dict]:
    out = []
    # float32 twice: TF32 on the tensor cores, and full float32 (``ieee``, the plugin's default, labelled
    # ``ieee_``: no tensor cores).
    for dt, prec, lead in (("fp32", "tf32", ""), ("fp32", "ieee", "ieee_"), ("fp16", "ieee", ""), ("bf16", "ieee", "")):
        consts = {"PREC": prec, "DOT_F32": False, "BM": BM, "BN": BN, "BK": BK}
        for bias in (False, True):
            out.append(
                dict(
                    kernel=conv2d_fwd_kernel,
                    label=f"{lead}fwd_{dt}{'_bias' if bias else ''}",
                    pointers={"x_ptr": dt, "w_ptr": dt, "b_ptr": dt, "y_ptr": dt},
                    constexprs={**consts, "HAS_BIAS": bias},
                )
            )
        out.append(
            dict(
                kernel=conv2d_dgrad_kernel,
                label=f"{lead}dgrad_{dt}",
                pointers={"dy_ptr": dt, "w_ptr": dt, "dx_ptr": dt},
                constexprs=consts,
            )
        )
        out.append(
            dict(
                kernel=conv2d_wgrad_kernel,
                label=f"{lead}wgrad_{dt}",
                pointers={"x_ptr": dt, "dy_ptr": dt, "part_ptr": "fp32"},
                constexprs=consts,
            )
        )
        if lead:
            continue  # the bias gradient is a plain sum: one variant per dtype
        out.append(
            dict(
                kernel=bias_grad_kernel,
                label=f"dbias_{dt}",
                pointers={"dy_ptr": dt, "db_ptr": dt},
                constexprs={"BLOCK": 256},
            )
        )
    return out
