"""Every Triton kernel in Triton's interpreter on NumPy arrays, against float64 NumPy references.

``TRITON_INTERPRET`` is read by ``triton.jit`` when a kernel module is
imported, so it is set here before the kernel modules are imported. The shapes
are small (the interpreter runs a program at a time) and odd on purpose: one
row, sizes that are not powers of two, blocks smaller than a row so the loops
over blocks run, ties, ignored targets, Tq != Tk.
"""

from __future__ import annotations

import pytest
from interpreter_setup import use_triton_interpreter

from autograd import backend

use_triton_interpreter()  # before anything imports triton

import numpy as np  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed (pip install 'autograd-kernels-cuda[triton]')")

from autograd_kernels_cuda.triton_kernels import (  # noqa: E402
    activations,
    adam,
    attention,
    conv,
    cross_entropy,
    embedding,
    norm,
    pool,
    softmax,
)
from autograd_kernels_cuda.triton_support import HostArray, launch  # noqa: E402

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bfloat16 cases skip
    BF16 = None

needs_bf16 = pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed (NumPy has no bfloat16 without it)")
DTYPES = [
    np.dtype(np.float32),
    np.dtype(np.float16),
    pytest.param(BF16, marks=needs_bf16, id="bfloat16"),
]
# (rtol, atol) of a kernel's output against float64 math on the same (rounded) inputs.
TOL = {"float32": (1e-5, 1e-5), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}


def _tol(dtype):
    return TOL[str(np.dtype(dtype))]


def _close(got, want, dtype, scale=1.0):
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol, atol=atol * scale)


def _rand(rng, shape, dtype, lo=None):
    x = rng.standard_normal(shape)
    if lo is not None:
        x = np.abs(x) + lo
    return x.astype(dtype)


def f64(x):
    return np.asarray(x, dtype=np.float64)


def test_kernels_are_interpreted():
    # A module imported before TRITON_INTERPRET was set would hold compiled kernels, which cannot run on NumPy.
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(attention.attention_fwd_kernel, InterpretedFunction)
    assert isinstance(softmax.softmax_fwd_kernel, InterpretedFunction)


def test_host_array_views_keep_their_offset():
    # A view that starts inside a buffer must reach the kernel at its own address, and the kernel writes in place.
    base = np.arange(12, dtype=np.float32) - 6
    view = base[5:]
    assert HostArray(view).storage_offset() == 5
    out = np.zeros(7, np.float32)
    launch(activations.activation_fwd_kernel, (1,), view, out, 7, ACT=activations.ACTIVATIONS["relu"], BLOCK=16)
    np.testing.assert_array_equal(out, np.maximum(base[5:], 0))


# --- activations ---------------------------------------------------------------------------------------------------


def _act_ref(name, x):
    if name == "gelu":
        t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)
        return 0.5 * x * (1 + t), d
    if name == "relu":
        return np.maximum(x, 0), (x > 0).astype(np.float64)
    if name == "sigmoid":
        y = 1 / (1 + np.exp(-x))
        return y, y * (1 - y)
    y = np.tanh(x)
    return y, 1 - y * y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activation(name, dtype):
    rng = np.random.default_rng(1)
    x = _rand(rng, (3, 37), dtype) * 4
    x[0, :4] = np.array([0.0, -30.0, 30.0, 1e-3]).astype(dtype)  # 0 for relu's mask, saturation for sigmoid/tanh
    g = _rand(rng, x.shape, dtype)
    want_y, want_d = _act_ref(name, f64(x))
    y = activations.activation_forward(name, x)
    assert y.dtype == x.dtype and y.shape == x.shape
    _close(y, want_y, dtype)
    saved = x if activations.BACKWARD_READS[name] == "x" else y
    # sigmoid/tanh derive the gradient from the rounded output, as core's reference does
    deriv = want_d if activations.BACKWARD_READS[name] == "x" else _act_ref(name, f64(x))[1]
    if activations.BACKWARD_READS[name] == "y":
        s = f64(y)
        deriv = s * (1 - s) if name == "sigmoid" else 1 - s * s
    _close(activations.activation_backward(name, saved, g), f64(g) * deriv, dtype)


def test_activation_of_an_empty_array():
    assert activations.activation_forward("gelu", np.zeros((0, 4), np.float32)).shape == (0, 4)


