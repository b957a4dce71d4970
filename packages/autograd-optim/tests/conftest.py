"""Shared fixtures for autograd-optim's tests."""

from __future__ import annotations

import os
import sys

import pytest

from autograd import backend
from autograd.testing import import_torch

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torch():
    """PyTorch, or a skip (see autograd.testing.import_torch)."""
    return import_torch()


@pytest.fixture(autouse=True)
def _seed():
    backend.seed(0)
    yield
