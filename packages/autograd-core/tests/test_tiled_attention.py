"""numpy_tiled: the memory-linear NumPy attention that autograd-core registers as a plugin."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from autograd import backend
from autograd import functional as F
from autograd.kernels import REFERENCE, registry
from autograd.kernels.tiled import MIN_SEQ, NumpyTiledAttention
from autograd.tensor import Tensor
from autograd.testing import check_kernel_implementation, gradcheck

on_numpy = backend.BACKEND == "numpy"
needs_numpy = pytest.mark.skipif(not on_numpy, reason="numpy_tiled runs on the numpy backend")


def test_registered_through_core_entry_point():
    entry = registry.entry("attention", "numpy_tiled")
    assert isinstance(entry.impl, NumpyTiledAttention) and entry.package == "autograd-core"


@needs_numpy
@pytest.mark.parametrize("block", [8, 32, 128])
def test_conformance(block):
    # Tiles of 8 or 32 keys split every case into several tiles with tails; 128 is the default.
    impl = NumpyTiledAttention(block, min_seq=0)
    report = check_kernel_implementation(impl, dtypes=("float32",))
    assert report.passed and not report.failures
    assert isinstance(registry.get("attention", "numpy_tiled"), NumpyTiledAttention)


@needs_numpy
def test_float64_gradcheck_with_mask_and_dropout():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(1, 2, 5, 4)), rng.normal(size=(1, 2, 70, 4)), rng.normal(size=(1, 2, 70, 4))
    impl = NumpyTiledAttention(block=16, min_seq=0)
    forbidden = backend.asarray(rng.random((5, 70)) > 0.7)

    plain = dict(mask=None, is_causal=False, dropout_prob=0.0, scale=None, seed=None, dropout_mask=None)

    def f(a, b, c):
        return impl.apply(a, b, c, **{**plain, "mask": forbidden, "dropout_prob": 0.2, "seed": 5})

    gradcheck(f, q, k, v)
    gradcheck(lambda a, b, c: impl.apply(a, b, c, **{**plain, "is_causal": True}), q, k, v)


@needs_numpy
def test_selected_automatically_above_the_crossover(core_kernels):
    def inputs(seq):
        return [Tensor(np.zeros((1, 2, seq, 16), np.float32)) for _ in range(3)]

    assert F.explain_attention(*inputs(MIN_SEQ), is_causal=True).chosen == "numpy_tiled"
    short = F.explain_attention(*inputs(MIN_SEQ - 1), is_causal=True)
    assert short.chosen == REFERENCE
    verdict = {c.name: c for c in short.candidates}["numpy_tiled"]
    # "I shouldn't" (slower here), not "I can't": passed over automatically...
    advice = f"{MIN_SEQ - 1} keys: below {MIN_SEQ} the dense reference is faster"
    assert verdict.reasons == [] and verdict.advice == [advice]
    assert "passed over: 511 keys" in str(short)


@needs_numpy
def test_forced_by_name_it_runs_on_short_sequences():
    # ...but used when named, on any length (it used to refuse below MIN_SEQ even when forced).
    rng = np.random.default_rng(1)
    q, k, v = (Tensor(rng.normal(size=(1, 2, 9, 16)).astype(np.float32)) for _ in range(3))
    assert F.explain_attention(q, k, v, implementation="numpy_tiled").chosen == "numpy_tiled"
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation="numpy_tiled")
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=REFERENCE)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(on_numpy, reason="checks the decline on other backends")
def test_declines_on_other_backends():
    impl = registry.get("attention", "numpy_tiled")
    assert impl.check_environment() and "runs on numpy" in impl.check_environment()[0]


@needs_numpy
def test_memory_grows_linearly_and_stays_below_dense():
    def peak(impl, seq):
        rng = np.random.default_rng(0)
        q, k, v = (Tensor(rng.normal(size=(1, 4, seq, 32)).astype(np.float32)) for _ in range(3))
        g = np.ones((1, 4, seq, 32), np.float32)
        tracemalloc.start()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
        out.backward(g)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    t1, t2 = peak("numpy_tiled", 1024), peak("numpy_tiled", 2048)
    dense2 = peak(REFERENCE, 2048)
    assert t2 < 2.6 * t1
    assert 4 * t2 < dense2
