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
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.backend import widen
from autograd.kernels import registry
from autograd.kernels.contracts import AttentionInputs, check_attention_output, dispatch
from autograd.precision import to_low
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
    "scaled_dot_product_attention",
    "explain_attention",
    "scaled_dot_product_attention_mlx_custom",
    "ScaledDotProductAttentionMLXCustom",
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
        return _lib.where(self.mask, grad.data, 0)


class Gelu(Function):
    r"""GELU, tanh approximation: :math:`0.5x(1 + \tanh(\alpha))`, :math:`\alpha = \sqrt{2/\pi}(x + 0.044715x^3)`.

    Backward: :math:`0.5(1 + \tanh\alpha) + 0.5x(1 - \tanh^2\alpha)\alpha'` with
    :math:`\alpha' = \sqrt{2/\pi}(1 + 3 \cdot 0.044715x^2)`.

    The tanh is kept for the backward when it has x's dtype. When it came out wider (NumPy promotes a
    bfloat16 array times a Python float to float32), only x is kept and the backward recomputes the tanh (the
    same bits): under a half-precision policy a float32 copy per GELU would undo much of the memory saving.
    """

    @staticmethod
    def _tanh(x: Any) -> Any:
        return _lib.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))

    def forward(self, x: Any) -> Any:
        self.x = x
        t = self._tanh(x)
        self.t = t if t.dtype == x.dtype else None
        return 0.5 * x * (1 + t)

    def backward(self, grad: Any) -> Any:
        x = self.x
        t = self.t if self.t is not None else self._tanh(x)
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

    Backward: :math:`s \odot (g - \sum_j g_j s_j)`. float16 and bfloat16 inputs
    are computed in float32 (forward and backward) and the output is rounded
    to the input's dtype.
    """

    def forward(self, x: Any, dim: int = -1) -> Any:
        self.dim = dim
        xf = widen(x)
        e = _lib.exp(xf - _lib.max(xf, axis=dim, keepdims=True))
        out = e / _lib.sum(e, axis=dim, keepdims=True)
        self.out = out if xf is x else out.astype(x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        g, s = widen(grad.data), widen(self.out)
        dx = s * (g - _lib.sum(g * s, axis=self.dim, keepdims=True))
        return dx.astype(self.out.dtype) if dx.dtype != self.out.dtype else dx


def _log_softmax(x: Any, dim: int) -> Any:
    shifted = x - _lib.max(x, axis=dim, keepdims=True)
    return shifted - _lib.log(_lib.sum(_lib.exp(shifted), axis=dim, keepdims=True))


class LogSoftmax(Function):
    r""":math:`\log \pi_i = x_i - \log \sum_j e^{x_j}` along ``dim``, with the max-shift.

    Backward: :math:`g - softmax(x) \sum_j g_j`. float16 and bfloat16 inputs are
    computed in float32 and the output is rounded to the input's dtype.
    """

    def forward(self, x: Any, *, dim: int = -1) -> Any:
        self.dim = dim
        xf = widen(x)
        out = _log_softmax(xf, dim)
        self.out = out if xf is x else out.astype(x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        g, out = widen(grad.data), widen(self.out)
        dx = g - _lib.exp(out) * _lib.sum(g, axis=self.dim, keepdims=True)
        return dx.astype(self.out.dtype) if dx.dtype != self.out.dtype else dx


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


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)


def relu(x: Tensor) -> Tensor:
    """ReLU, element-wise. ``relu(Tensor([-1, 0, 2]))`` is ``[0, 0, 2]``.

    Runs the best registered ``relu`` kernel (see :mod:`autograd.kernels`), :class:`Relu` by default.
    """
    return dispatch("relu", _as_tensor(x))


def sigmoid(x: Tensor) -> Tensor:
    """Sigmoid, element-wise. ``sigmoid(Tensor([0, 2]))`` is ``[0.5, ~0.88]`` (kernel op ``sigmoid``)."""
    return dispatch("sigmoid", _as_tensor(x))


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` (the last axis by default), for any rank; rows sum to 1 (kernel op ``softmax``)."""
    x = _as_tensor(x)
    return dispatch("softmax", x, dim=_check_dim(x, dim, "softmax") % max(x.ndim, 1))


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Log-softmax along ``dim``; more stable than ``log(softmax(x))`` (kernel op ``log_softmax``)."""
    x = _as_tensor(x)
    return dispatch("log_softmax", x, dim=_check_dim(x, dim, "log_softmax") % max(x.ndim, 1))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, element-wise (kernel op ``tanh``)."""
    return dispatch("tanh", _as_tensor(x))


