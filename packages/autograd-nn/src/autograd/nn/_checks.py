"""Input checks that name the layer and both shapes."""

from __future__ import annotations

from typing import Any, Dict

from autograd.tensor import ShapeError, Tensor


def as_input(x: Any) -> Tensor:
    """Wrap arrays and array-likes as constant Tensors."""
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)


def options(layer: str, given: Dict[str, Any], **known: Any) -> Dict[str, Any]:
    """The keyword options a layer takes (``known``, with their defaults) overridden by ``given``.

    Raises:
        TypeError: ``given`` holds a keyword the layer does not take; the message names it and lists the
            ones it does (as Python does for a misspelt argument, and ``Adam(amsgrad=True)`` here).
    """
    unknown = sorted(set(given) - set(known))
    if unknown:
        takes = ", ".join(sorted(known)) if known else "none"
        raise TypeError(f"{layer} got unexpected keyword arguments {unknown} (keyword options it takes: {takes})")
    return {**known, **given}


def check(ok: bool, layer: Any, expected: str, x: Tensor) -> None:
    """Raise ShapeError('<Layer>: expected <expected>, got shape <shape>') unless ``ok``."""
    if not ok:
        raise ShapeError(f"{type(layer).__name__}: expected input {expected}, got shape {x.shape}")
