"""Reductions: sum, mean and max over any axes; their backward broadcasts the gradient back."""

from __future__ import annotations

import math
from typing import Any, Tuple, Union

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError
from autograd.ops.common import normalize_axes, reduced_shape

__all__ = ["Sum", "Mean", "Max"]


class Sum(Function):
    r"""Sum :math:`y = \sum_{i \in A} x_i`; the gradient is broadcast back to ``x``'s shape."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        self.shape = x.shape
        self.axes = normalize_axes(axis, x.ndim, "sum")
        xf = backend.widen(x)
        out = _lib.sum(xf, axis=self.axes, keepdims=keepdims)
        out = out if xf is x else out.astype(x.dtype)
        if keepdims and self.axes is None:
            out = out.reshape((1,))
        return out

    def backward(self, grad: Any) -> Any:
        g = grad.data.reshape(reduced_shape(self.shape, self.axes))
        return _lib.broadcast_to(g, self.shape)


class Mean(Function):
    r"""Mean :math:`y = \frac{1}{N}\sum_{i \in A} x_i`; the gradient is ``grad / N`` everywhere."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        self.shape = x.shape
        self.axes = normalize_axes(axis, x.ndim, "mean")
        n = x.size if self.axes is None else math.prod(x.shape[a] for a in self.axes)
        self.n = max(n, 1)
        xf = backend.widen(x)
        out = _lib.mean(xf, axis=self.axes, keepdims=keepdims)
        out = out if xf is x else out.astype(x.dtype)
        if keepdims and self.axes is None:
            out = out.reshape((1,))
        return out

    def backward(self, grad: Any) -> Any:
        g = grad.data.reshape(reduced_shape(self.shape, self.axes)) * (1.0 / self.n)
        return _lib.broadcast_to(g, self.shape)


class Max(Function):
    r"""Maximum over axes; the gradient goes to the maxima, split equally among ties."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        if x.size == 0:
            raise ShapeError(f"max: cannot reduce an empty tensor of shape {tuple(x.shape)}")
        self.axes = normalize_axes(axis, x.ndim, "max")
        self.x = x
        self.out_kd = _lib.max(x, axis=self.axes, keepdims=True)
        if keepdims:
            return self.out_kd.reshape((1,)) if self.axes is None else self.out_kd
        if self.axes is None:
            return self.out_kd.reshape(())
        return self.out_kd.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, grad: Any) -> Any:
        mask = (self.x == self.out_kd).astype(grad.data.dtype)
        count = _lib.sum(mask, axis=self.axes, keepdims=True)
        g = grad.data.reshape(self.out_kd.shape)
        return mask * (g / count)