def gelu(x: Tensor) -> Tensor:
    r"""GELU with the tanh approximation :math:`0.5x(1 + \tanh(\sqrt{2/\pi}(x + 0.044715x^3)))` (kernel op ``gelu``)."""
    return dispatch("gelu", _as_tensor(x))


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

    keeps_input_precision = False  # float16/bfloat16 predictions give a float32 loss

    def forward(self, y_pred: Any, y_true: Any, **kwargs: Any) -> Any:
        _check_same_shape(y_pred, y_true, "binary_cross_entropy")
        y_pred = widen(y_pred)  # losses run in float32 for float16/bfloat16 predictions
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

    keeps_input_precision = False  # float16/bfloat16 predictions give a float32 loss

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        _check_same_shape(y_pred, y_true, "binary_cross_entropy_with_logits")
        x = widen(y_pred)
        y = y_true.astype(x.dtype)
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

    keeps_input_precision = False  # float16/bfloat16 predictions give a float32 loss

    def forward(
        self,
        y_pred: Any,
        y_true: Any,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> Any:
        _check_reduction(reduction, ("mean", "sum"), "cross_entropy")
        targets = _check_class_targets(y_pred, y_true, ignore_index, label_smoothing)
        k = y_pred.shape[-1]
        valid = targets != ignore_index
        y_pred = widen(y_pred)  # float16/bfloat16 logits: the loss and its gradient are computed in float32
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


def _check_class_targets(y_pred: Any, y_true: Any, ignore_index: int, label_smoothing: float) -> Any:
    """Validate cross-entropy logits and targets (arrays); return the targets as integers."""
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
    host = backend.to_numpy(targets)
    host = host[host != ignore_index]
    if host.size and (host.min() < 0 or host.max() >= k):
        bad = host[(host < 0) | (host >= k)]
        raise ValueError(
            f"cross_entropy: target {int(bad[0])} is out of range for {k} classes "
            f"(valid: 0..{k - 1}, or ignore_index={ignore_index})"
        )
    return targets


def _integer_targets(y_true: Any, op: str) -> Any:
    if backend.is_floating(y_true.dtype):
        host = backend.to_numpy(y_true)
        if not np.all(np.isfinite(host)) or np.any(host != np.round(host)):
            raise TensorTypeError(f"{op}: targets must be integer class indices, got non-integer values")
        return backend.asarray(host.astype(np.int32))  # class indices: int32 indexes on every backend
    return y_true


class HingeLoss(Function):
    r"""Hinge loss :math:`\max(0, 1 - y \cdot \hat{y})` with labels in {-1, 1}.

    Gradient: :math:`-y` where :math:`y\hat{y} < 1`, else 0; averaged for ``"mean"``.
    """

    keeps_input_precision = False  # float16/bfloat16 predictions give a float32 loss

    def forward(self, y_pred: Any, y_true: Any, reduction: str = "none", **kwargs: Any) -> Any:
        _check_reduction(reduction, _REDUCTIONS, "hinge_loss")
        _check_same_shape(y_pred, y_true, "hinge_loss")
        y_pred = widen(y_pred)
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

    keeps_input_precision = False  # float16/bfloat16 predictions give a float32 loss

    def forward(self, y_pred: Any, y_true: Any, **kwargs: Any) -> Any:
        _check_same_shape(y_pred, y_true, "mean_squared_loss")
        y_pred = widen(y_pred)
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
    """Cross entropy on logits (N, C) or (N, T, C) with class-index targets (N,) or (N, T).

    Runs the best registered ``cross_entropy`` kernel, :class:`CrossEntropy` by
    default (see its docstring for the formula and the edge cases). Targets are
    checked here, before any kernel sees them: shapes, integer values, and the
    range ``0..C-1`` (or ``ignore_index``).
    """
    targets = _as_target(y_true)
    if registry.sole("cross_entropy") is None:  # a plugin may run: hand it checked int targets
        _check_reduction(reduction, ("mean", "sum"), "cross_entropy")
        _check_class_targets(y_pred.data, targets.data, ignore_index, label_smoothing)
        targets = Tensor(_integer_targets(targets.data, "cross_entropy"), requires_grad=False)
    return dispatch(
        "cross_entropy",
        y_pred,
        targets,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def hinge_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], reduction: str = "none", **kwargs: Any) -> Tensor:
    """Hinge loss with labels in {-1, 1}; ``reduction`` is "none" (default), "mean" or "sum"."""
    return HingeLoss.apply(y_pred, _as_target(y_true), reduction=reduction, **kwargs)


def mean_squared_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """Mean squared error. ``mean_squared_loss(Tensor([3.0, 5.0]), [2.0, 5.0])`` is 0.5."""
    return MeanSquaredLoss.apply(y_pred, _as_target(y_true), **kwargs)


