"""LayerNorm, softmax, log-softmax and cross entropy against core's reference Functions."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cpu import loss, norm, softmax
from cpu_helpers import assert_close

from autograd import functional as F
from autograd.ops.norm import LayerNormFunction
from autograd.tensor import Tensor

SHAPES = [(1, 1), (3, 7), (130, 33), (1024, 128)]  # (1024, 128) takes the parallel path on 2+ threads


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w, b = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    tx, tw, tb = Tensor(x), Tensor(w), Tensor(b)
    ref = LayerNormFunction.apply(tx, tw, tb, eps=1e-5)
    ref.backward(g)
    y, mean, rstd = norm.layer_norm_forward(x, w, b, 1e-5)
    assert mean.shape == rstd.shape == (shape[0],)
    assert_close(y, ref.data, dtype, scale=4.0)
    dx, dw, db = norm.layer_norm_backward(g, x, w, mean, rstd, True, True, True)
    assert_close(dx, tx.grad.data, dtype, scale=4.0)
    # dw and db sum over rows: the reference sums pairwise in the dtype, the kernel in float64.
    assert_close(dw, tw.grad.data, dtype, scale=50.0)
    assert_close(db, tb.grad.data, dtype, scale=50.0)


def test_layer_norm_only_what_is_asked(rng):
    x = rng.standard_normal((5, 8)).astype(np.float32)
    w, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    _, mean, rstd = norm.layer_norm_forward(x, w, b, 1e-5)
    dx, dw, db = norm.layer_norm_backward(x, x, w, mean, rstd, False, True, False)
    assert dx is None and db is None and dw.shape == (8,)
    dx, dw, db = norm.layer_norm_backward(x, x, w, mean, rstd, True, False, False)
    assert dx.shape == x.shape and dw is None and db is None


def test_layer_norm_blocks_do_not_depend_on_threads(rng):
    # The parallel backward gives the same bits as the serial one: partial sums are per block of rows.
    x = rng.standard_normal((300, 16)).astype(np.float32)
    g = rng.standard_normal((300, 16)).astype(np.float32)
    w = rng.standard_normal(16).astype(np.float32)
    _, mean, rstd = norm.layer_norm_forward(x, w, w, 1e-5)
    outs = []
    for kernel in (norm._bwd, norm._bwd_par):
        dx = np.empty_like(x)
        parts = np.zeros((5, 16)), np.zeros((5, 16))
        kernel(g, x, w, mean, rstd, dx, parts[0], parts[1], True, True)
        outs.append((dx, parts[0], parts[1]))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shape", SHAPES + [(64, 1000)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax(shape, log, dtype, rng):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x[0, 0] = -1e9  # a masked entry: exp underflows to 0
    g = rng.standard_normal(shape).astype(dtype)
    t = Tensor(x)
    ref = (F.LogSoftmax if log else F.Softmax).apply(t, dim=-1)
    ref.backward(g)
    fwd = softmax.log_softmax_forward if log else softmax.softmax_forward
    bwd = softmax.log_softmax_backward if log else softmax.softmax_backward
    y = fwd(x)
    assert_close(y, ref.data, dtype, scale=4.0)
    assert_close(bwd(g, y), t.grad.data, dtype, scale=10.0)


def test_softmax_parallel_rows_equal_serial(rng):
    x = rng.standard_normal((37, 50)).astype(np.float32)
    for kind in (0, 1):
        y1, y3 = np.empty_like(x), np.empty_like(x)
        softmax._fwd_rows(kind, x, y1)
        softmax._fwd_par(kind, x, y3, 3)
        assert np.array_equal(y1, y3)
        d1, d3 = np.empty_like(x), np.empty_like(x)
        softmax._bwd_rows(kind, x, y1, d1)
        softmax._bwd_par(kind, x, y1, d3, 3)
        assert np.array_equal(d1, d3)


def _ce_reference(logits, targets, ignore_index, smoothing, reduction, grad=1.0):
    t = Tensor(logits)
    out = F.CrossEntropy.apply(
        t, Tensor(targets, requires_grad=False), ignore_index=ignore_index, label_smoothing=smoothing,
        reduction=reduction,
    )  # fmt: skip
    out.backward(np.asarray(grad, logits.dtype))
    return out.data, t.grad.data


@pytest.mark.parametrize("n, c", [(1, 1), (5, 3), (1024, 256), (33, 1000)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("target_dtype", [np.int32, np.int64])
def test_cross_entropy(n, c, smoothing, reduction, target_dtype, dtype, rng):
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    targets = rng.integers(0, c, n).astype(target_dtype)
    targets[rng.random(n) < 0.2] = -100  # ignored rows
    ref_loss, ref_grad = _ce_reference(logits, targets, -100, smoothing, reduction, grad=0.7)
    total, count, lse = loss.cross_entropy_forward(logits, targets, -100, smoothing)
    assert count == int((targets != -100).sum()) and lse.shape == (n,) and lse.dtype == dtype
    scale = (1.0 if reduction == "sum" else (1.0 / count if count else 0.0)) * 0.7
    mean_or_sum = total * (1.0 if reduction == "sum" else (1.0 / count if count else 0.0))
    assert_close(np.asarray(mean_or_sum, dtype), np.asarray(ref_loss) * np.asarray(1, dtype), dtype, scale=20.0)
    dlogits = loss.cross_entropy_backward(logits, lse, targets, -100, smoothing, scale)
    assert_close(dlogits, ref_grad, dtype, scale=4.0)
    assert np.all(dlogits[targets == -100] == 0)


def test_cross_entropy_every_target_ignored():
    logits = np.ones((3, 4), np.float32)
    total, count, lse = loss.cross_entropy_forward(logits, np.full(3, 7, np.int64), 7, 0.0)
    assert count == 0 and float(total) == 0.0
    assert not loss.cross_entropy_backward(logits, lse, np.full(3, 7, np.int64), 7, 0.0, 0.0).any()


@pytest.mark.parametrize("bad", [-1, 4, 1000])
def test_cross_entropy_out_of_range_target_raises(bad):
    targets = np.array([0, 1, bad, 2], np.int64)
    with pytest.raises(ValueError, match=f"target {bad} is out of range for 4 classes"):
        loss.cross_entropy_forward(np.zeros((4, 4), np.float32), targets, -100, 0.0)


def test_cross_entropy_parallel_blocks(rng):
    logits = rng.standard_normal((50, 9)).astype(np.float64)
    targets = rng.integers(0, 9, 50)
    targets[[3, 30]] = [-100, 12]
    lse1, lse3 = np.empty(50), np.empty(50)
    one, three = np.zeros((1, 3)), np.zeros((3, 3))
    loss._fwd_rows(logits, targets, -100, 0.1, lse1, one[0])
    loss._fwd_par(logits, targets, -100, 0.1, lse3, three)
    assert np.array_equal(lse1, lse3)
    assert np.isclose(one[0, 0], three[:, 0].sum()) and one[0, 1] == three[:, 1].sum() == 48
    assert one[0, 2] == 30 and sorted(three[:, 2]) == [-1, -1, 30]


def test_nan_reaches_the_row_like_the_reference():
    # The vectorized row max may ignore a NaN, but exp(NaN - max) carries it into the row's sum.
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], np.float32)
    for fwd in (softmax.softmax_forward, softmax.log_softmax_forward):
        y = fwd(x)
        assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
    total, _, lse = loss.cross_entropy_forward(x, np.array([0, 1]), -100, 0.0)
    assert np.isnan(total) and np.isnan(lse[0]) and np.isfinite(lse[1])
