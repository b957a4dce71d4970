"""The ``mlx_flash`` attention kernel: :class:`autograd.ops.attention.AttentionKernel`, met with tiles."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import mlx.core as mx

from autograd.kernels import KernelInputs
from autograd.kernels.dropout import keep_scale as hashed_keep_scale
from autograd.ops.attention import AttentionKernel
from autograd.tensor import Function, Tensor, is_grad_enabled
from autograd_kernels_mlx.flash import BLOCK, NEG, flash_backward, flash_forward

__all__ = ["MLXFlashAttention", "FlashAttentionFunction"]

_DTYPES = ("float32", "float16", "bfloat16")
MAX_HEAD_DIM = 256


def _mask_bias_fn(mask: Optional[mx.array]):
    """Tiles of the user's mask as an additive float32 bias (the dispatcher's contract: True / 1.0 forbid)."""
    if mask is None:
        return lambda rows, cols: None
    full = mask if mask.ndim == 4 else mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
    if full.dtype == mx.bool_:
        bias = mx.where(full, NEG, 0.0).astype(mx.float32)
    else:
        bias = full.astype(mx.float32) * NEG

    def tile(rows: range, cols: range) -> mx.array:
        r = slice(rows.start, rows.stop) if bias.shape[2] > 1 else slice(None)
        c = slice(cols.start, cols.stop) if bias.shape[3] > 1 else slice(None)
        return bias[:, :, r, c]

    return tile


def _keep_fn(batch: int, heads: int, dropout_prob: float, seed: Optional[int], keep_scale: Optional[mx.array]):
    if keep_scale is not None:  # an explicit (B, H, Tq, Tk) multiplier
        ks = keep_scale.astype(mx.float32)
        return lambda rows, cols: ks[:, :, rows.start : rows.stop, cols.start : cols.stop]
    if dropout_prob <= 0.0:
        return lambda rows, cols: None
    seed = 0 if seed is None else int(seed)
    # Core's counter-based decisions (autograd.kernels.dropout): the same elements as the dense and tiled paths.
    return lambda rows, cols: hashed_keep_scale(seed, batch, heads, rows, cols, dropout_prob, mx.float32)


def _wide(*arrays: Any) -> Tuple[Any, ...]:
    return tuple(a if a.dtype == mx.float32 else a.astype(mx.float32) for a in arrays)


class FlashAttentionFunction(Function):
    """Forward and backward of the tiled attention; saves only q, k, v, the output and the log-sum-exp.

    The kernels compute in float32. What is kept for the backward is the inputs and the output in their own
    dtype (arrays the graph holds anyway; under a bfloat16 policy, half the bytes of float32 copies), widened
    again in the backward.
    """

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        *,
        mask: Any = None,
        is_causal: bool = False,
        dropout_prob: float = 0.0,
        scale: Optional[float] = None,
        seed: Optional[int] = None,
        keep_scale: Any = None,
        block: int = BLOCK,
    ) -> Any:
        b, h = query.shape[:2]
        self.dtypes = (query.dtype, key.dtype, value.dtype)
        self.scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
        self.causal, self.block = bool(is_causal) and mask is None, block
        self.mask_bias = _mask_bias_fn(mask)
        self.keep = _keep_fn(b, h, dropout_prob, seed, keep_scale)
        self.q, self.k, self.v = query, key, value
        out, self.lse = flash_forward(
            *_wide(query, key, value),
            scale=self.scale,
            causal=self.causal,
            mask_bias=self.mask_bias,
            keep=self.keep,
            block=block,
        )
        self.out = out if out.dtype == query.dtype else out.astype(query.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        q, k, v, out, dout = _wide(self.q, self.k, self.v, self.out, grad.data)
        dq, dk, dv = flash_backward(
            q,
            k,
            v,
            out,
            self.lse,
            dout,
            scale=self.scale,
            causal=self.causal,
            mask_bias=self.mask_bias,
            keep=self.keep,
            block=self.block,
        )
        return tuple(g.astype(dt) for g, dt in zip((dq, dk, dv), self.dtypes))


class MLXFlashAttention(AttentionKernel):
    """Fused, memory-linear attention for the MLX backend (any MLX device, the CPU build included).

    Takes float32, float16 and bfloat16 (float32 accumulation), head_dim up to
    256, any sequence lengths (Tq may differ from Tk), causal or not, bool or
    additive masks, dropout (regenerated from the seed in the backward) and an
    explicit ``dropout_mask`` multiplier (what
    ``autograd.functional.ScaledDotProductAttentionMLXCustom`` passes). When no
    gradient is needed and there is neither dropout nor a float mask, the
    forward uses ``mx.fast.scaled_dot_product_attention``.
    """

    name = "mlx_flash"
    backends = ("mlx",)
    #: This package's priority (the plugin guide's table).
    priority = 200

    def __init__(self, block: int = BLOCK) -> None:
        #: Query/key tile size; tests use small tiles to exercise tails and causal skipping.
        self.block = int(block)

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        if inputs.dtype not in _DTYPES:
            reasons.append(f"dtype {inputs.dtype} is not supported (float32, float16, bfloat16)")
        dim = max(inputs.shape("query")[-1], inputs.shape("value")[-1])
        if dim > MAX_HEAD_DIM:
            reasons.append(f"head_dim {dim} > {MAX_HEAD_DIM}")
        if any(0 in inputs.shape(n) for n in ("query", "key", "value")):
            reasons.append("empty inputs: core's reference returns the empty result")
        return reasons

    def apply(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: Any,
        is_causal: bool,
        dropout_prob: float,
        scale: Optional[float],
        seed: Optional[int],
        dropout_mask: Any,
    ) -> Tensor:
        needs_grad = is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        plain = dropout_prob == 0.0 and dropout_mask is None
        if not needs_grad and plain and (mask is None or mask.dtype == mx.bool_):
            return Tensor(
                self.fast_forward(query.data, key.data, value.data, mask, is_causal, scale), requires_grad=False
            )
        return FlashAttentionFunction.apply(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            keep_scale=dropout_mask,
            block=self.block,
        )

    @staticmethod
    def fast_forward(q: Any, k: Any, v: Any, mask: Any, is_causal: bool, scale: Optional[float]) -> Any:
        """Forward only, through ``mx.fast.scaled_dot_product_attention`` (its causal mask is bottom-right too)."""
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        if mask is not None:
            fast_mask: Any = mx.logical_not(mask)  # MLX: True = may attend; ours: True = forbidden
        else:
            fast_mask = "causal" if is_causal else None
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=fast_mask)