# --- attention -----------------------------------------------------------------

#: Name under which the autograd-kernels-mlx plugin registers its implementation.
MLX_KERNEL_NAME = "mlx_flash"


def _attention_inputs(
    query: Tensor, key: Tensor, value: Tensor, mask: Any, is_causal: bool, dropout_prob: float
) -> Tuple[Any, Any]:
    """Validate an attention call; return (AttentionInputs, mask array or None)."""
    from autograd.tensor import is_grad_enabled

    q, k, v = query.shape, key.shape, value.shape
    if len(q) != 4 or len(k) != 4 or len(v) != 4:
        raise ShapeError(
            f"scaled_dot_product_attention: expected query, key and value of shape (batch, heads, seq, dim), "
            f"got {q}, {k} and {v}"
        )
    if q[:2] != k[:2] or k[:2] != v[:2] or q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(
            "scaled_dot_product_attention: query (B, H, Tq, D), key (B, H, Tk, D) and value (B, H, Tk, Dv) "
            f"do not fit together: got {q}, {k} and {v}"
        )
    if not 0.0 <= dropout_prob < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_prob must be in [0, 1), got {dropout_prob}")
    if not (backend.is_floating(query.dtype) and query.dtype == key.dtype == value.dtype):
        raise TensorTypeError(
            f"scaled_dot_product_attention: query, key and value need one floating dtype, got "
            f"{query.dtype}, {key.dtype} and {value.dtype}"
        )
    kind, mask_arr, mask_shape = "none", None, None
    if mask is not None:
        mask_arr = mask.data if isinstance(mask, Tensor) else mask
        if not backend.is_array(mask_arr):
            mask_arr = backend.asarray(np.asarray(mask_arr))
        mask_shape = tuple(mask_arr.shape)
        target = (q[0], q[1], q[2], k[2])
        ok = len(mask_shape) <= 4 and all(m in (1, t) for m, t in zip(mask_shape[::-1], target[::-1]))
        if not ok:
            raise ShapeError(
                f"scaled_dot_product_attention: mask of shape {mask_shape} does not broadcast to "
                f"(batch, heads, Tq, Tk) = {target}"
            )
        if mask_arr.dtype == backend.dtype("bool"):
            kind = "bool"
        else:
            kind = "additive"
            if not backend.is_floating(mask_arr.dtype):
                mask_arr = mask_arr.astype(query.dtype)
    inputs = AttentionInputs(
        backend=backend.BACKEND,
        query_shape=q,
        key_shape=k,
        value_shape=v,
        dtype=backend.dtype_name(query.dtype),
        mask=kind,
        mask_shape=mask_shape,
        is_causal=bool(is_causal) and mask is None,
        dropout_prob=float(dropout_prob),
        requires_grad=is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad),
    )
    return inputs, mask_arr


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    *,
    scale: Optional[float] = None,
    seed: Optional[int] = None,
    implementation: Optional[str] = None,
) -> Tensor:
    r""":math:`\text{softmax}(QK^T \cdot scale + mask)\,V`, through the best attention implementation.

    Args:
        query: (B, H, Tq, D). key: (B, H, Tk, D). value: (B, H, Tk, Dv).
        mask: Broadcastable to (B, H, Tq, Tk). A float mask is additive with
            1.0 = forbidden and 0.0 = allowed; a bool mask forbids where True.
        is_causal: Structural causal masking (query ``i`` sees keys
            ``j <= i + Tk - Tq``), applied only when no ``mask`` is given.
        dropout_prob: Dropout on the attention probabilities (pass 0 in eval).
        scale: Defaults to ``1/sqrt(D)``.
        seed: Seed of the dropout mask; drawn from the backend generator when
            omitted (so ``autograd.backend.seed`` makes runs reproducible).
        implementation: Force one implementation by name (see
            ``python -m autograd.kernels``); otherwise ``AUTOGRAD_ATTENTION`` or
            automatic selection decides.

    Returns:
        (B, H, Tq, Dv) in the query's dtype.
    """
    query, key, value = to_low(query, key, value)  # under autocast, attention runs in the low dtype
    inputs, mask_arr = _attention_inputs(query, key, value, mask, is_causal, dropout_prob)
    impl = registry.select(inputs, implementation)
    if inputs.dropout_prob > 0.0 and seed is None:
        seed = backend.random_seed()
    out = impl.attention(
        query,
        key,
        value,
        mask=mask_arr,
        is_causal=inputs.is_causal,
        dropout_prob=inputs.dropout_prob,
        scale=scale,
        seed=seed,
    )
    check_attention_output(impl, inputs, out)
    return out


