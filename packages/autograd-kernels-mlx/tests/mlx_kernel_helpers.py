"""Helpers for autograd-kernels-mlx's tests."""

import pytest

from autograd import backend

needs_mlx = pytest.mark.skipif(backend.BACKEND != "mlx", reason="runs with AUTOGRAD_BACKEND=mlx")
