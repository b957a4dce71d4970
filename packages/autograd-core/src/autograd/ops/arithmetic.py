"""Element-wise arithmetic, powers, the matrix product and casts: each a Function whose backward is the math.

Binary ops broadcast as NumPy does; their backward sums each gradient back
to its input's shape (:meth:`~autograd.engine.Function.unbroadcast`).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError

__all__ = [
    "Add",
    "IAdd",
    "Sub",
    "Neg",
    "Mul",
    "Div",
    "Pow",
    "Matmul",
    "Cast",
    "Sqrt",
    "Exp",
    "Log",
    "Abs",
    "Where",
    "Clip",
    "Maximum",
]


class Add(Function):
    """Element-wise ``x + y``; both inputs receive the incoming gradient."""

    def forward(self, x: Any, y: Any) -> Any:
        self.shapes = (x.shape, y.shape)
        return x + y

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g, self.shapes[0]) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(g, self.shapes[1]) if self.needs_input_grad[1] else None
        return gx, gy


class IAdd(Add):
    """``x += y`` as a graph node (the result is a new array; see ``Tensor.__iadd__``)."""


class Sub(Function):
    """Element-wise ``x - y``."""

    def forward(self, x: Any, y: Any) -> Any:
        self.shapes = (x.shape, y.shape)
        return x - y

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g, self.shapes[0]) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(-g, self.shapes[1]) if self.needs_input_grad[1] else None
        return gx, gy


class Neg(Function):
    """Element-wise ``-x``."""

    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, grad: Any) -> Any:
        return -grad.data


class Mul(Function):
    r"""Element-wise ``x * y``: :math:`\partial z/\partial x = y`, :math:`\partial z/\partial y = x`."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return x * y

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g * self.y, self.x.shape) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(g * self.x, self.y.shape) if self.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    r"""Element-wise ``x / y``: :math:`\partial z/\partial x = 1/y`, :math:`\partial z/\partial y = -x/y^2`."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return x / y

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g / self.y, self.x.shape) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(-g * self.x / (self.y * self.y), self.y.shape) if self.needs_input_grad[1] else None
        return gx, gy


class Pow(Function):
    r"""Element-wise :math:`z = x^y`.

    :math:`\partial z/\partial x = y x^{y-1}` and :math:`\partial z/\partial y = x^y \ln x`
    (the latter only computed when ``y`` requires a gradient).
    """

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        self.out = x**y
        return self.out

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g, x, y = grad.data, self.x, self.y
        gx = gy = None
        if self.needs_input_grad[0]:
            if y.ndim == 0 and float(y.item()) == 2.0:
                gx = g * (2 * x)
            else:
                # Where y == 0 the gradient is 0 * x**-1: PyTorch gives 0 there, also at x = 0 (not 0 * inf = NaN).
                base = _lib.where(y == 0, 1, x).astype(x.dtype)
                gx = Function.unbroadcast(g * y * base ** (y - 1), x.shape)
        if self.needs_input_grad[1]:
            # d(x**y)/dy = x**y ln x, taken as 0 where x == 0 and y >= 0 (where x**y is 0 or 1), as in PyTorch.
            at_zero = (x == 0) & (y >= 0)
            log_x = _lib.log(_lib.where(at_zero, 1.0, x).astype(self.out.dtype))
            gy = Function.unbroadcast(g * _lib.where(at_zero, 0.0, self.out * log_x).astype(g.dtype), y.shape)
        return gx, gy


class Matmul(Function):
    r"""Matrix product with ``matmul`` broadcasting.

    :math:`\text{grad}_x = \text{grad}\, y^T` and :math:`\text{grad}_y = x^T \text{grad}`, with 1-D
    operands promoted as ``matmul`` does and batch dimensions summed out.
    """

    def forward(self, x: Any, y: Any) -> Any:
        if x.ndim == 0 or y.ndim == 0:
            raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes {x.shape} and {y.shape}")
        k1 = x.shape[-1]
        k2 = y.shape[-2] if y.ndim > 1 else y.shape[0]
        if k1 != k2:
            raise ShapeError(
                f"matmul: shapes {tuple(x.shape)} and {tuple(y.shape)} are not aligned "
                f"({k1} (last dim of the first) != {k2} (contracted dim of the second))"
            )
        self.x, self.y = x, y
        if y.ndim == 2 and x.ndim > 2:
            # (B..., M, K) @ (K, N) as one (B*M, K) @ (K, N) GEMM instead of B small ones.
            return backend.matmul(x.reshape(-1, k1), y).reshape(tuple(x.shape[:-1]) + (y.shape[1],))
        return backend.matmul(x, y)

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g, x, y = grad.data, self.x, self.y
        if x.ndim == 1 and y.ndim == 1:
            return (g * y if self.needs_input_grad[0] else None, g * x if self.needs_input_grad[1] else None)
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        if x.ndim == 1:
            g = _lib.expand_dims(g, -2)
        if y.ndim == 1:
            g = _lib.expand_dims(g, -1)
        gx = gy = None
        mm = backend.matmul
        if self.needs_input_grad[0]:
            if y2.ndim == 2 and x2.ndim > 2:
                gx = mm(g.reshape(-1, g.shape[-1]), y2.T).reshape(x.shape)
            else:
                gx = mm(g, _lib.swapaxes(y2, -1, -2))
                gx = Function.unbroadcast(gx, x2.shape).reshape(x.shape)
        if self.needs_input_grad[1]:
            if y2.ndim == 2 and x2.ndim > 2:
                # (B..., M, K)^T (B..., M, N) summed over the batch is one big GEMM.
                gy = mm(x2.reshape(-1, x2.shape[-1]).T, g.reshape(-1, g.shape[-1]))
            else:
                gy = mm(_lib.swapaxes(x2, -1, -2), g)
                gy = Function.unbroadcast(gy, y2.shape)
            gy = gy.reshape(y.shape)
        return gx, gy


class Cast(Function):
    """Cast to another dtype; the gradient is cast back to the input dtype.

    The gradient arrives as the walk summed it, before rounding to the output's dtype: a float32 parameter
    cast to bfloat16 gets the float32 sum of its gradients (``accepts_wide_grad``).
    """

    keeps_input_precision = False
    accepts_wide_grad = True

    def forward(self, x: Any, dtype: Any) -> Any:
        self.in_dtype = x.dtype
        return x.astype(backend.dtype(dtype))

    def backward(self, grad: Any) -> Any:
        return grad.data.astype(self.in_dtype)


class Sqrt(Function):
    r"""Element-wise :math:`\sqrt{x}`, with :math:`d\sqrt{x}/dx = 1/(2\sqrt{x})`."""

    def forward(self, x: Any) -> Any:
        self.out = _lib.sqrt(x)
        return self.out

    def backward(self, grad: Any) -> Any:
        return grad.data * 0.5 / self.out


class Exp(Function):
    r"""Element-wise :math:`e^x`, its own derivative."""

    def forward(self, x: Any) -> Any:
        self.out = _lib.exp(x)
        return self.out

    def backward(self, grad: Any) -> Any:
        return grad.data * self.out


class Log(Function):
    r"""Element-wise :math:`\ln x`, with derivative :math:`1/x`."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return _lib.log(x)

    def backward(self, grad: Any) -> Any:
        return grad.data / self.x


