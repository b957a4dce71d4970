"""Layer normalization over the last axis: forward and backward, statistics and accumulation in float32.

Forward (one program per row): ``y = (x - mean) * rstd * w + b`` with the
biased variance, plus ``mean`` and ``rstd`` (float32, one per row) for the
backward. Backward: each program takes a contiguous range of rows, writes
``dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))`` (``dxhat = g w``)
and accumulates its rows' ``g xhat`` and ``g`` into its own row of two
(programs, F) float32 buffers; a second kernel sums those columns into ``dw``
and ``db``: no atomics, deterministic. Rows longer than one block loop over
blocks (three passes in the forward, two in the backward).
"""

from __future__ import annotations

from typing import Any, List, Tuple

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch, next_power_of_2

__all__ = ["layer_norm_forward", "layer_norm_backward", "column_sum", "aot_variants"]

MAX_BLOCK = 4096
#: Programs of the backward (each owns a range of rows and one row of the partial sums).
BACKWARD_PROGRAMS = 256


def _block(f: int) -> int:
    return min(MAX_BLOCK, max(16, next_power_of_2(f)))


def _warps(block: int) -> int:
    return 4 if block <= 1024 else 8 if block <= 2048 else 16


@triton.jit
def layer_norm_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, F, eps, BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr
):
    pid = tl.program_id(0)
    row = pid.to(tl.int64) * F
    cols = tl.arange(0, BLOCK)
    if ONE_BLOCK:
        mask = cols < F
        x = tl.load(x_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / F
        xc = tl.where(mask, x - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / F + eps)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + row + cols, (xc * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, F, BLOCK):
            acc += tl.load(x_ptr + row + start + cols, mask=start + cols < F, other=0.0).to(tl.float32)
        mean = tl.sum(acc, axis=0) / F
        acc = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            xc = tl.where(mask, x - mean, 0.0)
            acc += xc * xc
        rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / F + eps)
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
            b = tl.load(b_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(y_ptr + row + start + cols, ((x - mean) * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(mean_ptr + pid, mean)
    tl.store(rstd_ptr + pid, rstd)


@triton.jit
def layer_norm_bwd_kernel(
    x_ptr,
    w_ptr,
    g_ptr,
    mean_ptr,
    rstd_ptr,
    dx_ptr,
    dw_part_ptr,
    db_part_ptr,
    n_rows,
    F,
    rows_per_program,
    BLOCK: tl.constexpr,
    ONE_BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    first = pid * rows_per_program
    last = tl.minimum(first + rows_per_program, n_rows)
    cols = tl.arange(0, BLOCK)
    part = pid.to(tl.int64) * F
    if ONE_BLOCK:
        mask = cols < F
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        dw = tl.zeros((BLOCK,), tl.float32)
        db = tl.zeros((BLOCK,), tl.float32)
        for r in range(first, last):
            row = tl.cast(r, tl.int64) * F
            mean = tl.load(mean_ptr + r)
            rstd = tl.load(rstd_ptr + r)
            x = tl.load(x_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + row + cols, mask=mask, other=0.0).to(tl.float32)
            xhat = tl.where(mask, (x - mean) * rstd, 0.0)
            dxhat = g * w
            c1 = tl.sum(dxhat * xhat, axis=0) / F
            c2 = tl.sum(dxhat, axis=0) / F
            dx = rstd * (dxhat - c2 - xhat * c1)
            tl.store(dx_ptr + row + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
            dw += g * xhat
            db += g
        tl.store(dw_part_ptr + part + cols, dw, mask=mask)
        tl.store(db_part_ptr + part + cols, db, mask=mask)
    else:
        for start in range(0, F, BLOCK):
            mask = start + cols < F
            tl.store(dw_part_ptr + part + start + cols, tl.zeros((BLOCK,), tl.float32), mask=mask)
            tl.store(db_part_ptr + part + start + cols, tl.zeros((BLOCK,), tl.float32), mask=mask)
        for r in range(first, last):
            row = tl.cast(r, tl.int64) * F
            mean = tl.load(mean_ptr + r)
            rstd = tl.load(rstd_ptr + r)
            a1 = tl.zeros((BLOCK,), tl.float32)
            a2 = tl.zeros((BLOCK,), tl.float32)
            for start in range(0, F, BLOCK):
                mask = start + cols < F
                x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
                g = tl.load(g_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
                w = tl.load(w_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
                xhat = tl.where(mask, (x - mean) * rstd, 0.0)
                a1 += g * w * xhat
                a2 += g * w
            c1 = tl.sum(a1, axis=0) / F
            c2 = tl.sum(a2, axis=0) / F
            for start in range(0, F, BLOCK):
                mask = start + cols < F
                x = tl.load(x_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
                g = tl.load(g_ptr + row + start + cols, mask=mask, other=0.0).to(tl.float32)
                w = tl.load(w_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
                xhat = tl.where(mask, (x - mean) * rstd, 0.0)
                dx = rstd * (g * w - c2 - xhat * c1)
                tl.store(dx_ptr + row + start + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
                dw_p = dw_part_ptr + part + start + cols
                db_p = db_part_ptr + part + start + cols
                tl.store(dw_p, tl.load(dw_p, mask=mask, other=0.0) + g * xhat, mask=mask)
                tl.store(db_p, tl.load(db_p, mask=mask, other=0.0) + g, mask=mask)


@triton.jit
def column_sum_kernel(src_ptr, out_ptr, n_rows, F, BLOCK_R: tl.constexpr, BLOCK_F: tl.constexpr):
    """out[f] = sum over rows of src[r, f] (float32 sums, stored in out's dtype); one program per column block."""
    cols = tl.program_id(0) * BLOCK_F + tl.arange(0, BLOCK_F)
    rows = tl.arange(0, BLOCK_R)
    acc = tl.zeros((BLOCK_R, BLOCK_F), tl.float32)
    for start in range(0, n_rows, BLOCK_R):
        r = start + rows
        mask = (r[:, None] < n_rows) & (cols[None, :] < F)
        acc += tl.load(src_ptr + r[:, None].to(tl.int64) * F + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + cols, tl.sum(acc, axis=0).to(out_ptr.dtype.element_ty), mask=cols < F)


def column_sum(src: Any, dtype: Any) -> Any:
    """Sum of a (rows, F) array over its rows, as a (F,) array of ``dtype`` (accumulated in float32)."""
    xp = array_module(src)
    n_rows, f = (int(s) for s in src.shape)
    out = xp.empty((f,), dtype=dtype)
    if f:
        launch(column_sum_kernel, (triton.cdiv(f, 64),), src, out, n_rows, f, BLOCK_R=32, BLOCK_F=64)
    return out


def layer_norm_forward(x: Any, weight: Any, bias: Any, eps: float = 1e-5, *, block: int = 0) -> Tuple[Any, Any, Any]:
    """``x`` (..., F), ``weight`` and ``bias`` (F,) -> ``(y, mean, rstd)``; y like x, mean/rstd float32 (rows,)."""
    xp = array_module(x)
    f = int(x.shape[-1])
    rows = int(x.size) // max(f, 1)
    y = xp.empty_like(x)
    mean = xp.empty((rows,), dtype=xp.float32)
    rstd = xp.empty((rows,), dtype=xp.float32)
    if rows and f:
        b = block or _block(f)
        launch(
            layer_norm_fwd_kernel,
            (rows,),
            x,
            weight,
            bias,
            y,
            mean,
            rstd,
            f,
            float(eps),
            BLOCK=b,
            ONE_BLOCK=f <= b,
            num_warps=_warps(b),
        )
    return y, mean, rstd


def layer_norm_backward(
    x: Any, weight: Any, mean: Any, rstd: Any, grad: Any, *, block: int = 0, programs: int = 0
) -> Tuple[Any, Any, Any]:
    """``(dx, dweight, dbias)`` from the forward's inputs and statistics and the upstream ``grad`` (like x)."""
    xp = array_module(x)
    f = int(x.shape[-1])
    rows = int(x.size) // max(f, 1)
    dx = xp.empty_like(x)
    n_prog = max(1, min(rows, programs or BACKWARD_PROGRAMS))
    per = triton.cdiv(max(rows, 1), n_prog)
    n_prog = triton.cdiv(max(rows, 1), per)
    dw_part = xp.zeros((n_prog, f), dtype=xp.float32)
    db_part = xp.zeros((n_prog, f), dtype=xp.float32)
    if rows and f:
        b = block or _block(f)
        launch(
            layer_norm_bwd_kernel,
            (n_prog,),
            x,
            weight,
            grad,
            mean,
            rstd,
            dx,
            dw_part,
            db_part,
            rows,
            f,
            per,
            BLOCK=b,
            ONE_BLOCK=f <= b,
            num_warps=_warps(b),
        )
    return dx, column_sum(dw_part, weight.dtype), column_sum(db_part, weight.dtype)


def aot_variants() -> List[dict]:
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for block, one in ((1024, True), (MAX_BLOCK, True), (MAX_BLOCK, False)):
            consts = {"BLOCK": block, "ONE_BLOCK": one}
            opts = {"num_warps": _warps(block)}
            tag = f"{dt}_b{block}{'' if one else '_loop'}"
            out.append(
                dict(
                    kernel=layer_norm_fwd_kernel,
                    label=f"fwd_{tag}",
                    pointers={
                        "x_ptr": dt,
                        "w_ptr": dt,
                        "b_ptr": dt,
                        "y_ptr": dt,
                        "mean_ptr": "fp32",
                        "rstd_ptr": "fp32",
                    },
                    constexprs=consts,
                    options=opts,
                )
            )
            out.append(
                dict(
                    kernel=layer_norm_bwd_kernel,
                    label=f"bwd_{tag}",
                    pointers={
                        "x_ptr": dt,
                        "w_ptr": dt,
                        "g_ptr": dt,
                        "mean_ptr": "fp32",
                        "rstd_ptr": "fp32",
                        "dx_ptr": dt,
                        "dw_part_ptr": "fp32",
                        "db_part_ptr": "fp32",
                    },
                    constexprs=consts,
                    options=opts,
                )
            )
        out.append(
            dict(
                kernel=column_sum_kernel,
                label=f"column_sum_{dt}",
                pointers={"src_ptr": "fp32", "out_ptr": dt},
                constexprs={"BLOCK_R": 32, "BLOCK_F": 64},
            )
        )
    return out
