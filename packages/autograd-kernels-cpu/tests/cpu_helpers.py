"""Shared helpers: tolerances per dtype and a comparison that names the worst element."""

from __future__ import annotations

from typing import Any

import numpy as np

# (rtol, atol) against core's reference in the same dtype: float rounding of a few fused passes.
TOL = {np.dtype("float32"): (2e-5, 2e-6), np.dtype("float64"): (1e-12, 1e-13)}


def assert_close(actual: Any, expected: Any, dtype: np.dtype, scale: float = 1.0) -> None:
    """``actual`` equals ``expected`` to float rounding (``scale`` widens the tolerance for long sums)."""
    rtol, atol = TOL[np.dtype(dtype)]
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.dtype(dtype), actual.dtype
    np.testing.assert_allclose(actual, expected, rtol=rtol * scale, atol=atol * scale)


def assert_identical(actual: Any, expected: Any) -> None:
    """Bit for bit (NaN equal to NaN)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    same = np.array_equal(actual.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8))
    assert same, np.argwhere(actual != expected)[:5]
