"""The reverse-mode engine: :class:`Function`, grad mode, the graph walk of ``backward()``, and checkpointing.

A :class:`~autograd.tensor.Tensor` remembers the :class:`Function` that made
it (its ``creator``); a Function remembers its input tensors. ``backward()``
walks that graph from the output back to the leaves, in reverse topological
order, calling each Function's ``backward`` once with the sum of every
gradient that reached its output.

This module knows the Tensor class only through :func:`tensor_class`, which
:mod:`autograd.tensor` sets when it is imported (the engine needs it to wrap
results; the Tensor API needs the ops, which need :class:`Function`: the
hand-over keeps the modules free of import cycles, as PyTorch's engine is told
its Python Tensor class at start-up).

Conventions chosen where the API reference is silent:

* Only floating-point tensors take part in differentiation: integer and bool
  tensors are created with ``requires_grad=False`` whatever was asked (as in
  PyTorch), and ops on them build no graph.
* ``backward()`` stores the gradient of every tensor it passes through in its
  ``.grad``. Leaves *accumulate* over calls; non-leaf tensors hold the
  gradient of the latest call. Gradients always have the dtype of their tensor.
"""

from __future__ import annotations

import sys
import threading
import weakref
from functools import wraps
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from autograd import backend

__all__ = [
    "AutogradError",
    "ShapeError",
    "TensorIndexError",
    "TensorTypeError",
    "is_grad_enabled",
    "no_grad",
    "enable_grad",
    "Function",
    "RemovableHandle",
    "run_backward",
    "checkpoint",
    "tensor_class",
    "set_tensor_class",
    "write_into",
]


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


def rewrap(exc: Exception, op: str, arrays: Sequence[Any]) -> Exception:
    """The backend's error for a user mistake, re-raised with the op and its inputs' shapes and dtypes."""
    if isinstance(exc, IndexError):
        kind: type = TensorIndexError
    elif isinstance(exc, TypeError):
        kind = TensorTypeError
    else:
        kind = ShapeError
    return kind(f"{op}: invalid inputs [{_describe(arrays)}]: {exc}")


# --- the Tensor class ------------------------------------------------------

_TENSOR: List[Any] = [None]


def set_tensor_class(cls: type) -> None:
    """Called once by :mod:`autograd.tensor`: the class the engine wraps results in."""
    _TENSOR[0] = cls


def tensor_class() -> Any:
    """The :class:`~autograd.tensor.Tensor` class (import :mod:`autograd.tensor` before running ops)."""
    cls = _TENSOR[0]
    if cls is None:
        raise RuntimeError("autograd.engine: import autograd.tensor before running an op")
    return cls


