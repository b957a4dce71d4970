"""Input checks that name the layer and both shapes."""

from __future__ import annotations

from typing import Any

from autograd.tensor import ShapeError, Tensor


def as_input(x: Any) -> Tensor:
    """Wrap arrays and array-likes as constant Tensors."""
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)


def check(ok: bool, layer: Any, expected: str, x: Tensor) -> None:
    """Raise ShapeError('<Layer>: expected <expected>, got shape <shape>') unless ``ok``."""
    if not ok:
        raise ShapeError(f"{type(layer).__name__}: expected input {expected}, got shape {x.shape}")
