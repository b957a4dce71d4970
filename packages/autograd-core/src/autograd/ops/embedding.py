"""Embedding lookup: the public function, core's forward and backward, and the contract a plugin implements.

Shapes: ``indices`` integers of any shape, ``weight`` (V, E) -> rows of shape
``indices.shape + (E,)``. The backward is the hot part: a scatter-add of the
gradient rows into a (V, E) array of zeros, where repeated indices add up.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError, TensorIndexError, TensorTypeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch
from autograd.tensor import Tensor

__all__ = ["embedding", "EmbeddingFunction", "EmbeddingKernel"]


def embedding(indices: Any, weight: Tensor) -> Tensor:
    """The rows of ``weight`` (V, E) at ``indices`` (integers in ``0..V-1``, any shape): ``indices.shape + (E,)``.

    ``indices`` may be a Tensor, a backend array or anything NumPy turns into
    integers (floating values that are whole numbers are accepted). Indices
    out of range raise ``IndexError`` on every backend (MLX would read other
    memory, CuPy wrap around); on CuPy at the next host read, as CUDA reports
    device-side errors, so a training step never waits for the GPU.

    Runs the best registered ``embedding`` kernel (:mod:`autograd.kernels`),
    :class:`EmbeddingFunction` by default.

    Examples:
        >>> embedding([[0, 2]], Tensor(xp.eye(3))).shape
        (1, 2, 3)
    """
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be (V, E), got shape {weight.shape}")
    idx = indices.data if isinstance(indices, Tensor) else indices
    if not backend.is_array(idx):
        idx = backend.asarray(np.asarray(idx))
    if backend.is_floating(idx.dtype):
        host = backend.to_numpy(idx)
        if np.any(host != np.round(host)):
            raise TensorTypeError(f"embedding: indices must be integers, got non-integer values of dtype {idx.dtype}")
        idx = backend.asarray(host.astype(np.int32))
    elif "int" not in backend.dtype_name(idx.dtype):
        raise TensorTypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    v, shape = weight.shape[0], tuple(idx.shape)

    def out_of_range(bad: int) -> Exception:
        return TensorIndexError(
            f"embedding: index {bad} is out of range for {v} embeddings (valid: 0..{v - 1}; indices of shape {shape})"
        )

    idx = backend.check_range(idx, 0, v, out_of_range)
    return dispatch(EmbeddingKernel, idx, weight)


class EmbeddingFunction(Function):
    """Rows of ``weight`` at ``indices``; the backward adds each gradient row into its row (repeats add up)."""

    def forward(self, indices: Any, weight: Any) -> Any:
        self.shape, self.dtype, self.indices = weight.shape, weight.dtype, indices
        return weight[indices]

    def backward(self, grad: Tensor) -> Tuple[None, Any]:
        out = _lib.zeros(self.shape, dtype=self.dtype)
        return None, backend.add_at(out, self.indices, grad.data)


class EmbeddingKernel(Kernel):
    """The ``embedding`` op: ``apply(indices, weight) -> rows``.

    ``indices`` an integer backend array of any shape with values in
    ``0..V-1`` (checked before the call; it reaches a Function as an array
    like any input); ``weight`` (V, E); ``rows`` is ``indices.shape + (E,)``
    in the weight's dtype. The backward gives ``(None, dweight)``: a
    scatter-add of the gradient rows into a (V, E) array of zeros.
    """

    op = "embedding"
    differentiable = ("weight",)

    def apply(self, indices: Any, weight: Tensor) -> Tensor:
        """Integer indices (any shape), (V, E) -> ``indices.shape + (E,)``."""
        return self.call_function(indices, weight)

    @classmethod
    def reference(cls) -> Kernel:
        return EmbeddingReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        return inputs.shape("indices") + inputs.shape("weight")[1:], inputs.dtype_of("weight")

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Repeated indices (they accumulate), a one-row table, int32 and int64 indices of rank 1 to 3."""
        out = []
        for v, e, shape in [(10, 4, (3, 5)), (7, 16, (20,)), (1, 3, (4,)), (50, 8, (2, 3, 4)), (6, 4, (0,))]:
            idx = rng.integers(0, v, size=shape)
            idx.reshape(-1)[: min(3, idx.size)] = 0
            weight = rng.standard_normal((v, e))
            for index_dtype in (np.int32, np.int64):
                label = f"weight{(v, e)} indices{shape} {np.dtype(index_dtype).name}"
                out.append(KernelCase(label, [idx.astype(index_dtype), weight], {}, (False, True), raw=(True, False)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A small GPT's token embedding: (8, 128) indices into a (256, 128) table."""
        return make_inputs(cls, dtype, {"indices": (8, 128), "weight": (256, 128)}, {}, {"indices": "int64"})


class EmbeddingReference(CoreReference, EmbeddingKernel):
    """:class:`EmbeddingFunction`."""

    function = EmbeddingFunction
