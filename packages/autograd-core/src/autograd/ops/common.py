"""Argument checks the ops share: axes, shapes and dims, with errors that name the op and the values."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from autograd.engine import ShapeError, TensorTypeError

__all__ = ["normalize_axis", "normalize_axes", "flatten_shape", "resolve_shape", "reduced_shape"]


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    """``axis`` as a non-negative int for a tensor of ``ndim`` dims (a 0-d tensor has axis 0 and -1)."""
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TensorTypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor with ndim {ndim}")
    return int(axis) % max(ndim, 1)


def normalize_axes(axis: Any, ndim: int, op: str) -> Optional[Tuple[int, ...]]:
    """None, an int or a tuple of ints as a tuple of distinct non-negative axes (None stays None: every axis)."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(normalize_axis(a, ndim, op) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r} for a tensor with ndim {ndim}")
    return out


def flatten_shape(shape: Sequence[Any]) -> Tuple[int, ...]:
    """``(2, 3)``, ``((2, 3),)`` and ``(2, (3,))`` all as ``(2, 3)``: the spellings ``view``/``reshape`` accept."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = []
    for s in shape:
        if isinstance(s, (tuple, list)):
            out.extend(int(v) for v in s)
        else:
            out.append(int(s))
    return tuple(out)


def resolve_shape(new_shape: Tuple[int, ...], size: int, old: Tuple[int, ...], op: str) -> Tuple[int, ...]:
    """``new_shape`` with its one ``-1`` worked out; raises ShapeError naming both shapes when it cannot fit."""
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


def reduced_shape(shape: Tuple[int, ...], axes: Optional[Tuple[int, ...]]) -> Tuple[int, ...]:
    """``shape`` with the reduced ``axes`` (every axis when None) kept as size 1: what a reduction broadcasts from."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))
