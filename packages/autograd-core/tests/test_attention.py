"""The attention dispatcher, the dense reference, the plugin registry and its CLI."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.kernels import (
    AttentionImplementation,
    AttentionNotSupportedError,
    UnknownAttentionImplementationError,
    registry,
)
from autograd.kernels.dense import DenseAttention, dense_attention
from autograd.tensor import Tensor
from autograd.testing import check_attention_implementation, gradcheck

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
    monkeypatch.delenv("AUTOGRAD_ATTENTION", raising=False)


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


def test_dense_passes_its_own_conformance_suite():
    report = check_attention_implementation(DenseAttention())
    assert report.passed and not report.failures and not report.declined


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
    assert report.chosen == "dense"
    reasons = {c.name: c.reasons for c in report.candidates}
    assert reasons["fake_fast"] == ["head_dim 64 > 32"]
    assert "mask kind 'none'" in reasons["fake_alpha"][0]
    assert "fake_fast" in str(report) and "head_dim 64 > 32" in str(report)
    F.scaled_dot_product_attention(q, k, v)
    F.scaled_dot_product_attention(q, k, v, mask=bool_mask)
    F.scaled_dot_product_attention(*big)
    assert fake_plugins.calls == {"fake_fast": 1, "fake_alpha": 1}


def test_explicit_choice_and_rejection(fake_plugins):
    q, k, v = (T(a) for a in qkv(d=64))
    out = F.scaled_dot_product_attention(q, k, v, implementation="dense")
    assert out.shape == (2, 2, 4, 64)
    with pytest.raises(AttentionNotSupportedError) as info:
        F.scaled_dot_product_attention(q, k, v, implementation="fake_fast")
    msg = str(info.value)
    assert "head_dim 64 > 32" in msg and "query=(2, 2, 4, 64)" in msg and "implementation='fake_fast'" in msg
    with pytest.raises(UnknownAttentionImplementationError, match="no attention implementation named 'nope'.*dense"):
        F.scaled_dot_product_attention(q, k, v, implementation="nope")


def test_environment_variable_selects(fake_plugins, monkeypatch):
    small = [T(a) for a in qkv(d=16)]
    monkeypatch.setenv("AUTOGRAD_ATTENTION", "dense")
    assert F.explain_attention(*small).chosen == "dense"
    F.scaled_dot_product_attention(*small)
    assert not fake_plugins.calls
    monkeypatch.setenv("AUTOGRAD_ATTENTION", "fake_fast")
    with pytest.raises(AttentionNotSupportedError, match="AUTOGRAD_ATTENTION='fake_fast'.*dropout is not supported"):
        F.scaled_dot_product_attention(*small, dropout_prob=0.1)
    monkeypatch.setenv("AUTOGRAD_ATTENTION", "auto")
    assert F.explain_attention(*small).chosen == "fake_fast"
    # the argument wins over the environment
    monkeypatch.setenv("AUTOGRAD_ATTENTION", "fake_fast")
    assert F.explain_attention(*small, implementation="dense").chosen == "dense"


def test_fakes_pass_conformance_and_declines_are_honoured(fake_plugins):
    report = check_attention_implementation(registry.get("fake_fast"), dtypes=("float32",))
    assert report.passed and report.declined and not report.failures
    assert any("head_dim 64 > 32" in d for d in report.declined)


def test_conformance_catches_a_wrong_kernel():
    class Wrong(DenseAttention):
        name = "wrong"
        priority = 5

        def attention(self, query, key, value, **kw):
            return dense_attention(query, key, value, **kw) * 1.01

    report = check_attention_implementation(Wrong(), dtypes=("float32",), raise_on_failure=False)
    assert report.failures and "output" in report.failures[0]
    with pytest.raises(AssertionError, match="conformance of 'wrong'"):
        check_attention_implementation(Wrong(), dtypes=("float32",))


def test_conformance_catches_an_unhonoured_decline():
    class Liar(DenseAttention):
        name = "liar"
        priority = 5

        def check(self, inputs):
            return ["never"]

    registry.register(Liar())
    try:
        # selection honours it; the suite confirms it
        report = check_attention_implementation(registry.get("liar"), dtypes=("float32",))
        assert not report.failures and report.declined
    finally:
        registry.unregister("liar")


def test_broken_plugins_warn_once_and_are_skipped(fake_plugins):
    registry.reset()
    with pytest.warns(RuntimeWarning) as record:
        names = [i.name for i in registry.implementations()]
    messages = " ".join(str(w.message) for w in record)
    for bad in ("fake_import_error", "fake_missing_attr", "fake_not_an_impl"):
        assert bad in messages
    assert "broken on purpose" in messages
    assert {"fake_fast", "fake_alpha", "dense"} <= set(names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.implementations()  # no second report


def test_programmatic_register_and_duplicate_name():
    class Mine(DenseAttention):
        name = "mine"
        priority = 7

    registry.register(Mine)
    try:
        assert "mine" in [i.name for i in registry.implementations()]
        with pytest.raises(ValueError, match="already registered"):
            registry.register(Mine())
        with pytest.raises(TypeError, match="not a kernel implementation"):
            registry.register(lambda: 3)
    finally:
        registry.unregister("mine")


def test_debug_log_names_the_choice(caplog):
    q, k, v = (T(a) for a in qkv())
    with caplog.at_level(logging.DEBUG, logger="autograd.kernels"):
        F.scaled_dot_product_attention(q, k, v)
    assert "chosen: dense" in caplog.text


def test_contract_requires_attention_method():
    class Incomplete(AttentionImplementation):
        name = "incomplete"
        backends = ("numpy",)

    with pytest.raises(TypeError):
        Incomplete()


def test_backend_mismatch_is_a_reason():
    class Elsewhere(DenseAttention):
        name = "elsewhere"
        backends = tuple(b for b in backend.BACKENDS if b != backend.BACKEND)

    reasons = Elsewhere().check_environment()
    assert reasons and f"active backend is {backend.BACKEND}" in reasons[0]


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_importing_tensor_and_functional_loads_no_plugin():
    res = _run(
        "import sys, autograd.tensor, autograd.functional; "
        "print(any(m.startswith('fake_attention_plugins') or m.startswith('autograd_kernels') for m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_cli_lists_implementations(fake_plugins):
    res = _run("from autograd.kernels.__main__ import main; main()", AUTOGRAD_FAKE_PLUGINS="1")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "dense" in out and "autograd-core" in out
    assert "fake_fast" in out and "autograd-fake-attention-plugins" in out and "0.0.1" in out
    assert f"backend: {backend.BACKEND}" in out
    from autograd.kernels.__main__ import default_inputs

    expected = registry.explain(default_inputs(), None).chosen  # dense, or an installed plugin for this backend
    assert "default case" in out and out.strip().endswith(f": {expected}")
    res = _run("import runpy; runpy.run_module('autograd.kernels', run_name='__main__')", AUTOGRAD_ATTENTION="")
    assert res.returncode == 0 and "dense" in res.stdout
    res = _run(
        "from autograd.kernels.__main__ import main; main(['--json', '--head-dim', '16'])", AUTOGRAD_FAKE_PLUGINS="1"
    )
    data = json.loads(res.stdout)
    assert data["chosen"] == registry.explain(default_inputs(head_dim=16), None).chosen  # fake_fast, or a plugin
    assert data["chosen"] in ("fake_fast", "mlx_flash", "cuda_flash") and data["backend"] == backend.BACKEND
    assert {"name", "package", "version", "backends", "priority", "usable", "reasons"} <= set(
        data["implementations"][0]
    )


def test_console_script_installed():
    scripts = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "autograd-kernels"]
    assert scripts and scripts[0].value == "autograd.kernels.__main__:main"


def test_mlx_custom_names_say_what_to_install():
    q = T(np.ones((1, 1, 4, 8), dtype=np.float32))
    try:
        impl = registry.get(F.MLX_KERNEL_NAME)
    except UnknownAttentionImplementationError:
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
