"""Every ``triton_fused`` implementation's own Function, run on core's conformance cases in Triton's interpreter.

The classes the entry points install run on CuPy (``backends = ("cupy",)``).
:func:`autograd_kernels_cuda.triton_fused.host_variant` makes the same class
with ``backends = ("numpy",)``: the very Functions CuPy runs, whose kernels the
interpreter runs on NumPy arrays here (``TRITON_INTERPRET=1``, set before
triton is first imported, as in test_triton_interpreter.py). Each is checked
by :func:`autograd.testing.check_kernel_implementation` in an isolated
registry, in float32, float16 and bfloat16 (float64 must be declined).

On the cupy backend these tests skip: there the kernels run compiled on the GPU
(test_gpu.py), and interpreting them in this process would break that. On MLX
they skip too: the interpreter's arrays are NumPy's.
"""

from __future__ import annotations

import pytest
from interpreter_setup import use_triton_interpreter

use_triton_interpreter()  # before anything imports triton

import numpy as np  # noqa: E402
from autograd_kernels_cuda import triton_fused  # noqa: E402
from autograd_kernels_cuda.triton_support import triton_missing  # noqa: E402

from autograd import functional as F  # noqa: E402
from autograd.kernels import registry  # noqa: E402
from autograd.ops.catalog import KERNEL_OPS  # noqa: E402
from autograd.tensor import Tensor  # noqa: E402
from autograd.testing import check_kernel_implementation, isolated_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(triton_missing() is not None, reason=str(triton_missing()))

try:
    import ml_dtypes  # noqa: F401

    DTYPES = ("float64", "float32", "float16", "bfloat16")
except ImportError:  # NumPy has no bfloat16 without it
    DTYPES = ("float64", "float32", "float16")

BY_OP = {cls.op: cls for cls in triton_fused.IMPLEMENTATIONS}
#: What each implementation declines among its op's conformance cases, beyond float64.
DECLINED = {
    "attention": ("empty inputs",),
    "max_pool2d": ("only square windows",),
}


def test_one_implementation_per_registry_op():
    assert sorted(BY_OP) == sorted(c.op for c in KERNEL_OPS)
    assert all(cls.name == "triton_fused" and cls.backends == ("cupy",) for cls in BY_OP.values())


@pytest.mark.parametrize("op", sorted(BY_OP))
def test_conformance_in_the_interpreter(op):
    impl = triton_fused.host_variant(BY_OP[op])()
    assert type(impl).function is BY_OP[op].function  # the Function CuPy runs, not a copy of it
    with isolated_kernels(impl):
        report = check_kernel_implementation(impl, dtypes=DTYPES)
    assert report.passed and not report.failures
    checked = {label.split(" ", 1)[0] for label in report.passed}
    assert {"float32", "float16"} <= checked, report.passed
    assert not any(label.startswith("float64") for label in report.passed)
    allowed = ("dtypes ['float64']",) + DECLINED.get(op, ())
    unexpected = [d for d in report.declined if not any(a in d for a in allowed)]
    assert not unexpected, unexpected


def test_attention_takes_masks_dropout_and_odd_head_dims():
    """Beyond the contract's grid: head dim 80 (padded inside the kernel), a key-padding mask, dropout."""
    impl = triton_fused.host_variant(triton_fused.TritonAttention)()
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 2, 9, 80)).astype(np.float32) for _ in range(3))
    pad = np.zeros((2, 1, 1, 9), bool)
    pad[1, ..., 6:] = True
    with isolated_kernels(impl):
        tq, tk, tv = (Tensor(a) for a in (q, k, v))
        out = F.scaled_dot_product_attention(tq, tk, tv, mask=pad, dropout_prob=0.2, seed=7)
        assert out.creator.__class__ is triton_fused.TritonAttentionFunction
        out.sum().backward()
        with registry.isolated():  # core's dense path with the same seed: the same dropout decisions
            rq, rk, rv = (Tensor(a.astype(np.float64)) for a in (q, k, v))
            want = F.scaled_dot_product_attention(rq, rk, rv, mask=pad, dropout_prob=0.2, seed=7)
            want.sum().backward()
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    for got, ref in ((tq, rq), (tk, rk), (tv, rv)):
        np.testing.assert_allclose(got.grad.numpy(), ref.grad.numpy(), rtol=1e-3, atol=1e-4)


def test_softmax_along_a_middle_axis():
    impl = triton_fused.host_variant(triton_fused.TritonSoftmax)()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32))
    with isolated_kernels(impl):
        y = F.softmax(x, dim=1)
        assert type(y.creator) is triton_fused.TritonSoftmaxFunction
        y.backward(np.ones((3, 5, 4), np.float32))
    e = np.exp(x.numpy() - x.numpy().max(1, keepdims=True))
    np.testing.assert_allclose(y.numpy(), e / e.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-6)  # softmax rows sum to 1: a constant has no slope


def test_tf32_is_opt_in(monkeypatch):
    monkeypatch.delenv("AUTOGRAD_CUDA_TF32", raising=False)
    assert triton_fused._precision() == "ieee"
    monkeypatch.setenv("AUTOGRAD_CUDA_TF32", "1")
    assert triton_fused._precision() == "tf32"


def test_host_variant_refuses_other_classes():
    with pytest.raises(TypeError, match="not one of the triton_fused"):
        triton_fused.host_variant(object)
