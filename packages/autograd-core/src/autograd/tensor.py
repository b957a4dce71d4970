"""The Tensor/Function engine: a tape-free reverse-mode autograd.

A :class:`Tensor` wraps a backend array (see :mod:`autograd.backend`) and
remembers the :class:`Function` that created it. Every op is a small
``Function`` subclass whose ``forward`` reads arrays and whose ``backward``
returns the gradient for each input, written out as the math.

Conventions chosen where the API reference is silent:

* Only floating-point tensors take part in differentiation: integer and bool
  tensors are created with ``requires_grad=False`` whatever was asked (as in
  PyTorch), and ops on them build no graph.
* ``backward()`` stores the gradient of every tensor it passes through in its
  ``.grad``. Leaves *accumulate* over calls (call ``zero_grad``/set ``grad`` to
  ``None`` between steps); non-leaf tensors hold the gradient of the latest
  call. Gradients always have the dtype of their tensor.
* ``x[idx] = v`` and ``x += y`` are functional updates: ``x`` (the Python
  object) now holds the new value and is part of the graph, while the old
  array is left untouched so earlier graph nodes stay correct.
"""

from __future__ import annotations

import math
import threading
from functools import wraps
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.precision import to_float32, to_low

__all__ = [
    "is_grad_enabled",
    "no_grad",
    "Function",
    "Tensor",
    "RemovableHandle",
    "checkpoint",
    "ShapeError",
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


# --- errors ----------------------------------------------------------------


class AutogradError(Exception):
    """Marker base for errors raised with an autograd-level message."""


class ShapeError(AutogradError, ValueError):
    """Shapes (or axes) that do not fit an op; the message names them."""


class TensorIndexError(AutogradError, IndexError):
    """An index that does not fit the tensor."""


class TensorTypeError(AutogradError, TypeError):
    """An input of the wrong type or dtype."""


def _describe(arrays: Sequence[Any]) -> str:
    return ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in arrays if hasattr(a, "shape"))


def _rewrap(exc: Exception, op: str, arrays: Sequence[Any]) -> Exception:
    """The backend's error for a user mistake, re-raised with the op and its inputs' shapes and dtypes."""
    if isinstance(exc, IndexError):
        kind: type = TensorIndexError
    elif isinstance(exc, TypeError):
        kind = TensorTypeError
    else:
        kind = ShapeError
    return kind(f"{op}: invalid inputs [{_describe(arrays)}]: {exc}")


def _normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TensorTypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor with ndim {ndim}")
    return int(axis) % max(ndim, 1)


def _normalize_axes(axis: Any, ndim: int, op: str) -> Optional[Tuple[int, ...]]:
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(_normalize_axis(a, ndim, op) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r} for a tensor with ndim {ndim}")
    return out


