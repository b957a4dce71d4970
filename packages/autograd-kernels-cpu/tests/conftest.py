"""autograd-kernels-cpu tests: every kernel against core's NumPy reference (the Functions of autograd.ops
and autograd.kernels.tiled), float32 and float64.

The kernels are NumPy-backend kernels: on another backend (the nox matrix also installs the package
next to MLX, where it must simply stay out of the way) the reference comparisons are skipped with the
reason, and only the backend-independent tests (the exp/tanh helpers, the package and thread policy) run.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("AUTOGRAD_BACKEND", "numpy")

# test modules that build core's reference graphs on the active backend
_NEED_NUMPY_BACKEND = {"test_pointwise", "test_rows", "test_adam", "test_windows", "test_attention"}


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    from autograd import backend

    if backend.BACKEND == "numpy":
        return
    skip = pytest.mark.skip(
        reason=f"the kernels are for the NumPy backend; their reference comparisons need AUTOGRAD_BACKEND=numpy "
        f"(this run uses {backend.BACKEND})"
    )
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in _NEED_NUMPY_BACKEND:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return np.dtype(request.param)
