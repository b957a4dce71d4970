"""Embedding lookup and its backward, the scatter-add of gradient rows into a (V, E) zero array.

Forward: ``rows[m] = weight[indices[m]]``. Backward, two ways:

* atomics (default): one program per (gradient row, block of E) adds its row
  into a float32 (V, E) accumulator with ``atomic_add``; repeated indices add
  up in whatever order the hardware serialises them (not bit-reproducible in
  float32);
* sorted (``deterministic=True``): the indices are sorted (stable) on the
  device; the program at the start of each run of equal indices sums the run's
  rows in order and writes the weight row once, so the result does not depend
  on scheduling. A very frequent index (padding) makes one long run.

float16/bfloat16 weights accumulate in float32 and are cast at the end.
"""

from __future__ import annotations

from typing import Any, List

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch, next_power_of_2

__all__ = ["embedding_forward", "embedding_backward", "cast", "aot_variants"]

CAST_BLOCK = 1024


def _block_e(e: int) -> int:
    return min(1024, max(16, next_power_of_2(e)))


@triton.jit
def embedding_fwd_kernel(weight_ptr, idx_ptr, out_ptr, E, BLOCK_E: tl.constexpr):
    m = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    mask = cols < E
    row = tl.load(idx_ptr + m).to(tl.int64)
    x = tl.load(weight_ptr + row * E + cols, mask=mask, other=0.0)
    tl.store(out_ptr + m.to(tl.int64) * E + cols, x, mask=mask)


@triton.jit
def embedding_bwd_atomic_kernel(grad_ptr, idx_ptr, acc_ptr, E, BLOCK_E: tl.constexpr):
    m = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    mask = cols < E
    row = tl.load(idx_ptr + m).to(tl.int64)
    g = tl.load(grad_ptr + m.to(tl.int64) * E + cols, mask=mask, other=0.0).to(tl.float32)
    tl.atomic_add(acc_ptr + row * E + cols, g, mask=mask)


@triton.jit
def embedding_bwd_sorted_kernel(grad_ptr, sorted_ptr, order_ptr, out_ptr, M, E, BLOCK_E: tl.constexpr):
    i = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
    mask = cols < E
    v = tl.load(sorted_ptr + i)
    prev = tl.load(sorted_ptr + i - 1, mask=i > 0, other=-1)
    if v != prev:
        acc = tl.zeros((BLOCK_E,), tl.float32)
        j = i
        cur = v
        while cur == v:
            src = tl.load(order_ptr + j).to(tl.int64)
            acc += tl.load(grad_ptr + src * E + cols, mask=mask, other=0.0).to(tl.float32)
            j += 1
            cur = tl.load(sorted_ptr + j, mask=j < M, other=-1)
        tl.store(out_ptr + v.to(tl.int64) * E + cols, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def cast_kernel(src_ptr, dst_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst_ptr + offs, tl.load(src_ptr + offs, mask=mask).to(dst_ptr.dtype.element_ty), mask=mask)


def cast(src: Any, dtype: Any) -> Any:
    """``src`` converted to ``dtype`` by a kernel (CuPy cannot ``astype`` to bfloat16, which it does not have)."""
    xp = array_module(src)
    dst = xp.empty(src.shape, dtype=dtype)
    n = int(src.size)
    if n:
        launch(cast_kernel, (triton.cdiv(n, CAST_BLOCK),), src, dst, n, BLOCK=CAST_BLOCK)
    return dst


def embedding_forward(weight: Any, indices: Any) -> Any:
    """``weight`` (V, E), integer ``indices`` of any shape -> ``indices.shape + (E,)``."""
    xp = array_module(weight)
    e = int(weight.shape[1])
    m = int(indices.size)
    out = xp.empty(tuple(indices.shape) + (e,), dtype=weight.dtype)
    if m and e:
        b = _block_e(e)
        launch(embedding_fwd_kernel, (m, triton.cdiv(e, b)), weight, indices, out, e, BLOCK_E=b)
    return out


def embedding_backward(grad: Any, indices: Any, num_rows: int, *, deterministic: bool = False) -> Any:
    """(V, E) gradient of the weight: ``grad`` (indices.shape + (E,)) scatter-added at ``indices``."""
    xp = array_module(grad)
    e = int(grad.shape[-1])
    m = int(indices.size)
    b = _block_e(e)
    flat = indices.reshape(-1)
    if deterministic:
        order = xp.argsort(flat, kind="stable") if xp.__name__ == "numpy" else xp.argsort(flat)
        sorted_idx = xp.ascontiguousarray(flat[order])
        out = xp.zeros((num_rows, e), dtype=grad.dtype)
        if m and e:
            launch(embedding_bwd_sorted_kernel, (m, triton.cdiv(e, b)), grad, sorted_idx, order, out, m, e, BLOCK_E=b)
        return out
    acc = xp.zeros((num_rows, e), dtype=xp.float32)
    if m and e:
        launch(embedding_bwd_atomic_kernel, (m, triton.cdiv(e, b)), grad, flat, acc, e, BLOCK_E=b)
    return acc if acc.dtype == grad.dtype else cast(acc, grad.dtype)


def aot_variants() -> List[dict]:
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for it in ("i32", "i64"):
            out.append(
                dict(
                    kernel=embedding_fwd_kernel,
                    label=f"fwd_{dt}_{it}",
                    pointers={"weight_ptr": dt, "idx_ptr": it, "out_ptr": dt},
                    constexprs={"BLOCK_E": 1024},
                )
            )
            out.append(
                dict(
                    kernel=embedding_bwd_atomic_kernel,
                    label=f"bwd_atomic_{dt}_{it}",
                    pointers={"grad_ptr": dt, "idx_ptr": it, "acc_ptr": "fp32"},
                    constexprs={"BLOCK_E": 1024},
                )
            )
            out.append(
                dict(
                    kernel=embedding_bwd_sorted_kernel,
                    label=f"bwd_sorted_{dt}_{it}",
                    pointers={"grad_ptr": dt, "sorted_ptr": it, "order_ptr": "i64", "out_ptr": dt},
                    constexprs={"BLOCK_E": 1024},
                )
            )
        out.append(
            dict(
                kernel=cast_kernel,
                label=f"cast_fp32_to_{dt}",
                pointers={"src_ptr": "fp32", "dst_ptr": dt},
                constexprs={"BLOCK": CAST_BLOCK},
            )
        )
    return out
