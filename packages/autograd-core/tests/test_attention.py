"""Attention: the public function, the dense reference, selection among attention kernels, the MLX front ends."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.kernels import REFERENCE, KernelNotSupportedError, UnknownKernelError, registry
from autograd.ops.attention import AttentionKernel, dense_attention
from autograd.tensor import Tensor
from autograd.testing import check_kernel_implementation, gradcheck, isolated_kernels

# MLX's float64 exp runs at float32 precision.
TOL = dict(rtol=1e-6, atol=1e-8) if backend.FLOAT64_TRANSCENDENTALS_EXACT else dict(rtol=1e-5, atol=1e-6)


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a)), **kw)


def qkv(b=2, h=2, tq=4, tk=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in ((b, h, tq, d), (b, h, tk, d), (b, h, tk, d))]


def np_attention(q, k, v, forbidden=None, scale=None):
    s = q @ np.swapaxes(k, -1, -2) * (scale or 1 / np.sqrt(q.shape[-1]))
    if forbidden is not None:
        s = np.where(forbidden, -1e9, s)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    return p @ v


@pytest.fixture(autouse=True)
def _no_env_choice(monkeypatch):
    monkeypatch.delenv("AUTOGRAD_KERNELS", raising=False)


class Dense(AttentionKernel):
    """The reference's math under another name, for registry tests."""

    name = "dense_copy"
    backends = ("numpy", "mlx", "cupy")
    priority = 5

    def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
        return dense_attention(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            dropout_mask=dropout_mask,
        )


# --- dense reference ---------------------------------------------------------------


@pytest.mark.parametrize("tq,tk", [(4, 4), (3, 6), (1, 5)])
def test_dense_values_causal_and_masks(tq, tk):
    q, k, v = qkv(tq=tq, tk=tk)
    out = F.scaled_dot_product_attention(T(q), T(k), T(v))
    np.testing.assert_allclose(to_np(out), np_attention(q, k, v), **TOL)
    causal = np.arange(tk)[None] > np.arange(tq)[:, None] + tk - tq
    out = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True)
    np.testing.assert_allclose(to_np(out), np_attention(q, k, v, causal), **TOL)
    forbidden = np.random.default_rng(5).random((tq, tk)) > 0.6
    forbidden[:, 0] = False
    bool_out = F.scaled_dot_product_attention(T(q), T(k), T(v), mask=backend.asarray(forbidden))
    add_out = F.scaled_dot_product_attention(T(q), T(k), T(v), mask=T(forbidden.astype(np.float64)))
    ref = np_attention(q, k, v, forbidden)
    np.testing.assert_allclose(to_np(bool_out), ref, **TOL)
    np.testing.assert_allclose(to_np(add_out), ref, **TOL)
    # an explicit mask wins over is_causal
    both = F.scaled_dot_product_attention(T(q), T(k), T(v), mask=backend.asarray(forbidden), is_causal=True)
    np.testing.assert_allclose(to_np(both), ref, **TOL)


def test_dense_gradients_finite_differences():
    q, k, v = qkv(b=1, h=2, tq=3, tk=4, d=5)
    forbidden = backend.asarray(np.array([[False, True, False, True]] * 3))
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k, v)
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, mask=forbidden, scale=0.3), q, k, v)
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, dropout_prob=0.3, seed=11), q, k, v)


