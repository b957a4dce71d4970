"""GELU (tanh approximation), ReLU, sigmoid and tanh: one element-wise kernel each way, computed in float32.

Forward ``y = f(x)``; backward ``dx = g * f'(.)``, from ``x`` (GELU, ReLU) or
from ``y`` (sigmoid, tanh), matching what :mod:`autograd.functional` keeps.
Arrays of any shape, C-contiguous, float32/float16/bfloat16.
"""

from __future__ import annotations

from typing import Any, List

import triton
import triton.language as tl

from autograd_kernels_cuda.triton_support import array_module, launch

__all__ = ["ACTIVATIONS", "activation_forward", "activation_backward", "aot_variants"]

#: Activation ids passed to the kernels as a constexpr.
ACTIVATIONS = {"gelu": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
#: Which tensor the backward reads: the input x or the output y.
BACKWARD_READS = {"gelu": "x", "relu": "x", "sigmoid": "y", "tanh": "y"}
BLOCK = 1024
SQRT_2_OVER_PI = 0.7978845608028654
GELU_C = 0.044715


@triton.jit
def _tanh(x):
    # tanh from one exp of a non-positive argument: never overflows, exact sign, no libdevice call.
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def activation_fwd_kernel(x_ptr, y_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        y = 0.5 * x * (1.0 + _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif ACT == 1:
        y = tl.maximum(x, 0.0)
    elif ACT == 2:
        y = _sigmoid(x)
    else:
        y = _tanh(x)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def activation_bwd_kernel(s_ptr, g_ptr, dx_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr):
    """``s`` is x for GELU and ReLU, y for sigmoid and tanh."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    s = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        t = _tanh(0.7978845608028654 * (s + 0.044715 * s * s * s))
        d_alpha = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * s * s)
        dx = g * (0.5 * (1.0 + t) + 0.5 * s * (1.0 - t * t) * d_alpha)
    elif ACT == 1:
        dx = tl.where(s > 0, g, 0.0)
    elif ACT == 2:
        dx = g * s * (1.0 - s)
    else:
        dx = g * (1.0 - s * s)
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def activation_forward(name: str, x: Any) -> Any:
    """``f(x)``, same shape and dtype as ``x`` (any shape, C-contiguous)."""
    xp = array_module(x)
    y = xp.empty_like(x)
    n = int(x.size)
    if n:
        launch(activation_fwd_kernel, (triton.cdiv(n, BLOCK),), x, y, n, ACT=ACTIVATIONS[name], BLOCK=BLOCK)
    return y


def activation_backward(name: str, saved: Any, grad: Any) -> Any:
    """``dx`` from ``saved`` (x for gelu/relu, y for sigmoid/tanh: :data:`BACKWARD_READS`) and ``grad`` (same shape)."""
    xp = array_module(saved)
    dx = xp.empty_like(saved)
    n = int(saved.size)
    if n:
        launch(activation_bwd_kernel, (triton.cdiv(n, BLOCK),), saved, grad, dx, n, ACT=ACTIVATIONS[name], BLOCK=BLOCK)
    return dx


def aot_variants() -> List[dict]:
    """Every kernel instance the launch functions compile, per dtype and activation."""
    out = []
    for dt in ("fp32", "fp16", "bf16"):
        for name, act in ACTIVATIONS.items():
            consts = {"ACT": act, "BLOCK": BLOCK}
            out.append(
                dict(
                    kernel=activation_fwd_kernel,
                    label=f"{name}_fwd_{dt}",
                    pointers={"x_ptr": dt, "y_ptr": dt},
                    constexprs=consts,
                )
            )
            out.append(
                dict(
                    kernel=activation_bwd_kernel,
                    label=f"{name}_bwd_{dt}",
                    pointers={"s_ptr": dt, "g_ptr": dt, "dx_ptr": dt},
                    constexprs=consts,
                )
            )
    return out
