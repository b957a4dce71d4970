"""Convolution, max-pooling and embedding backward against core's references."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cpu import conv, embedding, pool
from cpu_helpers import assert_close, assert_identical

from autograd.ops.conv import conv2d_reference
from autograd.ops.pool import MaxPool2dFunction
from autograd.tensor import Tensor

CONVS = [
    # N, C, H, W, O, k, stride, (top, bottom, left, right), dilation
    (32, 1, 28, 28, 16, 3, 1, (1, 1, 1, 1), 1),  # the benchmark CNN's layers
    (32, 16, 14, 14, 32, 3, 1, (1, 1, 1, 1), 1),
    (3, 2, 7, 9, 4, 3, 2, (0, 1, 1, 0), 1),
    (2, 3, 5, 5, 2, 1, 1, (0, 0, 0, 0), 1),
    (2, 2, 6, 7, 3, 4, 3, (2, 1, 0, 3), 1),
    (1, 1, 3, 3, 1, 3, 1, (0, 0, 0, 0), 1),
    (2, 2, 6, 7, 3, 4, 1, (2, 1, 0, 3), 1),  # stride 1, uneven padding: the wide layout
    (2, 3, 9, 10, 4, 3, 1, (1, 2, 2, 0), 2),  # dilated, wide layout
    (2, 2, 11, 9, 3, 3, 2, (2, 0, 1, 1), 3),  # dilated and strided
]


def _conv_inputs(case, with_bias, dtype, rng):
    """x, w, b (or None), stride, padding and dilation of one CONVS case, drawn from rng."""
    n, c, h, w, o, k, stride, pad, dilation = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if with_bias else None
    return x, wt, b, stride, pad, dilation


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d(case, with_bias, dtype, rng):
    x, wt, b, stride, pad, d = _conv_inputs(case, with_bias, dtype, rng)
    tx, tw = Tensor(x), Tensor(wt)
    tb = Tensor(b) if with_bias else None
    ref = conv2d_reference(tx, tw, tb, stride=(stride, stride), padding=pad, dilation=(d, d), groups=1)
    g = rng.standard_normal(ref.shape).astype(dtype)
    ref.backward(g)
    y = conv.conv2d_forward(x, wt, b, stride, pad, dilation=d)
    assert_close(y, ref.data, dtype, scale=10.0)
    dx, dw, db = conv.conv2d_backward(g, x, wt, stride, pad, True, True, with_bias, dilation=d)
    assert_close(dx, tx.grad.data, dtype, scale=10.0)
    assert_close(dw, tw.grad.data, dtype, scale=100.0)  # sums over N*Ho*Wo terms in another order
    if with_bias:
        assert_close(db, tb.grad.data, dtype, scale=100.0)
    else:
        assert db is None
    assert conv.conv2d_backward(g, x, wt, stride, pad, False, True, False, dilation=d)[0] is None


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_kept_columns_give_the_same_gradients(case, with_bias, dtype, rng):
    x, wt, b, stride, pad, d = _conv_inputs(case, with_bias, dtype, rng)
    y, cols = conv.conv2d_forward(x, wt, b, stride, pad, return_columns=True, dilation=d)
    assert cols.nbytes == conv.columns_nbytes(x, wt, stride, pad, with_bias, dilation=d)
    assert_identical(y, conv.conv2d_forward(x, wt, b, stride, pad, dilation=d))
    g = rng.standard_normal(y.shape).astype(dtype)
    # Another convolution in between reuses the scratch buffer: the kept columns must not be it.
    conv.conv2d_forward(rng.standard_normal(x.shape).astype(dtype), wt, b, stride, pad, dilation=d)
    kept = conv.conv2d_backward(g, x, wt, stride, pad, True, True, with_bias, cols=cols, dilation=d)
    rebuilt = conv.conv2d_backward(g, x, wt, stride, pad, True, True, with_bias, dilation=d)
    for a, r in zip(kept, rebuilt):
        assert (a is None and r is None) or np.array_equal(a, r)


def test_conv2d_refuses_columns_of_another_input(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y, cols = conv.conv2d_forward(x, wt, None, 1, (1, 1, 1, 1), return_columns=True)
    g = np.ones_like(y)
    with pytest.raises(ValueError, match=r"cols float32 \(27, 90\) are not the columns.*x float32 \(2, 3, 6, 6\)"):
        conv.conv2d_backward(g, x, wt, 1, (1, 1, 1, 1), cols=cols[:, :90])
    with pytest.raises(ValueError, match="are not the columns"):
        conv.conv2d_backward(g, x, wt, 1, (1, 1, 1, 1), cols=cols.astype(np.float64))


def test_conv2d_parallel_planes_equal_serial(rng):
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    cols1, cols3 = np.empty((4 * 9, 3 * 5 * 4), np.float32), np.empty((4 * 9, 3 * 5 * 4), np.float32)
    conv._im2col_planes(x, cols1, 3, 2, 1, 1, 0, 5, 4, 0, 12)
    conv._im2col_par(x, cols3, 3, 2, 1, 1, 0, 5, 4, 3)
    assert np.array_equal(cols1, cols3)
    dx1, dx3 = np.empty_like(x), np.empty_like(x)
    conv._col2im_planes(cols1, dx1, 3, 2, 1, 1, 0, 5, 4, 0, 12)
    conv._col2im_par(cols1, dx3, 3, 2, 1, 1, 0, 5, 4, 3)
    assert np.array_equal(dx1, dx3)
    # stride 1, wide layout: H 9 + 1 + 0 -> Hp 10, Ho 8; W 8 + 0 + 2 -> Wp 10
    wide1, wide3 = np.empty((4 * 9, 3 * 8 * 10), np.float32), np.empty((4 * 9, 3 * 8 * 10), np.float32)
    conv._im2col_wide_planes(x, wide1, 3, 1, 1, 0, 10, 10, 8, 0, 12)
    conv._im2col_wide_par(x, wide3, 3, 1, 1, 0, 10, 10, 8, 3)
    assert np.array_equal(wide1, wide3)
    conv._col2im_wide_planes(wide1, dx1, 3, 1, 1, 0, 10, 10, 8, 0, 12)
    conv._col2im_wide_par(wide1, dx3, 3, 1, 1, 0, 10, 10, 8, 3)
    assert np.array_equal(dx1, dx3)


POOLS = [
    ((32, 16, 28, 28), 2, 2),
    ((3, 5, 9, 11), 3, 2),
    ((2, 3, 7, 7), 3, 1),
    ((2, 2, 6, 6), 2, 3),
    ((1, 1, 2, 2), 2, 1),
]


@pytest.mark.parametrize("shape, k, stride", POOLS)
def test_max_pool_bit_identical_with_ties(shape, k, stride, dtype, rng):
    # After a ReLU most windows tie (all zeros): the gradient is shared equally, overlapping windows add up.
    x = np.maximum(rng.integers(-3, 3, size=shape), 0).astype(dtype)
    tx = Tensor(x)
    ref = MaxPool2dFunction.apply(tx, kernel_size=(k, k), stride=(stride, stride))
    g = rng.standard_normal(ref.shape).astype(dtype)
    ref.backward(g)
    y = pool.max_pool2d_forward(x, k, stride)
    assert_identical(y, ref.data)
    assert_identical(pool.max_pool2d_backward(g, x, y, k, stride), tx.grad.data)


@pytest.mark.parametrize("k, stride", [(2, 2), (2, 1), (3, 3)])
def test_max_pool_nan_and_padding(k, stride):
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = np.nan
    y = pool.max_pool2d_forward(x, k, stride)
    assert np.isnan(y).all()
    assert not pool.max_pool2d_backward(np.ones_like(y), x, y, k, stride).any()  # no element equals a NaN max


def test_max_pool_negative_zero_gradient():
    x = np.zeros((1, 1, 2, 2), np.float32)
    dx = pool.max_pool2d_backward(np.full((1, 1, 1, 1), -0.0, np.float32), x, np.zeros((1, 1, 1, 1), np.float32), 2, 2)
    assert not np.signbit(dx).any()  # the reference adds -0.0 into zeros: +0.0


def test_max_pool_minus_inf_padding():
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)
    x[0, 0, 1, 1] = 5.0
    assert pool.max_pool2d_forward(x, 2, 1).tolist() == [[[[5.0, 5.0], [5.0, 5.0]]]]


def test_max_pool_parallel_planes_equal_serial(rng):
    x = np.maximum(rng.integers(-2, 3, size=(3, 4, 7, 7)), 0).astype(np.float64)
    y1, y3 = np.empty((3, 4, 3, 3)), np.empty((3, 4, 3, 3))
    pool._fwd_planes(x, y1, 3, 2, 0, 12)
    pool._fwd_par(x, y3, 3, 2, 3)
    assert np.array_equal(y1, y3)
    g = rng.standard_normal(y1.shape)
    d1, d3 = np.empty_like(x), np.empty_like(x)
    pool._bwd_planes(g, x, y1, d1, 3, 2, 0, 12)
    pool._bwd_par(g, x, y1, d3, 3, 2, 3)
    assert np.array_equal(d1, d3)


@pytest.mark.parametrize("vocab, e, n", [(50, 33, 300), (256, 128, 1024), (3, 1, 10)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_embedding_backward_bit_identical(vocab, e, n, index_dtype, dtype, rng):
    table = Tensor(rng.standard_normal((vocab, e)).astype(dtype))
    indices = rng.integers(-vocab, vocab, n).astype(index_dtype)  # repeats, and negative ones count from the end
    rows = table.gather(indices)
    g = rng.standard_normal(rows.shape).astype(dtype)
    rows.backward(g)
    assert_identical(embedding.embedding_backward(g, indices, vocab), table.grad.data)


def test_embedding_parallel_bands(rng):
    g = rng.standard_normal((40, 21)).astype(np.float32)
    idx = rng.integers(0, 5, 40)
    a, b = np.zeros((5, 21), np.float32), np.zeros((5, 21), np.float32)
    embedding._scatter(g, idx, a, 0, 21)
    embedding._scatter_par(g, idx, b, 3)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="out of range for 5 embeddings"):
        embedding.embedding_backward(g, np.full(40, 5), 5)
