"""2-D max pooling over k x k windows with stride s (no padding: the caller pads with -inf), forward and backward.

Forward: one program per (image x channel, block of output pixels) writes the
window maxima and how many elements of each window reach the maximum (int32).
Backward, as a gather so it needs no atomics: one program per (image x
channel, block of input pixels); an input pixel lies in at most
``ceil(k/s)^2`` windows, and from each window whose maximum it equals it
receives ``g / count`` (ties split the gradient equally, overlapping windows
add up, as in core's reference). Arrays (N, C, H, W), C-contiguous.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch

__all__ = ["max_pool2d_forward", "max_pool2d_backward", "aot_variants"]

BLOCK = 256


@triton.jit
def max_pool2d_fwd_kernel(x_ptr, y_ptr, count_ptr, H, W, Ho, Wo, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < Ho * Wo
    oh = offs // Wo
    ow = offs % Wo
    base = x_ptr + plane * H * W
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    for i in tl.static_range(K):
        for j in tl.static_range(K):
            v = tl.load(base + (oh * S + i) * W + ow * S + j, mask=mask, other=float("-inf")).to(tl.float32)
            best = tl.maximum(best, v)
    count = tl.zeros((BLOCK,), tl.int32)
    for i in tl.static_range(K):
        for j in tl.static_range(K):
            v = tl.load(base + (oh * S + i) * W + ow * S + j, mask=mask, other=float("-inf")).to(tl.float32)
            count += (v == best).to(tl.int32)
    out = plane * Ho * Wo + offs
    tl.store(y_ptr + out, best.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(count_ptr + out, count, mask=mask)


@triton.jit
def max_pool2d_bwd_kernel(
    x_ptr, y_ptr, count_ptr, g_ptr, dx_ptr, H, W, Ho, Wo, K: tl.constexpr, S: tl.constexpr, BLOCK: tl.constexpr
):
    plane = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < H * W
    h = offs // W
    w = offs % W
    x = tl.load(x_ptr + plane * H * W + offs, mask=mask, other=0.0).to(tl.float32)
    acc = tl.zeros((BLOCK,), tl.float32)
    out_base = plane * Ho * Wo
    # The windows holding (h, w) start at rows oh = h // S - a for a = 0.. while oh * S + K > h.
    for a in tl.static_range((K + S - 1) // S):
        oh = h // S - a
        ok_h = (oh >= 0) & (oh < Ho) & (h - oh * S < K)
        for b in tl.static_range((K + S - 1) // S):
            ow = w // S - b
            ok = mask & ok_h & (ow >= 0) & (ow < Wo) & (w - ow * S < K)
            o = out_base + oh * Wo + ow
            y = tl.load(y_ptr + o, mask=ok, other=0.0).to(tl.float32)
            c = tl.load(count_ptr + o, mask=ok, other=1).to(tl.float32)
            g = tl.load(g_ptr + o, mask=ok, other=0.0).to(tl.float32)
            acc += tl.where(ok & (x == y), g / c, 0.0)
    tl.store(dx_ptr + plane * H * W + offs, acc.to(dx_ptr.dtype.element_ty), mask=mask)


def max_pool2d_forward(x: Any, kernel_size: int, stride: int) -> Tuple[Any, Any]:
    """``x`` (N, C, H, W) -> ``(y, count)``, both (N, C, Ho, Wo); ``count`` (int32) is kept for the backward."""
    xp = array_module(x)
    n, c, h, w = (int(s) for s in x.shape)
    k, s = int(kernel_size), int(stride)
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    y = xp.empty((n, c, ho, wo), dtype=x.dtype)
    count = xp.empty((n, c, ho, wo), dtype=xp.int32)
    if n * c and ho > 0 and wo > 0:
        launch(
            max_pool2d_fwd_kernel,
            (n * c, triton.cdiv(ho * wo, BLOCK)),
            x,
            y,
            count,
            h,
            w,
            ho,
            wo,
            K=k,
            S=s,
            BLOCK=BLOCK,
        )
    return y, count


def max_pool2d_backward(x: Any, y: Any, count: Any, grad: Any, kernel_size: int, stride: int) -> Any:
    """``dx`` (like ``x``) from the forward's ``x``, ``y``, ``count`` and the upstream ``grad`` (like ``y``)."""
    xp = array_module(x)
    n, c, h, w = (int(s) for s in x.shape)
    ho, wo = int(y.shape[2]), int(y.shape[3])
    dx = xp.empty_like(x)
    if n * c and h * w:
        launch(
            max_pool2d_bwd_kernel,
            (n * c, triton.cdiv(h * w, BLOCK)),
            x,
            y,
            count,
            grad,
            dx,
            h,
            w,
            ho,
            wo,
            K=int(kernel_size),
            S=int(stride),
            BLOCK=BLOCK,
        )
    return dx


def aot_variants() -> List[dict]:
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for k, s in ((2, 2), (3, 2), (3, 1)):
            consts = {"K": k, "S": s, "BLOCK": BLOCK}
            out.append(
                dict(
                    kernel=max_pool2d_fwd_kernel,
                    label=f"fwd_{dt}_k{k}s{s}",
                    pointers={"x_ptr": dt, "y_ptr": dt, "count_ptr": "i32"},
                    constexprs=consts,
                )
            )
            out.append(
                dict(
                    kernel=max_pool2d_bwd_kernel,
                    label=f"bwd_{dt}_k{k}s{s}",
                    pointers={"x_ptr": dt, "y_ptr": dt, "count_ptr": "i32", "g_ptr": dt, "dx_ptr": dt},
                    constexprs=consts,
                )
            )
    return out