# --- softmax -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,block", [((1, 5), 0), ((4, 37), 0), ((3, 70), 16), ((2, 3, 33), 16)])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax(log, shape, block, dtype):
    rng = np.random.default_rng(2)
    x = (_rand(rng, shape, np.float32) * 3).astype(dtype)
    x.reshape(-1, shape[-1])[0, 1] = 40  # a large logit: the max shift matters
    g = _rand(rng, shape, dtype)
    xf = f64(x)
    lse = xf.max(-1, keepdims=True) + np.log(np.exp(xf - xf.max(-1, keepdims=True)).sum(-1, keepdims=True))
    want = xf - lse if log else np.exp(xf - lse)
    y = softmax.softmax_forward(x, log=log, block=block)
    assert y.dtype == x.dtype
    _close(y, want, dtype)
    yf = f64(y)
    gf = f64(g)
    want_dx = gf - np.exp(yf) * gf.sum(-1, keepdims=True) if log else yf * (gf - (gf * yf).sum(-1, keepdims=True))
    _close(softmax.softmax_backward(y, g, log=log, block=block), want_dx, dtype, scale=3)


# --- layer norm --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,block,programs", [((1, 7), 0, 0), ((5, 37), 0, 2), ((4, 50), 16, 3), ((2, 3, 24), 0, 4)]
)
def test_layer_norm(shape, block, programs, dtype):
    rng = np.random.default_rng(3)
    x = (_rand(rng, shape, np.float32) * 2 + 1).astype(dtype)
    f = shape[-1]
    w, b = _rand(rng, (f,), dtype), _rand(rng, (f,), dtype)
    g = _rand(rng, shape, dtype)
    y, mean, rstd = norm.layer_norm_forward(x, w, b, 1e-5, block=block)
    xf, wf, gf = f64(x), f64(w), f64(g)
    mu = xf.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((xf - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xhat = (xf - mu) * r
    _close(y, xhat * wf + f64(b), dtype, scale=2)
    np.testing.assert_allclose(mean, mu.reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rstd, r.reshape(-1), rtol=1e-5)
    dx, dw, db = norm.layer_norm_backward(x, w, mean, rstd, g, block=block, programs=programs)
    dxhat = gf * wf
    want_dx = r * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    lead = tuple(range(len(shape) - 1))
    assert dx.dtype == x.dtype and dw.dtype == w.dtype and db.shape == (f,)
    _close(dx, want_dx, dtype, scale=4)
    _close(dw, (gf * xhat).sum(lead), dtype, scale=4)
    _close(db, gf.sum(lead), dtype, scale=4)


# --- cross-entropy -----------------------------------------------------------------------------------------------


def _ce_ref(x, t, ignore, eps, reduction):
    v = x.shape[-1]
    x = f64(x).reshape(-1, v)
    t = t.reshape(-1)
    valid = t != ignore
    tt = np.where(valid, t, 0)
    logp = x - x.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    per = -(1 - eps) * logp[np.arange(len(t)), tt] - eps / v * logp.sum(-1)
    count = valid.sum()
    factor = 1.0 if reduction == "sum" else (1.0 / count if count else 0.0)
    loss = (per * valid).sum() * factor
    target = np.full_like(logp, eps / v)
    target[np.arange(len(t)), tt] += 1 - eps
    grad = (np.exp(logp) - target) * (valid * factor)[:, None]
    return loss, grad


@pytest.mark.parametrize(
    "dtype", [np.dtype(np.float32), np.dtype(np.float16), pytest.param(BF16, marks=needs_bf16, id="bfloat16")]
)
@pytest.mark.parametrize(
    "shape,block,smoothing,reduction",
    [
        ((6, 50), 0, 0.0, "mean"),
        ((6, 50), 16, 0.1, "mean"),  # the online log-sum-exp over 4 blocks of the vocabulary
        ((1, 37), 16, 0.0, "sum"),
        ((2, 3, 29), 0, 0.2, "sum"),
    ],
)
def test_cross_entropy(shape, block, smoothing, reduction, dtype):
    rng = np.random.default_rng(4)
    x = (_rand(rng, shape, np.float32) * 3).astype(dtype)
    t = rng.integers(0, shape[-1], shape[:-1]).astype(np.int64)
    t.reshape(-1)[0] = -100  # one ignored position
    if t.size > 1:
        t.reshape(-1)[-1] = shape[-1] - 1  # the last class
    loss, saved = cross_entropy.cross_entropy_forward(
        x, t, ignore_index=-100, label_smoothing=smoothing, reduction=reduction, block=block
    )
    want_loss, want_grad = _ce_ref(x, t, -100, smoothing, reduction)
    assert loss.shape == () and loss.dtype == np.float32
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5, atol=1e-5)  # float32 math on the same inputs
    g = np.array(0.75, np.float32)
    d = cross_entropy.cross_entropy_backward(x, t, saved, g, ignore_index=-100, label_smoothing=smoothing, block=block)
    assert d.dtype == x.dtype and d.shape == x.shape
    _close(d.reshape(-1, shape[-1]), 0.75 * want_grad, dtype)
    assert not np.any(d.reshape(-1, shape[-1])[0]), "the ignored row gets no gradient"


def test_cross_entropy_all_ignored_is_zero_with_zero_gradients():
    x = np.random.default_rng(5).standard_normal((4, 11)).astype(np.float32)
    t = np.full(4, 7, np.int32)  # ignore_index 7: every target ignored
    loss, saved = cross_entropy.cross_entropy_forward(x, t, ignore_index=7, reduction="mean")
    assert float(loss) == 0.0
    d = cross_entropy.cross_entropy_backward(x, t, saved, np.array(1.0, np.float32), ignore_index=7)
    assert not np.any(d)


def test_cross_entropy_keeps_no_probabilities():
    # What the forward keeps for the backward is one float32 per row plus the factor, never an (N, V) array.
    x = np.random.default_rng(6).standard_normal((3, 40)).astype(np.float32)
    _, (lse, factor) = cross_entropy.cross_entropy_forward(x, np.array([1, 2, 3]), block=16)
    assert lse.shape == (3,) and factor.shape == (1,)
    np.testing.assert_allclose(lse, np.log(np.exp(f64(x)).sum(-1)), rtol=1e-6)


# --- embedding ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "sorted"])
def test_embedding(deterministic, dtype):
    rng = np.random.default_rng(7)
    w = _rand(rng, (10, 21), dtype)
    idx = np.array([[1, 3, 3, 9], [9, 1, 3, 0]], np.int64)  # repeats, first and last rows
    rows = embedding.embedding_forward(w, idx)
    assert rows.shape == (2, 4, 21) and rows.dtype == w.dtype
    np.testing.assert_array_equal(rows, w[idx])
    g = _rand(rng, rows.shape, dtype)
    want = np.zeros((10, 21))
    np.add.at(want, idx.reshape(-1), f64(g).reshape(-1, 21))
    dw = embedding.embedding_backward(g, idx, 10, deterministic=deterministic)
    assert dw.dtype == w.dtype and dw.shape == w.shape
    _close(dw, want, dtype, scale=3)
    assert not np.any(f64(dw)[[2, 4, 5, 6, 7, 8]]), "rows no index points at stay zero"


def test_embedding_sorted_backward_is_order_independent():
    rng = np.random.default_rng(8)
    g = rng.standard_normal((64, 8)).astype(np.float32)
    idx = rng.integers(0, 3, 64).astype(np.int32)
    perm = rng.permutation(64)
    a = embedding.embedding_backward(g, idx, 3, deterministic=True)
    b = embedding.embedding_backward(g[perm], idx[perm], 3, deterministic=True)
    want = np.zeros((3, 8))
    np.add.at(want, idx, f64(g))
    np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, want, rtol=1e-5, atol=1e-5)


