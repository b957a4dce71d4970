"""A NumPy model of the CUDA kernels' exact tiling, written side by side with ``kernels/*.cu``.

Each function walks the same blocks, tiles and per-key online-softmax steps as
its kernel, vectorised over the threads of a block (one row per thread) and
over (batch x head), in float32. The CPU tests run it against the dense
reference, so the algorithm (tails, causal tile skipping, the log-sum-exp
recomputation, Philox dropout) is checked here even without a GPU.

Arrays are (BH, T, D) as in the kernels.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

ROWS = 64  # FLASH_ROWS
NEG = np.float32(-1.0e9)  # FLASH_NEG
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def tile_for(d: int) -> int:
    """FlashTile<D>::value."""
    return 32 if d > 64 else 64


def philox4x32_10(seed: int, c0, c1, c2, c3) -> np.ndarray:
    """philox4x32_10 of common.cuh (first output word), vectorised over broadcastable uint32 counters."""
    shape = np.broadcast_shapes(*(np.shape(c) for c in (c0, c1, c2, c3)))
    ctr = [np.broadcast_to(np.asarray(c, dtype=np.uint32), shape).astype(np.uint32) for c in (c0, c1, c2, c3)]
    key = [np.uint32(seed & 0xFFFFFFFF), np.uint32((seed >> 32) & 0xFFFFFFFF)]
    with np.errstate(over="ignore"):
        for r in range(10):
            p0 = _M0 * ctr[0].astype(np.uint64)
            p1 = _M1 * ctr[2].astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _MASK32).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _MASK32).astype(np.uint32)
            ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0]
            if r < 9:
                key = [key[0] + _W0, key[1] + _W1]
    return ctr[0]


def dropout_scale(seed: int, bh, i, j, p: float) -> np.ndarray:
    """dropout_scale of common.cuh: keep / (1 - p) for element (bh, i, j)."""
    if p <= 0.0:
        return np.ones(np.broadcast_shapes(np.shape(bh), np.shape(i), np.shape(j)), np.float32)
    bits = philox4x32_10(seed, i, j, bh, 0)
    u = (bits >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return np.where(u >= np.float32(p), np.float32(1.0 / (1.0 - p)), np.float32(0.0)).astype(np.float32)


def forward(q, k, v, scale, causal, dropout_p=0.0, seed=0, stats: Dict[str, int] | None = None):
    """flash_fwd: returns (out (BH, Tq, D), lse (BH, Tq)). ``stats`` counts loaded tiles."""
    bhn, tq, d = q.shape
    tk = k.shape[1]
    tile = tile_for(d)
    offset = tk - tq
    bh = np.arange(bhn, dtype=np.uint32)[:, None]
    out = np.zeros((bhn, tq, d), np.float32)
    lse = np.full((bhn, tq), -np.inf, np.float32)
    for bx in range(-(-tq // ROWS)):  # blockIdx.x; the threads of the block are vectorised
        rows = np.arange(bx * ROWS, min(tq, (bx + 1) * ROWS))
        qr = q[:, rows].astype(np.float32) * np.float32(scale)
        m = np.full((bhn, len(rows)), -np.inf, np.float32)
        l = np.zeros((bhn, len(rows)), np.float32)
        acc = np.zeros((bhn, len(rows), d), np.float32)
        kend = tk
        if causal:
            last_row = min(tq, (bx + 1) * ROWS) - 1
            kend = max(0, min(tk, last_row + offset + 1))
        for k0 in range(0, kend, tile):
            if stats is not None:
                stats["tiles"] = stats.get("tiles", 0) + 1
            ks = k[:, k0 : k0 + tile].astype(np.float32)
            vs = v[:, k0 : k0 + tile].astype(np.float32)
            for j in range(min(tile, tk - k0)):
                col = k0 + j
                s = np.einsum("brd,bd->br", qr, ks[:, j])
                if causal:
                    s = s + np.where(col > rows + offset, NEG, np.float32(0))
                m_new = np.maximum(m, s)
                with np.errstate(invalid="ignore"):
                    alpha = np.exp(m - m_new)
                p = np.exp(s - m_new)
                l = l * alpha + p
                pd = p * dropout_scale(seed, bh, rows[None, :].astype(np.uint32), np.uint32(col), dropout_p)
                acc = acc * alpha[..., None] + pd[..., None] * vs[:, j][:, None, :]
                m = m_new
        inv = np.where(l > 0, 1.0 / np.where(l > 0, l, 1), 0).astype(np.float32)
        out[:, rows] = acc * inv[..., None]
        lse[:, rows] = np.where(l > 0, m + np.log(np.where(l > 0, l, 1)), -np.inf)
    return out, lse


def backward(
    q, k, v, out, lse, dout, scale, causal, dropout_p=0.0, seed=0, stats: Dict[str, int] | None = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """flash_bwd_dkdv and flash_bwd_dq: returns (dq, dk, dv); delta = rowsum(dout * out) as the host computes it."""
    bhn, tq, d = q.shape
    tk = k.shape[1]
    tile = tile_for(d)
    offset = tk - tq
    bh = np.arange(bhn, dtype=np.uint32)[:, None]
    q, k, v, dout = (x.astype(np.float32) for x in (q, k, v, dout))
    delta = (dout * out.astype(np.float32)).sum(-1)
    dk = np.zeros((bhn, tk, d), np.float32)
    dv = np.zeros((bhn, tk, d), np.float32)
    for bx in range(-(-tk // ROWS)):  # flash_bwd_dkdv: one key row per thread
        cols = np.arange(bx * ROWS, min(tk, (bx + 1) * ROWS))
        kr, vr = k[:, cols], v[:, cols]
        dkr = np.zeros_like(kr)
        dvr = np.zeros_like(vr)
        qstart = max(0, bx * ROWS - offset) // tile * tile if causal else 0
        for i0 in range(qstart, tq, tile):
            if stats is not None:
                stats["dkdv_tiles"] = stats.get("dkdv_tiles", 0) + 1
            for i in range(min(tile, tq - i0)):
                row = i0 + i
                visible = ~(causal & (cols > row + offset))  # the kernel's `continue`
                s = np.einsum("bd,bcd->bc", q[:, row], kr)
                with np.errstate(over="ignore", invalid="ignore"):
                    p = np.where(visible, np.exp(s * np.float32(scale) - lse[:, row][:, None]), np.float32(0))
                keep = dropout_scale(seed, bh, np.uint32(row), cols[None, :].astype(np.uint32), dropout_p)
                dp = np.einsum("bd,bcd->bc", dout[:, row], vr)
                ds = p * (dp * keep - delta[:, row][:, None])
                dvr += (p * keep)[..., None] * dout[:, row][:, None, :]
                dkr += ds[..., None] * q[:, row][:, None, :] * np.float32(scale)
        dk[:, cols], dv[:, cols] = dkr, dvr
    dq = np.zeros((bhn, tq, d), np.float32)
    for bx in range(-(-tq // ROWS)):  # flash_bwd_dq: one query row per thread
        rows = np.arange(bx * ROWS, min(tq, (bx + 1) * ROWS))
        qr, dor = q[:, rows], dout[:, rows]
        dqr = np.zeros_like(qr)
        kend = tk
        if causal:
            last_row = min(tq, (bx + 1) * ROWS) - 1
            kend = max(0, min(tk, last_row + offset + 1))
        for k0 in range(0, kend, tile):
            for j in range(min(tile, tk - k0)):
                col = k0 + j
                visible = ~(causal & (col > rows + offset))  # the kernel's `break`
                s = np.einsum("brd,bd->br", qr, k[:, col])
                with np.errstate(over="ignore", invalid="ignore"):
                    p = np.where(visible, np.exp(s * np.float32(scale) - lse[:, rows]), np.float32(0))
                keep = dropout_scale(seed, bh, rows[None, :].astype(np.uint32), np.uint32(col), dropout_p)
                dp = np.einsum("brd,bd->br", dor, v[:, col])
                ds = p * (dp * keep - delta[:, rows])
                dqr += ds[..., None] * k[:, col][:, None, :] * np.float32(scale)
        dq[:, rows] = dqr
    return dq, dk, dv
