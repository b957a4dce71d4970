"""The NumPy model of the kernels' tiling against the dense reference (runs without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cuda import tiling_model as tm


def dense(q, k, v, scale, causal, keep=None):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ k.transpose(0, 2, 1) * scale
    tq, tk = q.shape[1], k.shape[1]
    if causal:
        s = np.where(np.arange(tk)[None] > np.arange(tq)[:, None] + tk - tq, s - 1e9, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    pd = p * keep if keep is not None else p
    return p, pd, pd @ v


def dense_grads(q, k, v, do, scale, causal, keep=None):
    q, k, v, do = (x.astype(np.float64) for x in (q, k, v, do))
    p, pd, _ = dense(q, k, v, scale, causal, keep)
    dv = pd.transpose(0, 2, 1) @ do
    dpd = do @ v.transpose(0, 2, 1)
    dp = dpd * keep if keep is not None else dpd
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    return ds @ k * scale, ds.transpose(0, 2, 1) @ q * scale, dv


CASES = [
    (2, 70, 70, 32, False),  # query tail (64 + 6 rows)
    (2, 70, 70, 32, True),
    (1, 1, 64, 64, True),  # a single query seeing every key (decoding)
    (2, 5, 130, 64, True),  # Tq < Tk, key tail
    (2, 130, 90, 128, False),  # tile of 32 for head_dim 128, both tails
    (1, 96, 96, 128, True),
    (3, 1, 1, 32, False),
]


@pytest.mark.parametrize("bh,tq,tk,d,causal", CASES)
def test_model_matches_dense(bh, tq, tk, d, causal):
    rng = np.random.default_rng(tq * 1000 + tk)
    q, k, v, do = (
        rng.standard_normal(s).astype(np.float32) for s in ((bh, tq, d), (bh, tk, d), (bh, tk, d), (bh, tq, d))
    )
    scale = 1 / np.sqrt(d)
    out, lse = tm.forward(q, k, v, scale, causal)
    _, _, ref = dense(q, k, v, scale, causal)
    np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-5)
    grads = tm.backward(q, k, v, out, lse, do, scale, causal)
    for got, want in zip(grads, dense_grads(q, k, v, do, scale, causal)):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_model_dropout_matches_dense_with_the_same_mask(causal):
    bh, tq, tk, d, p, seed = 2, 40, 70, 32, 0.25, 1234
    rng = np.random.default_rng(7)
    q, k, v, do = (
        rng.standard_normal(s).astype(np.float32) for s in ((bh, tq, d), (bh, tk, d), (bh, tk, d), (bh, tq, d))
    )
    keep = tm.dropout_scale(
        seed,
        np.arange(bh, dtype=np.uint32)[:, None, None],
        np.arange(tq, dtype=np.uint32)[None, :, None],
        np.arange(tk, dtype=np.uint32)[None, None],
        p,
    )
    assert abs((keep > 0).mean() - (1 - p)) < 0.03
    scale = 1 / np.sqrt(d)
    out, lse = tm.forward(q, k, v, scale, causal, p, seed)
    np.testing.assert_allclose(out, dense(q, k, v, scale, causal, keep)[2], rtol=2e-4, atol=2e-5)
    grads = tm.backward(q, k, v, out, lse, do, scale, causal, p, seed)
    for got, want in zip(grads, dense_grads(q, k, v, do, scale, causal, keep)):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
    other, _ = tm.forward(q, k, v, scale, causal, p, seed + 1)
    assert not np.allclose(other, out)


def test_causal_tiles_above_the_diagonal_are_skipped():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 200, 64)).astype(np.float32)
    full, causal = {}, {}
    out, lse = tm.forward(q, q, q, 0.125, False, stats=full)
    out_c, lse_c = tm.forward(q, q, q, 0.125, True, stats=causal)
    assert full["tiles"] == 4 * 4 and causal["tiles"] == 1 + 2 + 3 + 4
    tm.backward(q, q, q, out_c, lse_c, q, 0.125, True, stats=causal)
    tm.backward(q, q, q, out, lse, q, 0.125, False, stats=full)
    assert causal["dkdv_tiles"] < full["dkdv_tiles"]


def test_philox_known_answers():
    # Random123's known-answer vectors for philox4x32-10 (first output word).
    assert int(tm.philox4x32_10(0, 0, 0, 0, 0)) == 0x6627E8D5
    assert int(tm.philox4x32_10(2**64 - 1, *(0xFFFFFFFF,) * 4)) == 0x408F276D
    assert int(tm.philox4x32_10(0x299F31D0A4093822, 0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)) == 0xD16CFE09
