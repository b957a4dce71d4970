"""Linear and Embedding layers."""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from autograd import backend
from autograd.init import xavier_uniform
from autograd.kernels.contracts import dispatch
from autograd.nn._checks import as_input, check
from autograd.nn.module import Module
from autograd.precision import to_low
from autograd.tensor import Tensor, TensorIndexError

__all__ = ["Linear", "Embedding"]


class Linear(Module):
    r"""Fully connected layer :math:`y = xW + b`.

    Shapes: weight (input_size, output_size), bias (output_size,); input
    (..., input_size) -> output (..., output_size). The weight is Xavier-uniform,
    the bias zero. Pass ``bias=False`` for no bias.

    Examples:
        >>> Linear(4, 2)(Tensor(xp.random.randn(3, 4))).shape
        (3, 2)
    """

    def __init__(self, input_size: int, output_size: int, **kwargs: Any) -> None:
        super().__init__()
        self.input_size, self.output_size = int(input_size), int(output_size)
        self.weight = xavier_uniform(Tensor(backend.asarray(np.zeros((input_size, output_size), np.float32))))
        if kwargs.get("bias", True):
            self.bias = Tensor(backend.asarray(np.zeros(output_size, np.float32)))
        else:
            self.bias = None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(..., input_size) -> (..., output_size)."""
        x = as_input(x)
        check(x.ndim >= 1 and x.shape[-1] == self.input_size, self, f"(..., {self.input_size})", x)
        y = x @ self.weight
        if self.bias is None:
            return y
        (bias,) = to_low(self.bias)  # under autocast the bias joins the product's low dtype, as in PyTorch's linear
        return y + bias


class Embedding(Module):
    """Lookup table: integer indices (any shape) -> vectors of ``embedding_size``.

    Shapes: weight (input_size, embedding_size), drawn from N(0, 1) as in
    PyTorch; input (batch, seq) of indices in ``[0, input_size)`` -> output
    (batch, seq, embedding_size). Repeated indices accumulate gradients.
    Indices outside ``[0, input_size)`` (negative ones included, as in
    PyTorch) raise ``IndexError`` on every backend. Runs the ``embedding``
    kernel op (its backward, a scatter-add, is the hot part).

    Examples:
        >>> Embedding(100, 16)(Tensor(xp.array([[1, 5, 20], [2, 10, 30]]))).shape
        (2, 3, 16)
    """

    def __init__(self, input_size: int, embedding_size: int) -> None:
        super().__init__()
        self.input_size, self.embedding_size = int(input_size), int(embedding_size)
        self.weight = Tensor(backend.normal((input_size, embedding_size)))

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """Indices of any shape -> ``(*indices.shape, embedding_size)``."""
        idx = x.data if isinstance(x, Tensor) else x
        if not backend.is_array(idx):
            idx = backend.asarray(np.asarray(idx))
        if backend.is_floating(idx.dtype):
            host = backend.to_numpy(idx)
            if np.any(host != np.round(host)):
                raise TypeError(f"Embedding: indices must be integers, got non-integer values of dtype {idx.dtype}")
            idx = backend.asarray(host.astype(np.int32))
        elif "int" not in backend.dtype_name(idx.dtype):
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        if idx.size:
            host = backend.to_numpy(idx)
            lo, hi = int(host.min()), int(host.max())
            if lo < 0 or hi >= self.input_size:
                bad = lo if lo < 0 else hi
                raise TensorIndexError(
                    f"Embedding: index {bad} is out of range for {self.input_size} embeddings "
                    f"(valid: 0..{self.input_size - 1}; indices of shape {tuple(idx.shape)})"
                )
        return dispatch("embedding", self.weight, idx)
