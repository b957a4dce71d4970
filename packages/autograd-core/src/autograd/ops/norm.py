"""Layer normalization: the public function, core's forward and backward, and the contract a plugin implements.

Shapes: ``x`` (..., F), ``weight`` and ``bias`` (F,); the output has ``x``'s
shape and dtype. The mean and the (biased) variance are taken over the last
axis. float16 and bfloat16 inputs are computed in float32 and the output is
rounded back to the input's dtype.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch
from autograd.tensor import Tensor

__all__ = ["layer_norm", "LayerNormFunction", "LayerNormKernel"]


def layer_norm(x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    r"""Normalize ``x`` over its last axis, then scale by ``weight`` and shift by ``bias``.

    :math:`y = (x - \mu) / \sqrt{\sigma^2 + \epsilon} \cdot w + b` with the
    mean :math:`\mu` and biased variance :math:`\sigma^2` over the last axis.

    Args:
        x: (..., F).
        weight: (F,), or None for ones (no scaling).
        bias: (F,), or None for zeros (no shift).
        eps: Added to the variance.

    Returns:
        A Tensor of ``x``'s shape and dtype.

    Runs the best registered ``layer_norm`` kernel (:mod:`autograd.kernels`),
    :class:`LayerNormFunction` by default.

    Examples:
        >>> from autograd import functional as F
        >>> F.layer_norm(Tensor([[1.0, 2.0, 3.0]])).numpy().round(4)
        array([[-1.2247,  0.    ,  1.2247]], dtype=float32)
        >>> F.layer_norm(Tensor([[1.0, 2.0, 3.0]]), Tensor([2.0, 2.0, 2.0]), Tensor([1.0, 1.0, 1.0])).numpy().round(4)
        array([[-1.4495,  1.    ,  3.4495]], dtype=float32)
    """
    if not isinstance(x, Tensor):
        x = Tensor(x, requires_grad=False)
    if x.ndim < 1:
        raise ShapeError(f"layer_norm: x must have at least one axis, got shape {x.shape}")
    f = x.shape[-1]
    if weight is None:
        weight = Tensor(_lib.ones((f,), dtype=x.dtype), requires_grad=False)
    if bias is None:
        bias = Tensor(_lib.zeros((f,), dtype=x.dtype), requires_grad=False)
    if tuple(weight.shape) != (f,) or tuple(bias.shape) != (f,):
        raise ShapeError(
            f"layer_norm: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} must be ({f},) for x of shape "
            f"{x.shape}"
        )
    return dispatch(LayerNormKernel, x, weight, bias, eps=float(eps))


class LayerNormFunction(Function):
    r"""Layer normalization over the last axis: :math:`y = \hat{x} w + b`.

    :math:`\hat{x} = (x - \mu) / \sqrt{\sigma^2 + \epsilon}` with mean and variance over the last axis.

    Backward, with :math:`g` the upstream gradient, :math:`r = 1/\sqrt{\sigma^2+\epsilon}`
    and :math:`d\hat{x} = g w`:
    :math:`dx = r\,(d\hat{x} - \overline{d\hat{x}} - \hat{x}\,\overline{d\hat{x}\,\hat{x}})`
    (means over the last axis), :math:`dw = \sum g \hat{x}`, :math:`db = \sum g`
    (sums over every other axis). float16 and bfloat16 inputs are computed in
    float32 and the output is rounded to the input's dtype.
    """

    def forward(self, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
        # float16/bfloat16 inputs: the statistics and the normalisation run in float32, the output is rounded to
        # x's dtype, and the backward recomputes x-hat from x (kept anyway) instead of saving a float32 copy.
        self.weight = weight
        if x.size == 0:  # no statistics of nothing: an empty output, and gradients of zeros
            self.xhat = _lib.zeros(x.shape, dtype=backend.widen(x).dtype)
            self.rstd = _lib.zeros(tuple(x.shape[:-1]) + (1,), dtype=self.xhat.dtype)
            return _lib.zeros(x.shape, dtype=x.dtype)
        xf = backend.widen(x)
        mu = _lib.mean(xf, axis=-1, keepdims=True)
        xc = xf - mu
        var = _lib.mean(xc * xc, axis=-1, keepdims=True)
        self.rstd = 1.0 / _lib.sqrt(var + eps)
        xhat = xc * self.rstd
        if xf is x:
            self.xhat = xhat
            return xhat * weight + bias
        self.x, self.mu, self.xhat = x, mu, None
        return (xhat * backend.widen(weight) + backend.widen(bias)).astype(x.dtype)

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        g, xhat, weight = grad.data, self.xhat, self.weight
        if g.size == 0:  # an empty input: every gradient is zeros (means over an empty axis would be NaN)
            need = self.needs_input_grad
            zeros = [_lib.zeros(t.shape, dtype=t.dtype) if n else None for t, n in zip(self.tensors, need)]
            return zeros[0], zeros[1], zeros[2]
        if xhat is None:
            g, weight = backend.widen(g), backend.widen(weight)
            xhat = (backend.widen(self.x) - self.mu) * self.rstd
        lead = tuple(range(g.ndim - 1))
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dxhat = g * weight
            dx = self.rstd * (
                dxhat
                - _lib.mean(dxhat, axis=-1, keepdims=True)
                - xhat * _lib.mean(dxhat * xhat, axis=-1, keepdims=True)
            )
            if self.xhat is None:
                dx = dx.astype(self.x.dtype)
        if self.needs_input_grad[1]:
            dw = _lib.sum(g * xhat, axis=lead)
        if self.needs_input_grad[2]:
            db = _lib.sum(g, axis=lead)
        return dx, dw, db


class LayerNormKernel(Kernel):
    """The ``layer_norm`` op: ``apply(x, weight, bias, *, eps) -> y``.

    ``x`` (..., F), ``weight`` and ``bias`` (F,); ``y`` like ``x``:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the
    (biased) variance over the last axis. The backward gives ``(dx, dweight,
    dbias)``, each like its input.
    """

    op = "layer_norm"
    differentiable = ("x", "weight", "bias")

    def apply(self, x: Tensor, weight: Tensor, bias: Tensor, *, eps: float) -> Tensor:
        """(..., F), (F,), (F,) -> (..., F)."""
        return self.call_function(x, weight, bias, eps=eps)

    @classmethod
    def reference(cls) -> Kernel:
        return LayerNormReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        return inputs.shape("x"), inputs.dtype_of("x")

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """A single feature, odd and wide feature counts, a larger eps, random shapes up to rank 3."""
        n = rng.standard_normal
        out = []
        for shape, eps in [
            ((1, 1), 1e-5),
            ((3, 5), 1e-5),
            ((2, 7, 33), 1e-3),
            ((4, 128), 1e-5),
            ((5, 64), 1e-5),
            ((0, 5), 1e-5),  # no rows
            ((3, 0), 1e-5),  # no features
        ]:
            f = shape[-1]
            x = n(shape) * 2 + 1
            out.append(KernelCase(f"x{shape} eps={eps}", [x, n(f), n(f)], {"eps": eps}, (True, True, True)))
        for _ in range(2):
            shape = tuple(int(s) for s in rng.integers(1, 40, size=int(rng.integers(2, 4))))
            f = shape[-1]
            out.append(KernelCase(f"x{shape}", [n(shape), n(f), n(f)], {"eps": 1e-5}, (True, True, True)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A small GPT's activations: (1024, 128)."""
        return make_inputs(cls, dtype, {"x": (1024, 128), "weight": (128,), "bias": (128,)}, {"eps": 1e-5})


class LayerNormReference(CoreReference, LayerNormKernel):
    """:class:`LayerNormFunction`."""

    function = LayerNormFunction
