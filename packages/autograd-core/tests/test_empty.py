"""Every op takes empty inputs and returns empty results (as PyTorch does), gradients included, without warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from autograd import backend
from autograd import functional as F
from autograd.tensor import Tensor


def T(*shape):
    return Tensor(backend.asarray(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))


def _ints(*shape):
    return Tensor(backend.asarray(np.zeros(shape, np.int64)), requires_grad=False)


CASES = [
    ("softmax rows", lambda: [T(3, 0)], lambda x: F.softmax(x), (3, 0)),
    ("softmax batch", lambda: [T(0, 5)], lambda x: F.softmax(x), (0, 5)),
    ("log_softmax", lambda: [T(3, 0)], lambda x: F.log_softmax(x, dim=1), (3, 0)),
    ("layer_norm features", lambda: [T(3, 0)], lambda x: F.layer_norm(x), (3, 0)),
    ("layer_norm rows", lambda: [T(0, 4), T(4), T(4)], lambda x, w, b: F.layer_norm(x, w, b), (0, 4)),
    ("gelu", lambda: [T(0, 7)], F.gelu, (0, 7)),
    ("relu", lambda: [T(2, 0, 3)], F.relu, (2, 0, 3)),
    ("cross_entropy", lambda: [T(0, 4)], lambda x: F.cross_entropy(x, _ints(0)), ()),
    ("conv2d", lambda: [T(0, 3, 6, 6), T(4, 3, 3, 3)], lambda x, w: F.conv2d(x, w, padding=1), (0, 4, 6, 6)),
    ("max_pool2d", lambda: [T(0, 2, 4, 4)], lambda x: F.max_pool2d(x, 2), (0, 2, 2, 2)),
    ("embedding", lambda: [T(5, 3)], lambda w: F.embedding(_ints(0, 4), w), (0, 4, 3)),
    (
        "attention batch",
        lambda: [T(0, 2, 5, 8)] * 3,
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        (0, 2, 5, 8),
    ),
    (
        "attention causal",
        lambda: [T(0, 2, 5, 8)] * 3,
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        (0, 2, 5, 8),
    ),
    ("sum", lambda: [T(0, 3)], lambda x: x.sum(axis=0), (3,)),
    ("matmul", lambda: [T(0, 3), T(3, 2)], lambda a, b: a @ b, (0, 2)),
]


@pytest.mark.parametrize("name, make, fn, shape", CASES, ids=[c[0] for c in CASES])
def test_empty_inputs_give_empty_results_and_gradients(name, make, fn, shape):
    inputs = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice", no reduction of an empty axis
        out = fn(*inputs)
        assert out.shape == shape
        out.sum().backward()
    for t in inputs:
        if t.requires_grad:
            assert t.grad is not None and t.grad.shape == t.shape, name