# --- grad mode -------------------------------------------------------------


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops record the graph on this thread (False inside ``no_grad``)."""
    return _grad_mode.enabled


class no_grad:
    """Disable graph recording on the current thread.

    Works as a context manager and as a decorator; nests correctly.

    Examples:
        >>> with no_grad():
        ...     y = x * 2          # y.requires_grad is False
        >>> @no_grad()
        ... def evaluate(model, x): ...
    """

    def __enter__(self) -> "no_grad":
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self._prev

    def __call__(self, func: Callable) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return func(*args, **kwargs)

        return wrapper


# --- Function --------------------------------------------------------------


class Function:
    """Base class for differentiable operations.

    Subclasses implement ``forward(*arrays, **kwargs)`` returning an array and
    ``backward(grad)`` returning one gradient array per input tensor (a tuple
    for several inputs; ``None`` for an input that gets no gradient).
    ``self.needs_input_grad[i]`` says whether input ``i`` wants a gradient, so
    ``backward`` can skip work.

    Examples:
        >>> class DummyFunction(Function):
        ...     def forward(self, x):
        ...         return x + 1
        ...     def backward(self, grad):
        ...         return grad.data
        >>> y = DummyFunction.apply(Tensor(xp.array([1, 2, 3])))  # [2, 3, 4]
    """

    #: False for ops whose output dtype is meant to differ from their floating inputs' (casts, losses that
    #: compute float16/bfloat16 predictions in float32); see ``autograd.backend.keep_bfloat16``.
    keeps_input_precision: bool = True

    def __init__(self, *tensors: "Tensor") -> None:
        """Initialize a Function with its input tensors."""
        self.tensors: Tuple[Tensor, ...] = tensors
        self.needs_input_grad: Tuple[bool, ...] = tuple(t.requires_grad for t in tensors)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output array from the input arrays."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad: "Tensor") -> Any:
        """Return dL/d(input) for each input, given ``grad`` = dL/d(output)."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    @classmethod
    def apply(cls, *tensors: "Tensor", **kwargs: Any) -> "Tensor":
        """Run ``forward`` on the tensors' data and wrap the result in a Tensor.

        Non-Tensor inputs are wrapped as constants. In grad mode the result
        references this function; it requires a gradient when some input does.
        """
        for t in tensors:
            if not isinstance(t, Tensor):
                tensors = tuple(t if isinstance(t, Tensor) else Tensor(t, requires_grad=False) for t in tensors)
                break
        fn = cls(*tensors)
        arrays = [t._data for t in tensors]
        try:
            out = fn.forward(*arrays, **kwargs)
        except AutogradError:
            raise
        except (ValueError, TypeError, IndexError) as exc:
            raise _rewrap(exc, cls.__name__, arrays) from exc
        if cls.keeps_input_precision:
            out = backend.keep_bfloat16(out, arrays)
        if _grad_mode.enabled:
            # The result references its Function even when no input needs a
            # gradient (so ``out.creator`` is there to inspect); only tensors
            # that require grad are ever walked by backward().
            fn.versions = [t._version for t in tensors]
            return Tensor._make(out, fn, True in fn.needs_input_grad)
        fn.tensors = ()
        return Tensor._make(out, None, False)

    @staticmethod
    def unbroadcast(grad_arr: Any, to_shape: Tuple[int, ...]) -> Any:
        """Sum out broadcast dimensions so that ``grad_arr`` has shape ``to_shape``.

        Examples:
            >>> Function.unbroadcast(xp.array([[1, 1], [1, 1]]), (1, 2))  # [[2, 2]]
        """
        to_shape = tuple(to_shape)
        shape = tuple(grad_arr.shape)
        if shape == to_shape:
            return grad_arr
        lead = len(shape) - len(to_shape)
        if lead < 0:
            raise ShapeError(f"unbroadcast: gradient of shape {shape} cannot reduce to {to_shape}")
        if lead:
            grad_arr = _lib.sum(grad_arr, axis=tuple(range(lead)))
        axes = tuple(i for i, s in enumerate(to_shape) if s == 1 and grad_arr.shape[i] != 1)
        if axes:
            grad_arr = _lib.sum(grad_arr, axis=axes, keepdims=True)
        if tuple(grad_arr.shape) != to_shape:
            raise ShapeError(f"unbroadcast: gradient of shape {shape} cannot reduce to {to_shape}")
        return grad_arr


# --- Tensor ----------------------------------------------------------------


