"""Index checks for the backends whose arrays do not check their own (MLX reads other memory, CuPy wraps around).

:func:`check_index` applies NumPy's bounds rules to an index before it reaches such a backend. The backends
call it from their ``check_index`` method (see :mod:`autograd.backend`); the range of integer index arrays
goes through the backend's ``check_range``, which on CuPy runs on the device and reports later (see
:meth:`autograd.backend.CupyBackend.check_range`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["check_index"]

_OUT_OF_BOUNDS = "index {} is out of bounds for axis {} with size {}"


def check_index(be: Any, shape: Sequence[int], index: Any) -> None:
    """NumPy's bounds rules, for backends that do not check (MLX reads other memory, CuPy wraps around)."""
    shape = tuple(int(s) for s in shape)
    items = index if isinstance(index, tuple) else (index,)

    def width(item: Any) -> int:
        if item is None or item is Ellipsis or isinstance(item, (bool, np.bool_)):
            return 0
        if hasattr(item, "dtype") and hasattr(item, "ndim") and be.dtype_name(item.dtype) == "bool":
            return max(item.ndim, 1)
        return 1

    used = sum(width(i) for i in items)
    if used > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}: {used} axes indexed")
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    axis = 0
    for item in items:
        if item is Ellipsis:
            axis += len(shape) - used
            continue
        step = width(item)
        if step == 0 or isinstance(item, slice):
            axis += step
            continue
        if isinstance(item, (int, np.integer)):
            n = shape[axis]
            if not -n <= int(item) < n:
                raise IndexError(_OUT_OF_BOUNDS.format(int(item), axis, n))
        elif hasattr(item, "dtype"):
            kind = be.dtype_name(item.dtype)
            if kind == "bool":
                want = shape[axis : axis + step]
                if tuple(item.shape) != want:
                    raise IndexError(
                        f"boolean index of shape {tuple(item.shape)} does not match the indexed axes {want} "
                        f"of a tensor of shape {shape}"
                    )
            elif "int" in kind:
                n, ax = shape[axis], axis
                be.check_range(item, -n, n, lambda bad, n=n, ax=ax: IndexError(_OUT_OF_BOUNDS.format(bad, ax, n)))
            else:
                raise IndexError(f"arrays used as indices must be of integer or bool dtype, got {kind}")
        axis += step
