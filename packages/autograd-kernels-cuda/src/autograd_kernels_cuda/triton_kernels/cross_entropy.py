"""Cross-entropy fused with log-softmax, for large vocabularies: the (N, V) probabilities are never stored.

Forward: one program per row walks the row's logits in blocks of ``BLOCK``
with an online max and sum of exponentials, picking the target's logit (and
the row's sum of logits when smoothing) on the way, and writes the row's loss
and log-sum-exp (float32). With smoothing ``eps`` over ``V`` classes the
target distribution is ``(1 - eps) onehot + eps / V``, so the row's loss is
``lse - (1 - eps) x_t - eps / V * sum_j x_j``. Rows whose target equals
``ignore_index`` contribute 0. A one-program kernel then reduces the rows on
the device: the loss (sum, or mean over the non-ignored rows, 0 when all are
ignored) and the factor the backward applies (1, 1/count or 0), so nothing is
read back to the host.

Backward (one program per row and block of classes): ``dlogits = g * factor *
valid * (exp(x - lse) - eps / V - (1 - eps) [j == t])`` in the logits' dtype,
with ``g`` the upstream gradient read from device memory.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch, next_power_of_2

__all__ = ["cross_entropy_forward", "cross_entropy_backward", "aot_variants"]

BLOCK = 4096
REDUCE_BLOCK = 1024


@triton.jit
def cross_entropy_fwd_kernel(
    logits_ptr,
    targets_ptr,
    loss_ptr,
    lse_ptr,
    V,
    ignore_index,
    smoothing,
    SMOOTH: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = pid.to(tl.int64) * V
    target = tl.load(targets_ptr + pid).to(tl.int32)
    cols = tl.arange(0, BLOCK)
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    picked = tl.zeros((BLOCK,), tl.float32)
    total = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, V, BLOCK):
        idx = start + cols
        mask = idx < V
        x = tl.load(logits_ptr + row + idx, mask=mask, other=0.0).to(tl.float32)
        picked += tl.where(idx == target, x, 0.0)
        if SMOOTH:
            total += x
        x = tl.where(mask, x, float("-inf"))
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(s)
    loss = lse - (1.0 - smoothing) * tl.sum(picked, axis=0)
    if SMOOTH:
        loss -= smoothing / V * tl.sum(total, axis=0)
    loss = tl.where(target != ignore_index, loss, 0.0)
    tl.store(loss_ptr + pid, loss)
    tl.store(lse_ptr + pid, lse)


@triton.jit
def cross_entropy_reduce_kernel(
    loss_rows_ptr, targets_ptr, out_ptr, factor_ptr, n_rows, ignore_index, MEAN: tl.constexpr, BLOCK: tl.constexpr
):
    """out = sum of the row losses (times 1/count for the mean); factor = what the backward multiplies by."""
    offs = tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK,), tl.float32)
    count = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_rows, BLOCK):
        idx = start + offs
        mask = idx < n_rows
        acc += tl.load(loss_rows_ptr + idx, mask=mask, other=0.0)
        t = tl.load(targets_ptr + idx, mask=mask, other=0).to(tl.int32)
        count += tl.where(mask & (t != ignore_index), 1.0, 0.0)
    total = tl.sum(acc, axis=0)
    if MEAN:
        n = tl.sum(count, axis=0)
        factor = tl.where(n > 0, 1.0 / tl.maximum(n, 1.0), 0.0)
    else:
        factor = tl.full((), 1.0, tl.float32)
    tl.store(out_ptr, (total * factor).to(out_ptr.dtype.element_ty))
    tl.store(factor_ptr, factor)


@triton.jit
def cross_entropy_bwd_kernel(
    logits_ptr,
    targets_ptr,
    lse_ptr,
    factor_ptr,
    g_ptr,
    dlogits_ptr,
    V,
    ignore_index,
    smoothing,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = pid.to(tl.int64) * V
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < V
    target = tl.load(targets_ptr + pid).to(tl.int32)
    coef = tl.load(g_ptr).to(tl.float32) * tl.load(factor_ptr)
    coef = tl.where(target != ignore_index, coef, 0.0)
    lse = tl.load(lse_ptr + pid)
    x = tl.load(logits_ptr + row + idx, mask=mask, other=0.0).to(tl.float32)
    d = tl.exp(x - lse) - smoothing / V - tl.where(idx == target, 1.0 - smoothing, 0.0)
    tl.store(dlogits_ptr + row + idx, (coef * d).to(dlogits_ptr.dtype.element_ty), mask=mask)


def _block(v: int) -> int:
    return min(BLOCK, max(16, next_power_of_2(v)))


def cross_entropy_forward(
    logits: Any,
    targets: Any,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    block: int = 0,
) -> Tuple[Any, Tuple[Any, Any]]:
    """Loss of ``logits`` (N, V) or (N, T, V) against integer ``targets`` (N,) or (N, T).

    Returns ``(loss, saved)``: ``loss`` a 0-d float32 array on the logits' device and ``saved`` =
    ``(lse, factor)`` (float32 (rows,) and (1,)) for :func:`cross_entropy_backward`. Targets are assumed
    checked (``0..V-1`` or ``ignore_index``).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    xp = array_module(logits)
    v = int(logits.shape[-1])
    rows = int(logits.size) // max(v, 1)
    loss_rows = xp.empty((rows,), dtype=xp.float32)
    lse = xp.empty((rows,), dtype=xp.float32)
    loss = xp.empty((), dtype=xp.float32)
    factor = xp.empty((1,), dtype=xp.float32)
    b = block or _block(v)
    smooth = float(label_smoothing)
    if rows:
        launch(
            cross_entropy_fwd_kernel,
            (rows,),
            logits,
            targets,
            loss_rows,
            lse,
            v,
            int(ignore_index),
            smooth,
            SMOOTH=smooth != 0.0,
            BLOCK=b,
            num_warps=8 if b >= 2048 else 4,
        )
    launch(
        cross_entropy_reduce_kernel,
        (1,),
        loss_rows,
        targets,
        loss,
        factor,
        rows,
        int(ignore_index),
        MEAN=reduction == "mean",
        BLOCK=REDUCE_BLOCK,
    )
    return loss, (lse, factor)


