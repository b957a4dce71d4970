"""Linear and Embedding layers."""

from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.init import xavier_uniform
from autograd.nn._checks import as_input, check, options
from autograd.nn.module import Module
from autograd.ops.embedding import embedding
from autograd.precision import to_low
from autograd.tensor import Function, ShapeError, Tensor

__all__ = ["Linear", "LinearFunction", "Embedding"]


class Linear(Module):
    r"""Fully connected layer :math:`y = xW + b`.

    Shapes: weight (input_size, output_size), bias (output_size,); input
    (..., input_size) -> output (..., output_size). The weight is Xavier-uniform,
    the bias zero.

    Args:
        input_size: Features of each input.
        output_size: Features of each output.
        **kwargs: ``bias`` (default True): False for no bias. Any other keyword raises ``TypeError``.

    Examples:
        >>> Linear(4, 2)(Tensor(xp.random.randn(3, 4))).shape
        (3, 2)
    """

    def __init__(self, input_size: int, output_size: int, **kwargs: Any) -> None:
        opts = options("Linear", kwargs, bias=True)
        super().__init__()
        self.input_size, self.output_size = int(input_size), int(output_size)
        self.weight = xavier_uniform(Tensor(backend.asarray(np.zeros((input_size, output_size), np.float32))))
        if opts["bias"]:
            self.bias = Tensor(backend.asarray(np.zeros(output_size, np.float32)))
        else:
            self.bias = None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(..., input_size) -> (..., output_size)."""
        x = as_input(x)
        check(x.ndim >= 1 and x.shape[-1] == self.input_size, self, f"(..., {self.input_size})", x)
        if self.bias is None:
            return x @ self.weight
        # Under autocast all three join the product's low dtype, as in PyTorch's linear.
        return LinearFunction.apply(*to_low(x, self.weight, self.bias))


class LinearFunction(Function):
    r""":math:`y = xW + b` as one node: the bias is added into the product's own fresh output.

    The same arithmetic as ``x @ W + b`` (one product, then one addition), without
    the temporary of a separate addition; on NumPy a float16 or bfloat16 product and its
    bias are summed in float32 and rounded once (``backend.matmul_add``). ``x`` (..., K), ``weight`` (K, N),
    ``bias`` (N,). Backward: :math:`dx = g W^T`, :math:`dW = x^T g` (over every
    leading axis at once), :math:`db = \sum g` over the leading axes.
    """

    def forward(self, x: Any, weight: Any, bias: Any) -> Any:
        if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0] or bias.shape != weight.shape[1:]:
            raise ShapeError(
                f"linear: x {tuple(x.shape)}, weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not fit "
                "(..., K), (K, N) and (N,)"
            )
        self.x, self.weight = x, weight
        y = backend.matmul_add(x.reshape(-1, x.shape[-1]), weight, bias)
        return y.reshape(tuple(x.shape[:-1]) + (weight.shape[1],))

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        g, x, w = grad.data, self.x, self.weight
        g2 = g.reshape(-1, g.shape[-1])
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dx = backend.matmul(g2, w.T).reshape(x.shape)
        if self.needs_input_grad[1]:
            dw = backend.matmul(x.reshape(-1, x.shape[-1]).T, g2)
        if self.needs_input_grad[2]:
            db = Function.unbroadcast(g, (w.shape[1],))
        return dx, dw, db


class Embedding(Module):
    """Lookup table: integer indices (any shape) -> vectors of ``embedding_size``.

    Shapes: weight (input_size, embedding_size), drawn from N(0, 1) as in
    PyTorch; input (batch, seq) of indices in ``[0, input_size)`` -> output
    (batch, seq, embedding_size). Repeated indices accumulate gradients.
    Indices outside ``[0, input_size)`` (negative ones included, as in
    PyTorch) raise ``IndexError`` on every backend. Runs the ``embedding``
    kernel op (its backward, a scatter-add, is the hot part).

    Args:
        input_size: Number of rows of the table (the vocabulary size).
        embedding_size: Length of each vector.

    Examples:
        >>> Embedding(100, 16)(Tensor(xp.array([[1, 5, 20], [2, 10, 30]]))).shape
        (2, 3, 16)
    """

    def __init__(self, input_size: int, embedding_size: int) -> None:
        super().__init__()
        self.input_size, self.embedding_size = int(input_size), int(embedding_size)
        self.weight = Tensor(backend.normal((input_size, embedding_size)))

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """Indices of any shape -> ``(*indices.shape, embedding_size)`` (:func:`autograd.functional.embedding`)."""
        return embedding(x, self.weight)
