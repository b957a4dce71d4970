"""Adam/AdamW over many parameters in one launch: tables of pointers and sizes (multi-tensor apply).

Every parameter is cut into chunks of ``BLOCK`` elements; program ``i`` reads
from two int tables which tensor and which chunk it owns, and from a pointer
table (int64: param, grad, exp_avg, exp_avg_sq per tensor) where they are. It
updates the chunk in float32 and writes the three arrays in place::

    p = p * (1 - lr * weight_decay)                     # AdamW, when weight_decay > 0
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

All tensors of one call share a dtype (float32/float16/bfloat16) and device.
When every tensor has the same step ``t`` (the usual case) the two bias terms
are kernel arguments; otherwise a small per-tensor float32 table carries them.
The tables depend only on the arrays' addresses and sizes, so they are built
once and cached (keyed by those); a call with the same arrays uploads nothing.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, List, Sequence, Tuple

import numpy as np
import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, dtype_name, launch

__all__ = ["adam_update", "aot_variants", "BLOCK"]

BLOCK = 2048
_TL_DTYPES = {"float32": tl.float32, "float16": tl.float16, "bfloat16": tl.bfloat16}
_TABLES: "OrderedDict[Tuple, Tuple[Any, Any, Any, Any, int]]" = OrderedDict()
_TABLE_CACHE_SIZE = 8


@triton.jit
def adam_kernel(
    ptrs_ptr,
    numel_ptr,
    chunk_tensor_ptr,
    chunk_start_ptr,
    scalars_ptr,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    step_size,
    inv_bias2_sqrt,
    DTYPE: tl.constexpr,
    DECAY: tl.constexpr,
    PER_TENSOR: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    t = tl.load(chunk_tensor_ptr + pid)
    start = tl.load(chunk_start_ptr + pid)
    n = tl.load(numel_ptr + t)
    p_ptr = tl.load(ptrs_ptr + 4 * t).to(tl.pointer_type(DTYPE))
    g_ptr = tl.load(ptrs_ptr + 4 * t + 1).to(tl.pointer_type(DTYPE))
    m_ptr = tl.load(ptrs_ptr + 4 * t + 2).to(tl.pointer_type(DTYPE))
    v_ptr = tl.load(ptrs_ptr + 4 * t + 3).to(tl.pointer_type(DTYPE))
    idx = start + tl.arange(0, BLOCK)
    mask = idx < n
    p = tl.load(p_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    if DECAY:
        p = p * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    if PER_TENSOR:
        step_size = tl.load(scalars_ptr + 2 * t)
        inv_bias2_sqrt = tl.load(scalars_ptr + 2 * t + 1)
    p = p - step_size * m / (tl.sqrt(v) * inv_bias2_sqrt + eps)
    tl.store(p_ptr + idx, p.to(DTYPE), mask=mask)
    tl.store(m_ptr + idx, m.to(DTYPE), mask=mask)
    tl.store(v_ptr + idx, v.to(DTYPE), mask=mask)


def _address(a: Any) -> int:
    if isinstance(a, np.ndarray):
        return int(a.__array_interface__["data"][0])
    return int(a.data.ptr)


def _tables(xp: Any, groups: Sequence[Sequence[Any]], block: int) -> Tuple[Any, Any, Any, Any, int]:
    """(pointer table, numel table, chunk -> tensor, chunk -> start, number of chunks), cached per addresses."""
    key = (xp.__name__, block) + tuple((_address(a), int(a.size)) for group in groups for a in group)
    hit = _TABLES.get(key)
    if hit is not None:
        _TABLES.move_to_end(key)
        return hit
    params = groups[0]
    ptrs = np.array([[_address(g[i]) for g in groups] for i in range(len(params))], dtype=np.int64).reshape(-1)
    numel = np.array([int(p.size) for p in params], dtype=np.int64)
    chunks = [-(-int(n) // block) for n in numel]
    chunk_tensor = np.repeat(np.arange(len(params), dtype=np.int32), chunks)
    chunk_start = np.concatenate([np.arange(c, dtype=np.int64) * block for c in chunks]) if chunks else np.zeros(0)
    entry = (xp.asarray(ptrs), xp.asarray(numel), xp.asarray(chunk_tensor), xp.asarray(chunk_start.astype(np.int64)))
    result = entry + (int(sum(chunks)),)
    _TABLES[key] = result
    if len(_TABLES) > _TABLE_CACHE_SIZE:
        _TABLES.popitem(last=False)
    return result


def adam_update(
    params: List[Any],
    grads: List[Any],
    exp_avgs: List[Any],
    exp_avg_sqs: List[Any],
    steps: List[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    block: int = BLOCK,
) -> Tuple[List[Any], List[Any], List[Any]]:
    """Update every parameter in place (C-contiguous arrays of one dtype); returns the same three lists."""
    if not params:
        return params, exp_avgs, exp_avg_sqs
    name = dtype_name(params[0])
    groups = (params, grads, exp_avgs, exp_avg_sqs)
    for group in groups:
        if len(group) != len(params) or any(dtype_name(a) != name for a in group):
            raise ValueError(f"adam_update: every list needs {len(params)} arrays of dtype {name}")
    xp = array_module(params[0])
    ptrs, numel, chunk_tensor, chunk_start, n_chunks = _tables(xp, groups, block)
    terms = [(lr / (1.0 - beta1**t), 1.0 / math.sqrt(1.0 - beta2**t)) for t in steps]
    per_tensor = len(set(terms)) > 1
    scalars = xp.asarray(np.array(terms, dtype=np.float32).reshape(-1)) if per_tensor else numel
    step_size, inv_bias2_sqrt = terms[0]
    if n_chunks:
        launch(
            adam_kernel,
            (n_chunks,),
            ptrs,
            numel,
            chunk_tensor,
            chunk_start,
            scalars,
            float(lr),
            float(beta1),
            float(beta2),
            float(eps),
            float(weight_decay),
            float(step_size),
            float(inv_bias2_sqrt),
            DTYPE=_TL_DTYPES[name],
            DECAY=bool(weight_decay),
            PER_TENSOR=per_tensor,
            BLOCK=block,
        )
    return params, exp_avgs, exp_avg_sqs


def aot_variants() -> List[dict]:
    out = []
    for name, dt in (("float32", "fp32"), ("float16", "fp16"), ("bfloat16", "bf16")):
        for decay in (False, True):
            for per in (False, True):
                out.append(
                    dict(
                        kernel=adam_kernel,
                        label=f"{dt}{'_decay' if decay else ''}{'_per_tensor' if per else ''}",
                        pointers={
                            "ptrs_ptr": "i64",
                            "numel_ptr": "i64",
                            "chunk_tensor_ptr": "i32",
                            "chunk_start_ptr": "i64",
                            "scalars_ptr": "fp32" if per else "i64",
                        },
                        constexprs={"DTYPE": _TL_DTYPES[name], "DECAY": decay, "PER_TENSOR": per, "BLOCK": BLOCK},
                    )
                )
    return out
