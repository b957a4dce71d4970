"""Embedding backward: scatter-add gradient rows into a zero table, repeated indices accumulating.

Threads split the embedding columns, not the rows: every thread walks all
indices in order and owns a band of columns, so two threads never write the
same element and each element receives its contributions in index order,
exactly as ``np.add.at`` (the reference, through ``Gather.backward``) adds
them. The result is bit-identical to the reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from autograd_kernels_cpu._common import OPTS, check_float, check_int, parallel_kernel
from autograd_kernels_cpu._threads import chunks

__all__ = ["embedding_backward"]

_MIN_WORK = 1 << 17


@njit(**OPTS)
def _scatter(g, indices, dw, lo, hi):  # type: ignore[no-untyped-def]
    n = dw.shape[0]
    for i in range(indices.size):
        k = indices[i]
        # Slices indexed from 0: Numba adds a negative-index check to an index it cannot prove >= 0,
        # and that check keeps LLVM from vectorizing the loop.
        row, src = dw[k + n if k < 0 else k][lo:hi], g[i, lo:hi]
        for j in range(hi - lo):
            row[j] += src[j]


@parallel_kernel
def _scatter_par(g, indices, dw, pieces):  # type: ignore[no-untyped-def]
    e = g.shape[1]
    for p in prange(pieces):
        # Bands of whole 8-float groups keep each thread's stores apart (and vectorized).
        lo = min(e, (p * e // pieces + 7) // 8 * 8)
        hi = e if p == pieces - 1 else min(e, ((p + 1) * e // pieces + 7) // 8 * 8)
        _scatter(g, indices, dw, lo, hi)


def embedding_backward(g: np.ndarray, indices: np.ndarray, num_embeddings: int) -> np.ndarray:
    """Gradient of an embedding table from the gradient of its gathered rows.

    Args:
        g: (n, E) gradient of the looked-up rows.
        indices: (n,) int32 or int64, each in ``-num_embeddings`` to ``num_embeddings - 1`` (checked;
            negative ones count from the end, as ``Tensor.gather`` allows).
        num_embeddings: Rows of the table.

    Returns:
        The table's gradient, (num_embeddings, E) in g's dtype; zeros, plus ``g[i]`` added at row
        ``indices[i]`` for every i.
    """
    op = "embedding_backward"
    check_float(op, g=g)
    check_int(op, "indices", indices)
    if g.ndim != 2 or indices.shape != (g.shape[0],):
        raise ValueError(f"{op}: expected g (n, E) and indices (n,), got {g.shape} and {indices.shape}")
    if indices.size and (int(indices.min()) < -num_embeddings or int(indices.max()) >= num_embeddings):
        raise ValueError(
            f"{op}: indices in [{int(indices.min())}, {int(indices.max())}] are out of range for "
            f"{num_embeddings} embeddings"
        )
    dw = np.zeros((int(num_embeddings), g.shape[1]), g.dtype)
    pieces = chunks(max(1, g.shape[1] // 8), g.size, _MIN_WORK)
    if pieces == 1:
        _scatter(g, indices, dw, 0, g.shape[1])
    else:
        _scatter_par(g, indices, dw, pieces)
    return dw
