"""Activations and losses, each a Function with a hand-derived backward.

Shapes: activations are element-wise (softmax/log-softmax along one axis, the
last by default) and keep the input shape; losses return a scalar tensor
unless ``reduction="none"``.

Choices where the API reference is silent:

* Losses check that targets fit the predictions (same shape, or the class
  layout of ``cross_entropy``) and raise a ``ValueError`` naming both shapes.
* ``binary_cross_entropy`` clamps each log term at -100 (as PyTorch does), so
  probabilities of exactly 0 or 1 give finite losses and gradients.
* ``cross_entropy`` with ``reduction="mean"`` and every target equal to
  ``ignore_index`` returns 0 with zero gradients (the mean over no targets is
  taken as 0 rather than PyTorch's NaN, so a fully padded batch does not
  poison training).
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.tensor import Function, ShapeError, Tensor, TensorTypeError

__all__ = [
    "relu",
    "sigmoid",
    "softmax",
    "log_softmax",
    "tanh",
    "gelu",
    "Relu",
    "Gelu",
    "Sigmoid",
    "Softmax",
    "LogSoftmax",
    "Tanh",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "CrossEntropy",
    "HingeLoss",
    "MeanSquaredLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "hinge_loss",
    "mean_squared_loss",
]

ArrayLike = Union[Any, Sequence[Any], int, float, bool]
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_EXP_M100 = math.exp(-100.0)


# --- activations -------------------------------------------------------------


class Relu(Function):
    r""":math:`ReLU(x) = \max(0, x)`; the gradient passes where :math:`x > 0`.

    Examples:
        >>> Relu.apply(Tensor([-3, 0, 3]))  # [0, 0, 3]
    """

    def forward(self, x: Any) -> Any:
        self.mask = x > 0
        return _lib.maximum(x, 0)

    def backward(self, grad: Tensor) -> Any:
        return grad.data * self.mask


class Gelu(Function):
    r"""GELU, tanh approximation: :math:`0.5x(1 + \tanh(\alpha))`, :math:`\alpha = \sqrt{2/\pi}(x + 0.044715x^3)`.

    Backward: :math:`0.5(1 + \tanh\alpha) + 0.5x(1 - \tanh^2\alpha)\alpha'` with
    :math:`\alpha' = \sqrt{2/\pi}(1 + 3 \cdot 0.044715x^2)`.
    """

    def forward(self, x: Any) -> Any:
        self.x = x
        self.t = _lib.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1 + self.t)

    def backward(self, grad: Any) -> Any:
        x, t = self.x, self.t
        d_alpha = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return grad.data * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_alpha)


def _stable_sigmoid(x: Any) -> Any:
    e = _lib.exp(-_lib.abs(x))  # never overflows
    return _lib.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    r""":math:`\sigma(x) = 1/(1 + e^{-x})`, computed without overflow; :math:`\sigma' = \sigma(1-\sigma)`."""

    def forward(self, x: Any) -> Any:
        self.out = _stable_sigmoid(x)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        return grad.data * self.out * (1 - self.out)


class Softmax(Function):
    r""":math:`softmax(x)_i = e^{x_i - \max x} / \sum_j e^{x_j - \max x}` along ``dim`` (default last).

    Backward: :math:`s \odot (g - \sum_j g_j s_j)`.
    """

    def forward(self, x: Any, dim: int = -1) -> Any:
        self.dim = dim
        e = _lib.exp(x - _lib.max(x, axis=dim, keepdims=True))
        self.out = e / _lib.sum(e, axis=dim, keepdims=True)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        g, s = grad.data, self.out
        return s * (g - _lib.sum(g * s, axis=self.dim, keepdims=True))


def _log_softmax(x: Any, dim: int) -> Any:
    shifted = x - _lib.max(x, axis=dim, keepdims=True)
    return shifted - _lib.log(_lib.sum(_lib.exp(shifted), axis=dim, keepdims=True))


class LogSoftmax(Function):
    r""":math:`\log \pi_i = x_i - \log \sum_j e^{x_j}` along ``dim``, with the max-shift.

    Backward: :math:`g - softmax(x) \sum_j g_j`.
    """

    def forward(self, x: Any, *, dim: int = -1) -> Any:
        self.dim = dim
        self.out = _log_softmax(x, dim)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        g = grad.data
        return g - _lib.exp(self.out) * _lib.sum(g, axis=self.dim, keepdims=True)


class Tanh(Function):
    r""":math:`\tanh(x)`, with :math:`d\tanh/dx = 1 - \tanh^2 x`."""

    def forward(self, x: Any) -> Any:
        self.out = _lib.tanh(x)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        return grad.data * (1 - self.out * self.out)


def _check_dim(x: Tensor, dim: int, op: str) -> int:
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor with ndim {x.ndim}")
    return dim


def relu(x: Tensor) -> Tensor:
    """ReLU, element-wise. ``relu(Tensor([-1, 0, 2]))`` is ``[0, 0, 2]``."""
    return Relu.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """Sigmoid, element-wise. ``sigmoid(Tensor([0, 2]))`` is ``[0.5, ~0.88]``."""
    return Sigmoid.apply(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` (the last axis by default), for any rank; rows sum to 1."""
    return Softmax.apply(x, dim=_check_dim(x, dim, "softmax"))


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Log-softmax along ``dim``; more stable than ``log(softmax(x))``."""
    return LogSoftmax.apply(x, dim=_check_dim(x, dim, "log_softmax"))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, element-wise."""
    return Tanh.apply(x)


