"""Attention layers; both route through autograd.functional.scaled_dot_product_attention,
so an installed kernel plugin is used whenever it accepts the inputs."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from autograd.functional import scaled_dot_product_attention
from autograd.nn._checks import as_input, check
from autograd.nn.linear import Linear
from autograd.nn.module import Module
from autograd.tensor import ShapeError, Tensor

__all__ = ["ScaledDotProductAttention", "MultiHeadAttention"]


class ScaledDotProductAttention(Module):
    r""":math:`\text{softmax}(QK^T / \sqrt{d_k})\,V`, with dropout on the probabilities in training.

    Shapes: query (B, H, Tq, d), key (B, H, Tk, d), value (B, H, Tk, dv) ->
    (B, H, Tq, dv). Masks follow the dispatcher's contract: a float mask is
    additive with 1.0 = forbidden and 0.0 = allowed, a bool mask forbids where
    True; ``is_causal`` applies only when no mask is given. Runs
    :func:`autograd.functional.scaled_dot_product_attention`.

    Args:
        dropout_prob: Dropout on the attention probabilities, in training only; in [0, 1).

    Examples:
        >>> q = Tensor(xp.random.randn(2, 2, 4, 8))
        >>> ScaledDotProductAttention(dropout_prob=0.1)(q, q, q).shape
        (2, 2, 4, 8)
    """

    def __init__(self, dropout_prob: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"ScaledDotProductAttention: dropout_prob must be in [0, 1), got {dropout_prob}")
        self.dropout_prob = float(dropout_prob)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Optional[Union[Tensor, Any, Sequence[Any], int, float, bool]] = None,
        is_causal: bool = False,
    ) -> Tensor:
        """(B, H, Tq, d), (B, H, Tk, d), (B, H, Tk, dv) -> (B, H, Tq, dv)."""
        query, key, value = as_input(query), as_input(key), as_input(value)
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != 4:
                raise ShapeError(
                    f"ScaledDotProductAttention: expected {name} of shape (batch, heads, seq, dim), got {t.shape}"
                )
        p = self.dropout_prob if self.is_training else 0.0
        return scaled_dot_product_attention(query, key, value, mask=mask, is_causal=is_causal, dropout_prob=p)


class MultiHeadAttention(Module):
    """Multi-head attention: project, split into ``num_heads`` heads, attend, merge, project.

    Shapes: query (B, Tq, hidden_size), key and value (B, Tk, hidden_size) ->
    (B, Tq, hidden_size). Each head has ``hidden_size // num_heads``
    dimensions. ``mask`` broadcasts to (B, num_heads, Tq, Tk) with the
    dispatcher's contract (float: 1.0 = forbidden; bool: True = forbidden).

    Args:
        num_heads: Number of heads; divides ``hidden_size``.
        hidden_size: Features of the inputs and the output.
        dropout_prob: Dropout on the attention probabilities, in training only.

    Examples:
        >>> x = Tensor(xp.random.randn(2, 5, 16))
        >>> mha = MultiHeadAttention(num_heads=2, hidden_size=16)
        >>> mha(x, x, x).shape
        (2, 5, 16)
        >>> mha(x, x, x, is_causal=True).shape  # each position attends to itself and the ones before
        (2, 5, 16)
    """

    def __init__(self, num_heads: int, hidden_size: int, dropout_prob: float = 0.1) -> None:
        super().__init__()
        if num_heads < 1 or hidden_size % num_heads:
            raise ValueError(
                f"MultiHeadAttention: hidden_size {hidden_size} must be a positive multiple of num_heads {num_heads}"
            )
        self.num_heads, self.hidden_size = int(num_heads), int(hidden_size)
        self.head_dim = hidden_size // num_heads
        self.q_proj = Linear(hidden_size, hidden_size)
        self.k_proj = Linear(hidden_size, hidden_size)
        self.v_proj = Linear(hidden_size, hidden_size)
        self.out_proj = Linear(hidden_size, hidden_size)
        self.attention = ScaledDotProductAttention(dropout_prob)

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Optional[Tensor] = None, is_causal: bool = False
    ) -> Tensor:
        """(B, Tq, hidden), (B, Tk, hidden), (B, Tk, hidden) -> (B, Tq, hidden)."""
        query, key, value = as_input(query), as_input(key), as_input(value)
        for t in (query, key, value):
            check(t.ndim == 3 and t.shape[-1] == self.hidden_size, self, f"(batch, seq, {self.hidden_size})", t)
        if key.shape != value.shape or key.shape[0] != query.shape[0]:
            raise ShapeError(
                f"MultiHeadAttention: key {key.shape} and value {value.shape} must match, with query's batch "
                f"({query.shape})"
            )
        q, k, v = self._split(self.q_proj(query)), self._split(self.k_proj(key)), self._split(self.v_proj(value))
        out = self.attention(q, k, v, mask=mask, is_causal=is_causal)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.hidden_size))
