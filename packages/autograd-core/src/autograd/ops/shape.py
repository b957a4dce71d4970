"""Shape ops: views, reshapes, broadcasts, transposes, padding, concatenation, rolls and sliding windows.

None of them computes anything: each backward moves the gradient back to
where its input's elements were.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError
from autograd.ops.common import flatten_shape, normalize_axis, resolve_shape

__all__ = [
    "View",
    "Reshape",
    "Expand",
    "Transpose",
    "Permute",
    "Pad",
    "Cat",
    "Stack",
    "StridedWindows",
    "Roll",
    "pair",
]


class View(Function):
    """Reshape without copying where the layout allows (one ``-1`` may be inferred).

    Raises:
        ValueError: more than one -1, or a size that does not match.
    """

    def forward(self, x: Any, new_shape: Union[Tuple[int, ...], List[int]] = (1,)) -> Any:
        self.shape = x.shape
        return x.reshape(resolve_shape(tuple(new_shape), x.size, tuple(x.shape), "view"))

    def backward(self, grad: Optional[Any]) -> Optional[Any]:
        return None if grad is None else grad.data.reshape(self.shape)


class Reshape(Function):
    """Reshape; a nested shape such as ``((2, 2),)`` is flattened first."""

    def forward(self, x: Any, shape: Union[Tuple[int, ...], List[int]] = (1,)) -> Any:
        self.shape = x.shape
        shape = flatten_shape(tuple(shape)) if any(isinstance(s, (tuple, list)) for s in shape) else tuple(shape)
        return x.reshape(resolve_shape(shape, x.size, tuple(x.shape), "reshape"))

    def backward(self, grad: Optional[Any]) -> Optional[Any]:
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

    def backward(self, grad: Any) -> Any:
        return Function.unbroadcast(grad.data, self.shape)


class Transpose(Function):
    """Swap ``dim0`` and ``dim1``; the backward swaps them back."""

    def forward(self, x: Any, dim0: int = 0, dim1: int = 1) -> Any:
        self.d0 = normalize_axis(dim0, x.ndim, "transpose")
        self.d1 = normalize_axis(dim1, x.ndim, "transpose")
        return _lib.swapaxes(x, self.d0, self.d1)

    def backward(self, grad: Any) -> Any:
        return _lib.swapaxes(grad.data, self.d0, self.d1)


class Permute(Function):
    """Reorder dimensions by ``dims``; the backward applies the inverse permutation."""

    def forward(self, x: Any, dims: Sequence[int]) -> Any:
        dims = flatten_shape(tuple(dims))
        if len(dims) != x.ndim:
            raise ShapeError(f"permute: got {len(dims)} dims {dims} for a tensor with ndim {x.ndim}")
        dims = tuple(normalize_axis(d, x.ndim, "permute") for d in dims)
        if sorted(dims) != list(range(x.ndim)):
            raise ShapeError(f"permute: {dims} is not a permutation of {tuple(range(x.ndim))}")
        self.inverse = tuple(int(i) for i in np.argsort(dims))
        return _lib.transpose(x, dims)

    def backward(self, grad: Any) -> Any:
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

    def backward(self, grad: Any) -> Any:
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
        self.axis = normalize_axis(axis, tensors[0].ndim, "cat")
        _check_same_shapes("cat", tensors, self.axis)
        self.sizes = [t.shape[self.axis] for t in tensors]
        return _lib.concatenate(list(tensors), axis=self.axis)

    def backward(self, grad: Any) -> Tuple[Any, ...]:
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
        self.axis = normalize_axis(axis, tensors[0].ndim + 1, "stack")
        _check_same_shapes("stack", tensors, None)
        return _lib.stack(list(tensors), axis=self.axis)

    def backward(self, grad: Any) -> Tuple[Any, ...]:
        g = grad.data
        prefix = (slice(None),) * self.axis
        return tuple(g[prefix + (i,)] if need else None for i, need in enumerate(self.needs_input_grad))


def pair(value: Any, what: str, op: str, minimum: int = 1) -> Tuple[int, int]:
    """An int or a pair of ints as a pair (height, width), each at least ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{op}: {what} must be an int or a pair of ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{op}: {what} {value!r} must be >= {minimum}")
    return out


class StridedWindows(Function):
    r"""Sliding windows of an (N, C, H, W) array as a strided view (no copy).

    Output shape :math:`(H_{out}, W_{out}, N, C, k_h, k_w)` with
    :math:`H_{out} = (H - d_h (k_h - 1) - 1) / s_h + 1`. ``kernel_size``,
    ``stride`` and ``dilation`` are ints or (height, width) pairs; window
    element ``(i, j)`` of output position ``(r, c)`` is pixel
    ``(r s_h + i d_h, c s_w + j d_w)``. The backward adds each of the
    :math:`k_h k_w` window offsets back into place: that many vectorised
    slice-adds, no loop over pixels or batch items.
    """

    def forward(self, x: Any, kernel_size: Any, stride: Any, dilation: Any = 1) -> Any:
        if x.ndim != 4:
            raise ShapeError(f"strided_windows: expected (N, C, H, W), got shape {tuple(x.shape)}")
        (kh, kw), (sh, sw) = (
            pair(kernel_size, "kernel_size", "strided_windows"),
            pair(stride, "stride", "strided_windows"),
        )
        dh, dw = pair(dilation, "dilation", "strided_windows")
        n, c, h, w = x.shape
        span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
        if span_h > h or span_w > w:
            raise ShapeError(
                f"strided_windows: a window spans {span_h} x {span_w} pixels (kernel_size {(kh, kw)}, dilation "
                f"{(dh, dw)}), more than the input's H x W = {h} x {w}"
            )
        ho, wo = (h - span_h) // sh + 1, (w - span_w) // sw + 1
        self.shape, self.k, self.s, self.d, self.out_hw = x.shape, (kh, kw), (sh, sw), (dh, dw), (ho, wo)
        strides = (sh * w, sw, c * h * w, h * w, dh * w, dw)
        return backend.as_strided(x, (ho, wo, n, c, kh, kw), strides)

    def backward(self, grad: Any) -> Any:
        g = grad.data
        (kh, kw), (sh, sw), (dh, dw) = self.k, self.s, self.d
        ho, wo = self.out_hw
        out = _lib.zeros(self.shape, dtype=g.dtype)
        # (Ho, Wo, N, C, kh, kw) -> (N, C, kh, kw, Ho, Wo): each (i, j) slice lands on a strided grid.
        g = backend.contiguous(_lib.transpose(g, (2, 3, 4, 5, 0, 1)))
        for i in range(kh):
            for j in range(kw):
                region = (
                    slice(None),
                    slice(None),
                    slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                    slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
                )
                out = backend.add_at(out, region, g[:, :, i, j])
        return out


class Roll(Function):
    """Roll elements by ``shifts`` along ``dims``; the backward rolls back by ``-shifts``."""

    def forward(self, x: Any, shifts: int, dims: Optional[int] = None) -> Any:
        if dims is not None:
            dims = normalize_axis(dims, x.ndim, "roll")
        self.shifts, self.dims = shifts, dims
        return _lib.roll(x, shifts, dims) if dims is not None else _lib.roll(x, shifts)

    def backward(self, grad: Any) -> Any:
        g = grad.data
        return _lib.roll(g, -self.shifts, self.dims) if self.dims is not None else _lib.roll(g, -self.shifts)