# --- grad mode -------------------------------------------------------------


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops record the graph on this thread (False inside ``no_grad``)."""
    return _grad_mode.enabled


class _GradSwitch:
    enabled = True

    def __enter__(self) -> Any:
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc: Any) -> None:
        _grad_mode.enabled = self._prev

    def __call__(self, func: Callable) -> Callable:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradSwitch):
    """Disable graph recording on the current thread.

    Works as a context manager and as a decorator; nests correctly.

    Examples:
        >>> from autograd.tensor import Tensor
        >>> x = Tensor([1.0, 2.0])
        >>> with no_grad():
        ...     y = x * 2
        >>> y.requires_grad
        False
        >>> @no_grad()
        ... def double(t):
        ...     return t * 2
        >>> double(x).requires_grad, (x * 2).requires_grad
        (False, True)
    """

    enabled = False


class enable_grad(_GradSwitch):
    """Turn graph recording back on inside a ``no_grad`` block (a context manager and a decorator)."""

    enabled = True


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
        ...         return grad
        >>> from autograd.tensor import Tensor
        >>> x = Tensor(xp.array([1.0, 2.0, 3.0]))
        >>> y = DummyFunction.apply(x)
        >>> y.numpy()  # an array Tensor keeps its dtype (float64 here)
        array([2., 3., 4.])
        >>> y.sum().backward()
        >>> x.grad.numpy()
        array([1., 1., 1.])
    """

    #: False for ops whose output dtype is meant to differ from their floating inputs' (casts, losses that
    #: compute float16/bfloat16 predictions in float32); see ``autograd.backend.keep_bfloat16``.
    keeps_input_precision: bool = True
    #: Set on a node made by a kernel plugin: checks (and may raise on) the gradients its backward returns,
    #: which the walk then uses as they are (never un-broadcast). See ``autograd.kernels.registry``.
    check_gradients: Optional[Callable[["Function", Tuple[Any, ...]], Tuple[Any, ...]]] = None
    #: True for ops whose backward converts the gradient to its input's dtype anyway (casts): the walk then
    #: hands them the gradient as it arrived, not rounded to their (narrower) output dtype first.
    accepts_wide_grad: bool = False
    #: The count of in-place writes when this node ran (None: not recorded); see :func:`write_into`.
    epoch: Optional[int] = None

    def __init__(self, *tensors: Any) -> None:
        """Initialize a Function with its input tensors."""
        self.tensors: Tuple[Any, ...] = tensors
        self.needs_input_grad: Tuple[bool, ...] = tuple(t.requires_grad for t in tensors)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output array from the input arrays."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, grad: Any) -> Any:
        """Return dL/d(input) for each input, given ``grad`` = dL/d(output)."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    @classmethod
    def apply(cls, *tensors: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on the tensors' data and wrap the result in a Tensor.

        Non-Tensor inputs are wrapped as constants. In grad mode the result
        references this function; it requires a gradient when some input does.
        """
        Tensor = _TENSOR[0] or tensor_class()
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
            raise rewrap(exc, cls.__name__, arrays) from exc
        if cls.keeps_input_precision:
            out = backend.keep_bfloat16(out, arrays)
        if _grad_mode.enabled:
            # The result references its Function even when no input needs a
            # gradient (so ``out.creator`` is there to inspect); only tensors
            # that require grad are ever walked by backward().
            fn.versions = [t._version for t in tensors]
            fn.epoch = _WRITES[0]
            return Tensor._make(out, fn, True in fn.needs_input_grad)
        fn.tensors = ()
        return Tensor._make(out, None, False)

    @staticmethod
    def unbroadcast(grad_arr: Any, to_shape: Tuple[int, ...]) -> Any:
        """Sum out broadcast dimensions so that ``grad_arr`` has shape ``to_shape``.

        Examples:
            >>> Function.unbroadcast(xp.array([[1, 1], [1, 1]]), (1, 2))  # summed over the broadcast rows
            array([[2, 2]])
        """
        to_shape = tuple(to_shape)
        shape = tuple(grad_arr.shape)
        if shape == to_shape:
            return grad_arr
        lead = len(shape) - len(to_shape)
        if lead < 0:
            raise ShapeError(f"unbroadcast: gradient of shape {shape} cannot reduce to {to_shape}")
        # float16/bfloat16 gradients are summed in float32 and stay float32 (summing 4096 ones in bfloat16
        # stalls at 256): the walk rounds them to the input's dtype, or a cast passes them on unrounded.
        wide = backend.dtype("float32") if backend.is_low_precision(grad_arr.dtype) else None
        if lead:
            grad_arr = backend.total(grad_arr, axis=tuple(range(lead)), dtype=wide)
        axes = tuple(i for i, s in enumerate(to_shape) if s == 1 and grad_arr.shape[i] != 1)
        if axes:
            grad_arr = backend.total(grad_arr, axis=axes, keepdims=True, dtype=wide)
        if tuple(grad_arr.shape) != to_shape:
            raise ShapeError(f"unbroadcast: gradient of shape {shape} cannot reduce to {to_shape}")
        return grad_arr


# --- hooks -----------------------------------------------------------------


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


# --- the graph walk ----------------------------------------------------------


def _inputs(fn: Function) -> Tuple[Any, ...]:
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


