"""The fused Adam(W) update is bit-identical to core's reference (autograd.ops.optim), across steps and shapes."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cpu import adam
from autograd_kernels_cpu._common import UnsupportedInputError
from cpu_helpers import assert_identical

from autograd.ops.optim import AdamKernel

SHAPES = [(3, 4), (70001,), (5,), (128, 128), (1,), (2, 3, 4, 5), ()]


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_bit_identical_to_reference(weight_decay, dtype, rng):
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ref_p = [p.copy() for p in params]
    ref_m = [np.zeros_like(p) for p in params]
    ref_v = [np.zeros_like(p) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    hyper = {"lr": 3e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": weight_decay}
    for step in range(1, 4):
        grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        # Parameters may be at different steps (one was added later).
        steps = [step] * (len(SHAPES) - 1) + [max(1, step - 1)]
        ref_p, ref_m, ref_v = AdamKernel.reference().apply(ref_p, grads, ref_m, ref_v, steps, **hyper)
        adam.adam_update(params, grads, m, v, steps, **hyper)
        for mine, ref in zip(params + m + v, ref_p + ref_m + ref_v):
            assert_identical(mine, np.asarray(ref, dtype))


def test_serial_and_parallel_paths_agree(rng):
    # Many small parameters and one large: the parallel path splits the large one into chunks.
    shapes = [(7,)] * 20 + [(adam._CHUNK * 3 + 5,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    results = []
    for kernel in (adam._adam, adam._adam_par):
        p = [a.copy() for a in params]
        m, v = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
        addresses = np.empty((4, len(p)), np.int64)
        for i, arrays in enumerate(zip(p, grads, m, v)):
            adam._record(addresses, i, *arrays)
        sizes = np.array([a.size for a in p], np.int64)
        factors = np.array([[1e-3 / (1 - 0.9), np.sqrt(1 - 0.999)]] * len(p))
        hyper = np.array([0.9, 0.1, 0.999, 1 - 0.999, 1e-8, 1 - 1e-4])
        kernel(addresses, sizes, factors, p[0][:0], hyper, True)
        results.append(p + m + v)
    for a, b in zip(*results):
        assert_identical(a, b)


def test_checks():
    p = [np.zeros(3, np.float32)]
    with pytest.raises(ValueError, match="1 params, 0 grads"):
        adam.adam_update(p, [], p, p, [1], 1e-3, 0.9, 0.999, 1e-8, 0.0)
    with pytest.raises(UnsupportedInputError, match="call once per dtype"):
        two = [np.zeros(3, np.float32), np.zeros(3, np.float64)]
        adam.adam_update(two, two, [a.copy() for a in two], [a.copy() for a in two], [1, 1], 1e-3, 0.9, 0.999, 1e-8, 0)
    with pytest.raises(ValueError, match="steps start at 1"):
        adam.adam_update(p, p, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], [0], 1e-3, 0.9, 0.999, 1e-8, 0)
    adam.adam_update([], [], [], [], [], 1e-3, 0.9, 0.999, 1e-8, 0.0)  # nothing to do
