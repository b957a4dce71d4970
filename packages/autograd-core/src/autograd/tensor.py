"""The Tensor: an array of the active backend that records the ops applied to it, and their gradients.

A :class:`Tensor` wraps a backend array (see :mod:`autograd.backend`) and
remembers the :class:`~autograd.engine.Function` that created it; its methods
and operators run the ops of :mod:`autograd.ops`, and :meth:`Tensor.backward`
runs the engine's graph walk (:mod:`autograd.engine`).

This module is also where the API reference documents the engine and the
basic ops, so it re-exports them: ``autograd.tensor.Function``,
``autograd.tensor.no_grad``, ``autograd.tensor.Add``... are the objects of
:mod:`autograd.engine` and :mod:`autograd.ops.arithmetic` (and its siblings).

Conventions chosen where the API reference is silent:

* Python scalars and sequences become float32 tensors; backend and NumPy
  arrays keep their dtype. Only floating tensors take gradients.
* ``x[idx] = v`` and ``x += y`` are functional updates: ``x`` (the Python
  object) now holds the new value and is part of the graph, while the old
  array is left untouched so earlier graph nodes stay correct.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import (
    AutogradError,
    Function,
    RemovableHandle,
    ShapeError,
    TensorIndexError,
    TensorTypeError,
    checkpoint,
    enable_grad,
    is_grad_enabled,
    no_grad,
    rewrap,
    run_backward,
    set_tensor_class,
    write_into,
)
from autograd.ops.arithmetic import (
    Abs,
    Add,
    Cast,
    Clip,
    Div,
    Exp,
    IAdd,
    Log,
    Matmul,
    Maximum,
    Mul,
    Neg,
    Pow,
    Sqrt,
    Sub,
    Where,
)
from autograd.ops.common import flatten_shape, normalize_axes, normalize_axis
from autograd.ops.index import Gather, GetItem, SetItem
from autograd.ops.reduce import Max, Mean, Sum
from autograd.ops.shape import Cat, Expand, Pad, Permute, Reshape, Roll, Stack, StridedWindows, Transpose, View
from autograd.precision import to_float32, to_low

__all__ = [
    "is_grad_enabled",
    "no_grad",
    "enable_grad",
    "Function",
    "Tensor",
    "RemovableHandle",
    "checkpoint",
    "AutogradError",
    "ShapeError",
    "TensorIndexError",
    "TensorTypeError",
    "Add",
    "Sub",
    "Neg",
    "Mul",
    "Div",
    "Pow",
    "Matmul",
    "IAdd",
    "GetItem",
    "SetItem",
    "Cast",
    "Sqrt",
    "Exp",
    "Log",
    "Abs",
    "Where",
    "Clip",
    "Sum",
    "Max",
    "Maximum",
    "Mean",
    "Gather",
    "View",
    "Expand",
    "Reshape",
    "Transpose",
    "Pad",
    "Cat",
    "Permute",
    "Stack",
    "StridedWindows",
    "Roll",
]

ArrayLike = Union[Any, Sequence[Any], int, float, bool]


def _refuse_non_numeric(data: Any, where: str) -> None:
    """Strings and objects are not tensor data (NumPy would hold them and ``+ 1`` would concatenate)."""
    if isinstance(data, (np.ndarray, np.generic)):
        numeric = data.dtype.kind in "biufc" or data.dtype.name == "bfloat16"  # ml_dtypes' bfloat16 is kind "V"
    elif backend.is_array(data):
        numeric = backend.is_numeric(data.dtype)
    else:
        return
    if not numeric:
        raise TensorTypeError(
            f"{where}: data of dtype {data.dtype} is not numeric; tensors hold bool, integer or floating numbers "
            "(convert strings or objects first, e.g. with .astype(float))"
        )


def _is_python_data(data: Any) -> bool:
    return isinstance(data, (int, float, bool, list, tuple))


class Tensor:
    """A Tensor is the core data structure of this autograd engine.

    It holds a backend array, an optional reference to the Function that
    created it, and gradient information.

    Args:
        data: Python scalars/sequences are materialized as float32; explicit
            backend arrays (and NumPy arrays) keep their dtype.
        creator: The Function that created this tensor (None for a leaf).
        requires_grad: Whether gradients are computed for this tensor. Only
            honoured for floating dtypes. Independent of ``no_grad()``.

    Examples:
        >>> x = Tensor([1, 2, 3])   # float32 [1., 2., 3.]
    """

    _grad: Optional["Tensor"]
    _version = 0
    _prev: Optional["Tensor"] = None
    _post_accumulate_grad_hooks: Optional[dict] = None

    def __init__(self, data: ArrayLike, creator: Optional[Function] = None, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data._data
        elif not backend.is_array(data):
            _refuse_non_numeric(data, "Tensor")
            if _is_python_data(data):
                try:
                    data = backend.asarray(data, "float32")
                except (ValueError, TypeError) as exc:
                    raise TensorTypeError(f"Tensor: cannot build a float32 array from {data!r}: {exc}") from exc
            else:
                try:
                    data = backend.asarray(data)
                except (ValueError, TypeError) as exc:
                    raise TensorTypeError(
                        f"Tensor: cannot convert {type(data).__name__} to a {backend.BACKEND} array: {exc}"
                    ) from exc
        _refuse_non_numeric(data, "Tensor")
        self._data = data
        self.creator = creator
        self.requires_grad = bool(requires_grad) and backend.is_floating(data.dtype)
        self._grad = None

    @classmethod
    def _make(cls, data: Any, creator: Optional[Function], requires_grad: bool) -> "Tensor":
        # Hot path for op outputs: skips the conversions of __init__.
        if not backend.is_array(data):
            data = backend.asarray(data)
        t = cls.__new__(cls)
        t._data = data
        t.creator = creator
        t.requires_grad = requires_grad
        t._grad = None
        return t

    # -- data and grad --

    @property
    def data(self) -> Any:
        """The underlying backend array."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        if not isinstance(value, Tensor):
            _refuse_non_numeric(value, "Tensor.data")
        self._data = value._data if isinstance(value, Tensor) else backend.asarray(value)

    @property
    def grad(self) -> Optional["Tensor"]:
        """The gradient of this tensor (a Tensor), or None."""
        g = self._grad
        if g is None or isinstance(g, Tensor):
            return g
        return Tensor._make(g, None, False)

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is None:
            self._grad = None
            return
        arr = value._data if isinstance(value, Tensor) else backend.asarray(value)
        if tuple(arr.shape) != self.shape:
            raise ShapeError(f"grad of shape {tuple(arr.shape)} does not match tensor shape {self.shape}")
        if arr.dtype != self._data.dtype and backend.is_floating(self._data.dtype):
            arr = arr.astype(self._data.dtype)  # gradients have their tensor's dtype (``p.grad = 0.7`` is float64)
        self._grad = Tensor._make(arr, None, False)

    def _accumulate_grad(self, grad: Any) -> None:
        """Add ``grad`` (an array) to this tensor's gradient, in its dtype."""
        if grad.dtype != self._data.dtype:
            grad = grad.astype(self._data.dtype)
        if self._grad is None:
            self._grad = Tensor._make(grad, None, False)
        else:
            self._grad = Tensor._make(self._grad._data + grad, None, False)

    @property
    def shape(self) -> Tuple[int, ...]:
        """The shape of the underlying array."""
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._data.ndim

    @property
    def dtype(self) -> Any:
        """The dtype of the underlying array."""
        return self._data.dtype

    @property
    def size(self) -> int:
        """The number of elements."""
        return int(self._data.size)

    @property
    def T(self) -> "Tensor":
        """Transpose of a 2-D tensor. Raises ValueError for other ranks."""
        if self.ndim != 2:
            raise ShapeError(f"T needs a 2-D tensor, got shape {self.shape}; use transpose(dim0, dim1)")
        return Transpose.apply(self, dim0=0, dim1=1)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TensorTypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def item(self) -> Any:
        """This tensor as a host Python scalar."""
        if self.size != 1:
            raise ShapeError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.to_numpy(self._data).reshape(()).item()

    def numpy(self) -> np.ndarray:
        """This tensor as a host NumPy array."""
        return backend.to_numpy(self._data)

    def detach(self) -> "Tensor":
        """A new leaf sharing this data that does not track gradients."""
        return Tensor._make(self._data, None, False)

    def forward(self, data: Any) -> None:
        """Placeholder kept for API compatibility; does nothing."""
        return None

    def __repr__(self) -> str:
        data = backend.to_numpy(self._data)
        grad = None if self._grad is None else backend.to_numpy(self._grad._data)
        return f"Tensor(data={data}, grad={grad})"

    def __hash__(self) -> int:
        return id(self)

    # -- hooks --

    def register_post_accumulate_grad_hook(self, hook: Callable[["Tensor"], None]) -> "RemovableHandle":
        """Call ``hook(tensor)`` each time ``backward()`` has finished accumulating this leaf's gradient.

        Within one ``backward()`` call a leaf receives every contribution
        before its hooks run (contributions are summed first, as the graph is
        walked in reverse topological order), so ``tensor.grad`` is final for
        that call when the hook sees it. Hooks run in registration order; their
        return value is ignored. This is how data-parallel training starts
        reducing a gradient while the rest of the backward is still running
        (PyTorch's ``register_post_accumulate_grad_hook``).

        Returns a handle whose ``remove()`` unregisters the hook.

        Raises:
            RuntimeError: the tensor is not a leaf that requires grad (only
                leaves accumulate gradients).
        """
        if self.creator is not None or not self.requires_grad:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only leaf tensors that require grad accumulate gradients "
                f"(this tensor of shape {self.shape} is "
                + ("the output of " + type(self.creator).__name__ if self.creator is not None else "not trainable")
                + ")"
            )
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
        return RemovableHandle(self._post_accumulate_grad_hooks, hook)

    # -- backward --

    def backward(self, grad: Optional[Union["Tensor", ArrayLike]] = None) -> None:
        """Backpropagate from this tensor through the graph.

        Args:
            grad: dL/d(self), of this tensor's shape. When None the gradient is
                taken as ones of this tensor's shape (as the API reference
                states), so ``y.backward()`` on a non-scalar ``y`` backpropagates
                ``y.sum()``; PyTorch refuses that case instead.

        The graph is walked iteratively (no recursion limit), in reverse
        topological order, so a tensor used many times receives the sum of
        all its gradient contributions before passing it on.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad "
                "(it was built from constants, integer data, or inside no_grad())"
            )
        if grad is None:
            g = _lib.ones_like(self._data)
        else:
            g = grad._data if isinstance(grad, Tensor) else backend.asarray(grad)
            if tuple(g.shape) != self.shape:
                raise ShapeError(f"backward(): grad of shape {tuple(g.shape)} does not match tensor shape {self.shape}")
        run_backward(self, g)

    # -- operators --

    def _wrap_scalar_like_self(self, other: Any) -> "Tensor":
        """Wrap a non-Tensor operand as a constant, in this tensor's dtype when it is floating."""
        if isinstance(other, Tensor):
            return other
        if backend.is_array(other):
            return Tensor._make(other, None, False)
        if isinstance(other, (int, float, bool)) and (
            backend.is_floating(self._data.dtype) or isinstance(other, (int, bool))
        ):
            # Constants repeat (``x * 0.5`` in a loop): reuse the 0-d array. They are never trained or updated.
            key = (type(other), other, self._data.dtype)
            try:
                return _SCALARS[key]
            except (KeyError, TypeError):
                pass
            const = Tensor._make(backend.asarray(other, self._data.dtype), None, False)
            if len(_SCALARS) >= 1024:
                _SCALARS.clear()
            try:
                _SCALARS[key] = const
            except TypeError:
                pass
            return const
        return Tensor(other, requires_grad=False)

    def __add__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """Element-wise addition, with broadcasting."""
        return Add.apply(self, self._wrap_scalar_like_self(other))

    def __radd__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Add.apply(self._wrap_scalar_like_self(other), self)

    def __sub__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Sub.apply(self, self._wrap_scalar_like_self(other))

    def __rsub__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Sub.apply(self._wrap_scalar_like_self(other), self)

    def __mul__(self, other: Union["Tensor", float, int]) -> "Tensor":
        r"""Element-wise multiplication :math:`z = x \cdot y`."""
        return Mul.apply(self, self._wrap_scalar_like_self(other))

    def __rmul__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Mul.apply(self._wrap_scalar_like_self(other), self)

    def __truediv__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Div.apply(self, self._wrap_scalar_like_self(other))

    def __rtruediv__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Div.apply(self._wrap_scalar_like_self(other), self)

    def __neg__(self) -> "Tensor":
        return Neg.apply(self)

    def __matmul__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """Matrix product following ``matmul`` broadcasting rules (in the low dtype under :class:`autocast`)."""
        return Matmul.apply(*to_low(self, self._wrap_scalar_like_self(other)))

    def __rmatmul__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Matmul.apply(*to_low(self._wrap_scalar_like_self(other), self))

    def __pow__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """Element-wise power :math:`z = x^y`."""
        return Pow.apply(self, self._wrap_scalar_like_self(other))

    def __rpow__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return Pow.apply(self._wrap_scalar_like_self(other), self)

    def __iadd__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """``self += other``: this object takes the new value (see :meth:`_update_in_place`)."""
        return self._update_in_place(IAdd, "+=", self._wrap_scalar_like_self(other))

    def __isub__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """``self -= other``: this object takes the new value (see :meth:`_update_in_place`)."""
        return self._update_in_place(Sub, "-=", self._wrap_scalar_like_self(other))

    def __imul__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """``self *= other``: this object takes the new value (see :meth:`_update_in_place`)."""
        return self._update_in_place(Mul, "*=", self._wrap_scalar_like_self(other))

    def _update_in_place(self, op: type, symbol: str, other: "Tensor", **kwargs: Any) -> "Tensor":
        """Give this tensor the value of ``op(self, other)``: written into its memory, and recorded in the graph.

        * The new value goes into the memory this tensor shares with its
          aliases (views, ``detach()``, the array of ``.data``) on NumPy and
          CuPy, so they all see it, as in PyTorch. MLX arrays are immutable:
          there the tensor gets a new array, and no alias sees the update.
          The dtype stays the tensor's (a float result is refused for an
          integer tensor) and so does the shape.
        * Under ``no_grad``, or when neither side requires grad, no graph node
          is made: the tensor keeps its place in graphs recorded earlier (a
          parameter stays the leaf those graphs send gradients to). This is how
          hand-written SGD updates parameters.
        * Otherwise (a leaf that requires grad included) the op is recorded: the
          tensor now holds the op's output, and its old value becomes a
          stand-in node that graphs recorded earlier still send their gradients
          to. For ``x[i] = v`` the assigned region's gradient goes to ``v``,
          and the rest to the old value; ``x.grad`` is then the gradient with
          respect to the new value (as for any op's output).
        * Nodes recorded earlier that saved this memory for their backward see
          the values they ran with (see ``autograd.engine.write_into``).

        A write through a view of a tensor that an op computed with gradients
        (``y = f(x); y[0:2][0] = 5`` in grad mode) is refused: it would change
        ``y`` without ``y``'s graph knowing. Write into ``y`` itself.
        """
        record = is_grad_enabled() and (self.requires_grad or other.requires_grad)
        if record:
            self._refuse_view_of_a_graph(symbol)
            old = Tensor._make(self._data, self.creator, self.requires_grad)
            old._version, old._prev = self._version, self._prev
            out = op.apply(old, other, **kwargs)
            # The stand-in keeps only the shape and dtype of its value, so a long run of updates holds no old values
            # (and, from below, the storage it stands for, for the backward of nodes that saved it).
            storage = old._data
            old._data = backend.placeholder(storage.shape, storage.dtype)
            del storage
        else:
            with no_grad():
                out = op.apply(self, other, **kwargs)
        new = out._data
        if tuple(new.shape) != self.shape:
            raise ShapeError(
                f"in-place `{symbol}` on a tensor of shape {self.shape}: the result has shape {tuple(new.shape)} "
                "(an in-place update keeps the shape; write `x = x ...` to get the broadcast result)"
            )
        if new.dtype != self._data.dtype:
            if backend.is_floating(new.dtype) and not backend.is_floating(self._data.dtype):
                raise TensorTypeError(
                    f"in-place `{symbol}` on a {backend.dtype_name(self.dtype)} tensor: the result is "
                    f"{backend.dtype_name(new.dtype)}, which it cannot hold (write `x = x ...` instead)"
                )
            new = new.astype(self._data.dtype)
        creator, requires_grad = out.creator, out.requires_grad
        del out
        if backend.active.mutable:
            write_into(self, new)  # counts who else holds the memory: no local here may
        else:
            self._data = new
        if record:
            # Weakly: a strong reference would count as another holder of the memory at the next write.
            old._written = _weak(backend.storage(self._data)) if backend.active.mutable else None
            self._prev = old
            self._version += 1
            self.creator, self.requires_grad = creator, requires_grad
        return self

    def _refuse_view_of_a_graph(self, symbol: str) -> None:
        """Raise when this tensor is a view (sharing memory) of a tensor an op computed with gradients."""
        fn = self.creator
        if not isinstance(fn, _VIEW_OPS) or not backend.active.mutable or not fn.tensors:
            return
        base = fn.tensors[0]
        if base.creator is None or not base.requires_grad or base._data.size == 0:
            return
        if backend.storage(self._data) is backend.storage(base._data):
            raise RuntimeError(
                f"in-place `{symbol}` on a view (shape {self.shape}) of a tensor of shape {base.shape} computed by "
                f"{type(base.creator).__name__} with gradients: the write would change that tensor without its "
                "graph knowing. Update the tensor itself (y[...] = v), or write into a copy of the view (v * 1.0)"
            )

    def _compare(self, other: Any, op: Callable) -> "Tensor":
        o = other._data if isinstance(other, Tensor) else other
        try:
            res = op(self._data, o)
        except (ValueError, TypeError) as exc:
            raise rewrap(exc, "compare", [self._data, o]) from exc
        return Tensor._make(res, None, False)

    def __lt__(self, other: Union["Tensor", float, int]) -> "Tensor":
        """Element-wise ``<``; a non-differentiable bool tensor."""
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other: Union["Tensor", float, int]) -> "Tensor":
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)

    # -- indexing --

    def __getitem__(self, idx: Any) -> "Tensor":
        """Basic or advanced indexing; gradients scatter back (repeats add up)."""
        return GetItem.apply(self, idx=_index_data(idx))

    def __setitem__(self, idx: Any, value: Union["Tensor", float, int]) -> "Tensor":
        """``self[idx] = value``: this object takes the new value (see :meth:`_update_in_place`).

        An index out of range raises ``IndexError`` first, on every backend, before anything changes.
        """
        idx = _index_data(idx)
        try:
            backend.check_index(self.shape, idx)
        except IndexError as exc:
            raise rewrap(exc, "SetItem", [self._data]) from exc
        return self._update_in_place(SetItem, "[...] =", self._wrap_scalar_like_self(value), idx=idx)

    # -- methods --

    def astype(self, dtype: Any) -> "Tensor":
        """Cast to ``dtype`` (a name like ``"bfloat16"`` or a backend dtype)."""
        return Cast.apply(self, dtype=dtype)

    def sum(self, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> "Tensor":
        """Sum over ``axis`` (all axes when None).

        With ``axis=None`` and ``keepdims=True`` the result has shape ``(1,)``.
        float16 and bfloat16 are accumulated in float32; under
        :class:`~autograd.precision.autocast` the result is float32.
        """
        return Sum.apply(*to_float32(self), axis=axis, keepdims=keepdims)

    def mean(self, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> "Tensor":
        """Mean over ``axis`` (all axes when None); same shape and precision rules as :meth:`sum`."""
        return Mean.apply(*to_float32(self), axis=axis, keepdims=keepdims)

    def max(self, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> "Tensor":
        """Maximum over ``axis``; ties share the gradient equally."""
        return Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> "Tensor":
        """Minimum over ``axis``; ties share the gradient equally."""
        return -Max.apply(-self, axis=axis, keepdims=keepdims)

    def var(self, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False, ddof: int = 0) -> "Tensor":
        """Variance over ``axis`` with ``ddof`` delta degrees of freedom."""
        mu = self.mean(axis=axis, keepdims=True)
        sq = (self - mu) ** 2
        n = self.size if axis is None else math.prod(self.shape[a] for a in normalize_axes(axis, self.ndim, "var"))
        return sq.sum(axis=axis, keepdims=keepdims) * (1.0 / max(n - ddof, 1))

    def gather(self, index: Any = 0) -> "Tensor":
        """Rows of this tensor at ``index`` (an int or int array) along axis 0."""
        return Gather.apply(self, index=index)

    def sqrt(self) -> "Tensor":
        """Element-wise square root."""
        return Sqrt.apply(self)

    def exp(self) -> "Tensor":
        """Element-wise exponential."""
        return Exp.apply(self)

    def log(self) -> "Tensor":
        """Element-wise natural logarithm."""
        return Log.apply(self)

    def abs(self) -> "Tensor":
        """Element-wise absolute value (gradient 0 at 0)."""
        return Abs.apply(self)

    def __abs__(self) -> "Tensor":
        return Abs.apply(self)

    def clip(self, min: Optional[float] = None, max: Optional[float] = None) -> "Tensor":
        """Clamp values to [min, max]; the gradient flows where not clipped."""
        return Clip.apply(self, lo=min, hi=max)

    def maximum(self, other: Union["Tensor", float, int]) -> "Tensor":
        """Element-wise maximum; equal elements share the gradient 50/50."""
        return Maximum.apply(self, self._wrap_scalar_like_self(other))

    def masked_fill(self, mask: Any, value: float) -> "Tensor":
        """``value`` where ``mask`` is True, this tensor elsewhere."""
        return Where.apply(mask, self._wrap_scalar_like_self(value), self)

    @staticmethod
    def where(condition: Any, x: Union["Tensor", float], y: Union["Tensor", float]) -> "Tensor":
        """Element-wise ``x if condition else y``; differentiable in ``x`` and ``y``."""
        if not isinstance(x, Tensor) and isinstance(y, Tensor):
            x = y._wrap_scalar_like_self(x)
        elif isinstance(x, Tensor) and not isinstance(y, Tensor):
            y = x._wrap_scalar_like_self(y)
        return Where.apply(condition, x, y)

    def pad(
        self,
        pad_width: Union[int, Tuple[int, int], Tuple[int, int, int, int], Tuple[Tuple[int, int], ...]],
        mode: str = "constant",
        constant_values: Union[int, float] = 0,
    ) -> "Tensor":
        """Pad; see :class:`Pad` for how ``pad_width`` is read."""
        return Pad.apply(self, pad_width=pad_width, mode=mode, constant_values=constant_values)

    def view(self, *shape: Union[int, Tuple[int, ...]]) -> "Tensor":
        """This data with a new shape (one ``-1`` may be inferred)."""
        return View.apply(self, new_shape=flatten_shape(shape))

    def reshape(self, *shape: int) -> "Tensor":
        """This data with a new shape (one ``-1`` may be inferred)."""
        return Reshape.apply(self, shape=flatten_shape(shape))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dimensions ``start_dim..end_dim`` into one."""
        s = normalize_axis(start_dim, self.ndim, "flatten")
        e = normalize_axis(end_dim, self.ndim, "flatten")
        shape = self.shape
        return Reshape.apply(self, shape=shape[:s] + (-1,) + shape[e + 1 :])

    def unsqueeze(self, dim: int) -> "Tensor":
        """Insert a dimension of size 1 at ``dim``."""
        d = normalize_axis(dim, self.ndim + 1, "unsqueeze")
        shape = self.shape
        return Reshape.apply(self, shape=shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim: Optional[int] = None) -> "Tensor":
        """Remove dimensions of size 1 (only ``dim`` when given)."""
        shape = self.shape
        if dim is None:
            new = tuple(s for s in shape if s != 1)
        else:
            d = normalize_axis(dim, self.ndim, "squeeze")
            new = shape[:d] + shape[d + 1 :] if shape[d] == 1 else shape
        return Reshape.apply(self, shape=new)

    def expand(self, *shape: Union[int, Sequence[int]]) -> "Tensor":
        """Broadcast to ``shape`` without copying (``-1`` keeps a dimension)."""
        return Expand.apply(self, shape=flatten_shape(shape))

    def permute(self, *dims: int) -> "Tensor":
        """Reorder dimensions; ``dims`` may also be one tuple."""
        return Permute.apply(self, dims=flatten_shape(dims))

    def transpose(self, dim0: int = 0, dim1: int = 1) -> "Tensor":
        """Swap two dimensions."""
        return Transpose.apply(self, dim0=dim0, dim1=dim1)

    def strided_windows(self, *args: Any, kernel_size: Any = None, stride: Any = None, dilation: Any = 1) -> "Tensor":
        """Sliding windows of an (N, C, H, W) tensor; see :class:`~autograd.ops.shape.StridedWindows`.

        ``kernel_size``, ``stride`` and ``dilation`` are ints or (height,
        width) pairs. Returns shape ``(H_out, W_out, N, C, kh, kw)``. The form
        ``x.strided_windows(x, kernel_size=3, stride=1)`` shown in the API
        reference is accepted too (the repeated tensor is ignored).
        """
        if args and isinstance(args[0], Tensor):
            if args[0] is not self:
                raise TensorTypeError("strided_windows: pass kernel_size and stride, not another tensor")
            args = args[1:]
        if args:
            kernel_size = args[0]
        if len(args) > 1:
            stride = args[1]
        if kernel_size is None or stride is None:
            raise TensorTypeError("strided_windows() needs kernel_size and stride")
        return StridedWindows.apply(self, kernel_size=kernel_size, stride=stride, dilation=dilation)

    def roll(self, shifts: int, dims: Optional[int] = None) -> "Tensor":
        """Roll elements by ``shifts`` along ``dims`` (the flattened tensor when None)."""
        return Roll.apply(self, shifts=shifts, dims=dims)

    @staticmethod
    def stack(tensors: List["Tensor"], axis: int = 0) -> "Tensor":
        """Stack tensors of equal shape along a new ``axis``."""
        return Stack.apply(*tensors, axis=axis)

    @staticmethod
    def cat(tensors: List["Tensor"], axis: int = 0) -> "Tensor":
        """Concatenate tensors along an existing ``axis``."""
        return Cat.apply(*tensors, axis=axis)


#: Scalar constants by (type, value, dtype); see Tensor._wrap_scalar_like_self.
_SCALARS: Dict[Any, "Tensor"] = {}


def _weak(array: Any) -> Any:
    """A weak reference to ``array``, or None where the array type has none."""
    try:
        return weakref.ref(array)
    except TypeError:
        return None


#: Ops whose output may be a view sharing its input's memory (see Tensor._refuse_view_of_a_graph).
_VIEW_OPS = (GetItem, View, Reshape, Transpose, Permute, Expand)


def _index_data(idx: Any) -> Any:
    # Tensors inside an index become arrays; lists become int/bool arrays so
    # every backend (MLX has no list indexing) sees the same thing.
    if isinstance(idx, Tensor):
        return idx._data
    if isinstance(idx, list):
        return backend.asarray(np.asarray(idx))
    if isinstance(idx, tuple):
        return tuple(_index_data(i) for i in idx)
    return idx


set_tensor_class(Tensor)
