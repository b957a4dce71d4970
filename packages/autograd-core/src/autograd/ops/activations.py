"""Activations: ReLU, sigmoid, tanh, GELU (element-wise), softmax and log-softmax (along one axis).

Each op is here whole: the public function, the Function with core's forward
and backward (written as the math), the contract a kernel plugin subclasses
(``ReluKernel``...: the signature, the output rule, the conformance cases)
and core's reference implementation, which runs the Function.

Shapes: every activation keeps its input's shape; softmax and log-softmax
work along ``dim`` (the last axis by default). float16 and bfloat16 softmax
and log-softmax are computed in float32 and rounded back.
"""

from __future__ import annotations

import math
from typing import Any, List, Tuple

import numpy as np

from autograd.backend import lib as _lib
from autograd.backend import round_to, widen
from autograd.engine import Function, ShapeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch
from autograd.tensor import Tensor

__all__ = [
    "relu",
    "sigmoid",
    "tanh",
    "gelu",
    "softmax",
    "log_softmax",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "Softmax",
    "LogSoftmax",
    "ReluKernel",
    "SigmoidKernel",
    "TanhKernel",
    "GeluKernel",
    "SoftmaxKernel",
    "LogSoftmaxKernel",
    "stable_sigmoid",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)


def _check_dim(x: Tensor, dim: int, op: str) -> int:
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor with ndim {x.ndim}")
    return dim % max(x.ndim, 1)


# --- the public functions ------------------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """ReLU, element-wise: ``max(0, x)``.

    Runs the best registered ``relu`` kernel (:mod:`autograd.kernels`), :class:`Relu` by default.

    Args:
        x: Any shape.

    Examples:
        >>> from autograd import functional as F
        >>> x = Tensor([-1.0, 0.0, 2.0])
        >>> y = F.relu(x)
        >>> y.numpy()
        array([0., 0., 2.], dtype=float32)
        >>> y.sum().backward()
        >>> x.grad.numpy()  # the gradient passes where x > 0
        array([0., 0., 1.], dtype=float32)
    """
    return dispatch(ReluKernel, _as_tensor(x))


def sigmoid(x: Tensor) -> Tensor:
    """Sigmoid, element-wise: ``1 / (1 + exp(-x))`` (kernel op ``sigmoid``).

    Args:
        x: Any shape.

    Examples:
        >>> from autograd import functional as F
        >>> F.sigmoid(Tensor([0.0, 2.0])).numpy().round(4)
        array([0.5   , 0.8808], dtype=float32)
    """
    return dispatch(SigmoidKernel, _as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent, element-wise (kernel op ``tanh``).

    Args:
        x: Any shape.

    Examples:
        >>> from autograd import functional as F
        >>> F.tanh(Tensor([0.0, 1.0])).numpy().round(4)
        array([0.    , 0.7616], dtype=float32)
    """
    return dispatch(TanhKernel, _as_tensor(x))


