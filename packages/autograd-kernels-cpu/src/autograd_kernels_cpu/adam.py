"""Adam / AdamW for a whole list of parameters in one fused, in-place pass.

Per parameter, at its step ``t`` (exactly ``autograd.optim.Adam._update``)::

    p = p * (1 - lr * wd)                       (only when wd != 0)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g)
    p = p - (lr / (1 - b1**t)) * (m / (sqrt(v) / sqrt(1 - b2**t) + eps))

The scalar factors are computed in Python float64 as the reference computes
them and rounded once to the arrays' dtype, as NumPy does with a Python float
operand; every array operation then runs in that dtype in the same order,
without fused multiply-adds or reassociation. The result is bit-identical to
the reference (the tests compare with ``==``).

One parallel loop covers every parameter: the parameters are cut into chunks
of ``_CHUNK`` elements, and the threads share the list of (parameter, chunk)
pairs, so a model of many small tensors and a few large ones still balances.
Numba's typed lists cost several microseconds per element to build from
Python, so the kernel receives the arrays' addresses instead (an int64 table)
and views each as a 1-D array inside; the Python wrapper checks every array
first (dtype, C order, shape) and keeps them alive for the call.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import carray, njit, prange
from numba.core import types
from numba.extending import intrinsic

from autograd_kernels_cpu._common import OPTS, UnsupportedInputError, check_float, parallel_kernel
from autograd_kernels_cpu._threads import chunks

__all__ = ["adam_update"]

_CHUNK = 1 << 14  # elements per work item: big enough to amortize the scheduling, small enough to balance
_MIN_WORK = 1 << 17  # parameters' elements below which one thread updates them all


@intrinsic
def _pointer(typingctx: Any, address: Any, like: Any) -> Any:
    """The int64 ``address`` as a pointer to ``like``'s element type."""
    if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
        return None
    ptr = types.CPointer(like.dtype)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(ptr))

    return ptr(address, like), codegen


@njit(**OPTS)
def _record(addresses, i, p, g, m, v):  # type: ignore[no-untyped-def]
    # One call per parameter writes its four addresses (a Python-side .ctypes.data costs ~3 us each).
    addresses[0, i] = p.ctypes.data
    addresses[1, i] = g.ctypes.data
    addresses[2, i] = m.ctypes.data
    addresses[3, i] = v.ctypes.data


@njit(**OPTS)
def _update_chunk(p, g, m, v, b1, c1, b2, c2, eps, decay, use_decay, step_size, bias2_sqrt):  # type: ignore[no-untyped-def]
    for i in range(p.size):
        value = p[i] * decay if use_decay else p[i]
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = value - step_size * (mi / (np.sqrt(vi) / bias2_sqrt + eps))


@njit(**OPTS)
def _adam(addresses, sizes, factors, like, hyper, use_decay):  # type: ignore[no-untyped-def]
    # addresses: (4, P) int64 of (param, grad, m, v); sizes: (P,); factors: (P, 2) float64 of
    # (lr / (1 - b1**t), sqrt(1 - b2**t)); hyper: float64 [b1, 1 - b1, b2, 1 - b2, eps, 1 - lr * wd].
    t_ = like.dtype.type
    b1, c1, b2, c2, eps, decay = t_(hyper[0]), t_(hyper[1]), t_(hyper[2]), t_(hyper[3]), t_(hyper[4]), t_(hyper[5])
    for i in range(sizes.size):
        n = sizes[i]
        _update_chunk(
            carray(_pointer(addresses[0, i], like), n),
            carray(_pointer(addresses[1, i], like), n),
            carray(_pointer(addresses[2, i], like), n),
            carray(_pointer(addresses[3, i], like), n),
            b1, c1, b2, c2, eps, decay, use_decay, t_(factors[i, 0]), t_(factors[i, 1]),
        )  # fmt: skip


