"""GELU, ReLU, sigmoid, tanh: forward and backward against core's Function classes (autograd.ops.activations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from autograd_kernels_cpu import pointwise as pw
from autograd_kernels_cpu._common import UnsupportedInputError
from cpu_helpers import assert_close, assert_identical

from autograd import functional as F
from autograd.tensor import Tensor

OPS = {"gelu": F.Gelu, "relu": F.Relu, "sigmoid": F.Sigmoid, "tanh": F.Tanh}
# Backward takes the forward's input for gelu and relu, its output for sigmoid and tanh.
TAKES_OUTPUT = {"sigmoid", "tanh"}


def _reference(name, x, g):
    t = Tensor(x)
    y = OPS[name].apply(t)
    y.backward(g)
    return y.data, t.grad.data


def _inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    if flat.size >= 12:  # extremes, zeros of both signs and a tie-free spread
        flat[:12] = [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 100.0, -100.0, 8.0, -8.0, 0.625, -0.625]
    return x, rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 17), (1024, 129)])
def test_matches_reference(name, shape, dtype, rng):
    x, g = _inputs(rng, shape, dtype)
    y_ref, dx_ref = _reference(name, x, g)
    y = getattr(pw, f"{name}_forward")(x)
    dx = getattr(pw, f"{name}_backward")(g, y if name in TAKES_OUTPUT else x)
    if name == "relu":  # no rounding anywhere: bit-identical
        assert_identical(y, y_ref)
        assert_identical(dx, dx_ref)
    else:
        assert_close(y, y_ref, dtype)
        # tanh' = 1 - t^2 loses the relative precision of t near +-1: compare at the scale of g.
        assert_close(dx, dx_ref, dtype, scale=4.0)


@pytest.mark.parametrize("name", sorted(OPS))
def test_parallel_pieces_equal_serial(name, dtype, rng):
    # The parallel drivers cut the flat array into pieces; the result must not depend on the cut.
    x, g = _inputs(rng, (1001,), dtype)
    fwd, fwd_par = getattr(pw, f"_{name}_fwd"), getattr(pw, f"_{name}_fwd_par")
    bwd, bwd_par = getattr(pw, f"_{name}_bwd"), getattr(pw, f"_{name}_bwd_par")
    y1, y3 = np.empty_like(x), np.empty_like(x)
    fwd(x, y1)
    fwd_par(x, y3, 3)
    assert_identical(y3, y1)
    d1, d3 = np.empty_like(x), np.empty_like(x)
    bwd(g, x, d1)
    bwd_par(g, x, d3, 3)
    assert_identical(d3, d1)


def test_nan_and_inf_propagate_like_numpy(dtype):
    x = np.array([np.nan, np.inf, -np.inf, -0.0], dtype)
    assert_identical(pw.relu_forward(x), np.maximum(x, 0))
    assert np.isnan(pw.gelu_forward(x)[0]) and np.isnan(pw.tanh_forward(x)[0]) and np.isnan(pw.sigmoid_forward(x)[0])
    assert pw.tanh_forward(x)[1:3].tolist() == [1.0, -1.0]
    assert pw.sigmoid_forward(x)[1:3].tolist() == [1.0, 0.0]
    assert pw.relu_backward(np.ones_like(x), x).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_declines_other_dtypes_and_layouts():
    with pytest.raises(UnsupportedInputError, match="float16"):
        pw.gelu_forward(np.zeros(4, np.float16))
    with pytest.raises(UnsupportedInputError, match="C-contiguous"):
        pw.relu_forward(np.zeros((4, 4), np.float32).T)
    with pytest.raises(UnsupportedInputError, match="dtype float64, the other inputs float32"):
        pw.relu_backward(np.zeros(4, np.float32), np.zeros(4, np.float64))


def test_gelu_keeps_its_far_negative_tail(dtype):
    # x sigmoid(2u) keeps the tiny negative values where the reference's 0.5 x (1 + tanh(u)) rounds to 0.
    x = np.array([-5.0, -6.0, -8.0], dtype)
    xf = x.astype(np.float64)
    exact = xf / (1.0 + np.exp(-2.0 * math.sqrt(2.0 / math.pi) * (xf + 0.044715 * xf**3)))
    np.testing.assert_allclose(pw.gelu_forward(x), exact, rtol=1e-5 if dtype == np.float32 else 1e-12)
