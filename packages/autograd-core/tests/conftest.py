"""Shared fixtures: the active backend, host conversion and optional PyTorch."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import warnings

import pytest

from autograd import backend
from autograd.testing import import_torch

# Test modules import small helpers from core_helpers.py beside this file.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def torch():
    """PyTorch, or a skip (see autograd.testing.import_torch)."""
    return import_torch()


@pytest.fixture(autouse=True)
def _seed():
    backend.seed(0)
    yield


@pytest.fixture
def fake_plugins(monkeypatch):
    """The fake plugin distribution (tests/fake_plugins), enabled and rediscovered; its call counter cleared."""
    try:
        importlib.metadata.distribution("autograd-fake-attention-plugins")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the fake plugin distribution is not installed (nox installs packages/autograd-core/tests/fake_plugins)"
        )
    from autograd.kernels import registry

    monkeypatch.setenv("AUTOGRAD_FAKE_PLUGINS", "1")
    monkeypatch.delenv("AUTOGRAD_ATTENTION", raising=False)
    monkeypatch.delenv("AUTOGRAD_KERNELS", raising=False)
    registry.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        registry.implementations()
    import fake_attention_plugins

    fake_attention_plugins.calls.clear()
    yield fake_attention_plugins
    registry.reset()
