"""Helpers shared by autograd-core's tests."""

from __future__ import annotations

import numpy as np

from autograd import backend
from autograd.tensor import Tensor


def to_np(x):
    """Host float64 copy of a Tensor or backend array."""
    # Only a Tensor is unwrapped: a raw CuPy array's .data is its MemoryPointer.
    data = x.data if isinstance(x, Tensor) else x
    return np.asarray(backend.to_numpy(data), dtype=np.float64)
