"""autograd-kernels-mlx tests: most need the mlx backend; on another backend the plugin must decline."""

from __future__ import annotations

import os
import sys

import pytest

from autograd import backend


@pytest.fixture(autouse=True)
def _seed():
    backend.seed(0)
    yield


sys.path.insert(0, os.path.dirname(__file__))
