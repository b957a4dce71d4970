"""exp and tanh that LLVM can vectorize, for float32 and float64, usable inside any Numba kernel.

Why not ``math.exp``/``math.tanh``: Numba calls libm once per element, which
LLVM cannot vectorize (measured on a 2-core x86_64 VM for 524288 float32:
libm exp 1.5 ms and tanh 10.5 ms, against NumPy's SIMD 0.7 ms and 1.5 ms).
These are the Cephes algorithms written as straight-line arithmetic, so a
loop over them becomes AVX code: exp is a Cody-Waite range reduction
``x = n ln2 + r``, a polynomial (float32) or Pade (float64) in ``r``, and a
``2**n`` built from its exponent bits; tanh is an odd polynomial below 0.625
and ``1 - 2 / (exp(2|x|) + 1)`` above. Both are within about 2 ulp of the
correctly rounded result (NumPy's own SIMD functions are within 1-4 ulp), so
results match NumPy's to float rounding, not bit for bit.

``fast_exp(x)`` and ``fast_tanh(x)`` dispatch on the scalar type at compile
time; called from Python they fall back to NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

__all__ = ["fast_exp", "fast_tanh"]


@intrinsic
def _f32_from_bits(typingctx: Any, bits: Any) -> Any:
    """Reinterpret the low 32 bits of an integer as a float32 (a bitcast, free in SIMD code)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        low = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _f64_from_bits(typingctx: Any, bits: Any) -> Any:
    """Reinterpret an int64's bits as a float64."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        wide = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(wide, ir.DoubleType())

    return types.float64(bits), codegen


def _exp32(x):  # type: ignore[no-untyped-def]
    f = np.float32
    # Clamp to where the result is 0 or inf anyway; NaN fails both tests and passes through.
    xc = f(89.0) if x > f(89.0) else x
    xc = f(-104.0) if xc < f(-104.0) else xc
    n = np.floor(xc * f(1.44269504088896341) + f(0.5))
    r = xc - n * f(0.693359375) - n * f(-2.12194440e-4)
    p = f(1.9875691500e-4) * r + f(1.3981999507e-3)
    p = p * r + f(8.3334519073e-3)
    p = p * r + f(4.1665795894e-2)
    p = p * r + f(1.6666665459e-1)
    p = p * r + f(5.0000001201e-1)
    y = p * (r * r) + r + f(1.0)
    # 2**n as two factors so that n in [-150, 129] stays inside the exponent field (denormals, overflow).
    ni = np.int32(n)
    n1 = ni >> 1
    n2 = ni - n1
    return y * _f32_from_bits((n1 + 127) << 23) * _f32_from_bits((n2 + 127) << 23)


def _exp64(x):  # type: ignore[no-untyped-def]
    xc = 710.0 if x > 710.0 else x
    xc = -746.0 if xc < -746.0 else xc
    n = np.floor(xc * 1.4426950408889634073599 + 0.5)
    r = xc - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
    rr = r * r
    p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1)
    q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr + 2.27265548208155028766e-1) * rr
    q = q + 2.00000000000000000009e0
    y = 1.0 + 2.0 * (p / (q - p))
    ni = np.int64(np.int32(n))  # via int32: AVX2 has no packed float64 -> int64 conversion
    n1 = ni >> 1
    n2 = ni - n1
    return y * _f64_from_bits((n1 + 1023) << 52) * _f64_from_bits((n2 + 1023) << 52)


def _tanh32(x):  # type: ignore[no-untyped-def]
    f = np.float32
    a = abs(x)
    # Both branches are computed and one is selected, so the loop stays vectorizable.
    big = f(1.0) - f(2.0) / (fast_exp(a + a) + f(1.0))
    big = -big if x < f(0.0) else big
    z = x * x
    p = f(-5.70498872745e-3) * z + f(2.06390887954e-2)
    p = p * z - f(5.37397155531e-2)
    p = p * z + f(1.33314422036e-1)
    p = p * z - f(3.33332819422e-1)
    small = p * z * x + x
    return big if a > f(0.625) else small


def _tanh64(x):  # type: ignore[no-untyped-def]
    a = abs(x)
    big = 1.0 - 2.0 / (fast_exp(a + a) + 1.0)
    big = -big if x < 0.0 else big
    z = x * x
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    small = x + x * z * (p / q)
    return big if a > 0.625 else small


def fast_exp(x):  # type: ignore[no-untyped-def]
    """exp(x) for a float32 or float64 scalar inside Numba code (NumPy's exp from Python)."""
    return np.exp(x)


def fast_tanh(x):  # type: ignore[no-untyped-def]
    """tanh(x) for a float32 or float64 scalar inside Numba code (NumPy's tanh from Python)."""
    return np.tanh(x)


def _pick(x: Any, impl32: Any, impl64: Any) -> Any:
    if x == types.float32:
        return impl32
    if x == types.float64:
        return impl64
    return None


# The overload functions take unannotated arguments: Numba compares their signatures with the stubs'.
@overload(fast_exp)
def _ol_exp(x):  # type: ignore[no-untyped-def]
    return _pick(x, _exp32, _exp64)


@overload(fast_tanh)
def _ol_tanh(x):  # type: ignore[no-untyped-def]
    return _pick(x, _tanh32, _tanh64)
