"""Activations and losses: values, gradients, stability and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.backend import xp
from autograd.tensor import Tensor
from autograd.testing import gradcheck


def rnd(*shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a)), **kw)


def np_log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


# --- activations ---------------------------------------------------------------

ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "gelu": (F.gelu, np_gelu),
    "softmax": (F.softmax, lambda x: np.exp(np_log_softmax(x))),
    "log_softmax": (F.log_softmax, np_log_softmax),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_activation_values_and_gradients(name, shape):
    fn, ref = ACTIVATIONS[name]
    x = rnd(*shape)
    if name == "relu":
        x = np.where(np.abs(x) < 0.05, 0.3, x)
    np.testing.assert_allclose(to_np(fn(T(x))), ref(x), rtol=1e-6, atol=1e-7)
    gradcheck(fn, x)


def test_documented_activation_examples():
    assert to_np(F.relu(Tensor([-1, 0, 2]))).tolist() == [0, 0, 2]
    assert to_np(F.Relu.apply(Tensor([-3, 0, 3]))).tolist() == [0, 0, 3]
    s = to_np(F.sigmoid(Tensor([0, 2])))
    assert s[0] == 0.5 and abs(s[1] - 0.8808) < 1e-4
    assert abs(to_np(F.softmax(Tensor(xp.array([2.0, 1.0, 0.1])))).sum() - 1) < 1e-6
    assert abs(np.exp(to_np(F.log_softmax(Tensor(xp.array([2.0, 1.0, 0.1]))))).sum() - 1) < 1e-6
    np.testing.assert_allclose(to_np(F.tanh(Tensor([0, 1]))), [0, np.tanh(1)], rtol=1e-6)
    np.testing.assert_allclose(to_np(F.gelu(Tensor([1.0, -1.0]))), np_gelu(np.array([1.0, -1.0])), rtol=1e-6)


def test_softmax_other_dims():
    x = rnd(2, 3, 4)
    np.testing.assert_allclose(to_np(F.log_softmax(T(x), dim=1)), np_log_softmax(x, axis=1), rtol=1e-6)
    gradcheck(lambda t: F.log_softmax(t, dim=0), x)
    gradcheck(lambda t: F.softmax(t, dim=1), x)
    with pytest.raises(ValueError, match="dim 3 .*ndim 3"):
        F.softmax(T(x), dim=3)


def test_activations_stable_at_large_magnitude():
    x = T(np.array([[1e4, -1e4, 0.0]], dtype=np.float32))
    for fn in (F.softmax, F.log_softmax, F.sigmoid, F.tanh, F.gelu):
        y = fn(x)
        y.sum().backward()
        assert np.isfinite(to_np(y)).all() and np.isfinite(to_np(x.grad)).all(), fn.__name__
        x.grad = None


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_gelu_keeps_nothing_wider_than_its_input(dtype):
    # NumPy promotes bfloat16 times a Python float to float32: that tanh is recomputed in the backward rather
    # than kept, so a half-precision model's GELUs keep half-precision arrays only.
    try:
        dt = backend.dtype(dtype)
    except TypeError as exc:
        pytest.skip(str(exc))
    x = backend.asarray(np.linspace(-3, 3, 12).reshape(3, 4)).astype(dt)
    fn = F.Gelu()
    y = fn.forward(x)
    kept = {name: value.dtype for name, value in vars(fn).items() if getattr(value, "shape", None) == (3, 4)}
    assert "x" in kept and all(d == dt for d in kept.values()), kept
    g = backend.asarray(np.ones((3, 4))).astype(y.dtype)
    dx = fn.backward(Tensor(g))  # the same values whether the tanh was kept or recomputed
    f32 = backend.dtype("float32")  # host copies through float32: no bfloat16 buffer protocol
    x64 = to_np(x.astype(f32))
    t = np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3))
    ref = 0.5 * (1 + t) + 0.5 * x64 * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x64**2)
    np.testing.assert_allclose(to_np(dx.astype(f32)), ref, rtol=0.02, atol=0.02)


# --- losses --------------------------------------------------------------------


def np_cross_entropy(logits, targets, ignore_index=-100, eps=0.0, reduction="mean"):
    k = logits.shape[-1]
    lp = np_log_softmax(logits.reshape(-1, k))
    t = targets.reshape(-1)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    per = -(1 - eps) * lp[np.arange(len(t)), safe] - eps / k * lp.sum(-1)
    total = (per * valid).sum()
    return total if reduction == "sum" else total / max(valid.sum(), 1)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy(shape, eps, reduction):
    logits = rnd(*shape)
    targets = np.random.default_rng(1).integers(0, shape[-1], size=shape[:-1])
    targets.reshape(-1)[1] = -100  # one ignored position
    kw = dict(ignore_index=-100, label_smoothing=eps, reduction=reduction)
    got = to_np(F.cross_entropy(T(logits), targets, **kw))
    np.testing.assert_allclose(got, np_cross_entropy(logits, targets, -100, eps, reduction), rtol=1e-6)
    gradcheck(lambda t: F.cross_entropy(t, targets, **kw), logits)


def test_cross_entropy_custom_ignore_index_and_float_targets():
    logits = rnd(3, 4)
    targets = np.array([1, 7, 3])
    got = to_np(F.cross_entropy(T(logits), targets, ignore_index=7))
    np.testing.assert_allclose(got, np_cross_entropy(logits, targets, 7), rtol=1e-6)
    as_float = to_np(F.cross_entropy(T(logits), Tensor([1.0, 2.0, 3.0])))
    np.testing.assert_allclose(as_float, np_cross_entropy(logits, np.array([1, 2, 3])), rtol=1e-6)


def test_cross_entropy_documented_example():
    y_pred = Tensor(xp.array([[2.0, 1.0, 0.1]]))
    loss = F.cross_entropy(y_pred, Tensor(xp.array([0])), ignore_index=-100, label_smoothing=0.1)
    ref = np_cross_entropy(np.array([[2.0, 1.0, 0.1]]), np.array([0]), -100, 0.1)
    np.testing.assert_allclose(to_np(loss), ref, rtol=1e-6)
    loss2 = F.CrossEntropy.apply(y_pred, Tensor(xp.array([0])), ignore_index=-100, label_smoothing=0.1)
    np.testing.assert_allclose(to_np(loss2), ref, rtol=1e-6)


def test_cross_entropy_all_ignored_returns_zero():
    logits = T(rnd(2, 3))
    loss = F.cross_entropy(logits, [-100, -100])
    assert to_np(loss) == 0.0
    loss.backward()
    assert (to_np(logits.grad) == 0).all()


def test_cross_entropy_extreme_logits_finite():
    logits = T(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=np.float32))
    loss = F.cross_entropy(logits, [1, 0], label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(to_np(loss)) and np.isfinite(to_np(logits.grad)).all()


def test_cross_entropy_errors():
    logits = T(rnd(3, 4))
    with pytest.raises(ValueError, match=r"targets of shape \(2,\).*\(3, 4\)"):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(ValueError, match="target 4 is out of range for 4 classes"):
        F.cross_entropy(logits, [0, 4, 1])
    with pytest.raises(ValueError, match="target -1 is out of range"):
        F.cross_entropy(logits, [0, -1, 1])
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        F.cross_entropy(logits, [0, 1, 2], reduction="avg")
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, [0.5, 1, 2])
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, T, C\)"):
        F.cross_entropy(T(rnd(4)), [0])


def test_binary_cross_entropy():
    p = np.random.default_rng(2).uniform(0.05, 0.95, size=(3, 4))
    y = (np.random.default_rng(3).uniform(size=(3, 4)) > 0.5).astype(np.float64)
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    np.testing.assert_allclose(to_np(F.binary_cross_entropy(T(p), y)), ref, rtol=1e-6)
    gradcheck(lambda t: F.binary_cross_entropy(t, y), p)
    small = to_np(F.BinaryCrossEntropy.apply(Tensor([0.9, 0.2, 0.1]), Tensor([1, 0, 0])))
    assert 0 < small < 0.2


def test_binary_cross_entropy_exact_zero_and_one_finite():
    p = T(np.array([0.0, 1.0, 0.0, 1.0]))
    loss = F.binary_cross_entropy(p, [0.0, 1.0, 1.0, 0.0])
    loss.backward()
    assert np.isfinite(to_np(loss)) and np.isfinite(to_np(p.grad)).all()
    np.testing.assert_allclose(to_np(loss), 50.0, rtol=1e-6)  # two terms clamped at 100, mean over 4


def test_binary_cross_entropy_with_logits():
    x = rnd(3, 4, low=-4, high=4)
    y = (np.random.default_rng(3).uniform(size=(3, 4)) > 0.5).astype(np.float64)
    sig = 1 / (1 + np.exp(-x))
    ref = -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean()
    np.testing.assert_allclose(to_np(F.binary_cross_entropy_with_logits(T(x), y)), ref, rtol=1e-6)
    gradcheck(lambda t: F.binary_cross_entropy_with_logits(t, y), x)
    big = T(np.array([1e4, -1e4, 1e4], dtype=np.float32))
    loss = F.binary_cross_entropy_with_logits(big, [0.0, 1.0, 1.0])
    loss.backward()
    np.testing.assert_allclose(to_np(loss), 2e4 / 3, rtol=1e-5)
    assert np.isfinite(to_np(big.grad)).all()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_hinge_loss(reduction):
    p = np.array([0.8, -0.5, 0.3, 2.0, -0.2])
    y = np.array([1, -1, 1, 1, 1])
    per = np.maximum(0, 1 - y * p)
    ref = {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction]
    np.testing.assert_allclose(to_np(F.hinge_loss(T(p), y, reduction=reduction)), ref, rtol=1e-6)
    gradcheck(lambda t: F.hinge_loss(t, y, reduction=reduction), p)
    assert to_np(F.HingeLoss.apply(Tensor([0.8, -0.5, 0.3]), Tensor([1, -1, 1]), reduction="mean")) > 0
    with pytest.raises(ValueError, match="unknown reduction"):
        F.hinge_loss(T(p), y, reduction="max")


def test_mean_squared_loss():
    assert to_np(F.mean_squared_loss(Tensor([3.0, 5.0]), [2.0, 5.0])) == 0.5
    assert to_np(F.MeanSquaredLoss.apply(Tensor([3.0, 5.0]), Tensor([2.0, 5.0]))) == 0.5
    gradcheck(lambda t: F.mean_squared_loss(t, rnd(3, 2, seed=5)), rnd(3, 2))


@pytest.mark.parametrize(
    "loss",
    [F.mean_squared_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.hinge_loss],
)
def test_losses_reject_mismatched_targets(loss):
    with pytest.raises(ValueError, match=r"target shape \(2,\) does not match prediction shape \(3,\)"):
        loss(Tensor([0.2, 0.3, 0.4]), [1.0, 0.0])


def test_losses_accept_tensor_and_array_targets():
    p = Tensor([0.2, 0.7])
    a = to_np(F.binary_cross_entropy(p, Tensor([0.0, 1.0])))
    b = to_np(F.binary_cross_entropy(p, backend.asarray(np.array([0.0, 1.0], dtype=np.float32))))
    c = to_np(F.binary_cross_entropy(p, [0, 1]))
    assert a == b == c
