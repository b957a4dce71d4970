"""Registration, declines without a GPU, and (on a GPU) the conformance suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from autograd_kernels_cuda import CUDAFlashAttention

from autograd import backend
from autograd import functional as F
from autograd.kernels import registry
from autograd.kernels.contract import make_inputs
from autograd.ops.attention import AttentionKernel
from autograd.tensor import Tensor
from autograd.testing import check_kernel_implementation

on_gpu = backend.BACKEND == "cupy"
needs_gpu = pytest.mark.skipif(not on_gpu, reason="needs the cupy backend on a CUDA device (none here)")


def test_registered_through_the_entry_point():
    assert isinstance(registry.get("attention", "cuda_flash"), CUDAFlashAttention)
    assert registry.entry("attention", "cuda_flash").package == "autograd-kernels-cuda"


def test_cli_lists_it():
    res = subprocess.run(
        [sys.executable, "-m", "autograd.kernels", "--json"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    row = next(r for r in json.loads(res.stdout)["implementations"] if r["name"] == "cuda_flash")
    assert row["package"] == "autograd-kernels-cuda" and row["usable"] == on_gpu


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


@pytest.mark.skipif(on_gpu, reason="checks the decline without a GPU")
def test_declines_here_and_another_runs():
    reasons = CUDAFlashAttention().check_environment()
    assert reasons and ("runs on cupy" in reasons[0] or "CuPy" in reasons[0] or "CUDA" in reasons[0])
    q = Tensor(np.random.default_rng(0).normal(size=(1, 2, 8, 64)).astype(np.float32))
    report = F.explain_attention(q, q, q, is_causal=True)
    assert {c.name: c.reasons for c in report.candidates}["cuda_flash"] == reasons
    assert report.chosen != "cuda_flash"
    assert F.scaled_dot_product_attention(q, q, q, is_causal=True).shape == (1, 2, 8, 64)


@needs_gpu
def test_conformance_on_gpu():
    report = check_kernel_implementation(CUDAFlashAttention(), dtypes=("float32", "float16"))
    assert report.passed and not report.failures