def gelu(x: Tensor) -> Tensor:
    r"""GELU with the tanh approximation :math:`0.5x(1 + \tanh(\sqrt{2/\pi}(x + 0.044715x^3)))`."""
    return Gelu.apply(x)


# --- losses ------------------------------------------------------------------

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str, allowed: Tuple[str, ...], op: str) -> None:
    if reduction not in allowed:
        raise ValueError(f"{op}: unknown reduction {reduction!r}; use one of {allowed}")


def _check_same_shape(y_pred: Any, y_true: Any, op: str) -> None:
    if tuple(y_pred.shape) != tuple(y_true.shape):
        raise ShapeError(
            f"{op}: target shape {tuple(y_true.shape)} does not match prediction shape {tuple(y_pred.shape)}"
        )


def _reduce(loss: Any, reduction: str) -> Any:
    if reduction == "mean":
        return _lib.mean(loss)
    if reduction == "sum":
        return _lib.sum(loss)
    return loss


class BinaryCrossEntropy(Function):
    r"""BCE on probabilities: :math:`-(y \log p + (1-y)\log(1-p))`, averaged over elements.

    Each log term is clamped at -100 and the gradient
    :math:`-(y/p - (1-y)/(1-p)) = (p - y)/(p(1-p))` uses :math:`\max(p(1-p), 10^{-12})`,
    so ``p`` of exactly 0 or 1 stays finite.
    """

    def forward(self, y_pred: Any, y_true: Any, **kwargs: Any) -> Any:
        _check_same_shape(y_pred, y_true, "binary_cross_entropy")
        y = y_true.astype(y_pred.dtype)
        self.p, self.y = y_pred, y
        # e^-100 keeps log() away from 0 (no divide warning); the clamp does the rest.
        log_p = _lib.maximum(_lib.log(_lib.maximum(y_pred, _EXP_M100)), -100.0)
        log_1mp = _lib.maximum(_lib.log(_lib.maximum(1 - y_pred, _EXP_M100)), -100.0)
        return _lib.mean(-(y * log_p + (1 - y) * log_1mp))

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        p, y = self.p, self.y
        denom = _lib.maximum(p * (1 - p), 1e-12)
        return grad.data * (p - y) / denom / p.size, None


class BinaryCrossEntropyWithLogits(Function):
    r"""BCE on logits, stable form :math:`\max(x,0) - xy + \log(1 + e^{-|x|})`, averaged.

    Gradient: :math:`\sigma(x) - y`, divided by the number of elements.
    """

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        _check_same_shape(y_pred, y_true, "binary_cross_entropy_with_logits")
        x, y = y_pred, y_true.astype(y_pred.dtype)
        self.x, self.y = x, y
        loss = _lib.maximum(x, 0) - x * y + _lib.log1p(_lib.exp(-_lib.abs(x)))
        return _lib.mean(loss)

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        return grad.data * (_stable_sigmoid(self.x) - self.y) / self.x.size, None