# --- Adam --------------------------------------------------------------------------------------------------------


def _adam_ref(p, g, m, v, t, lr, b1, b2, eps, wd):
    p, g, m, v = (f64(a) for a in (p, g, m, v))
    if wd:
        p = p * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps), m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay,steps", [(0.0, [3, 3, 3, 3]), (0.1, [1, 5, 2, 7])])
def test_adam_updates_every_tensor_in_one_launch(weight_decay, steps, dtype):
    rng = np.random.default_rng(9)
    shapes = [(3, 5), (150,), (1,), (2, 2, 33)]  # with block=64: tensors of 1, 3 and 2 chunks
    params = [_rand(rng, s, dtype) for s in shapes]
    grads = [_rand(rng, s, dtype) for s in shapes]
    ms = [_rand(rng, s, dtype) * 0.1 for s in shapes]
    vs = [_rand(rng, s, dtype, lo=0.01) * 0.1 for s in shapes]
    hp = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
    want = [
        _adam_ref(p, g, m, v, t, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], weight_decay)
        for p, g, m, v, t in zip(params, grads, ms, vs, steps)
    ]
    ids = [id(a) for a in params + ms + vs]
    out = adam.adam_update(params, grads, ms, vs, steps, block=64, **hp)
    assert [id(a) for group in (out[0], out[1], out[2]) for a in group] == ids, "updated in place"
    for p, m, v, (wp, wm, wv) in zip(params, ms, vs, want):
        _close(p, wp, dtype)
        _close(m, wm, dtype)
        _close(v, wv, dtype)