class RemovableHandle:
    """Returned by hook registrations; ``remove()`` unregisters the hook (calling it twice is harmless)."""

    _next_id = 0

    def __init__(self, hooks: dict, hook: Callable) -> None:
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id
        self._hooks = hooks
        hooks[self.id] = hook

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


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
        order, inputs_of = _topological_order(self)
        grads = {id(self): g}
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node.creator
            if fn is None:
                node._accumulate_grad(g)
                if node._post_accumulate_grad_hooks:
                    for hook in list(node._post_accumulate_grad_hooks.values()):
                        hook(node)
                continue
            if g.dtype != node._data.dtype:
                g = g.astype(node._data.dtype)
            grad_tensor = Tensor._make(g, None, False)
            node._grad = grad_tensor
            in_grads = fn.backward(grad_tensor)
            if not isinstance(in_grads, (tuple, list)):
                in_grads = (in_grads,)
            for t, ig in zip(inputs_of[id(fn)], in_grads):
                if ig is None or not t.requires_grad:
                    continue
                if isinstance(ig, Tensor):
                    ig = ig._data
                if ig.shape != t._data.shape and tuple(ig.shape) != t.shape:
                    ig = Function.unbroadcast(ig, t.shape)
                key = id(t)
                prev = grads.get(key)
                grads[key] = ig if prev is None else prev + ig

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
        """Give this object the value of ``op(self, other)``, keeping only the history a backward needs.

        * Under ``no_grad`` (or when neither side requires grad) only the value
          changes: no graph node and no copy of the old value is kept, and the
          tensor keeps its place in graphs recorded earlier (a parameter stays
          the leaf those graphs send gradients to). This is how optimizers and
          hand-written SGD update parameters.
        * In grad mode on a tensor inside a graph, the old value becomes a
          stand-in node (keeping its creator, not its data) and the op is
          recorded, so graphs built before the update still route their
          gradients through the old value and the new value is differentiable.
        * In grad mode on a leaf that requires grad it raises, as PyTorch does:
          the update would silently grow the graph by one node per step.
        """
        if not _grad_mode.enabled or not (self.requires_grad or other.requires_grad):
            with no_grad():
                self._data = op.apply(self, other, **kwargs)._data
            return self
        if self.requires_grad and self.creator is None:
            raise RuntimeError(
                f"in-place `{symbol}` on a leaf tensor of shape {self.shape} that requires grad, while gradients are "
                "recorded: wrap the update in `with no_grad():` (as optimizers do), or assign `tensor.data = ...`"
            )
        old = Tensor._make(self._data, self.creator, self.requires_grad)
        old._version, old._prev = self._version, self._prev
        out = op.apply(old, other, **kwargs)
        # The op has read (and, where its backward needs it, saved) the old array; the stand-in keeps only
        # the shape and dtype the backward walk reads, so a long run of updates holds no old values.
        old._data = backend.placeholder(old._data.shape, old._data.dtype)
        self._prev = old
        self._version += 1
        self._data = out._data
        self.creator = out.creator
        self.requires_grad = out.requires_grad
        return self

    def _compare(self, other: Any, op: Callable) -> "Tensor":
        o = other._data if isinstance(other, Tensor) else other
        try:
            res = op(self._data, o)
        except (ValueError, TypeError) as exc:
            raise _rewrap(exc, "compare", [self._data, o]) from exc
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
        """``self[idx] = value``: this object takes the new value (see :meth:`_update_in_place`)."""
        return self._update_in_place(SetItem, "[...] =", self._wrap_scalar_like_self(value), idx=_index_data(idx))

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
        n = self.size if axis is None else math.prod(self.shape[a] for a in _normalize_axes(axis, self.ndim, "var"))
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
        return View.apply(self, new_shape=_flatten_shape(shape))

    def reshape(self, *shape: int) -> "Tensor":
        """This data with a new shape (one ``-1`` may be inferred)."""
        return Reshape.apply(self, shape=_flatten_shape(shape))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dimensions ``start_dim..end_dim`` into one."""
        s = _normalize_axis(start_dim, self.ndim, "flatten")
        e = _normalize_axis(end_dim, self.ndim, "flatten")
        shape = self.shape
        return Reshape.apply(self, shape=shape[:s] + (-1,) + shape[e + 1 :])

    def unsqueeze(self, dim: int) -> "Tensor":
        """Insert a dimension of size 1 at ``dim``."""
        d = _normalize_axis(dim, self.ndim + 1, "unsqueeze")
        shape = self.shape
        return Reshape.apply(self, shape=shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim: Optional[int] = None) -> "Tensor":
        """Remove dimensions of size 1 (only ``dim`` when given)."""
        shape = self.shape
        if dim is None:
            new = tuple(s for s in shape if s != 1)
        else:
            d = _normalize_axis(dim, self.ndim, "squeeze")
            new = shape[:d] + shape[d + 1 :] if shape[d] == 1 else shape
        return Reshape.apply(self, shape=new)

    def expand(self, *shape: Union[int, Sequence[int]]) -> "Tensor":
        """Broadcast to ``shape`` without copying (``-1`` keeps a dimension)."""
        return Expand.apply(self, shape=_flatten_shape(shape))

    def permute(self, *dims: int) -> "Tensor":
        """Reorder dimensions; ``dims`` may also be one tuple."""
        return Permute.apply(self, dims=_flatten_shape(dims))

    def transpose(self, dim0: int = 0, dim1: int = 1) -> "Tensor":
        """Swap two dimensions."""
        return Transpose.apply(self, dim0=dim0, dim1=dim1)

    def strided_windows(self, *args: Any, kernel_size: Optional[int] = None, stride: Optional[int] = None) -> "Tensor":
        """Sliding ``kernel_size`` windows with ``stride`` of an (N, C, H, W) tensor.

        Returns shape ``(H_out, W_out, N, C, kernel_size, kernel_size)``. The
        form ``x.strided_windows(x, kernel_size=3, stride=1)`` shown in the API
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
        return StridedWindows.apply(self, kernel_size=kernel_size, stride=stride)

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


def _flatten_shape(shape: Sequence[Any]) -> Tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = []
    for s in shape:
        if isinstance(s, (tuple, list)):
            out.extend(int(v) for v in s)
        else:
            out.append(int(s))
    return tuple(out)


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


def _inputs(fn: Function) -> Tuple[Tensor, ...]:
    """``fn``'s inputs as they were when it ran (in-place updates bump versions)."""
    versions = fn.__dict__.get("versions")
    if versions is None:
        return fn.tensors
    for t, v in zip(fn.tensors, versions):
        if t._version != v:
            break
    else:
        return fn.tensors  # nothing was updated in place since: the common case
    out = []
    for t, v in zip(fn.tensors, versions):
        while t._version != v and t._prev is not None:
            t = t._prev
        out.append(t)
    return tuple(out)


