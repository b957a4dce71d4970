"""The mlx_flash plugin: conformance, registration, declines, memory and the MLX-custom entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from autograd_kernels_mlx import MLXFlashAttention
from mlx_kernel_helpers import needs_mlx

from autograd import backend
from autograd import functional as F
from autograd.kernels import REFERENCE, registry
from autograd.ops.attention import AttentionKernel, dense_attention
from autograd.tensor import Tensor, no_grad
from autograd.testing import check_kernel_implementation


def test_registered_through_the_entry_point():
    impl = registry.get("attention", "mlx_flash")
    assert isinstance(impl, MLXFlashAttention)
    assert registry.entry("attention", "mlx_flash").package == "autograd-kernels-mlx"


def test_cli_lists_it():
    res = subprocess.run(
        [sys.executable, "-m", "autograd.kernels", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    data = json.loads(res.stdout)
    row = next(r for r in data["implementations"] if r["name"] == "mlx_flash")
    assert row["package"] == "autograd-kernels-mlx" and row["version"] == "0.1.0"
    chosen = data["choices"]["attention"]["chosen"]
    if backend.BACKEND == "mlx":
        assert row["usable"] and chosen == "mlx_flash"
    else:
        assert not row["usable"] and f"active backend is {backend.BACKEND}" in row["reasons"][0]
        assert chosen != "mlx_flash"


@pytest.mark.skipif(backend.BACKEND == "mlx", reason="checks the decline on other backends")
def test_declines_on_other_backends_and_another_runs():
    q = Tensor(np.random.default_rng(0).normal(size=(1, 2, 8, 16)).astype(np.float32))
    report = F.explain_attention(q, q, q, is_causal=True)
    declined = {c.name: c.reasons for c in report.candidates}["mlx_flash"]
    assert declined and "runs on mlx" in declined[0]
    assert report.chosen not in (None, "mlx_flash")
    with pytest.raises(RuntimeError, match="AUTOGRAD_BACKEND=mlx"):
        F.scaled_dot_product_attention_mlx_custom(q, q, q)


@needs_mlx
@pytest.mark.parametrize("block", [16, 128])
def test_conformance(block):
    # block 16 splits every case into several tiles (tails, causal skipping); 128 is the default.
    report = check_kernel_implementation(MLXFlashAttention(block=block))
    assert report.passed and not report.failures
    assert registry.get("attention", "mlx_flash").block == 128  # the registered instance is restored


@needs_mlx
def test_capability_reasons():
    impl = MLXFlashAttention()
    inputs = AttentionKernel.probe("float64", seq=4, head_dim=300)
    reasons = impl.check(inputs)
    assert any("float64" in r for r in reasons) and any("head_dim 300 > 256" in r for r in reasons)


@needs_mlx
def test_automatic_selection_and_gradients_flow():
    rng = np.random.default_rng(1)
    q, k, v = (Tensor(backend.asarray(rng.normal(size=(1, 2, 40, 32)).astype(np.float32))) for _ in range(3))
    assert F.explain_attention(q, k, v, is_causal=True).chosen == "mlx_flash"
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=REFERENCE)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert q.grad is not None and k.grad is not None and v.grad is not None


@needs_mlx
@pytest.mark.parametrize("kind", ["none", "causal", "bool"])
def test_fast_forward_path_without_gradients(kind):
    rng = np.random.default_rng(2)
    q = Tensor(backend.asarray(rng.normal(size=(2, 2, 5, 16)).astype(np.float32)))
    k, v = (Tensor(backend.asarray(rng.normal(size=(2, 2, 9, 16)).astype(np.float32))) for _ in range(2))
    forbidden = backend.asarray(np.triu(np.ones((5, 9), dtype=bool), 6)) if kind == "bool" else None
    kw = {"mask": forbidden, "is_causal": kind == "causal"}
    with no_grad():
        fast = F.scaled_dot_product_attention(q, k, v, **kw)
        assert fast.creator is None  # the fast path builds no Function
    ref = F.scaled_dot_product_attention(q, k, v, implementation=REFERENCE, **kw)
    np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


@needs_mlx
def test_memory_grows_linearly():
    import mlx.core as mx

    def peak(fn, seq):
        rng = np.random.default_rng(0)
        q, k, v = (Tensor(backend.asarray(rng.normal(size=(1, 2, seq, 32)).astype(np.float32))) for _ in range(3))
        mx.eval(q.data, k.data, v.data)
        mx.reset_peak_memory()
        base = mx.get_active_memory()
        out = fn(q, k, v)
        out.backward(backend.asarray(np.ones(out.shape, np.float32)))
        mx.eval(q.grad.data, k.grad.data, v.grad.data)
        return mx.get_peak_memory() - base

    def run(name):
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=name)

    f1, f2 = peak(run("mlx_flash"), 1024), peak(run("mlx_flash"), 2048)
    d2 = peak(run(REFERENCE), 2048)
    assert f2 < 2.6 * f1  # linear, not quadratic (4x)
    assert f2 * 4 < d2


@needs_mlx
def test_mlx_custom_entry_points_delegate_to_the_plugin():
    import mlx.core as mx

    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(1, 2, 20, 8)).astype(np.float32) for _ in range(3)]
    q, k, v = (Tensor(backend.asarray(a)) for a in arrays)
    out = F.scaled_dot_product_attention_mlx_custom(q, k, v, is_training=False, dropout_prob=0.5)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=REFERENCE)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    # the Function form with an explicit dropout multiplier, against dense with the same mask
    mask = F.ScaledDotProductAttentionMLXCustom.build_dropout_scale_mask(
        is_training=True, dropout_prob=0.3, query_shape=q.shape, key_shape=k.shape
    )
    mx.eval(mask)
    qs = [Tensor(backend.asarray(a)) for a in arrays]
    ours = F.ScaledDotProductAttentionMLXCustom.apply(*qs, dropout_scale_mask=mask)
    g = backend.asarray(rng.normal(size=ours.shape).astype(np.float32))
    ours.backward(g)
    rs = [Tensor(backend.asarray(a)) for a in arrays]
    theirs = dense_attention(*rs, is_causal=True, dropout_mask=mask)
    theirs.backward(g)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(qs, rs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-3, atol=1e-4)


@needs_mlx
def test_low_precision_inputs_are_kept_low_for_the_backward():
    import mlx.core as mx

    rng = np.random.default_rng(0)
    q, k, v = (
        Tensor(mx.array(rng.standard_normal((1, 2, 48, 16)).astype(np.float32)).astype(mx.bfloat16)) for _ in range(3)
    )
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation="mlx_flash")
    fn = out.creator
    # no float32 copies of q, k, v or the output: the graph's own bfloat16 arrays
    assert out.dtype == fn.q.dtype == fn.k.dtype == fn.v.dtype == fn.out.dtype == mx.bfloat16
    assert fn.lse.dtype == mx.float32
    out.backward(mx.ones(out.shape, mx.bfloat16))
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == mx.bfloat16
