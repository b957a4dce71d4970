"""Fake kernel plugins: correct (they delegate to core's reference math) but picky, and counted.

They decline everything unless AUTOGRAD_FAKE_PLUGINS=1, so installing them
does not change what other tests run.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from autograd.backend import lib
from autograd.ops.activations import GeluKernel
from autograd.ops.attention import AttentionKernel, dense_attention
from autograd.tensor import Function

calls: Counter = Counter()


def _enabled_reasons():
    if os.environ.get("AUTOGRAD_FAKE_PLUGINS") != "1":
        return ["fake plugins are disabled (AUTOGRAD_FAKE_PLUGINS is not 1)"]
    return []


class _Fake(AttentionKernel):
    backends = ("numpy", "mlx", "cupy")
    priority = 50

    def check(self, inputs):
        return super().check(inputs) + _enabled_reasons()

    def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
        calls[self.name] += 1
        return dense_attention(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            dropout_mask=dropout_mask,
        )


class FastFake(_Fake):
    """Takes head_dim <= 32 without dropout."""

    name = "fake_fast"

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.shape("query")[-1] > 32:
            reasons.append(f"head_dim {inputs.shape('query')[-1]} > 32")
        if inputs.param("dropout_prob"):
            reasons.append("dropout is not supported")
        return reasons


class AlphaFake(_Fake):
    """Same priority as FastFake (a tie the registry reports; the name breaks it); takes only bool masks."""

    name = "fake_alpha"

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.dtype_of("mask") != "bool":
            reasons.append(f"mask dtype {inputs.dtype_of('mask')!r} is not 'bool'")
        return reasons


def not_an_impl():
    return 42


class RaisingFake(_Fake):
    """A plugin whose check() has a bug: it raises (only when the fakes are enabled)."""

    name = "fake_raising"
    priority = 900

    def check(self, inputs):
        reasons = super().check(inputs)
        if not reasons:
            raise ZeroDivisionError("bug in fake_raising.check")
        return reasons


class WrongShapeFake(_Fake):
    """Accepts only head_dim 24 (no other test uses it) and returns the transposed output."""

    name = "fake_wrong_shape"
    priority = 800

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.shape("query")[-1] != 24:
            reasons.append("only head_dim 24")
        return reasons

    def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
        calls[self.name] += 1
        return dense_attention(query, key, value, mask=mask, is_causal=is_causal).transpose(2, 3)


class WrongDtypeFake(_Fake):
    """Accepts only head_dim 20 and returns float64 whatever the input."""

    name = "fake_wrong_dtype"
    priority = 700

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.shape("query")[-1] != 20:
            reasons.append("only head_dim 20")
        return reasons

    def apply(self, query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask):
        return dense_attention(query, key, value, mask=mask, is_causal=is_causal).astype("float64")


class _ExactGelu(Function):
    """GELU (tanh form) written out again: a correct kernel for the registry tests."""

    def forward(self, x):
        self.x = x
        self.t = lib.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, grad):
        x, t = self.x, self.t
        d = math.sqrt(2.0 / math.pi) * (1 + 3 * 0.044715 * x * x)
        return grad.data * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d)


class FakeGelu(GeluKernel):
    """A GELU kernel; takes float32 only, when the fakes are enabled; advises against a single row."""

    name = "fake_gelu"
    backends = ("numpy", "mlx", "cupy")
    priority = 50
    function = _ExactGelu

    def check(self, inputs):
        reasons = super().check(inputs) + _enabled_reasons()
        if inputs.dtype != "float32":
            reasons.append(f"dtype {inputs.dtype} (float32 only)")
        return reasons

    def advise(self, inputs):
        if inputs.shape("x") and inputs.shape("x")[0] == 1:
            return ["a single row: the reference is as fast"]
        return []

    def apply(self, x):
        calls[self.name] += 1
        return super().apply(x)


class BadSignatureGelu(GeluKernel):
    """Its apply takes a parameter GELU does not have: registration refuses it."""

    name = "fake_bad_signature"
    backends = ("numpy",)
    priority = 40

    def apply(self, x, approximate):
        return x
