"""Helpers shared by autograd-core's tests."""

from __future__ import annotations

import numpy as np

from autograd import backend


def to_np(x):
    """Host float64 copy of a Tensor or backend array."""
    data = getattr(x, "data", x)
    return np.asarray(backend.to_numpy(data), dtype=np.float64)
