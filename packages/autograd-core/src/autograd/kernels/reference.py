"""Core's reference implementation of every op of :mod:`autograd.kernels.contracts`, on every backend.

They are what runs when no plugin is installed, and what the conformance
suite compares plugins with. Each is named ``"reference"`` (attention's is
``"dense"``, in :mod:`autograd.kernels.dense`) and has priority -1000. The
activations, softmaxes and the cross-entropy are the Functions of
:mod:`autograd.functional`; layer norm and max-pool are the Functions below
(re-exported by :mod:`autograd.nn`); the convolution is a composition of
Tensor ops (windows and one matrix product); the embedding is
:class:`~autograd.tensor.Gather`; Adam is the update written out per parameter.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

from autograd import backend
from autograd.backend import lib as _lib
from autograd.kernels.contracts import (
    AdamImplementation,
    Conv2dImplementation,
    CrossEntropyImplementation,
    EmbeddingImplementation,
    GeluImplementation,
    LayerNormImplementation,
    LogSoftmaxImplementation,
    MaxPool2dImplementation,
    ReluImplementation,
    SigmoidImplementation,
    SoftmaxImplementation,
    TanhImplementation,
)
from autograd.kernels.registry import KernelImplementation
from autograd.tensor import Function, Gather, Tensor

__all__ = [
    "LayerNormFunction",
    "MaxPool2dFunction",
    "conv2d",
    "builtin_implementations",
    "REFERENCE_NAME",
    "REFERENCE_PRIORITY",
]

REFERENCE_NAME = "reference"
REFERENCE_PRIORITY = -1000
_ALL_BACKENDS = ("numpy", "mlx", "cupy")


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
        xf = backend.widen(x)
        mu = _lib.mean(xf, axis=-1, keepdims=True)
        xc = xf - mu
        var = _lib.mean(xc * xc, axis=-1, keepdims=True)
        self.rstd = 1.0 / _lib.sqrt(var + eps)
        xhat = xc * self.rstd
        self.weight = weight
        if xf is x:
            self.xhat = xhat
            return xhat * weight + bias
        self.x, self.mu, self.xhat = x, mu, None
        return (xhat * backend.widen(weight) + backend.widen(bias)).astype(x.dtype)

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        g, xhat, weight = grad.data, self.xhat, self.weight
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


def _offsets(k: int, s: int, ho: int, wo: int) -> List[Tuple[int, int, Tuple[slice, ...]]]:
    # One strided slice per kernel offset (i, j): the (N, C, Ho, Wo) grid of pixels it covers.
    return [
        (i, j, (slice(None), slice(None), slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s)))
        for i in range(k)
        for j in range(k)
    ]


class MaxPool2dFunction(Function):
    """Max over k x k windows of an (N, C, H, W) array, as k*k element-wise maxima of strided slices.

    Backward: each window's gradient goes to its maxima, split equally among ties.
    """

    def forward(self, x: Any, kernel_size: int, stride: int) -> Any:
        k, s = kernel_size, stride
        ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        self.x, self.slices = x, _offsets(k, s, ho, wo)
        out = None
        for _, _, region in self.slices:
            out = x[region] if out is None else _lib.maximum(out, x[region])
        self.out = out
        return out

    def backward(self, grad: Tensor) -> Any:
        hits = [self.x[region] == self.out for _, _, region in self.slices]
        count = sum(h.astype(grad.data.dtype) for h in hits)
        share = grad.data / count
        gx = _lib.zeros(self.x.shape, dtype=grad.data.dtype)
        for hit, (_, _, region) in zip(hits, self.slices):
            gx = backend.add_at(gx, region, _lib.where(hit, share, 0))
        return gx


def conv2d(
    x: Tensor, weight: Tensor, bias: Optional[Tensor], *, stride: int, padding: Tuple[int, int, int, int]
) -> Tensor:
    """(N, C, H, W) -> (N, O, Ho, Wo): windows (im2col) times the flattened kernel, one matmul."""
    top, bottom, left, right = padding
    if top or bottom or left or right:
        x = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=0)
    o, c, k, _ = weight.shape
    windows = x.strided_windows(kernel_size=k, stride=stride)  # (Ho, Wo, N, C, k, k)
    ho, wo, n = windows.shape[:3]
    cols = windows.reshape(ho * wo * n, c * k * k)
    out = cols @ weight.reshape(o, -1).T  # (Ho*Wo*N, O)
    out = out.reshape(ho, wo, n, o).permute(2, 3, 0, 1)
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return out


class _Reference:
    name = REFERENCE_NAME
    backends = _ALL_BACKENDS
    priority = REFERENCE_PRIORITY


def _functional(name: str) -> type:
    from autograd import functional

    return getattr(functional, name)


class LayerNormReference(_Reference, LayerNormImplementation):
    """:class:`LayerNormFunction`."""

    function = LayerNormFunction


class SoftmaxReference(_Reference, SoftmaxImplementation):
    """:class:`autograd.functional.Softmax`."""

    def apply(self, x: Tensor, *, dim: int) -> Tensor:
        return _functional("Softmax").apply(x, dim=dim)


class LogSoftmaxReference(_Reference, LogSoftmaxImplementation):
    """:class:`autograd.functional.LogSoftmax`."""

    def apply(self, x: Tensor, *, dim: int) -> Tensor:
        return _functional("LogSoftmax").apply(x, dim=dim)


class GeluReference(_Reference, GeluImplementation):
    """:class:`autograd.functional.Gelu`."""

    def apply(self, x: Tensor) -> Tensor:
        return _functional("Gelu").apply(x)


class ReluReference(_Reference, ReluImplementation):
    """:class:`autograd.functional.Relu`."""

    def apply(self, x: Tensor) -> Tensor:
        return _functional("Relu").apply(x)


class SigmoidReference(_Reference, SigmoidImplementation):
    """:class:`autograd.functional.Sigmoid`."""

    def apply(self, x: Tensor) -> Tensor:
        return _functional("Sigmoid").apply(x)


class TanhReference(_Reference, TanhImplementation):
    """:class:`autograd.functional.Tanh`."""

    def apply(self, x: Tensor) -> Tensor:
        return _functional("Tanh").apply(x)


class CrossEntropyReference(_Reference, CrossEntropyImplementation):
    """:class:`autograd.functional.CrossEntropy`."""

    def apply(
        self, logits: Tensor, targets: Tensor, *, ignore_index: int, label_smoothing: float, reduction: str
    ) -> Tensor:
        return _functional("CrossEntropy").apply(
            logits, targets, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction
        )


class Conv2dReference(_Reference, Conv2dImplementation):
    """:func:`conv2d`: padding, strided windows and one matrix product."""

    def apply(
        self, x: Tensor, weight: Tensor, bias: Optional[Tensor], *, stride: int, padding: Tuple[int, int, int, int]
    ) -> Tensor:
        return conv2d(x, weight, bias, stride=stride, padding=padding)


class MaxPool2dReference(_Reference, MaxPool2dImplementation):
    """:class:`MaxPool2dFunction`."""

    function = MaxPool2dFunction


class EmbeddingReference(_Reference, EmbeddingImplementation):
    """:class:`autograd.tensor.Gather` (its backward is ``add_at``)."""

    def apply(self, weight: Tensor, indices: Any) -> Tensor:
        return Gather.apply(weight, index=indices)


class AdamReference(_Reference, AdamImplementation):
    """The update of :class:`AdamImplementation`, one parameter at a time, in the parameters' dtype."""

    def update(
        self,
        params: List[Any],
        grads: List[Any],
        exp_avgs: List[Any],
        exp_avg_sqs: List[Any],
        steps: List[int],
        *,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
    ) -> Tuple[List[Any], List[Any], List[Any]]:
        new_p, new_m, new_v = [], [], []
        for param, grad, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
            value = param
            if weight_decay:
                value = value * (1.0 - lr * weight_decay)
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * (grad * grad)
            bias1 = 1.0 - beta1**t
            bias2_sqrt = math.sqrt(1.0 - beta2**t)
            denom = _lib.sqrt(v) / bias2_sqrt + eps
            keep = backend.keep_bfloat16  # NumPy bfloat16 times a Python float is float32
            new_p.append(keep(value - (lr / bias1) * (m / denom), [param]))
            new_m.append(keep(m, [param]))
            new_v.append(keep(v, [param]))
        return new_p, new_m, new_v


def builtin_implementations() -> List[KernelImplementation]:
    """Core's implementations, registered before any plugin: dense attention and every op's reference."""
    from autograd.kernels.dense import DenseAttention

    classes = (
        LayerNormReference,
        SoftmaxReference,
        LogSoftmaxReference,
        GeluReference,
        ReluReference,
        SigmoidReference,
        TanhReference,
        CrossEntropyReference,
        Conv2dReference,
        MaxPool2dReference,
        EmbeddingReference,
        AdamReference,
    )
    return [DenseAttention()] + [cls() for cls in classes]