def _topological_order(root: Tensor) -> Tuple[List[Tensor], Dict[int, Tuple[Tensor, ...]]]:
    """Tensors reachable from ``root`` that need grad, outputs first (iterative DFS), and each creator's inputs.

    The inputs (resolved through in-place updates) are returned by ``id`` of the Function, so the backward walk
    does not resolve them again.
    """
    post: List[Tensor] = []
    visited = set()
    inputs_of: Dict[int, Tuple[Tensor, ...]] = {}
    stack: List[Tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            post.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        fn = node.creator
        if fn is not None:
            # Leaves are pushed first, so they are popped (and finish) after the rest of the graph below this node:
            # in the reversed order a parameter then comes right after the op that consumes it, and its gradient is
            # final early in the backward (data-parallel training starts reducing it while the backward goes on).
            parents = inputs_of[id(fn)] = _inputs(fn)
            later = []
            for p in parents:
                if p.requires_grad and id(p) not in visited:
                    if p.creator is None:
                        stack.append((p, False))
                    else:
                        later.append((p, False))
            stack.extend(later)
    post.reverse()
    return post, inputs_of


# --- ops -------------------------------------------------------------------


class Add(Function):
    """Element-wise ``x + y``; both inputs receive the incoming gradient."""

    def forward(self, x: Any, y: Any) -> Any:
        self.shapes = (x.shape, y.shape)
        return x + y

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
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

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g, self.shapes[0]) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(-g, self.shapes[1]) if self.needs_input_grad[1] else None
        return gx, gy


class Neg(Function):
    """Element-wise ``-x``."""

    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, grad: Tensor) -> Any:
        return -grad.data


class Mul(Function):
    r"""Element-wise ``x * y``: :math:`\partial z/\partial x = y`, :math:`\partial z/\partial y = x`."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return x * y

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
        g = grad.data
        gx = Function.unbroadcast(g * self.y, self.x.shape) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(g * self.x, self.y.shape) if self.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    r"""Element-wise ``x / y``: :math:`\partial z/\partial x = 1/y`, :math:`\partial z/\partial y = -x/y^2`."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return x / y

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
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

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
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

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
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


class GetItem(Function):
    """``x[idx]``; the backward scatters the gradient into zeros of ``x``'s shape."""

    def forward(self, x: Any, idx: Any) -> Any:
        backend.check_index(x.shape, idx)
        self.shape, self.dtype, self.idx = x.shape, x.dtype, idx
        return x[idx]

    def backward(self, grad: Tensor) -> Any:
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
    """``x[idx] = value`` on a copy of ``x``; the gradient of ``x`` is zero at ``idx``."""

    def forward(self, x: Any, value: Any, idx: Any) -> Any:
        backend.check_index(x.shape, idx)
        self.idx, self.value_shape = idx, value.shape
        out = backend.copy(x)
        out[idx] = value
        return out

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
        g = grad.data
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = backend.copy(g)
            gx[self.idx] = 0
        if self.needs_input_grad[1]:
            gv = Function.unbroadcast(g[self.idx], self.value_shape)
        return gx, gv


class Cast(Function):
    """Cast to another dtype; the gradient is cast back to the input dtype."""

    keeps_input_precision = False

    def forward(self, x: Any, dtype: Any) -> Any:
        self.in_dtype = x.dtype
        return x.astype(backend.dtype(dtype))

    def backward(self, grad: Tensor) -> Any:
        return grad.data.astype(self.in_dtype)


class Sqrt(Function):
    r"""Element-wise :math:`\sqrt{x}`, with :math:`d\sqrt{x}/dx = 1/(2\sqrt{x})`."""

    def forward(self, x: Any) -> Any:
        self.out = _lib.sqrt(x)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        return grad.data * 0.5 / self.out


class Exp(Function):
    r"""Element-wise :math:`e^x`, its own derivative."""

    def forward(self, x: Any) -> Any:
        self.out = _lib.exp(x)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        return grad.data * self.out


