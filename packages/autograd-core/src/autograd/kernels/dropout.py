"""The attention dropout decision of core's kernels, as a public reference function.

An attention implementation with ``dropout_prob = p > 0`` multiplies each
probability by ``keep / (1 - p)``, where the keep decision of element
``(b, h, i, j)`` (batch ``b``, head ``h``, query row ``i``, key column ``j``,
all counted from 0 in the full (B, H, Tq, Tk) score matrix, whatever tile a
kernel is working on) depends on ``seed`` and that position only. That lets a
backward regenerate the decisions instead of storing them. Core's dense and
tiled implementations decide with a counter-based hash, in unsigned 32-bit
arithmetic (wrapping), with ``mix`` the lowbias32 integer hash::

    stream = mix(seed + 0x9E3779B9 * (b * H + h + 1))
    x      = mix(mix(stream ^ mix(i + 1)) + j * 0x85EBCA6B)
    keep   = (x >> 8) / 2**24 >= p

A plugin that wants the same decisions as core (so switching kernels does not
change a seeded run) calls :func:`keep_mask` or :func:`keep_scale` on its
tile, or implements the formula above; the conformance suite only requires
that decisions be a function of the seed and the position.
"""

from __future__ import annotations

from typing import Any

from autograd import backend
from autograd.backend import lib as _lib

__all__ = ["mix", "keep_mask", "keep_scale"]


def mix(x: Any) -> Any:
    """lowbias32, a 32-bit integer hash, element-wise on a uint32 array."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


def keep_mask(seed: int, batch: int, heads: int, rows: range, cols: range, p: float) -> Any:
    """Bool (batch, heads, len(rows), len(cols)): True where element (b, h, i, j) is kept (see the module docstring)."""
    u32 = backend.dtype("uint32")
    bh = _lib.arange(batch * heads, dtype=u32).reshape(batch, heads, 1, 1)
    stream = mix(_lib.asarray(int(seed) & 0xFFFFFFFF, dtype=u32) + (bh + 1) * 0x9E3779B9)
    i = _lib.arange(rows.start, rows.stop, dtype=u32).reshape(-1, 1)
    j = _lib.arange(cols.start, cols.stop, dtype=u32).reshape(1, -1)
    x = mix(mix(stream ^ mix(i + 1)) + j * 0x85EBCA6B)
    return (x >> 8).astype(backend.dtype("float32")) * (1.0 / (1 << 24)) >= p


def keep_scale(seed: int, batch: int, heads: int, rows: range, cols: range, p: float, dtype: Any) -> Any:
    """``keep / (1 - p)`` as ``dtype`` for the (batch, heads, rows, cols) tile."""
    return _lib.where(keep_mask(seed, batch, heads, rows, cols, p), 1.0 / (1.0 - p), 0.0).astype(dtype)