@parallel_kernel
def _adam_par(addresses, sizes, factors, like, hyper, use_decay):  # type: ignore[no-untyped-def]
    t_ = like.dtype.type
    b1, c1, b2, c2, eps, decay = t_(hyper[0]), t_(hyper[1]), t_(hyper[2]), t_(hyper[3]), t_(hyper[4]), t_(hyper[5])
    n_params = sizes.size
    first = np.empty(n_params + 1, np.int64)  # first work item of each parameter
    first[0] = 0
    for i in range(n_params):
        first[i + 1] = first[i] + (sizes[i] + _CHUNK - 1) // _CHUNK
    owner = np.empty(first[n_params], np.int64)
    for i in range(n_params):
        owner[first[i] : first[i + 1]] = i
    for w in prange(first[n_params]):
        i = owner[w]
        n = sizes[i]
        lo = (w - first[i]) * _CHUNK
        hi = min(n, lo + _CHUNK)
        _update_chunk(
            carray(_pointer(addresses[0, i], like), n)[lo:hi],
            carray(_pointer(addresses[1, i], like), n)[lo:hi],
            carray(_pointer(addresses[2, i], like), n)[lo:hi],
            carray(_pointer(addresses[3, i], like), n)[lo:hi],
            b1, c1, b2, c2, eps, decay, use_decay, t_(factors[i, 0]), t_(factors[i, 1]),
        )  # fmt: skip


def adam_update(
    params: Sequence[np.ndarray],
    grads: Sequence[np.ndarray],
    exp_avgs: Sequence[np.ndarray],
    exp_avg_sqs: Sequence[np.ndarray],
    steps: Sequence[int],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """One Adam(W) step of every parameter, in place (``params``, ``exp_avgs`` and ``exp_avg_sqs`` change).

    Args:
        params, grads, exp_avgs, exp_avg_sqs: equal-length lists; entry ``i`` of each has parameter
            ``i``'s shape; all C-contiguous and of one dtype (float32 or float64).
        steps: each parameter's step count ``t``, already incremented (1 on its first update).
        lr, beta1, beta2, eps, weight_decay: as in ``autograd.optim.Adam``; ``weight_decay > 0`` is AdamW.
    """
    op = "adam_update"
    n_params = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(steps) == n_params):
        raise ValueError(
            f"{op}: got {n_params} params, {len(grads)} grads, {len(exp_avgs)} exp_avgs, "
            f"{len(exp_avg_sqs)} exp_avg_sqs and {len(steps)} steps"
        )
    if n_params == 0:
        return
    addresses = np.empty((4, n_params), np.int64)
    sizes = np.empty(n_params, np.int64)
    factors = np.empty((n_params, 2))
    dtype = None
    for i, arrays in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        dt = check_float(op, param=arrays[0], grad=arrays[1], exp_avg=arrays[2], exp_avg_sq=arrays[3])
        if dtype is not None and dt != dtype:
            raise UnsupportedInputError(f"{op}: parameter {i} is {dt}, earlier ones {dtype}; call once per dtype")
        dtype = dt
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError(f"{op}: parameter {i}: shapes {[a.shape for a in arrays]} differ")
        if any(not a.flags.writeable for a in (arrays[0], arrays[2], arrays[3])):
            raise ValueError(f"{op}: parameter {i}: the parameter and its moments must be writeable")
        _record(addresses, i, *(a.reshape(-1) for a in arrays))
        sizes[i] = arrays[0].size
        t = int(steps[i])
        if t < 1:
            raise ValueError(f"{op}: parameter {i} has step {t}; steps start at 1")
        factors[i, 0] = lr / (1.0 - beta1**t)
        factors[i, 1] = math.sqrt(1.0 - beta2**t)
    hyper = np.array([beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, 1.0 - lr * weight_decay])
    total = int(sizes.sum())
    kernel = _adam_par if chunks(total // _CHUNK + 1, total, _MIN_WORK) > 1 else _adam
    kernel(addresses, sizes, factors, params[0].reshape(-1)[:0], hyper, bool(weight_decay))
