"""The package imports cheaply, exports every kernel, and follows BLAS's thread setting."""

from __future__ import annotations

import os
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


def test_numba_runs_on_the_workqueue_layer_and_threads_take_turns(monkeypatch):
    # The layer is chosen so the package never sets OMP_WAIT_POLICY (which would change every OpenMP library in
    # the process); concurrent Python threads calling parallel kernels must take turns, not abort.
    import threading

    import autograd_kernels_cpu as K
    import numpy as np

    before = os.environ.get("OMP_WAIT_POLICY")
    monkeypatch.setattr(_threads, "PARALLEL_FLOOR", 0)  # the parallel variant at this size
    x = np.random.default_rng(0).standard_normal((512, 2048)).astype(np.float32)
    results = []

    def work():
        results.append(K.gelu_forward(x))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, results[0]) for r in results)
    import numba

    if not os.environ.get("NUMBA_THREADING_LAYER"):
        assert numba.threading_layer() == "workqueue"
    assert os.environ.get("OMP_WAIT_POLICY") == before


def test_no_job_below_the_floor_runs_in_parallel(monkeypatch):
    monkeypatch.setattr(_threads, "num_threads", lambda: 2)
    assert _threads.chunks(1000, _threads.PARALLEL_FLOOR - 1, min_work=1) == 1
    assert _threads.chunks(1000, _threads.PARALLEL_FLOOR, min_work=1) == 2
