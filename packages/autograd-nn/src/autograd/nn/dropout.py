"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from autograd import backend
from autograd.nn._checks import as_input, options
from autograd.nn.module import Module
from autograd.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``.

    The identity in evaluation mode (and when ``p == 0``). ``p`` is in [0, 1], as
    in PyTorch: ``p == 1`` zeroes every element in training (and its gradient).
    Any input shape.

    Args:
        p: Probability of zeroing an element.
        **kwargs: Any keyword raises ``TypeError`` naming it.

    Examples:
        >>> d = Dropout(p=0.5)
        >>> y = d(Tensor(xp.ones((8, 8))))  # training mode: about half are 0, the rest 2
        >>> sorted(set(y.numpy().ravel().tolist()))
        [0.0, 2.0]
        >>> d.eval()
        >>> d(Tensor([[1.0, 1.0], [1.0, 1.0]])).numpy()
        array([[1., 1.],
               [1., 1.]], dtype=float32)
    """

    def __init__(self, p: float = 0.5, **kwargs: Any) -> None:
        options("Dropout", kwargs)
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        """Same shape as the input."""
        x = as_input(x)
        if not self.is_training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0  # every element dropped; 1/(1-p) would be inf
        keep = backend.bernoulli(1.0 - self.p, x.shape)
        scale = (keep.astype(x.dtype) * (1.0 / (1.0 - self.p))).astype(x.dtype)
        return x * Tensor(scale, requires_grad=False)