class Log(Function):
    r"""Element-wise :math:`\ln x`, with derivative :math:`1/x`."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return _lib.log(x)

    def backward(self, grad: Tensor) -> Any:
        return grad.data / self.x


class Abs(Function):
    r"""Element-wise :math:`|x|`, with derivative :math:`\operatorname{sign}(x)` (0 at 0)."""

    def forward(self, x: Any) -> Any:
        self.x = x
        return _lib.abs(x)

    def backward(self, grad: Tensor) -> Any:
        return grad.data * _lib.sign(self.x)


class Where(Function):
    """``x`` where ``condition`` else ``y``; each branch gets the gradient where it was chosen."""

    def forward(self, condition: Any, x: Any, y: Any) -> Any:
        bool_ = backend.dtype("bool")
        self.cond = condition if condition.dtype == bool_ else condition.astype(bool_)
        self.shapes = (x.shape, y.shape)
        return _lib.where(self.cond, x, y)

    def backward(self, grad: Tensor) -> Tuple[None, Any, Any]:
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

    def backward(self, grad: Tensor) -> Any:
        keep, x = None, self.x
        if self.lo is not None:
            keep = x >= self.lo
        if self.hi is not None:
            keep = (x <= self.hi) if keep is None else keep & (x <= self.hi)
        return grad.data * keep


def _reduced_shape(shape: Tuple[int, ...], axes: Optional[Tuple[int, ...]]) -> Tuple[int, ...]:
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    r"""Sum :math:`y = \sum_{i \in A} x_i`; the gradient is broadcast back to ``x``'s shape."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        self.shape = x.shape
        self.axes = _normalize_axes(axis, x.ndim, "sum")
        xf = backend.widen(x)
        out = _lib.sum(xf, axis=self.axes, keepdims=keepdims)
        out = out if xf is x else out.astype(x.dtype)
        if keepdims and self.axes is None:
            out = out.reshape((1,))
        return out

    def backward(self, grad: Tensor) -> Any:
        g = grad.data.reshape(_reduced_shape(self.shape, self.axes))
        return _lib.broadcast_to(g, self.shape)


