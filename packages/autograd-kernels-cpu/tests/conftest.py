"""autograd-kernels-cpu tests: every kernel against core's NumPy reference (autograd.kernels.reference,
the Function classes of autograd.functional, autograd.kernels.tiled), float32 and float64."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

os.environ.setdefault("AUTOGRAD_BACKEND", "numpy")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return np.dtype(request.param)
