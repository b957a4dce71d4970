"""Registration of every implementation, the CLI's listing, and the declines off the cupy backend.

The conformance suites on the GPU are in test_gpu.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from autograd_kernels_cuda import CUDAFlashAttention, triton_fused
from autograd_kernels_cuda.cudnn_attention import CudnnAttention

from autograd import backend
from autograd import functional as F
from autograd.kernels import registry
from autograd.kernels.contract import make_inputs
from autograd.ops.attention import AttentionKernel
from autograd.ops.catalog import KERNEL_OPS
from autograd.tensor import Tensor

on_gpu = backend.BACKEND == "cupy"


def test_registered_through_the_entry_point():
    assert isinstance(registry.get("attention", "cuda_flash"), CUDAFlashAttention)
    assert registry.entry("attention", "cuda_flash").package == "autograd-kernels-cuda"


def test_every_op_has_a_triton_fused_implementation():
    for contract in KERNEL_OPS:
        entry = registry.entry(contract.op, triton_fused.NAME)
        assert entry.package == "autograd-kernels-cuda" and entry.impl.priority == triton_fused.PRIORITY
        assert type(entry.impl).contract() is contract and entry.impl.backends == ("cupy",)


def test_attention_priorities():
    """cudnn_sdpa first, the Triton FlashAttention for what it declines, the hand-written kernels last."""
    assert CudnnAttention.priority > triton_fused.PRIORITY > CUDAFlashAttention.priority


def _cli() -> dict:
    res = subprocess.run(
        [sys.executable, "-m", "autograd.kernels", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_cli_lists_them():
    report = _cli()
    rows = [r for r in report["implementations"] if r["package"] == "autograd-kernels-cuda"]
    want = [(c.op, "triton_fused") for c in KERNEL_OPS] + [("attention", "cudnn_sdpa"), ("attention", "cuda_flash")]
    assert sorted((r["op"], r["name"]) for r in rows) == sorted(want)
    assert not [f for f in report["failures"] if "autograd-kernels-cuda" in json.dumps(f)]
    if not on_gpu:  # each says why it is not usable here
        assert all(not r["usable"] and r["reasons"] for r in rows), rows


@pytest.mark.skipif(on_gpu, reason="checks the declines off the cupy backend")
@pytest.mark.parametrize("impl", [*triton_fused.IMPLEMENTATIONS, CudnnAttention, CUDAFlashAttention])
def test_each_declines_off_cupy_with_the_reason(impl):
    verdict = registry.explain(impl.contract().probe())
    mine = next(c for c in verdict.candidates if c.name == impl.name)
    # the backend first; the inputs' own reasons may follow (cudnn_sdpa: the probe is float32)
    assert mine.reasons[0] == f"the active backend is {backend.BACKEND}; {impl.name} runs on cupy", mine
    assert verdict.chosen not in ("cudnn_sdpa", "triton_fused", "cuda_flash")


def _inputs(dtype="float32", head_dim=64, **shapes):
    shape = (1, 2, 8, head_dim)
    arrays = {"query": shape, "key": shape, "value": (1, 2, 8, 64), **shapes}
    dtypes = {"mask": "bool"} if "mask" in shapes else {}
    params = {"is_causal": False, "dropout_prob": 0.0, "scale": None, "seed": None}
    return make_inputs(AttentionKernel, dtype, arrays, params, dtypes)


def test_capability_reasons():
    impl = CUDAFlashAttention()
    assert any("head_dim 48" in r for r in impl.check(_inputs(head_dim=48)))
    assert any("float64" in r for r in impl.check(_inputs("float64")))
    assert any("bool masks are not supported" in r for r in impl.check(_inputs(mask=(8, 8))))
    assert any("dropout_mask is not supported" in r for r in impl.check(_inputs(dropout_mask=(1, 2, 8, 8))))


def test_triton_capability_reasons():
    impl = triton_fused.TritonAttention()
    assert any("float64" in r for r in impl.check(_inputs("float64")))
    assert any("at most 256" in r for r in impl.check(_inputs(head_dim=320)))
    assert any("dropout_mask is not supported" in r for r in impl.check(_inputs(dropout_mask=(1, 2, 8, 8))))
    assert not any("mask" in r for r in impl.check(_inputs(mask=(8, 8))))  # masks are taken
    pool = triton_fused.TritonMaxPool2d()
    params = {"kernel_size": (3, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)}
    rect = make_inputs(pool.contract(), "float16", {"x": (1, 2, 8, 8)}, params)
    assert any("only square windows" in r for r in pool.check(rect))


@pytest.mark.skipif(on_gpu, reason="checks the decline without a GPU")
def test_declines_here_and_another_runs():
    reasons = CUDAFlashAttention().check_environment()
    assert reasons and ("runs on cupy" in reasons[0] or "CuPy" in reasons[0] or "CUDA" in reasons[0])
    q = Tensor(np.random.default_rng(0).normal(size=(1, 2, 8, 64)).astype(np.float32))
    report = F.explain_attention(q, q, q, is_causal=True)
    assert {c.name: c.reasons for c in report.candidates}["cuda_flash"] == reasons
    assert report.chosen != "cuda_flash"
    assert F.scaled_dot_product_attention(q, q, q, is_causal=True).shape == (1, 2, 8, 64)


@pytest.mark.parametrize(
    "backend_name,interpret,fragment",
    [
        ("numpy", False, "only in its interpreter (TRITON_INTERPRET=1"),
        ("numpy", True, ""),
        ("cupy", True, "TRITON_INTERPRET is set"),
    ],
)
def test_triton_environment_reasons(backend_name, interpret, fragment):
    if triton_fused.triton_missing():
        pytest.skip(triton_fused.triton_missing())
    reasons = triton_fused._environment_cached(backend_name, interpret)
    assert (fragment in reasons[0]) if fragment else reasons == ()


def test_triton_missing_is_a_reason_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(triton_fused, "triton_missing", lambda: "triton is not installed: pip install (test)")
    triton_fused._environment_cached.cache_clear()
    try:
        assert triton_fused._environment_cached("cupy", False) == ("triton is not installed: pip install (test)",)
    finally:
        triton_fused._environment_cached.cache_clear()