def test_dropout_is_seeded_and_scaled():
    q, k, v = (T(a) for a in qkv())
    a = to_np(F.scaled_dot_product_attention(q, k, v, dropout_prob=0.5, seed=3))
    b = to_np(F.scaled_dot_product_attention(q, k, v, dropout_prob=0.5, seed=3))
    c = to_np(F.scaled_dot_product_attention(q, k, v, dropout_prob=0.5, seed=4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    backend.seed(1)
    d = to_np(F.scaled_dot_product_attention(q, k, v, dropout_prob=0.5))
    backend.seed(1)
    e = to_np(F.scaled_dot_product_attention(q, k, v, dropout_prob=0.5))
    assert np.array_equal(d, e)


def test_the_reference_passes_the_conformance_suite(core_kernels):
    report = check_kernel_implementation(AttentionKernel.reference())
    assert report.passed and not report.failures and not report.declined
    assert any(p.startswith("float64") for p in report.passed) and any("dropout" in p for p in report.passed)
    assert any("Tq=33 Tk=20" in s and "the first 13 rows see no key" in s for s in report.skipped)


def test_input_errors_name_shapes():
    q, k, v = (T(a) for a in qkv())
    with pytest.raises(ValueError, match=r"\(batch, heads, seq, dim\).*\(2, 2, 4\)"):
        F.scaled_dot_product_attention(T(np.ones((2, 2, 4))), k, v)
    with pytest.raises(ValueError, match=r"\(2, 2, 4, 8\), \(2, 2, 4, 7\)"):
        F.scaled_dot_product_attention(q, T(np.ones((2, 2, 4, 7))), v)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast.*\(2, 2, 4, 4\)"):
        F.scaled_dot_product_attention(q, k, v, mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="dropout_prob must be in"):
        F.scaled_dot_product_attention(q, k, v, dropout_prob=1.0)


# --- registry and selection --------------------------------------------------------


def test_selection_order_priority_then_name(fake_plugins):
    q, k, v = (T(a) for a in qkv(d=16))
    bool_mask = backend.asarray(np.zeros((4, 4), dtype=bool))
    # both fakes have priority 50: alpha wins on the name when it accepts (bool mask)
    assert F.explain_attention(q, k, v, mask=bool_mask).chosen == "fake_alpha"
    assert F.explain_attention(q, k, v).chosen == "fake_fast"
    big = [T(a) for a in qkv(d=64)]
    report = F.explain_attention(*big)
    assert report.chosen == REFERENCE
    reasons = {c.name: c.reasons for c in report.candidates}
    assert reasons["fake_fast"] == ["head_dim 64 > 32"]
    assert "mask dtype '' is not 'bool'" in reasons["fake_alpha"][0]
    assert "fake_fast" in str(report) and "head_dim 64 > 32" in str(report)
    F.scaled_dot_product_attention(q, k, v)
    F.scaled_dot_product_attention(q, k, v, mask=bool_mask)
    F.scaled_dot_product_attention(*big)
    assert fake_plugins.calls == {"fake_fast": 1, "fake_alpha": 1}


def test_explicit_choice_and_rejection(fake_plugins):
    q, k, v = (T(a) for a in qkv(d=64))
    out = F.scaled_dot_product_attention(q, k, v, implementation=REFERENCE)
    assert out.shape == (2, 2, 4, 64)
    with pytest.raises(KernelNotSupportedError) as info:
        F.scaled_dot_product_attention(q, k, v, implementation="fake_fast")
    msg = str(info.value)
    assert "head_dim 64 > 32" in msg and "query=(2, 2, 4, 64)" in msg and "implementation='fake_fast'" in msg
    with pytest.raises(UnknownKernelError, match="no attention implementation named 'nope'.*reference"):
        F.scaled_dot_product_attention(q, k, v, implementation="nope")


def test_fakes_pass_conformance_and_declines_are_honoured(fake_plugins):
    report = check_kernel_implementation(registry.get("attention", "fake_fast"), dtypes=("float32",))
    assert report.passed and report.declined and not report.failures
    assert any("head_dim 64 > 32" in d for d in report.declined)


def test_conformance_catches_a_wrong_kernel():
    class Wrong(Dense):
        name = "wrong"

        def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
            return dense_attention(query, key, value, mask=mask, is_causal=is_causal) * 1.01

    report = check_kernel_implementation(Wrong(), dtypes=("float32",), raise_on_failure=False)
    assert report.failures and "output" in report.failures[0]
    with pytest.raises(AssertionError, match="conformance of 'wrong'"):
        check_kernel_implementation(Wrong(), dtypes=("float32",))


def test_conformance_catches_a_dropout_that_ignores_the_seed():
    class Unseeded(Dense):
        name = "unseeded"

        def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
            seed = int(np.random.default_rng().integers(1 << 30)) if dropout_prob else seed
            return super().apply(
                query,
                key,
                value,
                mask=mask,
                is_causal=is_causal,
                dropout_prob=dropout_prob,
                scale=scale,
                seed=seed,
                dropout_mask=dropout_mask,
            )

    report = check_kernel_implementation(Unseeded(), dtypes=("float32",), raise_on_failure=False)
    assert any("the same seed gave a different output" in f for f in report.failures)


def test_conformance_catches_an_unhonoured_decline():
    class Liar(Dense):
        name = "liar"

        def check(self, inputs):
            return ["never"]

    with isolated_kernels(Liar):
        # selection honours it; the suite confirms it
        report = check_kernel_implementation(registry.get("attention", "liar"), dtypes=("float32",))
        assert not report.failures and report.declined


def test_debug_log_names_the_choice(caplog, core_kernels):
    q, k, v = (T(a) for a in qkv())
    with caplog.at_level(logging.DEBUG, logger="autograd.kernels"):
        F.scaled_dot_product_attention(q, k, v)
    assert "chosen: reference" in caplog.text


def test_backend_mismatch_is_a_reason():
    class Elsewhere(Dense):
        name = "elsewhere"
        backends = tuple(b for b in backend.BACKENDS if b != backend.BACKEND)

    reasons = Elsewhere().check_environment()
    assert reasons and f"active backend is {backend.BACKEND}" in reasons[0]


def test_mlx_custom_names_say_what_to_install():
    q = T(np.ones((1, 1, 4, 8), dtype=np.float32))
    try:
        impl = registry.get("attention", F.MLX_KERNEL_NAME)
    except UnknownKernelError:
        impl = None
    if impl is not None and not impl.check_environment():
        pytest.skip("the MLX kernel plugin is installed and usable here")
    with pytest.raises(RuntimeError, match="autograd-kernels-mlx|AUTOGRAD_BACKEND=mlx"):
        F.scaled_dot_product_attention_mlx_custom(q, q, q)
    with pytest.raises(RuntimeError, match="autograd-kernels-mlx|AUTOGRAD_BACKEND=mlx"):
        F.ScaledDotProductAttentionMLXCustom.apply(q, q, q)
    assert (
        F.ScaledDotProductAttentionMLXCustom.build_dropout_scale_mask(
            is_training=False, dropout_prob=0.5, query_shape=(1, 1, 4, 8), key_shape=(1, 1, 4, 8)
        )
        is None
    )
    m = F.ScaledDotProductAttentionMLXCustom.build_dropout_scale_mask(
        is_training=True, dropout_prob=0.5, query_shape=(1, 2, 4, 8), key_shape=(1, 2, 4, 8)
    )
    assert m.shape == (1, 2, 4, 4) and set(np.unique(to_np(m))) <= {0.0, 2.0}
