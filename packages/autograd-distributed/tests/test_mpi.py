"""Two ranks under ``mpiexec -n 2`` on NumPy (MPI): equivalence with one process, collectives, checkpoints, faults.

Each test (or module fixture) starts the installed package in fresh processes with a hard time limit, so a hang
fails instead of stalling the run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dist_helpers import group, load, max_diff, run_mpi, run_single

# float64 models: the 2-rank average and the one-process batch differ only by rounding, ~1e-16 per step; Adam's
# normalization amplifies that to ~1e-12 over the attention run. A missing average changes the result by ~1e-1.
TOL = 1e-9
CONFIGS = ["mlp", "mlp_tiny_bucket", "mlp_one_bucket", "mlp_no_overlap", "attention", "mlp_no_sync", "mlp_unused"]


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    out = tmp_path_factory.mktemp("equivalence")
    res = run_mpi(["equivalence", str(out)])
    assert res.rc == 0, res
    ref = run_single(["equivalence", str(out), "--reference"])
    assert ref.rc == 0, ref
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_two_ranks_match_one_process_with_twice_the_batch(equivalence, name):
    ranks = [load(equivalence / f"{name}_rank{r}.npz") for r in range(2)]
    ref = load(equivalence / f"{name}_ref.npz")
    final0, final1 = group(ranks[0], "final"), group(ranks[1], "final")
    assert max_diff(final0, group(ref, "final")) < TOL
    assert all(np.array_equal(final0[k], final1[k]) for k in final0), "the replicas diverged"
    # The comparison can fail: training moved the weights, and one rank's half batch alone lands elsewhere.
    assert max_diff(final0, group(ranks[0], "wrapped")) > 1e-2
    assert max_diff(group(ref, "half"), group(ref, "final")) > 1e-3


def test_parameters_broadcast_from_rank0_at_wrap(equivalence):
    r0, r1 = (load(equivalence / f"mlp_rank{r}.npz") for r in range(2))
    assert max_diff(group(r0, "before"), group(r1, "before")) > 0.1  # different seeds per rank
    for wrapped in (group(r0, "wrapped"), group(r1, "wrapped")):
        before0 = group(r0, "before")
        assert all(np.array_equal(wrapped[k], before0[k]) for k in before0)


def test_bucket_boundaries_and_rebuild_in_arrival_order(equivalence):
    info = json.loads((equivalence / "buckets_rank0.json").read_text())
    assert info["transport"] == "mpi" and info["world"] == 2
    b, arrivals = info["buckets"], info["arrivals"]
    # At wrap: reverse registration order; a cap below one parameter gives each its own bucket, a huge cap one.
    assert b["mlp_tiny_bucket"]["initial"] == [["fc2.bias"], ["fc2.weight"], ["fc1.bias"], ["fc1.weight"]]
    assert b["mlp_one_bucket"]["initial"] == [["fc2.bias", "fc2.weight", "fc1.bias", "fc1.weight"]]
    # After the first step: the order in which backward delivered the gradients.
    assert b["mlp_tiny_bucket"]["rebuilt"] == [[name] for name in arrivals["mlp"]]
    assert b["mlp_one_bucket"]["rebuilt"] == [arrivals["mlp"]]
    attention = b["attention"]["rebuilt"]
    assert len(attention) >= 2 and sum(attention, []) == arrivals["attention"]  # a 2 KiB cap splits 10 parameters
    assert json.loads((equivalence / "buckets_rank1.json").read_text())["buckets"] == b


def test_unused_parameters_are_reduced_as_zeros(equivalence):
    r0 = load(equivalence / "mlp_unused_rank0.npz")
    final, wrapped = group(r0, "final"), group(r0, "wrapped")
    for k in ("spare.weight", "spare.bias"):
        assert np.array_equal(final[k], wrapped[k]), k  # zero gradient, plain SGD: unchanged


def test_collectives_and_sampler_defaults(tmp_path):
    res = run_mpi(["collectives", str(tmp_path)])
    assert res.rc == 0, res
    got = [json.loads((tmp_path / f"collectives_rank{r}.json").read_text()) for r in range(2)]
    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    per_rank = [base * (r + 1) for r in range(2)]
    for r, g in enumerate(got):
        assert (g["transport"], g["rank"], g["world"], g["local_rank"]) == ("mpi", r, 2, r)
        np.testing.assert_array_equal(g["sum"], per_rank[0] + per_rank[1])
        np.testing.assert_array_equal(g["mean_tensor"], (per_rank[0] + per_rank[1]) / 2)
        np.testing.assert_array_equal(g["max"], np.maximum(per_rank[0], per_rank[1]))
        assert g["int_sum"] == [1, 20]
        np.testing.assert_array_equal(g["broadcast"], per_rank[1])
        np.testing.assert_array_equal(g["gather"], np.stack(per_rank))
        assert g["objects"] == [{"rank": 0, "text": "x"}, {"rank": 1, "text": "xx"}]
        assert g["input_unchanged"]
    for key in ("shard_epoch0", "shard_epoch1"):
        a, b = got[0][key], got[1][key]
        assert len(a) == len(b) == 6 and set(a) | set(b) == set(range(11))  # 11 samples padded to 12
    assert got[0]["shard_epoch0"] != got[0]["shard_epoch1"]


def test_checkpoint_resume_matches_the_uninterrupted_run(tmp_path):
    full = run_mpi(["checkpoint", str(tmp_path), "full"])
    assert full.rc == 0, full
    meta = json.loads((tmp_path / "ckpt" / "meta.json").read_text())
    assert meta["extra"] == {"step": 7} and meta["sampler"]["epoch"] == 1 and meta["world_size"] == 2
    resumed = run_mpi(["checkpoint", str(tmp_path), "resume"])
    assert resumed.rc == 0, resumed
    want = group(load(tmp_path / "full_rank0.npz"), "final")
    for r in range(2):
        got = group(load(tmp_path / f"resumed_rank{r}.npz"), "final")
        assert all(np.array_equal(got[k], want[k]) for k in want), f"rank {r} differs from the uninterrupted run"


def test_a_rank_that_raises_ends_the_job_promptly(tmp_path):
    res = run_mpi(["fault", str(tmp_path), "raise"], timeout=60)
    assert res.rc != 0, res
    assert res.seconds < 30, res
    assert "rank 1 of 2 failed" in res.err and "RuntimeError: deliberate failure on rank 1" in res.err, res


def test_ranks_with_different_models_get_a_clear_error(tmp_path):
    res = run_mpi(["fault", str(tmp_path), "mismatch"], timeout=60)
    assert res.rc != 0 and res.seconds < 30, res
    assert (
        "the ranks do not hold the same model; first difference at entry #0: rank 0 has parameter 'fc1.weight' of "
        "shape (6, 16) float64, rank 1 has parameter 'fc1.weight' of shape (6, 17) float64"
    ) in res.err, res


def test_a_collective_past_the_timeout_fails_naming_it(tmp_path):
    res = run_mpi(["fault", str(tmp_path), "timeout"], timeout=60)
    assert res.rc != 0, res
    assert res.seconds < 30, res  # rank 1 sleeps 60 s: the job ended on rank 0's 1.5 s timeout
    assert "CollectiveTimeoutError: all_reduce('sum') did not complete within 1.5 s on rank 0 of 2" in res.err, res


def test_forgetting_synchronize_with_unused_parameters_is_an_error(tmp_path):
    res = run_mpi(["fault", str(tmp_path), "unused"], timeout=60)
    assert res.rc != 0 and res.seconds < 30, res
    assert "got no gradient in its backward (first: ['spare.bias', 'spare.weight'])" in res.err, res
    assert "Call model.synchronize() after backward()" in res.err, res