def gelu(x: Tensor) -> Tensor:
    r"""GELU with the tanh approximation :math:`0.5x(1 + \tanh(\sqrt{2/\pi}(x + 0.044715x^3)))` (kernel op ``gelu``).

    Args:
        x: Any shape.

    Examples:
        >>> from autograd import functional as F
        >>> F.gelu(Tensor([-1.0, 0.0, 1.0])).numpy().round(4)
        array([-0.1588,  0.    ,  0.8412], dtype=float32)
    """
    return dispatch(GeluKernel, _as_tensor(x))


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` (the last axis by default), for any rank; rows sum to 1 (kernel op ``softmax``).

    Args:
        x: The logits, any shape.
        dim: The axis that is normalized.

    Examples:
        >>> from autograd import functional as F
        >>> p = F.softmax(Tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]]))
        >>> p.numpy().round(3)
        array([[0.659, 0.242, 0.099],
               [0.333, 0.333, 0.333]], dtype=float32)
        >>> p.numpy().sum(axis=-1).round(6)
        array([1., 1.], dtype=float32)
    """
    x = _as_tensor(x)
    return dispatch(SoftmaxKernel, x, dim=_check_dim(x, dim, "softmax"))


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Log-softmax along ``dim``; more stable than ``log(softmax(x))`` (kernel op ``log_softmax``).

    Args:
        x: The logits, any shape.
        dim: The axis that is normalized.

    Examples:
        >>> from autograd import functional as F
        >>> F.log_softmax(Tensor([2.0, 1.0, 0.1])).numpy().round(3)
        array([-0.417, -1.417, -2.317], dtype=float32)
    """
    x = _as_tensor(x)
    return dispatch(LogSoftmaxKernel, x, dim=_check_dim(x, dim, "log_softmax"))


# --- core's forward and backward -------------------------------------------------------------------------------


class Relu(Function):
    r""":math:`ReLU(x) = \max(0, x)`; the gradient passes where :math:`x > 0`.

    Examples:
        >>> Relu.apply(Tensor([-3.0, 0.0, 3.0])).numpy()  # what autograd.functional.relu runs by default
        array([0., 0., 3.], dtype=float32)
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

    float16 and bfloat16 are computed in float32 and rounded once (as PyTorch's half kernels do; NumPy's
    half-precision loops are scalar, several times slower than float32). For them only x is kept and the
    backward recomputes the tanh (the same bits): a float32 copy per GELU would undo much of the memory
    saving of a half-precision policy.
    """

    @staticmethod
    def _tanh(x: Any) -> Any:
        return _lib.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))

    def forward(self, x: Any) -> Any:
        self.x = x
        xf = widen(x)
        t = self._tanh(xf)
        self.t = t if t.dtype == x.dtype else None
        return round_to(0.5 * xf * (1 + t), x.dtype)

    def backward(self, grad: Tensor) -> Any:
        x = widen(self.x)
        t = self.t if self.t is not None else self._tanh(x)
        d_alpha = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return round_to(widen(grad.data) * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_alpha), self.x.dtype)


def stable_sigmoid(x: Any) -> Any:
    r""":math:`1/(1 + e^{-x})` as ``1/(1 + e)`` or ``e/(1 + e)`` with :math:`e = e^{-|x|}`, which never overflows."""
    e = _lib.exp(-_lib.abs(x))
    return _lib.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    r""":math:`\sigma(x) = 1/(1 + e^{-x})`, computed without overflow; :math:`\sigma' = \sigma(1-\sigma)`.

    Half precision is computed in float32 and rounded; the backward works from the rounded output.
    """

    def forward(self, x: Any) -> Any:
        self.out = round_to(stable_sigmoid(widen(x)), x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        s = widen(self.out)
        return round_to(widen(grad.data) * s * (1 - s), self.out.dtype)


class Tanh(Function):
    r""":math:`\tanh(x)`, with :math:`d\tanh/dx = 1 - \tanh^2 x`; half precision computed in float32 and rounded."""

    def forward(self, x: Any) -> Any:
        self.out = round_to(_lib.tanh(widen(x)), x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        t = widen(self.out)
        return round_to(widen(grad.data) * (1 - t * t), self.out.dtype)


class Softmax(Function):
    r""":math:`softmax(x)_i = e^{x_i - \max x} / \sum_j e^{x_j - \max x}` along ``dim`` (default last).

    Backward: :math:`s \odot (g - \sum_j g_j s_j)`. float16 and bfloat16 inputs
    are computed in float32 (forward and backward) and the output is rounded
    to the input's dtype.
    """

    def forward(self, x: Any, dim: int = -1) -> Any:
        self.dim = dim
        if x.size == 0:  # nothing to normalise (and no maximum of an empty axis)
            self.out = x
            return x
        xf = widen(x)
        e = _lib.exp(xf - _lib.max(xf, axis=dim, keepdims=True))
        out = e / _lib.sum(e, axis=dim, keepdims=True)
        self.out = round_to(out, x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        if self.out.size == 0:
            return grad.data  # empty: nothing to compute (and MLX's kernels stall on some empty low-precision arrays)
        g, s = widen(grad.data), widen(self.out)
        dx = s * (g - _lib.sum(g * s, axis=self.dim, keepdims=True))
        return round_to(dx, self.out.dtype)


def log_softmax_array(x: Any, dim: int) -> Any:
    r""":math:`x - \max x - \log\sum e^{x - \max x}` along ``dim``, on a backend array (the losses use it too)."""
    shifted = x - _lib.max(x, axis=dim, keepdims=True)
    return shifted - _lib.log(_lib.sum(_lib.exp(shifted), axis=dim, keepdims=True))


class LogSoftmax(Function):
    r""":math:`\log \pi_i = x_i - \log \sum_j e^{x_j}` along ``dim``, with the max-shift.

    Backward: :math:`g - softmax(x) \sum_j g_j`. float16 and bfloat16 inputs are
    computed in float32 and the output is rounded to the input's dtype.
    """

    def forward(self, x: Any, *, dim: int = -1) -> Any:
        self.dim = dim
        if x.size == 0:  # nothing to normalise (and no maximum of an empty axis)
            self.out = x
            return x
        xf = widen(x)
        out = log_softmax_array(xf, dim)
        self.out = round_to(out, x.dtype)
        return self.out

    def backward(self, grad: Tensor) -> Any:
        if self.out.size == 0:
            return grad.data  # empty: nothing to compute (and MLX's kernels stall on some empty low-precision arrays)
        g, out = widen(grad.data), widen(self.out)
        dx = g - _lib.exp(out) * _lib.sum(g, axis=self.dim, keepdims=True)
        return round_to(dx, self.out.dtype)


# --- the contracts ---------------------------------------------------------------------------------------------


def _random_shapes(rng: np.random.Generator, count: int, rank: Tuple[int, int], high: int) -> List[Tuple[int, ...]]:
    return [
        tuple(int(s) for s in rng.integers(1, high, size=int(rng.integers(rank[0], rank[1] + 1)))) for _ in range(count)
    ]


class _Elementwise(Kernel):
    """An element-wise activation: ``apply(x) -> y``, ``y`` of ``x``'s shape and dtype; the backward gives ``dx``."""

    differentiable = ("x",)

    def apply(self, x: Any) -> Any:
        """``x`` (any shape) -> the activation of each element, same shape and dtype."""
        return self.call_function(x)

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        return inputs.shape("x"), inputs.dtype

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Exact zeros (ReLU's kink, GELU's fixed point), a single element, an empty input, random shapes."""
        out = []
        for shape in [(1,), (3, 7), (2, 5, 33), (0, 3)] + _random_shapes(rng, 2, (1, 3), 40):
            x = rng.standard_normal(shape) * 3
            x.reshape(-1)[:: max(1, x.size // 3)] = 0.0
            out.append(KernelCase(f"x{shape}", [x], {}, (True,)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """The MLP activation of a small GPT step: (1024, 512)."""
        return make_inputs(cls, dtype, {"x": (1024, 512)})


class ReluKernel(_Elementwise):
    """ReLU: ``max(x, 0)``; the gradient passes where ``x > 0`` (0 at the kink)."""

    op = "relu"

    @classmethod
    def reference(cls) -> Kernel:
        return ReluReference()


class SigmoidKernel(_Elementwise):
    """Sigmoid ``1 / (1 + exp(-x))``, computed without overflow for any ``x``."""

    op = "sigmoid"

    @classmethod
    def reference(cls) -> Kernel:
        return SigmoidReference()

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """The element-wise cases, plus inputs far out on both tails."""
        tails = KernelCase("x(4,) extremes", [np.array([-100.0, -30.0, 30.0, 100.0])], {}, (True,))
        return super().cases(rng) + [tails]


class TanhKernel(_Elementwise):
    """Hyperbolic tangent, element-wise."""

    op = "tanh"

    @classmethod
    def reference(cls) -> Kernel:
        return TanhReference()


class GeluKernel(_Elementwise):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, element-wise."""

    op = "gelu"

    @classmethod
    def reference(cls) -> Kernel:
        return GeluReference()


