"""The dense reference attention, built from Tensor ops.

It materialises the (B, H, Tq, Tk) score matrix, so its memory grows with the
square of the sequence length; every other implementation is checked against
it. Its gradients come from the ops it is made of.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.backend import dtype_name
from autograd.kernels.contracts import AttentionImplementation
from autograd.kernels.dropout import keep_scale
from autograd.tensor import Tensor

__all__ = ["DenseAttention", "dense_attention", "dropout_keep_scale", "causal_forbidden", "mask_value"]


def mask_value(dtype_name: str) -> float:
    """The large negative score a forbidden position gets (finite, so no NaN appears)."""
    return -3.0e4 if dtype_name == "float16" else -1.0e9


def causal_forbidden(seq_q: int, seq_k: int) -> Any:
    """Bool (Tq, Tk) array, True where key ``j > i + Tk - Tq`` (bottom-right aligned)."""
    i = np.arange(seq_q)[:, None]
    j = np.arange(seq_k)[None, :]
    return backend.asarray(j > i + (seq_k - seq_q))


def dropout_keep_scale(shape: Tuple[int, ...], dropout_prob: float, seed: int, dtype: Any) -> Any:
    """The dropout multiplier ``keep / (1 - p)`` of a whole (B, H, Tq, Tk) score matrix.

    The decisions are :func:`autograd.kernels.dropout.keep_mask`'s, so the
    dense and tiled implementations drop the same elements for a seed, on
    every backend.
    """
    b, h, tq, tk = shape
    return keep_scale(seed, b, h, range(tq), range(tk), dropout_prob, dtype)


def dense_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    scale: Optional[float] = None,
    seed: Optional[int] = None,
    dropout_mask: Any = None,
) -> Tensor:
    """softmax(q k^T * scale + mask) [* dropout] @ v, from Tensor ops.

    ``dropout_mask`` (a keep-scale array of shape (B, H, Tq, Tk)) replaces the
    seeded mask; the conformance suite uses it to compare kernels exactly.
    """
    from autograd.functional import softmax

    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    neg = mask_value(dtype_name(query.dtype))
    # Every mask becomes an additive bias (0 allowed, `neg` forbidden): an Add passes the gradient through
    # untouched, where a masked fill would build two selects in its backward.
    if mask is not None and mask.dtype != backend.dtype("bool"):
        bias = (mask.astype(query.dtype) * neg).astype(query.dtype)  # bfloat16 * a Python float is float32
    elif mask is not None or is_causal:
        forbidden = mask if mask is not None else causal_forbidden(query.shape[-2], key.shape[-2])
        bias = backend.lib.where(forbidden, neg, 0.0).astype(query.dtype)
    else:
        bias = None
    if bias is not None:
        scores = scores + Tensor(bias, requires_grad=False)
    probs = softmax(scores)
    if dropout_mask is not None:
        probs = probs * Tensor(backend.asarray(dropout_mask).astype(query.dtype), requires_grad=False)
    elif dropout_prob > 0.0:
        if seed is None:
            seed = backend.random_seed()
        keep = dropout_keep_scale(tuple(probs.shape), dropout_prob, seed, query.dtype)
        probs = probs * Tensor(keep, requires_grad=False)
    return probs @ value


class DenseAttention(AttentionImplementation):
    """Reference attention from Tensor ops: any backend, dtype, mask, causal flag and dropout."""

    name = "dense"
    backends = ("numpy", "mlx", "cupy")
    priority = -1000

    def attention(
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
    ) -> Any:
        return dense_attention(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )
