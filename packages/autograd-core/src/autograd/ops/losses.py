"""Losses: cross-entropy (a kernel op, fused with its log-softmax), binary cross-entropy, hinge, squared error.

``cross_entropy`` is here whole: its public function, its Function (core's
forward and backward), the contract a kernel plugin subclasses
(:class:`CrossEntropyKernel`) and core's reference. The other losses are
plain Functions. Every loss computes in float32 for float16 and bfloat16
predictions and returns a scalar Tensor unless ``reduction="none"``.

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
from typing import Any, List, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.backend import widen
from autograd.engine import Function, ShapeError, TensorTypeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch, sole
from autograd.ops.activations import log_softmax_array, stable_sigmoid
from autograd.tensor import Tensor

__all__ = [
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "hinge_loss",
    "mean_squared_loss",
    "CrossEntropy",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "HingeLoss",
    "MeanSquaredLoss",
    "CrossEntropyKernel",
]

ArrayLike = Union[Any, Sequence[Any], int, float, bool]
_EXP_M100 = math.exp(-100.0)
_REDUCTIONS = ("none", "mean", "sum")


# --- the public functions ------------------------------------------------------------------------------------


def _as_target(y_true: Any) -> Tensor:
    if isinstance(y_true, Tensor):
        return y_true
    if backend.is_array(y_true):
        return Tensor(y_true, requires_grad=False)
    return Tensor(backend.asarray(np.asarray(y_true)), requires_grad=False)


def binary_cross_entropy(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """BCE on predicted probabilities (mean over elements); targets may be Tensors or array-likes.

    The formula and its edge cases are :class:`BinaryCrossEntropy`'s.

    Args:
        y_pred: Probabilities in [0, 1], any shape.
        y_true: Targets in [0, 1] of ``y_pred``'s shape.
        **kwargs: Accepted and ignored.

    Returns:
        A 0-d Tensor (float32 for float16 and bfloat16 predictions).

    Examples:
        >>> from autograd import functional as F
        >>> round(F.binary_cross_entropy(Tensor([0.9, 0.2, 0.6]), [1.0, 0.0, 1.0]).item(), 4)
        0.2798
    """
    return BinaryCrossEntropy.apply(y_pred, _as_target(y_true), **kwargs)


def binary_cross_entropy_with_logits(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """BCE on logits, numerically stable (mean over elements): ``binary_cross_entropy(sigmoid(x), y)``.

    The formula is :class:`BinaryCrossEntropyWithLogits`'s.

    Args:
        y_pred: Logits, any shape.
        y_true: Targets in [0, 1] of ``y_pred``'s shape.
        **kwargs: None is accepted (a keyword raises ``TypeError``).

    Returns:
        A 0-d Tensor (float32 for float16 and bfloat16 logits).

    Examples:
        >>> from autograd import functional as F
        >>> round(F.binary_cross_entropy_with_logits(Tensor([2.0, -1.0, 0.5]), [1.0, 0.0, 1.0]).item(), 4)
        0.3048
    """
    return BinaryCrossEntropyWithLogits.apply(y_pred, _as_target(y_true), **kwargs)


def cross_entropy(
    y_pred: Tensor,
    y_true: Union[Tensor, ArrayLike],
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Cross entropy on logits (N, C) or (N, T, C) with class-index targets (N,) or (N, T).

    Runs the best registered ``cross_entropy`` kernel, :class:`CrossEntropy` by
    default (see its docstring for the formula and the edge cases). Targets are
    checked here, before any kernel sees them: shapes, integer values, and the
    range ``0..C-1`` (or ``ignore_index``).

    Args:
        y_pred: Raw logits (N, C) or (N, T, C).
        y_true: Class indices (N,) or (N, T): a Tensor, an array or a list of ints.
        ignore_index: Targets equal to it add nothing to the loss nor to its gradient.
        label_smoothing: :math:`\epsilon` in [0, 1]: the target distribution puts
            :math:`\epsilon / C` on every class and the rest on the target.
        reduction: ``"mean"`` over the non-ignored targets, or ``"sum"``.

    Returns:
        A 0-d Tensor (float32 for float16 and bfloat16 logits).

    Examples:
        >>> from autograd import functional as F
        >>> logits = Tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
        >>> loss = F.cross_entropy(logits, [0, 1])
        >>> round(loss.item(), 4)
        0.3964
        >>> loss.backward()
        >>> logits.grad.numpy().round(3)  # (softmax - one hot) / N
        array([[-0.107,  0.088,  0.02 ],
               [ 0.106, -0.212,  0.106]], dtype=float32)
        >>> round(F.cross_entropy(logits, [0, -100]).item(), 4)  # the second row is ignored
        0.2413
        >>> round(F.cross_entropy(logits, [0, 1], label_smoothing=0.1, reduction="sum").item(), 4)
        1.0094
    """
    targets = _as_target(y_true)
    if sole("cross_entropy") is None:  # a plugin may run: hand it checked int targets
        _check_reduction(reduction, ("mean", "sum"), "cross_entropy")
        targets = Tensor(
            _check_class_targets(y_pred.data, targets.data, ignore_index, label_smoothing), requires_grad=False
        )
    return dispatch(
        CrossEntropyKernel,
        y_pred,
        targets,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def hinge_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], reduction: str = "none", **kwargs: Any) -> Tensor:
    """Hinge loss ``max(0, 1 - y * y_pred)`` with labels in {-1, 1}; ``reduction`` is "none" (default), "mean" or "sum".

    Args:
        y_pred: Scores, any shape.
        y_true: Labels, -1 or 1, of ``y_pred``'s shape.
        reduction: ``"none"`` (the loss of each element), ``"mean"`` or ``"sum"``.
        **kwargs: Accepted and ignored.

    Examples:
        >>> from autograd import functional as F
        >>> F.hinge_loss(Tensor([0.5, -2.0, 3.0]), [1.0, -1.0, -1.0]).numpy()
        array([0.5, 0. , 4. ], dtype=float32)
        >>> F.hinge_loss(Tensor([0.5, -2.0, 3.0]), [1.0, -1.0, -1.0], reduction="mean").item()
        1.5
    """
    return HingeLoss.apply(y_pred, _as_target(y_true), reduction=reduction, **kwargs)


def mean_squared_loss(y_pred: Tensor, y_true: Union[Tensor, ArrayLike], **kwargs: Any) -> Tensor:
    """Mean squared error over every element.

    Args:
        y_pred: Predictions, any shape.
        y_true: Targets of ``y_pred``'s shape.
        **kwargs: Accepted and ignored.

    Returns:
        A 0-d Tensor (float32 for float16 and bfloat16 predictions).

    Examples:
        >>> from autograd import functional as F
        >>> pred = Tensor([3.0, 5.0])
        >>> loss = F.mean_squared_loss(pred, [2.0, 5.0])
        >>> loss.item()
        0.5
        >>> loss.backward()
        >>> pred.grad.numpy()  # 2 (pred - target) / N
        array([1., 0.], dtype=float32)
    """
    return MeanSquaredLoss.apply(y_pred, _as_target(y_true), **kwargs)


# --- core's forward and backward -----------------------------------------------------------------------------


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
        return grad.data * (stable_sigmoid(self.x) - self.y) / self.x.size, None


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
        self.logp = log_softmax_array(logits, -1)
        rows = backend.asarray(np.arange(logits.shape[0]))
        self.index = (rows, flat_t)
        self.eps, self.k, self.shape = label_smoothing, k, y_pred.shape
        target_logp = self.logp[self.index]
        per_pos = -(1 - label_smoothing) * target_logp
        if label_smoothing:
            per_pos = per_pos - (label_smoothing / k) * _lib.sum(self.logp, axis=-1)
        total = _lib.sum(per_pos * self.valid)
        # the count stays on the device (no wait for a GPU); with every target ignored the total is 0 anyway
        count = _lib.sum(self.valid)
        self.scale = 1.0 if reduction == "sum" else 1.0 / _lib.maximum(count, 1.0)
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

    def out_of_range(bad: int) -> Exception:
        return ValueError(
            f"cross_entropy: target {bad} is out of range for {k} classes "
            f"(valid: 0..{k - 1}, or ignore_index={ignore_index})"
        )

    # on CuPy checked on the device and raised at the next host read (backend.check_range)
    return backend.check_range(targets, 0, k, out_of_range, ignore=ignore_index)


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


# --- the cross-entropy contract ---------------------------------------------------------------------------------


class CrossEntropyKernel(Kernel):
    """Fused log-softmax + NLL: ``apply(y_pred, y_true, *, ignore_index, label_smoothing, reduction) -> loss``.

    ``y_pred``, the logits, (N, C) or (N, T, C); ``y_true`` an integer Tensor (N,) or
    (N, T) whose values are in ``0..C-1`` or equal ``ignore_index`` (checked
    before the call); ``reduction`` is ``"mean"`` (over the non-ignored
    targets; 0 when all are ignored) or ``"sum"``. With smoothing ``eps`` the
    target distribution is ``(1 - eps) onehot + eps / C``. The loss is a 0-d
    Tensor in the logits' dtype, except for float16 and bfloat16 logits: then
    it is computed, and returned, in float32. The backward gives ``dy_pred``
    (like ``y_pred``) and no gradient for the targets.
    """

    op = "cross_entropy"
    differentiable = ("y_pred",)

    def apply(
        self, y_pred: Tensor, y_true: Tensor, *, ignore_index: int, label_smoothing: float, reduction: str
    ) -> Tensor:
        """(N, C) or (N, T, C) logits and their class targets -> the 0-d loss."""
        return self.call_function(
            y_pred, y_true, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction
        )

    @classmethod
    def reference(cls) -> Kernel:
        return CrossEntropyReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        """A 0-d loss: float32 for float16/bfloat16 logits (losses run in float32), else the logits' dtype."""
        return (), "float32" if inputs.dtype in ("float16", "bfloat16") else inputs.dtype

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Smoothing, both reductions, ignored targets (all of them in one case), int32 and int64 targets."""
        out = []
        for shape, smooth, reduction, ignored in [
            ((4, 5), 0.0, "mean", 0),
            ((7, 3), 0.1, "mean", 2),
            ((2, 6, 11), 0.0, "sum", 3),
            ((3, 4, 9), 0.2, "mean", 1),
            ((3, 4), 0.0, "mean", 3),  # every target ignored
            ((1, 1), 0.0, "sum", 0),
            ((0, 4), 0.0, "mean", 0),  # no rows
        ]:
            c = shape[-1]
            t = rng.integers(0, c, size=shape[:-1])
            t.reshape(-1)[:ignored] = -100
            for index_dtype in (np.int32, np.int64):
                label = f"logits{shape} smoothing={smooth} {reduction} ignored={ignored} {np.dtype(index_dtype).name}"
                params = {"ignore_index": -100, "label_smoothing": smooth, "reduction": reduction}
                logits = rng.standard_normal(shape) * 3
                out.append(KernelCase(label, [logits, t.astype(index_dtype)], params, (True, False)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A character model's loss: (1024, 256) logits."""
        params = {"ignore_index": -100, "label_smoothing": 0.0, "reduction": "mean"}
        return make_inputs(cls, dtype, {"y_pred": (1024, 256), "y_true": (1024,)}, params, {"y_true": "int64"})


class CrossEntropyReference(CoreReference, CrossEntropyKernel):
    """:class:`CrossEntropy`."""

    function = CrossEntropy
