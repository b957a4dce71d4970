"""The package imports cheaply, exports every kernel, and follows BLAS's thread setting."""

from __future__ import annotations

import subprocess
import sys

import autograd_kernels_cpu
import pytest
from autograd_kernels_cpu import _threads


def test_import_does_not_load_numba():
    code = "import sys, autograd_kernels_cpu; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", autograd_kernels_cpu.__all__)
def test_every_export_resolves(name):
    assert callable(getattr(autograd_kernels_cpu, name))


def test_unknown_name():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        autograd_kernels_cpu.nope  # noqa: B018


def test_thread_count_follows_blas(monkeypatch):
    import numba

    monkeypatch.setattr(_threads, "_from_threadpoolctl", lambda: None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert _threads.refresh() == 1
        assert numba.get_num_threads() == 1
        assert _threads.chunks(1000, 1e9) == 1  # one thread: always serial
        monkeypatch.delenv("OMP_NUM_THREADS")
        for name in _threads._ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        expected = min(numba.config.NUMBA_NUM_THREADS, __import__("os").cpu_count() or 1)
        assert _threads.refresh() == expected
    finally:
        monkeypatch.undo()
        _threads.refresh()


def test_small_work_stays_serial():
    assert _threads.chunks(10, 100.0) == 1
    assert _threads.chunks(1, 1e12) == 1
    if _threads.num_threads() > 1:
        assert _threads.chunks(1000, 1e9) == _threads.num_threads()