def cross_entropy_backward(
    logits: Any,
    targets: Any,
    saved: Tuple[Any, Any],
    grad: Any,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    block: int = 0,
) -> Any:
    """``dlogits`` (like ``logits``) from the forward's ``saved`` and the upstream 0-d (or (1,)) ``grad`` array."""
    xp = array_module(logits)
    lse, factor = saved
    v = int(logits.shape[-1])
    rows = int(logits.size) // max(v, 1)
    dlogits = xp.empty_like(logits)
    b = block or min(1024, max(16, next_power_of_2(v)))
    if rows and v:
        launch(
            cross_entropy_bwd_kernel,
            (rows, triton.cdiv(v, b)),
            logits,
            targets,
            lse,
            factor,
            grad,
            dlogits,
            v,
            int(ignore_index),
            float(label_smoothing),
            BLOCK=b,
        )
    return dlogits


def aot_variants() -> List[dict]:
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for tt in ("i32", "i64"):
            for smooth in (False, True):
                out.append(
                    dict(
                        kernel=cross_entropy_fwd_kernel,
                        label=f"fwd_{dt}_{tt}{'_smooth' if smooth else ''}",
                        pointers={"logits_ptr": dt, "targets_ptr": tt, "loss_ptr": "fp32", "lse_ptr": "fp32"},
                        constexprs={"SMOOTH": smooth, "BLOCK": BLOCK},
                        options={"num_warps": 8},
                    )
                )
            out.append(
                dict(
                    kernel=cross_entropy_bwd_kernel,
                    label=f"bwd_{dt}_{tt}",
                    pointers={
                        "logits_ptr": dt,
                        "targets_ptr": tt,
                        "lse_ptr": "fp32",
                        "factor_ptr": "fp32",
                        "g_ptr": "fp32",
                        "dlogits_ptr": dt,
                    },
                    constexprs={"BLOCK": 1024},
                )
            )
    for tt in ("i32", "i64"):
        for mean in (False, True):
            out.append(
                dict(
                    kernel=cross_entropy_reduce_kernel,
                    label=f"reduce_{tt}{'_mean' if mean else '_sum'}",
                    pointers={"loss_rows_ptr": "fp32", "targets_ptr": tt, "out_ptr": "fp32", "factor_ptr": "fp32"},
                    constexprs={"MEAN": mean, "BLOCK": REDUCE_BLOCK},
                )
            )
    return out
