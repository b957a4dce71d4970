"""Counter-based dropout masks: the keep decision of element (b, h, i, j) is a hash of the seed and that position.

Nothing of size Tq x Tk is stored: the forward and the backward regenerate
exactly the same tile from (seed, tile position).
"""

from __future__ import annotations

import mlx.core as mx

_M1 = mx.array(0x7FEB352D, dtype=mx.uint32)
_M2 = mx.array(0x846CA68B, dtype=mx.uint32)
_GOLDEN = mx.array(0x9E3779B9, dtype=mx.uint32)
_SPREAD = mx.array(0x85EBCA6B, dtype=mx.uint32)


def mix(x: mx.array) -> mx.array:
    """A 32-bit integer hash (lowbias32): every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = x * _M1
    x = x ^ (x >> 15)
    x = x * _M2
    return x ^ (x >> 16)


def keep_scale(seed: int, batch: int, heads: int, rows: range, cols: range, dropout_prob: float) -> mx.array:
    """float32 (batch, heads, len(rows), len(cols)) tile of ``keep / (1 - p)``."""
    bh = mx.arange(batch * heads, dtype=mx.uint32).reshape(batch, heads, 1, 1)
    stream = mix(mx.array(seed & 0xFFFFFFFF, dtype=mx.uint32) + _GOLDEN * (bh + 1))
    i = mx.arange(rows.start, rows.stop, dtype=mx.uint32).reshape(-1, 1)
    j = mx.arange(cols.start, cols.stop, dtype=mx.uint32).reshape(1, -1)
    x = mix(mix(stream ^ mix(i + 1)) + j * _SPREAD)
    uniform = (x >> 8).astype(mx.float32) * (1.0 / (1 << 24))
    return mx.where(uniform >= dropout_prob, 1.0 / (1.0 - dropout_prob), 0.0).astype(mx.float32)
