"""Mixed precision: matrix products in float16 or bfloat16, the sensitive arithmetic in float32.

:class:`autocast` is the policy, set for a block of code (a ``with``
statement or a decorator) or, through ``autograd.nn.Module.set_precision``,
once for a model or one of its blocks (PyTorch's ``torch.autocast`` and MLX's
``set_dtype`` are the habits it follows). Inside it, on this thread:

* **low-precision ops** run in the policy's dtype: matrix products (``@``,
  and so ``Linear``), convolutions and attention; their floating inputs are
  cast to it first (a cast is a differentiable op: its gradient is cast back,
  so a float32 parameter still gets a float32 gradient);
* **float32 ops** do their arithmetic in float32, forward and backward:
  sums and means (and so variances), softmax and log-softmax, layer norm, and
  every loss. A reduction or a loss returns float32; softmax, log-softmax and
  layer norm return their input's dtype, so activations stay small (MLX's
  ``precise`` softmax does the same);
* every other op (additions, GELU, ReLU...) runs in the dtype of its inputs,
  with NumPy's promotion rules when they differ.

Parameters may also be stored in the low dtype (``set_precision`` does this
by default); ``autograd.optim`` then keeps float32 master copies, so updates
smaller than bfloat16's resolution are not lost. float16 also needs loss
scaling (``autograd.optim.LossScaler``); bfloat16 has float32's range and does
not.

Which dtypes exist depends on the backend: MLX has both; NumPy has float16,
and bfloat16 through ``ml_dtypes`` (the ``autograd-core[bfloat16]`` extra);
CuPy has float16 only. Asking for one the backend lacks raises ``TypeError``
naming the backend and the dtype. On NumPy, half-precision matrix products
are computed in float32 and rounded (NumPy has no half-precision BLAS), so
there the policy saves memory, not time.
"""

from __future__ import annotations

import threading
from functools import wraps
from typing import Any, Callable, Optional, Tuple

from autograd import backend
from autograd.engine import tensor_class
from autograd.ops.arithmetic import Cast

__all__ = ["autocast", "autocast_dtype", "LOW_PRECISION_DTYPES"]

#: The dtypes a policy can compute in.
LOW_PRECISION_DTYPES = ("float16", "bfloat16")


class _State(threading.local):
    dtype: Any = None  # the backend dtype of the active policy, or None


_state = _State()


def autocast_dtype() -> Any:
    """The low-precision dtype of the policy active on this thread, or None.

    Examples:
        >>> autocast_dtype() is None
        True
        >>> with autocast("float16"):
        ...     backend.dtype_name(autocast_dtype())
        'float16'
    """
    return _state.dtype


class autocast:
    """Run the ops inside in mixed precision (see the module docstring); nests, the innermost wins.

    Args:
        dtype: ``"bfloat16"`` (default) or ``"float16"``; ``"float32"``,
            ``"float64"`` or None turn the policy off inside (for a block that
            must stay in full precision).
        enabled: False makes it a no-op (handy for a command-line switch).

    Raises:
        TypeError: the backend has no such dtype (the message names both).

    Examples:
        >>> from autograd.tensor import Tensor
        >>> from autograd import functional as F
        >>> x, w = Tensor(xp.ones((4, 3), dtype=xp.float32)), Tensor(xp.ones((3, 5), dtype=xp.float32))
        >>> with autocast("float16"):
        ...     logits = x @ w                        # the matmul in float16
        ...     loss = F.cross_entropy(logits, [0, 1, 2, 3])  # the loss in float32
        >>> str(logits.dtype), str(loss.dtype)
        ('float16', 'float32')
        >>> loss.backward()
        >>> str(w.grad.dtype)                         # gradients in the parameter's dtype
        'float32'
    """

    def __init__(self, dtype: Optional[str] = "bfloat16", enabled: bool = True) -> None:
        name = None if dtype is None else (dtype if isinstance(dtype, str) else backend.dtype_name(dtype))
        if name is not None and name not in LOW_PRECISION_DTYPES + ("float32", "float64"):
            raise ValueError(
                f"autocast: dtype must be one of {LOW_PRECISION_DTYPES} (or float32 to turn it off), got {name!r}"
            )
        self.name = name if enabled and name in LOW_PRECISION_DTYPES else None
        self.dtype = backend.dtype(self.name) if self.name else None  # raises for a dtype the backend lacks

    def __enter__(self) -> "autocast":
        self._prev = _state.dtype
        _state.dtype = self.dtype
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.dtype = self._prev

    def __call__(self, func: Callable) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.name):
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return f"autocast({self.name!r})"


def to_low(*tensors: Any) -> Tuple[Any, ...]:
    """Under a policy, its floating inputs cast to the low dtype (for matrix products, convolutions, attention)."""
    dt = _state.dtype
    if dt is None:
        return tensors
    return tuple(_cast(t, dt, lambda d: d != dt) for t in tensors)


def _cast(t: Any, dt: Any, when: Callable[[Any], bool]) -> Any:
    if isinstance(t, tensor_class()) and backend.is_floating(t.dtype) and when(t.dtype):
        return Cast.apply(t, dtype=dt)
    return t


def to_float32(*tensors: Any) -> Tuple[Any, ...]:
    """Under a policy, its low-precision floating inputs cast to float32 (for reductions and losses)."""
    if _state.dtype is None:
        return tensors
    f32 = backend.dtype("float32")
    return tuple(_cast(t, f32, backend.is_low_precision) for t in tensors)
