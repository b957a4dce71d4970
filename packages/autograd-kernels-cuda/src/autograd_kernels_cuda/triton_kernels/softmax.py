"""Softmax and log-softmax over the last axis: one program per row, float32 statistics.

A row that fits one block (``F <= BLOCK``) is read once; a longer row is read
in blocks, twice: an online pass for the max and the sum of exponentials (the
sum rescaled when the max grows), then the pass that writes. Backward:
softmax ``dx = y (g - sum(g y))``, log-softmax ``dx = g - exp(y) sum(g)``.
Arrays (..., F), C-contiguous, float32/float16/bfloat16.
"""

from __future__ import annotations

from typing import Any, List

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch, next_power_of_2

__all__ = ["softmax_forward", "softmax_backward", "aot_variants", "MAX_BLOCK"]

#: Widest block a row is processed in; longer rows loop over blocks.
MAX_BLOCK = 4096


def _block(f: int) -> int:
    return min(MAX_BLOCK, max(16, next_power_of_2(f)))


def _warps(block: int) -> int:
    return 4 if block <= 1024 else 8 if block <= 2048 else 16


@triton.jit
def softmax_fwd_kernel(x_ptr, y_ptr, F, LOG: tl.constexpr, BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * F
    cols = tl.arange(0, BLOCK)
    if ONE_BLOCK:
        mask = cols < F
        x = tl.load(x_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
        x = tl.where(mask, x, float("-inf"))
        m = tl.max(x, axis=0)
        e = tl.exp(x - m)
        s = tl.sum(e, axis=0)
        if LOG:
            y = x - m - tl.log(s)
        else:
            y = e / s
        tl.store(y_ptr + row + cols, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full((), float("-inf"), tl.float32)
        s = tl.zeros((), tl.float32)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            x = tl.where(mask, x, float("-inf"))
            m_new = tl.maximum(m, tl.max(x, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
        log_s = tl.log(s)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                y = x - m - log_s
            else:
                y = tl.exp(x - m) / s
            tl.store(y_ptr + row + start + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def softmax_bwd_kernel(y_ptr, g_ptr, dx_ptr, F, LOG: tl.constexpr, BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * F
    cols = tl.arange(0, BLOCK)
    if ONE_BLOCK:
        mask = cols < F
        y = tl.load(y_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            dx = g - tl.exp(y) * tl.sum(g, axis=0)
        else:
            dx = y * (g - tl.sum(g * y, axis=0))
        tl.store(dx_ptr + row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            g = tl.load(g_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                acc += g
            else:
                acc += g * tl.load(y_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
        total = tl.sum(acc, axis=0)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            y = tl.load(y_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                dx = g - tl.exp(y) * total
            else:
                dx = y * (g - total)
            tl.store(dx_ptr + row + start + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def softmax_forward(x: Any, *, log: bool = False, block: int = 0) -> Any:
    """Softmax (or log-softmax) of ``x`` (..., F) over the last axis; ``block`` overrides the block width."""
    xp = array_module(x)
    f = int(x.shape[-1]) if x.ndim else 1
    y = xp.empty_like(x)
    rows = int(x.size) // max(f, 1)
    if rows and f:
        b = block or _block(f)
        launch(softmax_fwd_kernel, (rows,), x, y, f, LOG=log, BLOCK=b, ONE_BLOCK=f <= b, num_warps=_warps(b))
    return y


def softmax_backward(y: Any, grad: Any, *, log: bool = False, block: int = 0) -> Any:
    """``dx`` from the forward's output ``y`` and the upstream ``grad`` (both (..., F))."""
    xp = array_module(y)
    f = int(y.shape[-1]) if y.ndim else 1
    dx = xp.empty_like(y)
    rows = int(y.size) // max(f, 1)
    if rows and f:
        b = block or _block(f)
        launch(softmax_bwd_kernel, (rows,), y, grad, dx, f, LOG=log, BLOCK=b, ONE_BLOCK=f <= b, num_warps=_warps(b))
    return dx


def aot_variants() -> List[dict]:
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for log in (False, True):
            for block, one in ((1024, True), (MAX_BLOCK, True), (MAX_BLOCK, False)):
                consts = {"LOG": log, "BLOCK": block, "ONE_BLOCK": one}
                opts = {"num_warps": _warps(block)}
                tag = f"{'log_' if log else ''}softmax_{dt}_b{block}{'' if one else '_loop'}"
                out.append(
                    dict(
                        kernel=softmax_fwd_kernel,
                        label=f"{tag}_fwd",
                        pointers={"x_ptr": dt, "y_ptr": dt},
                        constexprs=consts,
                        options=opts,
                    )
                )
                out.append(
                    dict(
                        kernel=softmax_bwd_kernel,
                        label=f"{tag}_bwd",
                        pointers={"y_ptr": dt, "g_ptr": dt, "dx_ptr": dt},
                        constexprs=consts,
                        options=opts,
                    )
                )
    return out