class _AlongAxis(Kernel):
    """Softmax-like ops along one axis: ``apply(x, *, dim) -> y`` with ``dim`` non-negative, ``y`` like ``x``."""

    differentiable = ("x",)

    def apply(self, x: Any, *, dim: int) -> Any:
        """``x`` (any shape), ``dim`` in ``0..x.ndim-1`` -> ``y`` of ``x``'s shape and dtype."""
        return self.call_function(x, dim=dim)

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        return inputs.shape("x"), inputs.dtype

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Single elements, first and middle axes, empty rows and axes, a large spread (60), random shapes."""
        n = rng.standard_normal
        out = []
        for shape, dim in [
            ((1, 1), 1),
            ((3, 7), 1),
            ((2, 5, 33), 2),
            ((2, 5, 33), 0),
            ((4, 3), 0),
            ((3, 0), 1),
            ((0, 4), 1),
        ]:
            out.append(KernelCase(f"x{shape} dim={dim}", [n(shape) * 4], {"dim": dim}, (True,)))
        out.append(KernelCase("x(3, 6) dim=1 large", [n((3, 6)) * 60], {"dim": 1}, (True,)))
        for shape in _random_shapes(rng, 2, (2, 3), 30):
            out.append(KernelCase(f"x{shape} dim=last", [n(shape)], {"dim": len(shape) - 1}, (True,)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """Attention-sized rows: (1024, 128) along the last axis."""
        return make_inputs(cls, dtype, {"x": (1024, 128)}, {"dim": 1})


class SoftmaxKernel(_AlongAxis):
    """Softmax along ``dim``. Backward: ``dx = y * (g - sum(g * y, dim))``."""

    op = "softmax"

    @classmethod
    def reference(cls) -> Kernel:
        return SoftmaxReference()


class LogSoftmaxKernel(_AlongAxis):
    """Log-softmax along ``dim``. Backward: ``dx = g - exp(y) * sum(g, dim)``."""

    op = "log_softmax"

    @classmethod
    def reference(cls) -> Kernel:
        return LogSoftmaxReference()


# --- core's reference implementations -----------------------------------------------------------------------------


class ReluReference(CoreReference, ReluKernel):
    """:class:`Relu`."""

    function = Relu


class SigmoidReference(CoreReference, SigmoidKernel):
    """:class:`Sigmoid`."""

    function = Sigmoid


class TanhReference(CoreReference, TanhKernel):
    """:class:`Tanh`."""

    function = Tanh


class GeluReference(CoreReference, GeluKernel):
    """:class:`Gelu`."""

    function = Gelu


class SoftmaxReference(CoreReference, SoftmaxKernel):
    """:class:`Softmax`."""

    function = Softmax


class LogSoftmaxReference(CoreReference, LogSoftmaxKernel):
    """:class:`LogSoftmax`."""

    function = LogSoftmax
