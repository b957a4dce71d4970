"""Mixed precision: the autocast policy, low-precision dtypes on every backend, gradients against float32 runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.precision import autocast, autocast_dtype
from autograd.tensor import Tensor


def _low_dtypes():
    out = []
    for name in ("float16", "bfloat16"):
        try:
            backend.dtype(name)
        except TypeError as exc:
            out.append(pytest.param(name, marks=pytest.mark.skip(reason=str(exc))))
            continue
        out.append(name)
    return out


LOW = _low_dtypes()
#: Relative tolerance (to the largest magnitude) of a gradient computed under the policy.
TOL = {"float16": 2e-2, "bfloat16": 6e-2}


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a, dtype=np.float32)), **kw)


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def name_of(t):
    return backend.dtype_name(t.dtype)


# --- what runs in which dtype -----------------------------------------------------------------------------------


@pytest.mark.parametrize("low", LOW)
def test_products_run_low_and_reductions_and_losses_in_float32(low):
    x, w = T(rnd(4, 3)), T(rnd(3, 5, seed=1))
    with autocast(low):
        assert backend.dtype_name(autocast_dtype()) == low
        y = x @ w
        assert name_of(y) == low
        assert name_of(y.sum()) == "float32" and name_of(y.mean(axis=0)) == "float32"
        assert name_of(y.var()) == "float32"
        s = F.softmax(y)
        assert name_of(s) == low  # computed in float32, stored low
        loss = F.cross_entropy(y, np.array([0, 1, 2, 3]))
        assert name_of(loss) == "float32"
        assert name_of(F.mean_squared_loss(y, np.zeros((4, 5), np.float32))) == "float32"
    assert autocast_dtype() is None
    loss.backward()
    assert name_of(x.grad) == "float32" and name_of(w.grad) == "float32"  # float32 leaves, float32 gradients


@pytest.mark.parametrize("low", LOW)
def test_low_precision_softmax_and_layer_norm_compute_in_float32(low):
    x = rnd(6, 33) * 4
    dt = backend.dtype(low)
    xl = Tensor(backend.asarray(x).astype(dt))
    got = to_np(F.softmax(xl))
    want = to_np(F.softmax(Tensor(backend.asarray(to_np(xl).astype(np.float32)))))
    assert name_of(F.softmax(xl)) == low
    # only the final rounding differs: one unit in the last place of the low dtype
    ulp = 2.0**-7 if low == "bfloat16" else 2.0**-10
    assert np.all(np.abs(got - want) <= ulp * np.abs(want) + 1e-7)
    w, b = Tensor(backend.asarray(np.ones(33)).astype(dt)), Tensor(backend.asarray(np.zeros(33)).astype(dt))
    y = F.layer_norm(xl, w, b, eps=1e-5)
    assert name_of(y) == low
    ref = (to_np(xl) - to_np(xl).mean(-1, keepdims=True)) / np.sqrt(to_np(xl).var(-1, keepdims=True) + 1e-5)
    assert np.all(np.abs(to_np(y) - ref) <= ulp * np.abs(ref) + 1e-6)


@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("op", ["gelu", "tanh", "sigmoid"])
def test_low_precision_activations_compute_in_float32_and_round_once(low, op):
    from autograd.ops.activations import Gelu, Sigmoid, Tanh

    fn = {"gelu": Gelu, "tanh": Tanh, "sigmoid": Sigmoid}[op]
    dt = backend.dtype(low)
    xl = Tensor(backend.asarray(rnd(5, 40) * 3).astype(dt))
    x32 = Tensor(backend.asarray(to_np(xl).astype(np.float32)))
    y, y32 = fn.apply(xl), fn.apply(x32)  # core's references, whatever plugin is installed
    assert name_of(y) == low
    # exactly the float32 result rounded once (NumPy's half loops, and MLX's, round every intermediate)
    assert np.array_equal(to_np(y), to_np(Tensor(y32.data.astype(dt))))
    g = Tensor(backend.asarray(rnd(5, 40, seed=3)).astype(dt))
    y.backward(g)
    y32.backward(Tensor(backend.asarray(to_np(g).astype(np.float32))))
    assert name_of(xl.grad) == low
    ulp = 2.0**-7 if low == "bfloat16" else 2.0**-10
    want = to_np(x32.grad)
    # the backward of sigmoid and tanh works from the rounded output: a few units of the last place
    assert np.all(np.abs(to_np(xl.grad) - want) <= 4 * ulp * np.abs(want).max()), op


@pytest.mark.parametrize("low", LOW)
def test_low_precision_matmul_add_sums_the_bias_before_rounding(low):
    dt = backend.dtype(low)
    a, b = backend.asarray(rnd(7, 16)).astype(dt), backend.asarray(rnd(16, 5, seed=1)).astype(dt)
    bias = backend.asarray(rnd(5, seed=2) * 100).astype(dt)
    got = backend.matmul_add(a, b, bias)
    assert backend.dtype_name(got.dtype) == low
    f32 = backend.dtype("float32")
    exact = backend.matmul(a.astype(f32), b.astype(f32)) + bias.astype(f32)
    if backend.active.half_products_in_float32:
        assert np.array_equal(to_np(got), to_np(exact.astype(dt)))  # one rounding, of the float32 sum
    ulp = 2.0**-7 if low == "bfloat16" else 2.0**-10
    assert np.all(np.abs(to_np(got) - to_np(exact)) <= 2 * ulp * np.abs(to_np(exact)) + 1e-3)


def test_a_float16_product_that_overflows_is_inf_without_a_warning():
    import warnings

    a = backend.asarray(np.full((2, 2), 300.0, np.float32)).astype(backend.dtype("float16"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's "overflow encountered in cast" would fail here
        out = backend.matmul(a, a)  # 180000 > float16's 65504
        tensor_out = (Tensor(a) @ Tensor(a)).sum()
    assert np.all(np.isinf(to_np(out))) and name_of(Tensor(out)) == "float16"
    assert not np.isfinite(to_np(tensor_out)).all()  # what the loss scaler looks for


@pytest.mark.parametrize("low", LOW)
def test_sums_of_low_precision_arrays_accumulate_in_float32(low):
    dt = backend.dtype(low)
    x = Tensor(backend.asarray(np.full(3000, 1.0)).astype(dt))
    # Accumulated in the low dtype, 1 + 1 + ... stalls at 256 (bfloat16) or 2048 (float16); in float32 it reaches
    # 3000, which the result then rounds to the low dtype once.
    exact_rounded = to_np(Tensor(backend.asarray(np.array([3000.0], np.float32)).astype(dt)))[0]
    assert to_np(x.sum()).item() == exact_rounded and abs(exact_rounded - 3000) <= 16
    assert to_np(x.mean()).item() == 1.0


def test_autocast_nests_decorates_and_is_per_thread():
    low = next(n for n in ("bfloat16", "float16") if _has(n))
    x = T(rnd(2, 2))
    seen = []

    @autocast(low)
    def product():
        seen.append(name_of(x @ x))
        with autocast(None):  # a block kept in full precision
            seen.append(name_of(x @ x))
        with autocast("float32"):
            seen.append(name_of(x @ x))
        other = threading.Thread(target=lambda: seen.append(name_of(x @ x)))
        other.start()
        other.join()

    product()
    assert seen == [low, "float32", "float32", "float32"]
    with autocast(low, enabled=False):
        assert name_of(x @ x) == "float32"


def _has(name):
    try:
        backend.dtype(name)
        return True
    except TypeError:
        return False


def test_asking_for_a_dtype_the_backend_lacks_names_both():
    with pytest.raises(ValueError, match="autocast: dtype must be one of"):
        autocast("int8")
    if backend.BACKEND == "cupy":
        with pytest.raises(TypeError, match="bfloat16.*cupy"):
            autocast("bfloat16")
    elif backend.BACKEND == "numpy" and not _has("bfloat16"):
        with pytest.raises(TypeError, match=r"bfloat16.*numpy backend.*autograd-core\[bfloat16\]"):
            autocast("bfloat16")


# --- gradients under the policy match a float32 run, op by op -------------------------------------------------


def _conv(x, w, b):
    return F.conv2d(x, w, b, stride=1, padding=1)


def _ln(x, w, b):
    return F.layer_norm(x, w, b, eps=1e-5)


def _attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


OPS = [
    ("matmul", lambda a, b: a @ b, [(5, 4), (4, 3)]),
    ("linear", lambda x, w, b: x @ w + b, [(6, 4), (4, 3), (3,)]),
    ("batched matmul", lambda a, b: a @ b, [(2, 5, 4), (2, 4, 3)]),
    ("conv2d", _conv, [(2, 3, 6, 6), (4, 3, 3, 3), (4,)]),
    ("attention", _attention, [(1, 2, 6, 8), (1, 2, 6, 8), (1, 2, 6, 8)]),
    ("softmax", lambda x: F.softmax(x), [(4, 7)]),
    ("log_softmax", lambda x: F.log_softmax(x, dim=0), [(5, 3)]),
    ("layer_norm", _ln, [(4, 6), (6,), (6,)]),
    ("gelu", lambda x: F.gelu(x), [(3, 5)]),
    ("tanh", lambda x: F.tanh(x), [(3, 5)]),
    ("sigmoid", lambda x: F.sigmoid(x), [(3, 5)]),
    ("relu", lambda x: F.relu(x), [(3, 5)]),
    ("sum", lambda x: x.sum(axis=1), [(4, 5)]),
    ("mean", lambda x: x.mean(axis=0), [(4, 5)]),
    ("var", lambda x: x.var(axis=1), [(4, 5)]),
    ("cross_entropy", lambda x: F.cross_entropy(x, np.array([0, 2, 1, 2]), label_smoothing=0.1), [(4, 3)]),
    ("bce_logits", lambda x: F.binary_cross_entropy_with_logits(x, np.ones((3, 2), np.float32)), [(3, 2)]),
    ("mse", lambda x: F.mean_squared_loss(x, np.zeros((3, 2), np.float32)), [(3, 2)]),
    ("mlp", lambda x, w1, w2: F.gelu(x @ w1) @ w2, [(4, 6), (6, 8), (8, 2)]),
]


def _grads(fn, arrays, low=None):
    leaves = [T(a) for a in arrays]
    if low:
        with autocast(low):
            out = fn(*leaves)
    else:
        out = fn(*leaves)
    weights = np.random.default_rng(7).uniform(0.5, 1.5, size=out.shape).astype(np.float32)
    (out.astype("float32") * T(weights)).sum().backward()
    return to_np(out), [to_np(t.grad) for t in leaves]


@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("name,fn,shapes", OPS, ids=[o[0] for o in OPS])
def test_gradients_under_the_policy_match_float32(name, fn, shapes, low):
    arrays = [rnd(*s, seed=i) for i, s in enumerate(shapes)]
    out32, grads32 = _grads(fn, arrays)
    out_low, grads_low = _grads(fn, arrays, low)
    tol = TOL[low] * (3 if name in ("attention", "conv2d", "mlp", "layer_norm") else 1)
    scale = max(np.abs(out32).max(), 1e-3)
    assert np.abs(out_low - out32).max() <= tol * scale, "output"
    for i, (g_low, g32) in enumerate(zip(grads_low, grads32)):
        assert g_low.shape == g32.shape
        assert np.abs(g_low - g32).max() <= tol * max(np.abs(g32).max(), 1e-3), f"gradient of input {i}"
