"""Memory-linear attention for the NumPy backend: key/value tiles, an online softmax, batched BLAS.

Registered by autograd-core itself through the ``autograd.kernels`` entry
point group, like any plugin, as ``numpy_tiled``: an implementation of
:class:`~autograd.ops.attention.AttentionKernel`.

Forward: for each key tile, against every query row that can see it (all
rows, or for causal attention the rows from the tile's diagonal down), for all
batch x heads in one batched matmul:

    s = q k_t^T * scale + bias_t;  m' = max(m, rowmax(s));  a = exp(m - m')
    p = exp(s - m');  l = a l + rowsum(p);  acc = a acc + (p * keep_t) v_t

then ``out = acc / l``; only ``out`` and ``lse = m + log(l)`` are kept.
Backward, per key tile, with ``delta = rowsum(dO * O)``:

    p = exp(s - lse);  dV_t = (p keep)^T dO;  dS = p ((dO v_t^T) keep - delta)
    dQ += dS k_t * scale;  dK_t = dS^T q * scale

Extra memory is one (B, H, Tq, tile) score array and its companions, never
(B, H, Tq, Tk). Causal tiles above the diagonal are skipped (their rows are
not computed). Dropout keep decisions are a hash of the seed and each
element's position, so the backward regenerates every tile's mask.

Tile size: 128 keys. Measured forward+backward on a 2-core x86_64 machine
(batch 2 x 8 heads, head_dim 64, causal, float32): 414 ms at T=2048 against
467 ms with 64 keys and 446 ms with 256; 1519 ms at T=4096 against 1817 ms
with 64 and 1925 ms with 256. Thinner tiles leave BLAS with thin matrices and
cost more Python steps; wider ones make each (B, H, Tq, tile) score array
spill out of cache. Key and value tiles are copied transposed to C order
before their matmuls, because NumPy's batched matmul leaves BLAS on the
strided transposed view (4x slower).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function
from autograd.kernels.contract import KernelInputs
from autograd.kernels.dropout import keep_scale
from autograd.ops.attention import AttentionKernel
from autograd.tensor import Tensor

__all__ = ["NumpyTiledAttention", "TiledAttentionFunction", "BLOCK", "MIN_SEQ"]

#: Keys per tile (see the module docstring).
BLOCK = 128
#: Below this many keys the dense path is faster on NumPy (measured with
#: benchmarks/bench_attention.py on a 2-core x86_64 machine; see the core README).
MIN_SEQ = 512
NEG = -1.0e9


def _transposed(tile: Any) -> Any:
    # A C-contiguous (..., D, keys) copy of a key or value tile: the strided transposed view of a slice makes
    # NumPy's batched matmul leave BLAS (measured 4x slower); the copy is a few hundred KiB.
    return backend.contiguous(_lib.swapaxes(tile, -1, -2))


class TiledAttentionFunction(Function):
    """Forward and backward over key tiles; saves q, k, v, the output and the log-sum-exp.

    Each step takes one key tile against every query row that can see it (for
    causal attention, the rows from that tile's diagonal down), for all batch x
    heads at once, so each product is one large batched GEMM.
    """

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        *,
        mask: Any = None,
        is_causal: bool = False,
        dropout_prob: float = 0.0,
        scale: Optional[float] = None,
        seed: Optional[int] = None,
        block: int = BLOCK,
    ) -> Any:
        b, h, tq, _ = query.shape
        tk, dv = key.shape[2], value.shape[3]
        self.q, self.k, self.v = query, key, value
        self.scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
        self.causal = bool(is_causal) and mask is None
        self.p, self.seed = float(dropout_prob), int(seed or 0)
        self.block = int(block)
        self.offset = tk - tq
        if mask is not None:
            mask = mask if mask.ndim == 4 else mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
            self.bias = (
                _lib.where(mask, NEG, 0.0).astype(query.dtype)
                if mask.dtype == backend.dtype("bool")
                else (mask * NEG).astype(query.dtype)
            )
        else:
            self.bias = None
        qs = query * self.scale
        m = _lib.full((b, h, tq, 1), -math.inf, dtype=query.dtype)
        l = _lib.zeros((b, h, tq, 1), dtype=query.dtype)
        acc = _lib.zeros((b, h, tq, dv), dtype=query.dtype)
        for cols, r0 in self._tiles(tq, tk):
            s = qs[:, :, r0:] @ _transposed(key[:, :, cols.start : cols.stop])
            self._add_bias(s, r0, cols)
            m_new = _lib.maximum(m[:, :, r0:], s.max(axis=-1, keepdims=True))
            alpha = _lib.exp(m[:, :, r0:] - m_new)
            s -= m_new
            p = _lib.exp(s, out=s)
            l[:, :, r0:] *= alpha
            l[:, :, r0:] += p.sum(axis=-1, keepdims=True)
            if self.p:
                p *= keep_scale(self.seed, b, h, range(r0, tq), cols, self.p, query.dtype)
            acc[:, :, r0:] *= alpha
            acc[:, :, r0:] += p @ value[:, :, cols.start : cols.stop]
            m[:, :, r0:] = m_new
        seen = l > 0  # rows that see no key at all (causal with Tq > Tk) give 0
        self.out = _lib.where(seen, acc / _lib.where(seen, l, 1.0), 0.0).astype(query.dtype)
        self.lse = _lib.where(seen, m + _lib.log(_lib.where(seen, l, 1.0)), math.inf).astype(query.dtype)
        return self.out

    def _tiles(self, tq: int, tk: int) -> List[Tuple[range, int]]:
        """(key tile, first query row that sees it); causal tiles no row sees are skipped."""
        out = []
        for start in range(0, tk, self.block):
            cols = range(start, min(start + self.block, tk))
            r0 = max(0, cols.start - self.offset) if self.causal else 0
            if r0 < tq:
                out.append((cols, r0))
        return out

    def _add_bias(self, s: Any, r0: int, cols: range) -> None:
        if self.bias is not None:
            bias = self.bias
            r = slice(r0, None) if bias.shape[2] > 1 else slice(None)
            c = slice(cols.start, cols.stop) if bias.shape[3] > 1 else slice(None)
            s += bias[:, :, r, c]
        elif self.causal:
            # Only the first len(cols) rows from r0 cross the diagonal; the rows below see the whole tile.
            band = min(len(cols), s.shape[2])
            i = _lib.arange(r0, r0 + band).reshape(-1, 1)
            j = _lib.arange(cols.start, cols.stop).reshape(1, -1)
            s[:, :, :band] += _lib.where(j > i + self.offset, NEG, 0.0).astype(s.dtype)

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        q, k, v, do = self.q, self.k, self.v, grad.data
        b, h, tq, _ = q.shape
        tk = k.shape[2]
        delta = (do * self.out).sum(axis=-1, keepdims=True)
        qs = q * self.scale
        dq, dk, dv = _lib.zeros_like(q), _lib.zeros_like(k), _lib.zeros_like(v)
        for cols, r0 in self._tiles(tq, tk):
            c = slice(cols.start, cols.stop)
            s = qs[:, :, r0:] @ _transposed(k[:, :, c])
            self._add_bias(s, r0, cols)
            s -= self.lse[:, :, r0:]  # +inf for rows that see nothing: p = 0 there
            p = _lib.exp(s, out=s)
            do_r = do[:, :, r0:]
            keep = keep_scale(self.seed, b, h, range(r0, tq), cols, self.p, q.dtype) if self.p else None
            dv[:, :, c] = _lib.swapaxes(p * keep if keep is not None else p, -1, -2) @ do_r
            ds = do_r @ _transposed(v[:, :, c])
            if keep is not None:
                ds *= keep
            ds -= delta[:, :, r0:]
            ds *= p
            dq[:, :, r0:] += ds @ k[:, :, c]
            dk[:, :, c] = _lib.swapaxes(ds, -1, -2) @ qs[:, :, r0:]
        dq *= self.scale
        return dq, dk, dv


class NumpyTiledAttention(AttentionKernel):
    """Tiled, memory-linear attention for the numpy backend (float32 and float64).

    Takes every input the dense path takes (bool and additive masks, causal,
    Tq != Tk, dropout) but an explicit ``dropout_mask``, in float32 and
    float64. Automatic selection passes it over for sequences
    shorter than ``min_seq`` keys, where the dense path is faster; named with
    ``implementation="numpy_tiled"`` it runs on any length.
    """

    name = "numpy_tiled"
    backends = ("numpy",)
    priority = 10

    def __init__(self, block: int = BLOCK, min_seq: int = MIN_SEQ) -> None:
        self.block, self.min_seq = int(block), int(min_seq)

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        if inputs.dtype not in ("float32", "float64"):
            reasons.append(f"dtype {inputs.dtype} is not supported (float32, float64)")
        if inputs.present("dropout_mask"):
            reasons.append("an explicit dropout_mask is not supported (it regenerates seeded decisions)")
        if any(0 in inputs.shape(n) for n in ("query", "key", "value")):
            reasons.append("empty inputs: the reference returns the empty result")
        return reasons

    def advise(self, inputs: KernelInputs) -> List[str]:
        """Short sequences: it can take them (and does when named), but the reference is faster there."""
        keys = inputs.shape("key")[-2]
        if keys < self.min_seq:
            return [f"{keys} keys: below {self.min_seq} the dense reference is faster"]
        return []

    def apply(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: Any,
        is_causal: bool,
        dropout_prob: float,
        scale: Optional[float],
        seed: Optional[int],
        dropout_mask: Any,
    ) -> Tensor:
        return TiledAttentionFunction.apply(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            block=self.block,
        )
