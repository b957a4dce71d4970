"""Shared fixtures: the active backend, host conversion and optional PyTorch."""

from __future__ import annotations

import gc
import importlib.metadata
import os
import sys
import tracemalloc
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


FAKE_DISTRIBUTION = "autograd-fake-kernel-plugins"


@pytest.fixture
def fake_plugins(monkeypatch):
    """The registry holding core's references and the fake plugin distribution (tests/fake_plugins) only, enabled.

    Whatever other plugins are installed, these tests see the same implementations; the call counter starts
    empty and the registry is restored afterwards.
    """
    try:
        importlib.metadata.distribution(FAKE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the fake plugin distribution is not installed (nox installs packages/autograd-core/tests/fake_plugins)"
        )
    from autograd.kernels import registry

    monkeypatch.setenv("AUTOGRAD_FAKE_PLUGINS", "1")
    monkeypatch.delenv("AUTOGRAD_KERNELS", raising=False)
    with registry.isolated(plugins=FAKE_DISTRIBUTION):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            registry.load_failures()
        import fake_kernel_plugins

        fake_kernel_plugins.calls.clear()
        yield fake_kernel_plugins


@pytest.fixture
def core_kernels(monkeypatch):
    """The registry holding core's own implementations only (whatever plugins are installed), restored afterwards."""
    from autograd.kernels import registry

    monkeypatch.delenv("AUTOGRAD_KERNELS", raising=False)
    with registry.isolated(plugins="autograd-core"):
        yield registry


def _live_bytes() -> int:
    """Bytes the backend's arrays hold right now."""
    gc.collect()
    if backend.BACKEND == "mlx":
        backend.lib.eval(backend.lib.zeros(1))
        return int(backend.lib.get_active_memory())
    if backend.BACKEND == "cupy":
        return int(backend.lib.get_default_memory_pool().used_bytes())
    return tracemalloc.get_traced_memory()[0]


@pytest.fixture
def memory():
    tracemalloc.start()
    yield _live_bytes
    tracemalloc.stop()