class Mean(Function):
    r"""Mean :math:`y = \frac{1}{N}\sum_{i \in A} x_i`; the gradient is ``grad / N`` everywhere."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        self.shape = x.shape
        self.axes = _normalize_axes(axis, x.ndim, "mean")
        n = x.size if self.axes is None else math.prod(x.shape[a] for a in self.axes)
        self.n = max(n, 1)
        xf = backend.widen(x)
        out = _lib.mean(xf, axis=self.axes, keepdims=keepdims)
        out = out if xf is x else out.astype(x.dtype)
        if keepdims and self.axes is None:
            out = out.reshape((1,))
        return out

    def backward(self, grad: Tensor) -> Any:
        g = grad.data.reshape(_reduced_shape(self.shape, self.axes)) * (1.0 / self.n)
        return _lib.broadcast_to(g, self.shape)


class Max(Function):
    r"""Maximum over axes; the gradient goes to the maxima, split equally among ties."""

    def forward(self, x: Any, axis: Union[int, Tuple[int, ...], None] = None, keepdims: bool = False) -> Any:
        if x.size == 0:
            raise ShapeError(f"max: cannot reduce an empty tensor of shape {tuple(x.shape)}")
        self.axes = _normalize_axes(axis, x.ndim, "max")
        self.x = x
        self.out_kd = _lib.max(x, axis=self.axes, keepdims=True)
        if keepdims:
            return self.out_kd.reshape((1,)) if self.axes is None else self.out_kd
        if self.axes is None:
            return self.out_kd.reshape(())
        return self.out_kd.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, grad: Tensor) -> Any:
        mask = (self.x == self.out_kd).astype(grad.data.dtype)
        count = _lib.sum(mask, axis=self.axes, keepdims=True)
        g = grad.data.reshape(self.out_kd.shape)
        return mask * (g / count)


class Maximum(Function):
    r"""Element-wise maximum; where ``x == y`` each side receives half the gradient."""

    def forward(self, x: Any, y: Any) -> Any:
        self.x, self.y = x, y
        return _lib.maximum(x, y)

    def backward(self, grad: Tensor) -> Tuple[Any, Any]:
        g, x, y = grad.data, self.x, self.y
        dt = g.dtype
        wx = (x > y).astype(dt) + (x == y).astype(dt) * 0.5
        gx = Function.unbroadcast(g * wx, x.shape) if self.needs_input_grad[0] else None
        gy = Function.unbroadcast(g * (1 - wx), y.shape) if self.needs_input_grad[1] else None
        return gx, gy


class Gather(Function):
    """Rows of ``x`` at integer ``index`` along axis 0 (any ``x`` rank, any index shape).

    The backward adds the gradient into the gathered rows; repeated indices accumulate.
    """

    def forward(self, x: Any, index: Any) -> Any:
        if isinstance(index, Tensor):
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

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        out = _lib.zeros(self.shape, dtype=self.dtype)
        return backend.add_at(out, self.index, grad.data), None


def _resolve_shape(new_shape: Tuple[int, ...], size: int, old: Tuple[int, ...], op: str) -> Tuple[int, ...]:
    new_shape = tuple(int(s) for s in new_shape)
    unknown = [i for i, s in enumerate(new_shape) if s == -1]
    if len(unknown) > 1:
        raise ShapeError(f"{op}: only one dimension can be -1, got {new_shape}")
    if any(s < -1 for s in new_shape):
        raise ShapeError(f"{op}: invalid shape {new_shape}")
    known = math.prod(s for s in new_shape if s != -1)
    if unknown:
        if known == 0 or size % known:
            raise ShapeError(f"{op}: cannot reshape a tensor of shape {old} (size {size}) into {new_shape}")
        new_shape = tuple(size // known if s == -1 else s for s in new_shape)
    elif known != size:
        raise ShapeError(f"{op}: cannot reshape a tensor of shape {old} (size {size}) into {new_shape}")
    return new_shape


class View(Function):
    """Reshape without copying where the layout allows (one ``-1`` may be inferred).

    Raises:
        ValueError: more than one -1, or a size that does not match.
    """

    def forward(self, x: Any, new_shape: Union[Tuple[int, ...], List[int]] = (1,)) -> Any:
        self.shape = x.shape
        return x.reshape(_resolve_shape(tuple(new_shape), x.size, tuple(x.shape), "view"))

    def backward(self, grad: Optional[Tensor]) -> Optional[Any]:
        return None if grad is None else grad.data.reshape(self.shape)


class Reshape(Function):
    """Reshape; a nested shape such as ``((2, 2),)`` is flattened first."""

    def forward(self, x: Any, shape: Union[Tuple[int, ...], List[int]] = (1,)) -> Any:
        self.shape = x.shape
        shape = _flatten_shape(tuple(shape)) if any(isinstance(s, (tuple, list)) for s in shape) else tuple(shape)
        return x.reshape(_resolve_shape(shape, x.size, tuple(x.shape), "reshape"))

    def backward(self, grad: Optional[Tensor]) -> Optional[Any]:
        return None if grad is None else grad.data.reshape(self.shape)


class Expand(Function):
    """Broadcast to ``shape`` (``-1`` keeps a dimension); the backward sums over broadcast dims."""

    def forward(self, x: Any, shape: Union[Tuple[int, ...], List[int]] = (1,)) -> Any:
        shape = tuple(shape)
        lead = len(shape) - x.ndim
        if lead < 0:
            raise ShapeError(f"expand: cannot expand shape {tuple(x.shape)} to fewer dimensions {shape}")
        shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
        for i, s in enumerate(x.shape):
            if s != 1 and s != shape[i + lead]:
                raise ShapeError(f"expand: cannot expand shape {tuple(x.shape)} to {shape}")
        self.shape = x.shape
        return _lib.broadcast_to(x, shape)

    def backward(self, grad: Tensor) -> Any:
        return Function.unbroadcast(grad.data, self.shape)


class Transpose(Function):
    """Swap ``dim0`` and ``dim1``; the backward swaps them back."""

    def forward(self, x: Any, dim0: int = 0, dim1: int = 1) -> Any:
        self.d0 = _normalize_axis(dim0, x.ndim, "transpose")
        self.d1 = _normalize_axis(dim1, x.ndim, "transpose")
        return _lib.swapaxes(x, self.d0, self.d1)

    def backward(self, grad: Tensor) -> Any:
        return _lib.swapaxes(grad.data, self.d0, self.d1)


class Permute(Function):
    """Reorder dimensions by ``dims``; the backward applies the inverse permutation."""

    def forward(self, x: Any, dims: Sequence[int]) -> Any:
        dims = _flatten_shape(tuple(dims))
        if len(dims) != x.ndim:
            raise ShapeError(f"permute: got {len(dims)} dims {dims} for a tensor with ndim {x.ndim}")
        dims = tuple(_normalize_axis(d, x.ndim, "permute") for d in dims)
        if sorted(dims) != list(range(x.ndim)):
            raise ShapeError(f"permute: {dims} is not a permutation of {tuple(range(x.ndim))}")
        self.inverse = tuple(int(i) for i in np.argsort(dims))
        return _lib.transpose(x, dims)

    def backward(self, grad: Tensor) -> Any:
        return _lib.transpose(grad.data, self.inverse)


def _pad_pairs(pad_width: Any, ndim: int) -> List[Tuple[int, int]]:
    if isinstance(pad_width, (int, np.integer)):
        return [(int(pad_width), int(pad_width))] * ndim
    pw = tuple(pad_width)
    if pw and all(isinstance(p, (tuple, list)) for p in pw):
        if len(pw) != ndim:
            raise ShapeError(f"pad: got {len(pw)} (before, after) pairs for a tensor with ndim {ndim}")
        return [(int(a), int(b)) for a, b in pw]
    if len(pw) == 2:
        return [(0, 0)] * (ndim - 1) + [(int(pw[0]), int(pw[1]))]
    if len(pw) == 4:
        if ndim < 2:
            raise ShapeError(f"pad: 4 values pad the last two dims, but the tensor has ndim {ndim}")
        left, right, top, bottom = (int(p) for p in pw)
        return [(0, 0)] * (ndim - 2) + [(top, bottom), (left, right)]
    raise ShapeError(f"pad: pad_width {pad_width!r} must be an int, 2 or 4 ints, or one (before, after) pair per dim")


_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


class Pad(Function):
    """Pad a tensor.

    ``pad_width``: an int pads every dim; 2 values ``(left, right)`` pad the last
    dim; 4 values ``(left, right, top, bottom)`` pad the last two dims; a tuple of
    ``(before, after)`` pairs pads each dim. Modes: ``constant``, ``edge``,
    ``reflect``, ``symmetric``, ``wrap``. Non-constant modes are computed as a
    gather through an index map, so their backward (a scatter-add through the
    same map) is exact on every backend.
    """

    def forward(
        self,
        x: Any,
        pad_width: Union[int, Tuple[int, int], Tuple[int, int, int, int], Tuple[Tuple[int, int], ...]],
        mode: str = "constant",
        constant_values: Union[int, float] = 0,
    ) -> Any:
        if mode not in _PAD_MODES:
            raise ValueError(f"pad: unknown mode {mode!r}; use one of {_PAD_MODES}")
        pairs = _pad_pairs(pad_width, x.ndim)
        if any(a < 0 or b < 0 for a, b in pairs):
            raise ShapeError(f"pad: negative padding {pairs}")
        self.shape, self.mode, self.pairs = x.shape, mode, pairs
        if mode == "constant":
            return _lib.pad(x, pairs, constant_values=constant_values)
        index_map = np.pad(np.arange(x.size).reshape(tuple(x.shape)), pairs, mode=mode)
        self.index_map = backend.asarray(index_map.reshape(-1))
        return x.reshape(-1)[self.index_map].reshape(index_map.shape)

    def backward(self, grad: Tensor) -> Any:
        g = grad.data
        if self.mode == "constant":
            region = tuple(slice(a, a + s) for (a, _), s in zip(self.pairs, self.shape))
            return g[region]
        out = _lib.zeros((math.prod(self.shape),), dtype=g.dtype)
        return backend.add_at(out, self.index_map, g.reshape(-1)).reshape(self.shape)


def _check_same_shapes(op: str, arrays: Sequence[Any], skip_axis: Optional[int]) -> None:
    if not arrays:
        raise ValueError(f"{op}: needs at least one tensor")
    ref = tuple(arrays[0].shape)
    for a in arrays[1:]:
        s = tuple(a.shape)
        ok = len(s) == len(ref) and all(i == skip_axis or si == ri for i, (si, ri) in enumerate(zip(s, ref)))
        if not ok:
            where = "except along the concatenation axis" if skip_axis is not None else "exactly"
            raise ShapeError(f"{op}: shapes must match {where}; got {[tuple(x.shape) for x in arrays]}")


class Cat(Function):
    """Concatenate along ``axis``; the backward splits the gradient by input sizes."""

    def forward(self, *tensors: Any, axis: int = 0) -> Any:
        if not tensors:
            raise ValueError("cat: needs at least one tensor")
        self.axis = _normalize_axis(axis, tensors[0].ndim, "cat")
        _check_same_shapes("cat", tensors, self.axis)
        self.sizes = [t.shape[self.axis] for t in tensors]
        return _lib.concatenate(list(tensors), axis=self.axis)

    def backward(self, grad: Tensor) -> Tuple[Any, ...]:
        g, out, start = grad.data, [], 0
        prefix = (slice(None),) * self.axis
        for size, need in zip(self.sizes, self.needs_input_grad):
            out.append(g[prefix + (slice(start, start + size),)] if need else None)
            start += size
        return tuple(out)


class Stack(Function):
    """Stack equal-shape tensors along a new ``axis``; the backward takes each slice.

    Raises:
        ValueError: if no tensors are given or their shapes differ.
    """

    def forward(self, *tensors: Any, axis: int = 0) -> Any:
        if not tensors:
            raise ValueError("stack: needs at least one tensor")
        self.axis = _normalize_axis(axis, tensors[0].ndim + 1, "stack")
        _check_same_shapes("stack", tensors, None)
        return _lib.stack(list(tensors), axis=self.axis)

    def backward(self, grad: Tensor) -> Tuple[Any, ...]:
        g = grad.data
        prefix = (slice(None),) * self.axis
        return tuple(g[prefix + (i,)] if need else None for i, need in enumerate(self.needs_input_grad))


class StridedWindows(Function):
    r"""Sliding windows of an (N, C, H, W) array as a strided view.

    Output shape :math:`(H_{out}, W_{out}, N, C, k, k)` with
    :math:`H_{out} = (H - k)/s + 1`. The backward adds each of the :math:`k^2`
    window offsets back into place: :math:`k^2` vectorised slice-adds, no loop
    over pixels or batch items.
    """

    def forward(self, x: Any, kernel_size: int, stride: int) -> Any:
        if x.ndim != 4:
            raise ShapeError(f"strided_windows: expected (N, C, H, W), got shape {tuple(x.shape)}")
        k, s = int(kernel_size), int(stride)
        if k < 1 or s < 1:
            raise ValueError(f"strided_windows: kernel_size {k} and stride {s} must be >= 1")
        n, c, h, w = x.shape
        if k > h or k > w:
            raise ShapeError(f"strided_windows: kernel_size {k} is larger than the input's H x W = {h} x {w}")
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        self.shape, self.k, self.s, self.out_hw = x.shape, k, s, (ho, wo)
        strides = (s * w, s, c * h * w, h * w, w, 1)
        return backend.as_strided(x, (ho, wo, n, c, k, k), strides)

    def backward(self, grad: Tensor) -> Any:
        g = grad.data
        k, s = self.k, self.s
        ho, wo = self.out_hw
        out = _lib.zeros(self.shape, dtype=g.dtype)
        # (Ho, Wo, N, C, k, k) -> (N, C, k, k, Ho, Wo): each (i, j) slice lands on a strided grid.
        g = backend.contiguous(_lib.transpose(g, (2, 3, 4, 5, 0, 1)))
        for i in range(k):
            for j in range(k):
                region = (
                    slice(None),
                    slice(None),
                    slice(i, i + s * (ho - 1) + 1, s),
                    slice(j, j + s * (wo - 1) + 1, s),
                )
                out = backend.add_at(out, region, g[:, :, i, j])
        return out


class Roll(Function):
    """Roll elements by ``shifts`` along ``dims``; the backward rolls back by ``-shifts``."""

    def forward(self, x: Any, shifts: int, dims: Optional[int] = None) -> Any:
        if dims is not None:
            dims = _normalize_axis(dims, x.ndim, "roll")
        self.shifts, self.dims = shifts, dims
        return _lib.roll(x, shifts, dims) if dims is not None else _lib.roll(x, shifts)

    def backward(self, grad: Tensor) -> Any:
        g = grad.data
        return _lib.roll(g, -self.shifts, self.dims) if self.dims is not None else _lib.roll(g, -self.shifts)


# --- checkpoint ------------------------------------------------------------


class _Checkpoint(Function):
    def forward(self, *arrays: Any, run_function: Callable) -> Any:
        # The inputs' arrays, not the tensors: a tensor updated in place later must not change the recomputation.
        self.run_function, self.arrays = run_function, arrays
        with no_grad():
            out = run_function(*[Tensor._make(a, None, False) for a in arrays])
        if not isinstance(out, Tensor):
            raise TensorTypeError(f"checkpoint: the function must return one Tensor, got {type(out).__name__}")
        return out.data

    def backward(self, grad: Tensor) -> Tuple[Any, ...]:
        inputs = [Tensor._make(a, None, t.requires_grad) for a, t in zip(self.arrays, self.tensors)]
        with _enable_grad():
            out = self.run_function(*inputs)
        if out.requires_grad:
            out.backward(grad.data)
        return tuple(None if t._grad is None else t._grad.data for t in inputs)


class _enable_grad:
    def __enter__(self) -> None:
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = True

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self._prev


def checkpoint(run_function: Any, *tensors: Tensor) -> Tensor:
    """Run ``run_function(*tensors)`` without keeping its intermediate arrays.

    The forward runs under ``no_grad``; the backward runs it again with
    gradients on and backpropagates through the recomputed graph, so the
    gradients are those of the plain call while the saved activations of the
    function body are freed after the forward.

    Tensors that need gradients and come from outside must be passed in
    ``tensors``; parameters captured by the function (module weights) are
    leaves and receive their gradients directly during the recomputation.
    """
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t, requires_grad=False) for t in tensors)
    fn = _Checkpoint(*tensors)
    out = fn.forward(*[t.data for t in tensors], run_function=run_function)
    if _grad_mode.enabled:
        return Tensor._make(out, fn, True)
    return Tensor._make(out, None, False)