def explain_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    *,
    implementation: Optional[str] = None,
) -> Any:
    """Which implementation :func:`scaled_dot_product_attention` would run for these inputs, and why.

    Returns an :class:`autograd.kernels.Explanation`; ``print`` it for a readable report.
    """
    inputs, _ = _attention_inputs(*to_low(query, key, value), mask, is_causal, dropout_prob)
    return registry.explain(inputs, implementation)


def _mlx_kernel() -> Any:
    try:
        impl = registry.get(MLX_KERNEL_NAME)
    except registry.UnknownAttentionImplementationError:
        raise RuntimeError(
            "the custom MLX attention kernel is not installed: pip install autograd-kernels-mlx once it is "
            "released on PyPI; before the release, from a clone: pip install ./packages/autograd-kernels-mlx "
            "(it runs with the mlx backend: AUTOGRAD_BACKEND=mlx)"
        ) from None
    problems = impl.check_environment()
    if problems:
        raise RuntimeError(
            f"the custom MLX attention kernel cannot run here: {'; '.join(problems)}. "
            f"Select the mlx backend with AUTOGRAD_BACKEND=mlx ({backend.install_hint('mlx')})."
        )
    return impl


def scaled_dot_product_attention_mlx_custom(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    is_training: Optional[bool] = None,
    dropout_prob: float = 0.0,
) -> Tensor:
    """Causal attention through the custom MLX kernel (the ``autograd-kernels-mlx`` plugin).

    ``is_training=False`` disables dropout; ``None`` applies ``dropout_prob`` as given.

    Raises:
        RuntimeError: the plugin is not installed or the backend is not mlx
            (the message says what to install or select).
    """
    _mlx_kernel()
    p = 0.0 if is_training is False else dropout_prob
    return scaled_dot_product_attention(
        query, key, value, is_causal=True, dropout_prob=p, implementation=MLX_KERNEL_NAME
    )


class ScaledDotProductAttentionMLXCustom(Function):
    r"""Fused causal attention on MLX with an explicit dropout multiplier, delegated to the MLX kernel plugin.

    ``forward(query, key, value, dropout_scale_mask=M)`` computes
    :math:`\widetilde{P}V` with :math:`\widetilde{P} = \text{softmax}(QK^T/\sqrt{d})_{causal} \odot M`
    (``M`` already scaled by :math:`1/(1-p)`, or None). The backward recomputes
    :math:`P` instead of saving it and returns
    :math:`dV = \widetilde{P}^T G`, :math:`dS = P \odot (dP - \sum_k dP_k P_k)` with
    :math:`dP = (G V^T) \odot M`, :math:`dQ = dS\,K/\sqrt{d}`, :math:`dK = dS^T Q/\sqrt{d}`.
    Prefer :func:`scaled_dot_product_attention_mlx_custom`, which derives the
    mask from a seed instead of storing it.
    """

    @staticmethod
    def build_dropout_scale_mask(
        *, is_training: Optional[bool], dropout_prob: float, query_shape: Tuple[int, ...], key_shape: Tuple[int, ...]
    ) -> Optional[Any]:
        """The (B, H, Tq, Tk) multiplier ``keep / (1 - p)``, or None when not training or ``p == 0``."""
        if is_training is False or dropout_prob <= 0.0:
            return None
        if not dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}")
        shape = tuple(query_shape[:-1]) + (key_shape[-2],)
        keep = backend.bernoulli(1.0 - dropout_prob, shape)
        return keep.astype(backend.dtype("float32")) * (1.0 / (1.0 - dropout_prob))

    @staticmethod
    def validate(query: Any, key: Any, value: Any, *, dropout_scale_mask: Optional[Any] = None) -> None:
        """Check shapes: (B, H, T, D) each, equal; the mask (B, H, T, T)."""
        shapes = [tuple(a.shape) for a in (query, key, value)]
        if any(len(s) != 4 for s in shapes) or len(set(shapes)) != 1:
            raise ShapeError(f"mlx custom attention: expected three equal (B, H, T, D) shapes, got {shapes}")
        if dropout_scale_mask is not None:
            b, h, t, _ = shapes[0]
            if tuple(dropout_scale_mask.shape) != (b, h, t, t):
                raise ShapeError(
                    f"mlx custom attention: dropout_scale_mask has shape {tuple(dropout_scale_mask.shape)}, "
                    f"expected {(b, h, t, t)}"
                )

    def forward(self, query: Any, key: Any, value: Any, *, dropout_scale_mask: Optional[Any] = None) -> Any:
        self.validate(query, key, value, dropout_scale_mask=dropout_scale_mask)
        self.kernel = _mlx_kernel()
        out, self.saved = self.kernel.causal_forward(query, key, value, dropout_scale_mask)
        return out

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        return self.kernel.causal_backward(self.saved, grad.data)
