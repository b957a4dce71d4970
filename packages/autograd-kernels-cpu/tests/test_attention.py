"""Attention forward and backward against core's tiled kernel; the dropout hash against core's keep_scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from autograd_kernels_cpu import attention
from cpu_helpers import assert_close, assert_identical

from autograd.kernels import tiled
from autograd.kernels.tiled import TiledAttentionFunction
from autograd.tensor import Tensor


@pytest.mark.parametrize("seed, p", [(0, 0.1), (12345678901, 0.3), (7, 0.5), (2**40 + 3, 0.9)])
def test_keep_scale_bit_identical(seed, p, dtype):
    mine = attention.keep_scale(seed, 2, 3, range(5, 40), range(100, 170), p, dtype)
    assert_identical(mine, tiled.keep_scale(seed, 2, 3, range(5, 40), range(100, 170), p, dtype))


CASES = [
    # B, H, Tq, Tk, D, Dv, causal, mask, dropout
    (2, 3, 70, 70, 16, 16, True, False, 0.0),
    (1, 2, 50, 90, 8, 12, True, False, 0.2),  # Tq < Tk: bottom-right causal alignment
    (2, 2, 90, 50, 8, 8, True, False, 0.0),  # Tq > Tk: the first 40 rows see no key
    (1, 2, 33, 65, 8, 8, False, True, 0.1),
    (2, 1, 300, 300, 32, 32, True, False, 0.0),  # several blocks each way, with tails
    (1, 1, 17, 17, 4, 4, False, False, 0.0),
    (1, 2, 260, 270, 8, 8, False, False, 0.3),
    (3, 2, 40, 40, 8, 8, True, False, 0.1),  # 6 heads: uneven split across threads (when there are 4+)
]


@pytest.mark.parametrize("case", CASES)
def test_matches_tiled_reference(case, dtype, rng):
    b, h, tq, tk, d, dv, causal, use_mask, p = case
    q = rng.standard_normal((b, h, tq, d)).astype(dtype)
    k = rng.standard_normal((b, h, tk, d)).astype(dtype)
    v = rng.standard_normal((b, h, tk, dv)).astype(dtype)
    g = rng.standard_normal((b, h, tq, dv)).astype(dtype)
    mask = (rng.random((1, h, tq, tk)) < 0.3).astype(dtype) if use_mask else None  # 1.0 forbids
    scale, seed = 1 / math.sqrt(d), 42
    tq_, tk_, tv_ = Tensor(q), Tensor(k), Tensor(v)
    ref = TiledAttentionFunction.apply(
        tq_, tk_, tv_, mask=mask, is_causal=causal, dropout_prob=p, scale=scale, seed=seed, block=32
    )
    ref.backward(g)
    bias = None if mask is None else mask * dtype.type(-1e9)
    out, lse = attention.attention_forward(q, k, v, scale, causal, bias, p, seed)
    assert_close(out, ref.data, dtype, scale=5.0)
    dq, dk, dv_ = attention.attention_backward(q, k, v, out, lse, g, scale, causal, bias, p, seed)
    assert_close(dq, tq_.grad.data, dtype, scale=10.0)
    assert_close(dk, tk_.grad.data, dtype, scale=10.0)
    assert_close(dv_, tv_.grad.data, dtype, scale=10.0)
    if causal and tq > tk:
        blind = tq - tk  # rows 0..blind-1 see no key at all
        assert not out[:, :, :blind].any() and np.isinf(lse[:, :, :blind]).all() and not dq[:, :, :blind].any()


def test_bias_broadcasts(rng):
    q = rng.standard_normal((2, 3, 20, 8)).astype(np.float32)
    bias = np.where(rng.random((20, 20)) < 0.5, -1e9, 0.0).astype(np.float32)
    np.fill_diagonal(bias, 0.0)
    full = np.broadcast_to(bias, (2, 3, 20, 20)).copy()
    a, lse_a = attention.attention_forward(q, q, q, 0.3, False, bias)
    b, lse_b = attention.attention_forward(q, q, q, 0.3, False, full)
    assert_identical(a, b)
    assert_identical(lse_a, lse_b)
    with pytest.raises(ValueError, match="does not broadcast"):
        attention.attention_forward(q, q, q, 0.3, False, np.zeros((7, 20), np.float32))


def test_memory_stays_linear(rng):
    # The score buffers are (B, H, block, T) and (B, H, T, block): no (B, H, T, T) array is ever allocated.
    import tracemalloc

    q = rng.standard_normal((1, 1, 2048, 16)).astype(np.float32)
    tracemalloc.start()
    out, lse = attention.attention_forward(q, q, q, 0.25, True)
    attention.attention_backward(q, q, q, out, lse, q, 0.25, True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2048 * 2048 * 4 / 2, peak  # well under one dense (T, T) float32 score matrix


def test_one_thread_and_many_agree(rng, monkeypatch):
    # Heads split across threads (BLAS at one thread each) give what one thread doing them all gives (to the
    # last bits only if BLAS rounds alike at every thread count, as OpenBLAS does).
    q = rng.standard_normal((2, 3, 50, 8)).astype(np.float32)
    monkeypatch.setattr(attention, "_THREADED_MIN_KEYS", 1)  # split heads at this small size too
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(attention, "num_threads", lambda threads=threads: threads)
        out, lse = attention.attention_forward(q, q, q, 0.3, True, None, 0.2, 5)
        results.append((out, lse, *attention.attention_backward(q, q, q, out, lse, q, 0.3, True, None, 0.2, 5)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_heads_are_split_across_threads_only_for_long_sequences(rng, monkeypatch):
    calls = []
    monkeypatch.setattr(attention, "num_threads", lambda: 2)
    monkeypatch.setattr(attention, "_blas_single_threaded", lambda: calls.append("limited") or _Null())
    q = rng.standard_normal((1, 2, 64, 8)).astype(np.float32)
    attention.attention_forward(q, q, q, 0.3, True)
    assert calls == []  # 64 keys: heads in order, BLAS keeps its threads
    long = rng.standard_normal((1, 2, attention._THREADED_MIN_KEYS, 8)).astype(np.float32)
    attention.attention_forward(long, long, long, 0.3, True)
    assert calls == ["limited"]


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.mark.parametrize("causal, with_bias, p, tq, tk", [(True, False, 0.0, 40, 40), (False, True, 0.2, 24, 37)])
def test_all_heads_at_once_equals_head_by_head(rng, monkeypatch, causal, with_bias, p, tq, tk):
    # Short sequences run every head in one batched product; the result is the blocked path's, bit for bit.
    q = rng.standard_normal((2, 3, tq, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, 3, tk, 8)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((2, 3, tq, 8)).astype(np.float32)
    bias = np.where(rng.random((1, 3, tq, tk)) > 0.8, -1e9, 0.0).astype(np.float32) if with_bias else None
    results = []
    for limit in (attention._ONE_BLOCK_BYTES, 0):  # batched, then head by head
        monkeypatch.setattr(attention, "_ONE_BLOCK_BYTES", limit)
        out, lse = attention.attention_forward(q, k, v, 0.3, causal, bias, p, 7)
        results.append((out, lse, *attention.attention_backward(q, k, v, out, lse, g, 0.3, causal, bias, p, 7)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("with_bias, p, tq, tk", [(False, 0.0, 96, 96), (True, 0.2, 80, 100), (False, 0.0, 100, 70)])
def test_causal_one_block_split_matches_head_by_head(rng, monkeypatch, with_bias, p, tq, tk):
    # Causal short sequences split their query rows, skipping the masked quarter of the products; the sums
    # over keys and query rows are then grouped differently, so the match is to float rounding.
    monkeypatch.setattr(attention, "_CAUSAL_SPLIT_WORK", 1)  # small shapes split too
    assert attention._row_parts(tq, tk, 8, True)[0] == (tq // 2, tq, tk)  # split, the later half first
    q = rng.standard_normal((2, 3, tq, 8)).astype(np.float32)
    k, v = (rng.standard_normal((2, 3, tk, 8)).astype(np.float32) for _ in range(2))
    g = rng.standard_normal((2, 3, tq, 8)).astype(np.float32)
    bias = np.where(rng.random((1, 3, tq, tk)) > 0.8, -1e9, 0.0).astype(np.float32) if with_bias else None
    results = []
    for limit in (attention._ONE_BLOCK_BYTES, 0):  # batched and split, then head by head
        monkeypatch.setattr(attention, "_ONE_BLOCK_BYTES", limit)
        out, lse = attention.attention_forward(q, k, v, 0.3, True, bias, p, 7)
        results.append((out, lse, *attention.attention_backward(q, k, v, out, lse, g, 0.3, True, bias, p, 7)))
    for name, a, b in zip(("out", "lse", "dq", "dk", "dv"), *results):
        finite = np.isfinite(b)
        np.testing.assert_array_equal(finite, np.isfinite(a), err_msg=name)  # rows that see no key: lse inf
        np.testing.assert_allclose(a[finite], b[finite], rtol=1e-5, atol=1e-5 * np.abs(b[finite]).max(), err_msg=name)


def test_causal_split_only_where_the_halves_are_big_enough():
    assert attention._row_parts(128, 128, 32, True) == [(0, 128, 128)]  # the GPT benchmark's heads
    assert attention._row_parts(128, 128, 64, True) == [(64, 128, 128), (0, 64, 64)]
    assert attention._row_parts(128, 160, 64, True) == [(64, 128, 160), (0, 64, 96)]  # bottom-right aligned
    assert attention._row_parts(256, 256, 64, False) == [(0, 256, 256)]
