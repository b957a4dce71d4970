"""CuPy over NCCL: the MPI tests' checks with AUTOGRAD_BACKEND=cupy. Skips without CuPy and a CUDA device.

NCCL needs one GPU per rank, so the two-rank tests need two devices; with one device the NCCL group is started
and checked at world size 1 (``mpiexec -n 1``).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from dist_helpers import group, load, max_diff, run_mpi, run_single


def cuda_devices() -> int:
    if importlib.util.find_spec("cupy") is None:
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no driver, no device: the tests skip
        return 0


DEVICES = cuda_devices()
pytestmark = pytest.mark.skipif(DEVICES == 0, reason="no CUDA device (or no CuPy): NCCL cannot run here")
two_gpus = pytest.mark.skipif(0 < DEVICES < 2, reason="NCCL needs one GPU per rank; this machine has one")


def test_nccl_group_starts_under_mpiexec(tmp_path):
    n = min(DEVICES, 2)
    res = run_mpi(["collectives", str(tmp_path)], n=n, backend="cupy")
    assert res.rc == 0, res
    for r in range(n):
        got = json.loads((tmp_path / f"collectives_rank{r}.json").read_text())
        assert (got["transport"], got["rank"], got["world"]) == ("nccl", r, n)
        base = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.testing.assert_array_equal(got["sum"], sum(base * (k + 1) for k in range(n)))
        np.testing.assert_array_equal(got["gather"], np.stack([base * (k + 1) for k in range(n)]))


@two_gpus
def test_nccl_two_ranks_match_one_process(tmp_path):
    res = run_mpi(["equivalence", str(tmp_path)], backend="cupy")
    assert res.rc == 0, res
    ref = run_single(["equivalence", str(tmp_path), "--reference"], backend="cupy")
    assert ref.rc == 0, ref
    for name in ("mlp", "mlp_tiny_bucket", "attention", "mlp_no_sync"):
        r0, r1 = (load(tmp_path / f"{name}_rank{r}.npz") for r in range(2))
        assert max_diff(group(r0, "final"), group(load(tmp_path / f"{name}_ref.npz"), "final")) < 1e-9, name
        assert max_diff(group(r0, "final"), group(r1, "final")) == 0.0, name
