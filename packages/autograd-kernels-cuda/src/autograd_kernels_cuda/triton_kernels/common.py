"""Device helpers shared by the kernels: dtype widening and the dropout hash of :mod:`autograd.kernels.dropout`."""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["lowbias32", "dropout_stream", "dropout_keep"]


@triton.jit
def lowbias32(x):
    """lowbias32 on uint32 (wrapping), the integer hash of autograd.kernels.dropout.mix."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@triton.jit
def dropout_stream(seed, bh):
    """Per (batch x heads + head) stream value: mix(seed + 0x9E3779B9 * (bh + 1)), all uint32."""
    s = seed.to(tl.uint32)
    return lowbias32(s + (bh.to(tl.uint32) + 1) * 0x9E3779B9)


@triton.jit
def dropout_keep(stream, rows, cols, p):
    """Keep decisions (bool, rows x cols) of one tile: (mix(mix(stream ^ mix(i+1)) + j*0x85EBCA6B) >> 8) / 2^24 >= p.

    ``rows`` and ``cols`` are the absolute query and key positions (int32 vectors); the comparison is made in
    float32 like the reference's (an exact 24-bit fraction against p rounded to float32).
    """
    ri = lowbias32(stream ^ lowbias32(rows.to(tl.uint32) + 1))
    x = lowbias32(ri[:, None] + cols.to(tl.uint32)[None, :] * 0x85EBCA6B)
    u = (x >> 8).to(tl.float32) * (1.0 / 16777216.0)
    return u >= p
