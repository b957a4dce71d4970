"""Fake attention plugins: correct (they delegate to dense) but picky, and counted.

They decline everything unless AUTOGRAD_FAKE_PLUGINS=1, so installing them
does not change what other tests run.
"""

from __future__ import annotations

import os
from collections import Counter

from autograd.kernels import AttentionImplementation
from autograd.kernels.dense import dense_attention

calls: Counter = Counter()


class _Fake(AttentionImplementation):
    backends = ("numpy", "mlx", "cupy")
    priority = 50

    def check(self, inputs):
        reasons = super().check(inputs)
        if os.environ.get("AUTOGRAD_FAKE_PLUGINS") != "1":
            reasons.append("fake plugins are disabled (AUTOGRAD_FAKE_PLUGINS is not 1)")
        return reasons

    def attention(self, query, key, value, *, mask=None, is_causal=False, dropout_prob=0.0, scale=None, seed=None):
        calls[self.name] += 1
        return dense_attention(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )


class FastFake(_Fake):
    """Takes head_dim <= 32 without dropout."""

    name = "fake_fast"

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.head_dim > 32:
            reasons.append(f"head_dim {inputs.head_dim} > 32")
        if inputs.dropout_prob:
            reasons.append("dropout is not supported")
        return reasons


class AlphaFake(_Fake):
    """Same priority as FastFake (so the name decides); takes only bool masks."""

    name = "fake_alpha"

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.mask != "bool":
            reasons.append(f"mask kind {inputs.mask!r} is not 'bool'")
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
        if inputs.head_dim != 24:
            reasons.append("only head_dim 24")
        return reasons

    def attention(self, query, key, value, **kw):
        calls[self.name] += 1
        return dense_attention(query, key, value, **kw).transpose(2, 3)


class WrongDtypeFake(_Fake):
    """Accepts only head_dim 20 and returns float64 whatever the input."""

    name = "fake_wrong_dtype"
    priority = 800

    def check(self, inputs):
        reasons = super().check(inputs)
        if inputs.head_dim != 20:
            reasons.append("only head_dim 20")
        return reasons

    def attention(self, query, key, value, **kw):
        return dense_attention(query, key, value, **kw).astype("float64")


from autograd.kernels import GeluImplementation  # noqa: E402
from autograd.tensor import Function  # noqa: E402


class _ExactGelu(Function):
    """GELU (tanh form) written out again: a correct generic-op kernel for the registry tests."""

    def forward(self, x):
        import math

        from autograd.backend import lib

        self.x = x
        self.t = lib.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, grad):
        import math

        x, t = self.x, self.t
        d = math.sqrt(2.0 / math.pi) * (1 + 3 * 0.044715 * x * x)
        return grad.data * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d)


class FakeGelu(GeluImplementation):
    """A GELU kernel through the "autograd.kernels" group; takes float32 only, when the fakes are enabled."""

    name = "fake_gelu"
    backends = ("numpy", "mlx", "cupy")
    priority = 50
    function = _ExactGelu

    def check(self, inputs):
        reasons = super().check(inputs)
        if os.environ.get("AUTOGRAD_FAKE_PLUGINS") != "1":
            reasons.append("fake plugins are disabled (AUTOGRAD_FAKE_PLUGINS is not 1)")
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