class Abs(Function):
    r"""Element-wise :math:`|x|`, with derivative :math:`\operatorname{sign}(x)` (0 at 0)."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return _lib.abs(x)

    def backward(self, grad: Any) -> Any:
        return grad.data * _lib.sign(self.x)


class Where(Function):
    """``x`` where ``condition`` else ``y``; each branch gets the gradient where it was chosen."""

    def forward(self, condition: Any, x: Any, y: Any) -> Any:
        bool_ = backend.dtype("bool")
        self.cond = condition if condition.dtype == bool_ else condition.astype(bool_)
        self.shapes = (x.shape, y.shape)
        return _lib.where(self.cond, x, y)

    def backward(self, grad: Any) -> Tuple[None, Any, Any]:
        g = grad.data
        zero = _lib.zeros_like(g)
        gx = Function.unbroadcast(_lib.where(self.cond, g, zero), self.shapes[0]) if self.needs_input_grad[1] else None
        gy = Function.unbroadcast(_lib.where(self.cond, zero, g), self.shapes[1]) if self.needs_input_grad[2] else None
        return None, gx, gy


class Clip(Function):
    """Clamp to ``[lo, hi]`` (either may be None); gradient 1 inside, 0 where clipped."""

    def forward(self, x: Any, lo: Optional[float] = None, hi: Optional[float] = None) -> Any:
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of min and max")
        self.x, self.lo, self.hi = x, lo, hi
        return _lib.clip(x, lo, hi)

    def backward(self, grad: Any) -> Any:
        keep, x = None, self.x
        if self.lo is not None:
            keep = x >= self.lo
        if self.hi is not None:
            keep = (x <= self.hi) if keep is None else keep & (x <= self.hi)
        return grad.data * keep


class Maximum(Function):
    r"""Element-wise maximum; where ``x == y`` each side receives half the gradient."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return _lib.maximum(x, y)

    def backward(self, grad: Any) -> Tuple[Any, Any]:
        g, x, y = grad.data, self.x, self.y
        dt = g.dtype
        wx = (x > y).astype(dt) + (x == y).astype(dt) * 0.5
        gx = Function.unbroadcast(g * wx, x.shape) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(g * (1 - wx), y.shape) if self.needs_input_grad[1] else None
        return gx, gy