def _topological_order(root: Any) -> Tuple[List[Any], Dict[int, Tuple[Any, ...]]]:
    """Tensors reachable from ``root`` that need grad, outputs first (iterative DFS), and each creator's inputs.

    The inputs (resolved through in-place updates) are returned by ``id`` of the Function, so the backward walk
    does not resolve them again.
    """
    post: List[Any] = []
    visited = set()
    inputs_of: Dict[int, Tuple[Any, ...]] = {}
    stack: List[Tuple[Any, bool]] = [(root, False)]
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


def run_backward(root: Any, grad: Any) -> None:
    """Backpropagate the array ``grad`` (dL/d``root``) from ``root`` to every leaf that requires grad.

    Each tensor's contributions are summed before its creator's ``backward``
    runs once; leaves accumulate into ``.grad`` and then run their
    post-accumulate hooks. A gradient of a broadcast input is summed back to
    the input's shape, except on nodes with ``check_gradients`` (kernel
    plugins), whose gradients must already have the input's exact shape.
    """
    Tensor = tensor_class()
    order, inputs_of = _topological_order(root)
    grads = {id(root): grad}
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
            wide = fn.accepts_wide_grad and backend.itemsize(g.dtype) > backend.itemsize(node._data.dtype)
            node._grad = Tensor._make(g.astype(node._data.dtype), None, False)
            grad_tensor = Tensor._make(g, None, False) if wide else node._grad
        else:
            grad_tensor = node._grad = Tensor._make(g, None, False)
        if _saved and fn.epoch is not None and fn.epoch != _WRITES[0]:
            in_grads = _backward_as_recorded(fn, inputs_of[id(fn)], node, grad_tensor)
        else:
            in_grads = fn.backward(grad_tensor)
        if not isinstance(in_grads, (tuple, list)):
            in_grads = (in_grads,)
        if fn.check_gradients is not None:
            in_grads = fn.check_gradients(fn, tuple(in_grads))
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


# --- in-place writes -------------------------------------------------------------------------------------------
#
# On NumPy and CuPy an in-place update (``x[i] = v``, ``x += y``) writes into the memory the tensor shares with
# every alias (views, detached copies, the array of ``x.data``), so they all see it. Graph nodes recorded before
# the write may have saved that memory for their backward; they must still see the values they were computed
# from. So a write first counts who else holds the storage (the array that owns the memory): when someone does,
# it keeps a copy of the storage as it was, and the backward of a node older than the write runs with the old
# contents put back for the duration of that call. Nobody else holding the storage means no node can have saved
# it, and the copies kept for it are dropped. MLX arrays are immutable: an update there makes a new array.

#: In-place writes so far; each node records the count it ran at (``Function.epoch``).
_WRITES = [0]
#: At most this many copies are kept per storage; a node older than the oldest dropped one cannot run its backward.
MAX_SAVED_COPIES = 8


class _Saved:
    """The copies kept of one storage: ``(write count, contents just before that write)``, oldest first."""

    __slots__ = ("ref", "copies", "dropped")

    def __init__(self, root: Any) -> None:
        key = id(root)
        self.ref = weakref.ref(root, lambda _ref, key=key: _saved.pop(key, None))
        self.copies: List[Tuple[int, Any]] = []
        self.dropped = 0


#: By ``id`` of a storage, while it lives.
_saved: Dict[int, _Saved] = {}


def _references(tensor: Any) -> Tuple[int, bool]:
    """References to the storage of ``tensor._data``, and whether the array is that storage (not a view of it)."""
    target = tensor._data
    root = backend.storage(target)
    return sys.getrefcount(root), root is target


class _Probe:
    _data: Any = None


def _calibrate() -> Dict[bool, int]:
    """What :func:`_references` counts when nothing but the tensor holds its storage, for a whole array and a view."""
    if not backend.active.mutable:
        return {}
    probe = _Probe()
    probe._data = backend.lib.zeros(4)
    alone = _references(probe)[0]
    probe._data = backend.lib.zeros(4)[1:3]
    view = _references(probe)[0]
    return {True: alone, False: view}


_ALONE = _calibrate()