class CrossEntropy(Function):
    r"""Cross entropy on raw logits with ``ignore_index`` and label smoothing.

    Logits have shape (N, C) or (N, T, C); targets hold class indices with shape
    (N,) or (N, T). With smoothing :math:`\epsilon` and :math:`K` classes the
    target distribution is :math:`T_{ij} = (1-\epsilon) y_{ij} + \epsilon / K`, the loss
    of a position is :math:`-\sum_j T_{ij} \log p_{ij}`, and its gradient is
    :math:`p_{ij} - T_{ij}`. Ignored positions contribute nothing; ``"mean"``
    divides by the number of non-ignored targets. The one-hot is never built:
    the target term is subtracted at the target indices.
    """

    def forward(
        self,
        y_pred: Any,
        y_true: Any,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> Any:
        _check_reduction(reduction, ("mean", "sum"), "cross_entropy")
        if y_pred.ndim not in (2, 3):
            raise ShapeError(f"cross_entropy: logits must be (N, C) or (N, T, C), got shape {tuple(y_pred.shape)}")
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ShapeError(
                f"cross_entropy: targets of shape {tuple(y_true.shape)} do not match logits of shape "
                f"{tuple(y_pred.shape)} (expected {tuple(y_pred.shape[:-1])})"
            )
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
        k = y_pred.shape[-1]
        targets = _integer_targets(y_true, "cross_entropy")
        valid = targets != ignore_index
        host = backend.to_numpy(targets)[backend.to_numpy(valid)]
        if host.size and (host.min() < 0 or host.max() >= k):
            bad = host[(host < 0) | (host >= k)]
            raise ValueError(
                f"cross_entropy: target {int(bad[0])} is out of range for {k} classes "
                f"(valid: 0..{k - 1}, or ignore_index={ignore_index})"
            )
        logits = y_pred.reshape(-1, k)
        flat_t = _lib.where(valid.reshape(-1), targets.reshape(-1), 0)
        self.valid = valid.reshape(-1).astype(y_pred.dtype)
        self.logp = _log_softmax(logits, -1)
        rows = backend.asarray(np.arange(logits.shape[0]))
        self.index = (rows, flat_t)
        self.eps, self.k, self.shape = label_smoothing, k, y_pred.shape
        target_logp = self.logp[self.index]
        per_pos = -(1 - label_smoothing) * target_logp
        if label_smoothing:
            per_pos = per_pos - (label_smoothing / k) * _lib.sum(self.logp, axis=-1)
        total = _lib.sum(per_pos * self.valid)
        count = int(backend.to_numpy(valid).sum())
        self.scale = 1.0 if reduction == "sum" else (1.0 / count if count else 0.0)
        return (total * self.scale).astype(y_pred.dtype)

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        p = _lib.exp(self.logp)
        g = p - self.eps / self.k if self.eps else p
        g = backend.add_at(g, self.index, _lib.full(self.valid.shape, -(1 - self.eps), dtype=p.dtype))
        g = g * (self.valid * (self.scale * grad.data))[:, None]
        return g.reshape(self.shape), None


def _integer_targets(y_true: Any, op: str) -> Any:
    if backend.is_floating(y_true.dtype):
        host = backend.to_numpy(y_true)
        if not np.all(np.isfinite(host)) or np.any(host != np.round(host)):
            raise TensorTypeError(f"{op}: targets must be integer class indices, got non-integer values")
        return backend.asarray(host.astype(np.int64) if backend.BACKEND != "mlx" else host.astype(np.int32))
    return y_true


class HingeLoss(Function):
    r"""Hinge loss :math:`\max(0, 1 - y \cdot \hat{y})` with labels in {-1, 1}.

    Gradient: :math:`-y` where :math:`y\hat{y} < 1`, else 0; averaged for ``"mean"``.
    """

    def forward(self, y_pred: Any, y_true: Any, reduction: str = "none", **kwargs: Any) -> Any:
        _check_reduction(reduction, _REDUCTIONS, "hinge_loss")
        _check_same_shape(y_pred, y_true, "hinge_loss")
        y = y_true.astype(y_pred.dtype)
        self.y, self.reduction, self.size = y, reduction, y_pred.size
        margin = 1 - y * y_pred
        self.active = margin > 0
        return _reduce(_lib.maximum(margin, 0), reduction)

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        g = -self.y * self.active * grad.data
        if self.reduction == "mean":
            g = g / self.size
        return g, None


class MeanSquaredLoss(Function):
    r"""MSE :math:`\frac{1}{N}\sum(\hat{y} - y)^2`, with gradient :math:`\frac{2}{N}(\hat{y} - y)`."""

    def forward(self, y_pred: Any, y_true: Any, **kwargs: Any) -> Any:
        _check_same_shape(y_pred, y_true, "mean_squared_loss")
        self.diff = y_pred - y_true.astype(y_pred.dtype)
        return _lib.mean(self.diff * self.diff)

    def backward(self, grad: Tensor) -> Any:
        return grad.data * (2.0 / self.diff.size) * self.diff, None


def _as_target(y_true: Any) -> Tensor:
    if isinstance(y_true, Tensor):
        return y_true
    if backend.is_array(y_true):
        return Tensor(y_true, requires_grad=False)
    return Tensor(backend.asarray(np.asarray(y_true)), requires_grad=False)


def binary_cross_entropy(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """BCE on predicted probabilities (mean over elements); targets may be Tensors or array-likes."""
    return BinaryCrossEntropy.apply(y_pred, _as_target(y_true), **kwargs)


def binary_cross_entropy_with_logits(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """BCE on logits, numerically stable (mean over elements)."""
    return BinaryCrossEntropyWithLogits.apply(y_pred, _as_target(y_true), **kwargs)


def cross_entropy(
    y_pred: Tensor,
    y_true: Union[Tensor, ArrayLike],
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross entropy on logits (N, C) or (N, T, C) with class-index targets (N,) or (N, T)."""
    return CrossEntropy.apply(
        y_pred, _as_target(y_true), ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction
    )


def hinge_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], reduction: str = "none", **kwargs: Any) -> Tensor:
    """Hinge loss with labels in {-1, 1}; ``reduction`` is "none" (default), "mean" or "sum"."""
    return HingeLoss.apply(y_pred, _as_target(y_true), reduction=reduction, **kwargs)


def mean_squared_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """Mean squared error. ``mean_squared_loss(Tensor([3.0, 5.0]), [2.0, 5.0])`` is 0.5."""
    return MeanSquaredLoss.apply(y_pred, _as_target(y_true), **kwargs)
