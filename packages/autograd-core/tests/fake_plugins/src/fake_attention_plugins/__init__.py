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
