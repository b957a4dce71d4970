"""Indexing: ``x[idx]``, ``x[idx] = v`` and row gathers; gradients scatter back (repeated indices add up)."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, TensorIndexError, TensorTypeError, tensor_class

__all__ = ["GetItem", "SetItem", "Gather"]


class GetItem(Function):
    """``x[idx]``; the backward scatters the gradient into zeros of ``x``'s shape."""

    def forward(self, x: Any, idx: Any) -> Any:
        backend.check_index(x.shape, idx)
        self.shape, self.dtype, self.idx = x.shape, x.dtype, idx
        return x[idx]

    def backward(self, grad: Any) -> Any:
        out = _lib.zeros(self.shape, dtype=self.dtype)
        idx, g = self.idx, grad.data
        if isinstance(idx, tuple) and any(i is None for i in idx):
            # New axes have size 1: drop them from the index and the gradient.
            idx = tuple(i for i in idx if i is not None)
            g = g.reshape(out[idx].shape)
        elif idx is None:
            idx, g = (), g.reshape(self.shape)
        return backend.add_at(out, idx, g)


class SetItem(Function):
    """The value of ``x`` after ``x[idx] = value``, as a new array; the gradient of ``x`` is zero at ``idx``.

    ``value``'s gradient is the region's (summed where ``value`` was broadcast). ``Tensor.__setitem__``
    writes the result into the tensor's own memory.
    """

    def forward(self, x: Any, value: Any, idx: Any) -> Any:
        backend.check_index(x.shape, idx)
        self.idx, self.value_shape = idx, value.shape
        out = backend.copy(x)
        out[idx] = value
        return out

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g = grad.data
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = backend.copy(g)
            gx[self.idx] = 0
        if self.needs_input_grad[1]:
            gv = Function.unbroadcast(g[self.idx], self.value_shape)
        return gx, gv


class Gather(Function):
    """Rows of ``x`` at integer ``index`` along axis 0 (any ``x`` rank, any index shape).

    The backward adds the gradient into the gathered rows; repeated indices accumulate.
    """

    def forward(self, x: Any, index: Any) -> Any:
        if isinstance(index, tensor_class()):
            index = index.data
        if isinstance(index, (list, tuple)):
            index = backend.asarray(np.asarray(index, dtype=np.int64))
        elif not isinstance(index, (int, np.integer)):
            index = backend.asarray(index)
            if backend.is_floating(index.dtype):
                raise TensorTypeError(f"gather: index must be integers, got dtype {index.dtype}")
        n = x.shape[0]
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise TensorIndexError(f"gather: index {index} is out of range for axis 0 of size {n}")
        elif index.size:
            lo, hi = int(index.min().item()), int(index.max().item())
            if lo < -n or hi >= n:
                raise TensorIndexError(
                    f"gather: indices in [{lo}, {hi}] are out of range for axis 0 of size {n} (shape {tuple(x.shape)})"
                )
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    def backward(self, grad: Any) -> Tuple[Any, None]:
        out = _lib.zeros(self.shape, dtype=self.dtype)
        return backend.add_at(out, self.index, grad.data), None
