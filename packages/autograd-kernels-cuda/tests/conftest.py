"""autograd-kernels-cuda tests: nvcc compile checks and the NumPy tiling model run anywhere; kernels need a GPU."""

from __future__ import annotations

import os
import sys

import pytest

from autograd import backend

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    backend.seed(0)
    yield
