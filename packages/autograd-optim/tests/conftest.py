"""Shared fixtures for autograd-optim's tests."""

from __future__ import annotations

import os
import sys

import pytest

from autograd import backend

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torch():
    """PyTorch when installed; the parity session sets AUTOGRAD_REQUIRE_TORCH so it cannot skip."""
    if os.environ.get("AUTOGRAD_REQUIRE_TORCH"):
        import torch as _torch
    else:
        _torch = pytest.importorskip("torch", reason="PyTorch is not installed (parity tests run in `nox -s parity`)")
    _torch.set_default_dtype(_torch.float64)
    return _torch


@pytest.fixture(autouse=True)
def _seed():
    backend.seed(0)
    yield