def test_adam_tables_are_cached_per_arrays():
    p = [np.zeros(10, np.float32), np.zeros(3, np.float32)]
    g = [np.ones(10, np.float32), np.ones(3, np.float32)]
    m = [np.zeros(10, np.float32), np.zeros(3, np.float32)]
    v = [np.zeros(10, np.float32), np.zeros(3, np.float32)]
    adam._TABLES.clear()
    for step in (1, 2):
        adam.adam_update(p, g, m, v, [step, step], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    assert len(adam._TABLES) == 1
    # Same gradient each step: the bias-corrected moments are exactly 1, so each step moves p by lr / (1 + eps).
    np.testing.assert_allclose(p[0], -0.2, rtol=1e-6)


# --- max-pool ----------------------------------------------------------------------------------------------------


def _pool_ref(x, k, s):
    x = f64(x)
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    regions = [
        (slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s)) for i in range(k) for j in range(k)
    ]
    y = np.max([x[:, :, a, b] for a, b in regions], axis=0)
    return y, regions


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1), (2, 3)])
def test_max_pool_ties_share_the_gradient(k, s, dtype):
    rng = np.random.default_rng(10)
    x = rng.integers(0, 3, (2, 3, 7, 9)).astype(dtype)  # few values: many ties in every window
    y, count = pool.max_pool2d_forward(x, k, s)
    want_y, regions = _pool_ref(x, k, s)
    np.testing.assert_array_equal(f64(y), want_y)
    g = _rand(rng, y.shape, dtype)
    hits = [f64(x)[:, :, a, b] == want_y for a, b in regions]
    np.testing.assert_array_equal(count, np.sum(hits, axis=0))
    want_dx = np.zeros(x.shape)
    for hit, (a, b) in zip(hits, regions):
        want_dx[:, :, a, b] += np.where(hit, f64(g) / np.sum(hits, axis=0), 0)
    _close(pool.max_pool2d_backward(x, y, count, g, k, s), want_dx, dtype)


# --- convolution -------------------------------------------------------------------------------------------------


def _conv_ref(x, w, b, stride, pad, dil, groups, gy):
    """Forward and both gradients in float64, from padded strided slices (one einsum per kernel offset)."""
    sh, sw = stride
    top, bottom, left, right = pad
    dh, dw = dil
    xp = np.pad(f64(x), ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, h, wd = xp.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, ho, wo))
    gx = np.zeros_like(xp)
    gw = np.zeros(w.shape)
    wf = f64(w)
    for gi in range(groups):
        cs, os_ = slice(gi * cg, (gi + 1) * cg), slice(gi * og, (gi + 1) * og)
        for i in range(kh):
            for j in range(kw):
                rows, cols = (
                    slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                    slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
                )
                patch = xp[:, cs, rows, cols]
                y[:, os_] += np.einsum("nchw,oc->nohw", patch, wf[os_, :, i, j])
                if gy is not None:
                    gx[:, cs, rows, cols] += np.einsum("nohw,oc->nchw", gy[:, os_], wf[os_, :, i, j])
                    gw[os_, :, i, j] += np.einsum("nohw,nchw->oc", gy[:, os_], patch)
    if b is not None:
        y += f64(b)[None, :, None, None]
    return y, gx[:, :, top : top + x.shape[2], left : left + x.shape[3]], gw