def write_into(tensor: Any, value: Any) -> None:
    """Write ``value`` (an array of ``tensor``'s shape and dtype) into the memory of ``tensor._data``.

    Keeps a copy of the storage when anything but ``tensor`` holds it (see
    the comment above), then copies ``value`` in. NumPy and CuPy only.
    """
    refs, whole = _references(tensor)
    _WRITES[0] += 1
    root = backend.storage(tensor._data)
    record = _saved.get(id(root))
    if refs > _ALONE[whole]:
        if record is None:
            record = _saved[id(root)] = _Saved(root)
        record.copies.append((_WRITES[0], backend.copy(root)))
        if len(record.copies) > MAX_SAVED_COPIES:
            record.dropped = record.copies.pop(0)[0]
    elif record is not None:
        record.copies.clear()  # nobody else holds the storage: no node older than this write can read it
        record.dropped = 0
    backend.write(tensor._data, value)


def _backward_as_recorded(fn: Function, inputs: Tuple[Any, ...], output: Any, grad: Any) -> Any:
    """``fn.backward(grad)`` with the storages of its inputs and output as they were when ``fn`` ran."""
    restored: Dict[int, Tuple[Any, Any]] = {}
    for t in (*inputs, output):
        written = t.__dict__.get("_written")  # an in-place update's stand-in: a weak reference to its storage
        array = written() if written is not None else t._data
        if array is None or not backend.is_array(array):
            continue
        root = backend.storage(array)
        record = _saved.get(id(root))
        if record is None or id(root) in restored:
            continue
        if record.dropped > fn.epoch:
            raise RuntimeError(
                f"{type(fn).__name__}.backward needs values that were overwritten in place more than "
                f"{MAX_SAVED_COPIES} times since it ran (a tensor of shape {tuple(root.shape)}): make the "
                "updates out of place (x = x + y), or call backward before them"
            )
        before = next((copy for count, copy in record.copies if count > fn.epoch), None)
        if before is None:
            continue
        restored[id(root)] = (root, backend.copy(root))
        backend.write(root, before)
    try:
        return fn.backward(grad)
    finally:
        for root, now in restored.values():
            backend.write(root, now)


# --- checkpoint ------------------------------------------------------------


class _Checkpoint(Function):
    def forward(self, *arrays: Any, run_function: Callable) -> Any:
        # The inputs' arrays, not the tensors: a tensor updated in place later must not change the recomputation.
        Tensor = tensor_class()
        self.run_function, self.arrays = run_function, arrays
        with no_grad():
            out = run_function(*[Tensor._make(a, None, False) for a in arrays])
        if not isinstance(out, Tensor):
            raise TensorTypeError(f"checkpoint: the function must return one Tensor, got {type(out).__name__}")
        return out.data

    def backward(self, grad: Any) -> Tuple[Any, ...]:
        Tensor = tensor_class()
        inputs = [Tensor._make(a, None, t.requires_grad) for a, t in zip(self.arrays, self.tensors)]
        with enable_grad():
            out = self.run_function(*inputs)
        if out.requires_grad:
            out.backward(grad.data)
        return tuple(None if t._grad is None else t._grad.data for t in inputs)


def checkpoint(run_function: Any, *tensors: Any) -> Any:
    """Run ``run_function(*tensors)`` without keeping its intermediate arrays.

    The forward runs under ``no_grad``; the backward runs it again with
    gradients on and backpropagates through the recomputed graph, so the
    gradients are those of the plain call while the saved activations of the
    function body are freed after the forward.

    Tensors that need gradients and come from outside must be passed in
    ``tensors``; parameters captured by the function (module weights) are
    leaves and receive their gradients directly during the recomputation.
    """
    Tensor = tensor_class()
    tensors = tuple(t if isinstance(t, Tensor) else Tensor(t, requires_grad=False) for t in tensors)
    fn = _Checkpoint(*tensors)
    fn.epoch = _WRITES[0]
    out = fn.forward(*[t.data for t in tensors], run_function=run_function)
    if _grad_mode.enabled:
        return Tensor._make(out, fn, True)
    return Tensor._make(out, None, False)
