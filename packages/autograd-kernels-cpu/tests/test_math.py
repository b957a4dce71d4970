"""The vectorizable exp and tanh against float64 NumPy: within a few ulp, special values exact."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cpu._math import fast_exp, fast_tanh
from numba import njit


@njit(error_model="numpy")
def _apply_exp(x, out):
    for i in range(x.size):
        out[i] = fast_exp(x[i])


@njit(error_model="numpy")
def _apply_tanh(x, out):
    for i in range(x.size):
        out[i] = fast_tanh(x[i])


def _ulp_error(actual, exact, dtype):
    info = np.finfo(dtype)
    normal = np.isfinite(exact) & (np.abs(exact) >= info.tiny) & (np.abs(exact) <= info.max)
    ulp = np.spacing(np.abs(exact[normal]).astype(dtype)).astype(np.float64)
    return np.max(np.abs(actual[normal].astype(np.float64) - exact[normal]) / ulp)


@pytest.mark.parametrize("func, apply", [(np.exp, _apply_exp), (np.tanh, _apply_tanh)])
def test_within_a_few_ulp(func, apply, dtype, rng):
    hi = 88.0 if dtype == np.float32 else 700.0
    x = np.concatenate([rng.standard_normal(20000) * 3, rng.uniform(-hi, hi, 20000), rng.uniform(-1e-3, 1e-3, 2000)])
    x = x.astype(dtype)
    out = np.empty_like(x)
    apply(x, out)
    with np.errstate(over="ignore"):
        exact = func(x.astype(np.float64))
    assert _ulp_error(out, exact, dtype) <= 3.0


def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1000.0, 1000.0], dtype)
    e, t = np.empty_like(x), np.empty_like(x)
    _apply_exp(x, e)
    _apply_tanh(x, t)
    assert e[:4].tolist() == [1.0, 1.0, np.inf, 0.0] and np.isnan(e[4]) and e[5] == 0.0 and e[6] == np.inf
    assert t[[0, 2, 3, 5, 6]].tolist() == [0.0, 1.0, -1.0, -1.0, 1.0] and np.isnan(t[4])