CONV_CASES = [
    # (x shape, out channels, kernel, stride, padding, dilation, groups)
    ((2, 3, 7, 6), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((1, 4, 8, 7), 6, (3, 2), (2, 1), (0, 2, 1, 0), (1, 2), 2),
    ((2, 2, 5, 5), 2, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 2),  # depthwise
    ((1, 3, 9, 9), 5, (1, 1), (3, 3), (0, 0, 0, 0), (1, 1), 1),  # stride past the kernel: pixels no output reads
]


@pytest.mark.parametrize(
    "dtype", [np.dtype(np.float32), np.dtype(np.float16), pytest.param(BF16, marks=needs_bf16, id="bfloat16")]
)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_implicit_gemm(case, dtype):
    shape, o, (kh, kw), stride, pad, dil, groups = CONV_CASES[case]
    rng = np.random.default_rng(11 + case)
    x = _rand(rng, shape, dtype)
    w = (_rand(rng, (o, shape[1] // groups, kh, kw), np.float32) * 0.5).astype(dtype)
    b = _rand(rng, (o,), dtype)
    bf16 = BF16 is not None and np.dtype(dtype) == BF16
    kw_ = dict(stride=stride, padding=pad, dilation=dil, groups=groups, precision="ieee", dot_f32=bf16)
    y = conv.conv2d_forward(x, w, b, **kw_)
    want_y, _, _ = _conv_ref(x, w, b, stride, pad, dil, groups, None)
    assert y.shape == want_y.shape == conv.conv2d_output_shape(shape, w.shape, stride, pad, dil)
    _close(y, want_y, dtype, scale=4)
    gy = _rand(rng, y.shape, dtype)
    _, want_dx, want_dw = _conv_ref(x, w, None, stride, pad, dil, groups, f64(gy))
    dx, dw, db = conv.conv2d_backward(x, w, gy, split=3, **kw_)
    assert dx.dtype == x.dtype and dw.dtype == w.dtype
    _close(dx, want_dx, dtype, scale=4)
    _close(dw, want_dw, dtype, scale=8)
    _close(db, f64(gy).sum((0, 2, 3)), dtype, scale=4)


# --- attention ---------------------------------------------------------------------------------------------------


def _keep_mask(seed, b, h, tq, tk, p):
    """The keep decisions of autograd.kernels.dropout's formula, in NumPy uint32 arithmetic."""
    u = np.uint32

    def mix(x):
        x = x ^ (x >> u(16))
        x = x * u(0x7FEB352D)
        x = x ^ (x >> u(15))
        x = x * u(0x846CA68B)
        return x ^ (x >> u(16))

    bh = np.arange(b * h, dtype=u).reshape(b, h, 1, 1)
    stream = mix(u(seed & 0xFFFFFFFF) + (bh + u(1)) * u(0x9E3779B9))
    i = np.arange(tq, dtype=u).reshape(-1, 1)
    j = np.arange(tk, dtype=u).reshape(1, -1)
    x = mix(mix(stream ^ mix(i + u(1))) + j * u(0x85EBCA6B))
    return (x >> u(8)).astype(np.float32) * np.float32(1.0 / (1 << 24)) >= np.float32(p)


def test_the_reference_keep_mask_is_core_s():
    dropout = pytest.importorskip("autograd.kernels.dropout", reason="autograd-core's dropout module is not importable")

    if backend.BACKEND != "numpy":
        pytest.skip("compares NumPy arrays")
    want = dropout.keep_mask(0xDEADBEEF1, 2, 3, range(5), range(7), 0.3)
    np.testing.assert_array_equal(_keep_mask(0xDEADBEEF1, 2, 3, 5, 7, 0.3), want)


def _attention_ref(q, k, v, do, mask, causal, p, seed, neg, scale=None):
    q, k, v, do = (f64(a) for a in (q, k, v, do))
    b, h, tq, d = q.shape
    tk = k.shape[2]
    sc = 1 / np.sqrt(d) if scale is None else scale
    s = q @ k.swapaxes(-1, -2) * sc
    if causal:
        s = s + np.where(np.arange(tk)[None] > np.arange(tq)[:, None] + tk - tq, neg, 0.0)
    if mask is not None:
        s = s + (np.where(mask, neg, 0.0) if mask.dtype == bool else f64(mask) * neg)
    prob = np.exp(s - s.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    z = _keep_mask(seed, b, h, tq, tk, p) / (1 - p) if p > 0 else np.ones_like(prob)
    dp = (do @ v.swapaxes(-1, -2)) * z
    ds = prob * (dp - (dp * prob).sum(-1, keepdims=True))
    return (prob * z) @ v, ds @ k * sc, ds.swapaxes(-1, -2) @ q * sc, (prob * z).swapaxes(-1, -2) @ do


ATTENTION_CASES = [
    # (B, H, Tq, Tk, D, Dv, causal, mask, dropout)
    (1, 2, 19, 19, 16, 16, True, None, 0.0),
    (1, 1, 13, 37, 24, 24, True, None, 0.0),  # causal, Tq < Tk: bottom-right aligned
    (1, 1, 21, 14, 40, 40, True, None, 0.0),  # causal, Tq > Tk: the first 7 rows see no key
    (2, 1, 21, 14, 40, 40, False, "bool", 0.0),  # odd head dim (padded to 64), a (B, 1, Tq, Tk) bool mask
    (1, 2, 17, 23, 16, 20, False, "additive", 0.3),  # Dv != D, a (Tq, Tk) additive mask, dropout
    (2, 2, 33, 33, 64, 64, True, None, 0.2),
]


@pytest.mark.parametrize(
    "dtype", [np.dtype(np.float32), np.dtype(np.float16), pytest.param(BF16, marks=needs_bf16, id="bfloat16")]
)
@pytest.mark.parametrize("case", range(len(ATTENTION_CASES)))
def test_flash_attention(case, dtype):
    b, h, tq, tk, d, dv, causal, mask_kind, p = ATTENTION_CASES[case]
    rng = np.random.default_rng(20 + case)
    q, k = _rand(rng, (b, h, tq, d), dtype), _rand(rng, (b, h, tk, d), dtype)
    v, do = _rand(rng, (b, h, tk, dv), dtype), _rand(rng, (b, h, tq, dv), dtype)
    mask = None
    if mask_kind == "bool":
        mask = rng.random((b, 1, tq, tk)) < 0.3
        mask[:, :, :, 0] = False  # every row sees a key
    elif mask_kind == "additive":
        mask = ((rng.random((tq, tk)) < 0.3) * rng.random((tq, tk))).astype(dtype)
    if causal and tq > tk:
        do[:, :, : tq - tk] = 0  # rows that see no key: unspecified, so they must not reach dk and dv either
    bf16 = BF16 is not None and np.dtype(dtype) == BF16
    kw = dict(mask=mask, is_causal=causal, dropout_p=p, seed=1234, block_m=16, block_n=16, dot_f32=bf16)
    o, lse = attention.attention_forward(q, k, v, **kw)
    dq, dk, dvv = attention.attention_backward(q, k, v, o, lse, do, **kw)
    neg = attention.neg_value(str(np.dtype(dtype)))
    want = _attention_ref(q, k, v, do, mask, causal, p, 1234, neg)
    seen = slice(None)
    if causal and tq > tk:  # rows that see no key: the kernel outputs 0, the reference's value is unspecified
        seen = slice(tq - tk, None)
        assert not np.any(f64(o)[:, :, : tq - tk]) and not np.any(f64(dq)[:, :, : tq - tk])
        want = (want[0][:, :, seen], want[1][:, :, seen], *want[2:])
        o, dq = o[:, :, seen], dq[:, :, seen]
    for got, ref in zip((o, dq, dk, dvv), want):
        assert got.dtype == q.dtype
        _close(got, ref, dtype, scale=4)


def test_attention_dropout_keeps_core_s_decisions():
    # q = k = 0 makes every probability 1/Tk, and v = identity reads the dropout multiplier out of the output.
    b, h, tq, tk, p, seed = 2, 3, 9, 32, 0.4, 987654321987
    q = np.zeros((b, h, tq, 16), np.float32)
    v = np.broadcast_to(np.eye(tk, dtype=np.float32), (b, h, tk, tk)).copy()
    o, _ = attention.attention_forward(q, q[:, :, :1].repeat(tk, 2), v, dropout_p=p, seed=seed, block_m=16, block_n=16)
    kept = f64(o) * tk * (1 - p)
    np.testing.assert_allclose(kept, _keep_mask(seed, b, h, tq, tk, p).astype(np.float64), atol=1e-5)
    assert 0.4 < 1 - kept.mean() < 0.6 * 1.5


def test_attention_head_dim_over_the_limit_is_refused():
    q = np.zeros((1, 1, 4, attention.MAX_HEAD_DIM + 8), np.float16)
    with pytest.raises(ValueError, match="head dims up to"):
        attention.attention_forward(q, q, q)
