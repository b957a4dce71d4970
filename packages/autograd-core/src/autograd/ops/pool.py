"""2-D max pooling: the public function, core's forward and backward, and the contract a plugin implements.

Shapes: ``x`` (N, C, H, W) -> (N, C, Ho, Wo) with
``Ho = (H + top + bottom - kh) // sh + 1``. Padding is ``-inf``, so it never
wins a window; each side's padding must be smaller than the kernel along
that axis, so every window holds at least one input pixel. The gradient of a
window goes to its maxima, split equally among ties, and adds up where
windows overlap.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.engine import Function, ShapeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch
from autograd.ops.conv import Padding, conv2d_padding
from autograd.ops.shape import pair
from autograd.tensor import Tensor

__all__ = ["max_pool2d", "MaxPool2dFunction", "MaxPool2dKernel"]


def max_pool2d(
    x: Tensor,
    kernel_size: Union[int, Tuple[int, int]],
    stride: Optional[Union[int, Tuple[int, int]]] = None,
    padding: Padding = 0,
) -> Tensor:
    """The maximum of each ``kernel_size`` window of ``x`` (N, C, H, W), moved by ``stride``.

    Args:
        x: (N, C, H, W).
        kernel_size: An int or a (height, width) pair.
        stride: Defaults to ``kernel_size`` (windows side by side).
        padding: ``-inf`` around the input: an int, a (height, width) pair, a
            (top, bottom, left, right) tuple, ``"valid"`` or ``"same"``
            (``ceil(size / stride)`` outputs). Each side must be smaller than
            the kernel along its axis.

    Returns:
        (N, C, Ho, Wo), ``Ho = (H + top + bottom - kh) // sh + 1``.

    Runs the best registered ``max_pool2d`` kernel (:mod:`autograd.kernels`),
    :class:`MaxPool2dFunction` by default.

    Examples:
        >>> from autograd import functional as F
        >>> x = Tensor(xp.arange(16, dtype="float32").reshape(1, 1, 4, 4))
        >>> F.max_pool2d(x, 2).numpy()
        array([[[[ 5.,  7.],
                 [13., 15.]]]], dtype=float32)
        >>> F.max_pool2d(Tensor(xp.random.randn(1, 3, 32, 32)), 3, stride=2, padding=1).shape
        (1, 3, 16, 16)
    """
    if not isinstance(x, Tensor):
        x = Tensor(x, requires_grad=False)
    if x.ndim != 4:
        raise ShapeError(f"max_pool2d: expected (N, C, H, W), got shape {x.shape}")
    k = pair(kernel_size, "kernel_size", "max_pool2d")
    s = k if stride is None else pair(stride, "stride", "max_pool2d")
    pad = conv2d_padding(padding, x.shape[2:], k, s, (1, 1))
    if max(pad[:2]) >= k[0] or max(pad[2:]) >= k[1]:
        raise ValueError(f"max_pool2d: padding {pad} must be smaller than the kernel {k} on each side")
    if x.shape[2] + pad[0] + pad[1] < k[0] or x.shape[3] + pad[2] + pad[3] < k[1]:
        raise ShapeError(f"max_pool2d: the input {x.shape} (padded by {pad}) is smaller than the kernel {k}")
    return dispatch(MaxPool2dKernel, x, kernel_size=k, stride=s, padding=pad)


class MaxPool2dFunction(Function):
    """Max over kh x kw windows of an (N, C, H, W) array, as kh*kw element-wise maxima of strided slices.

    Backward: each window's gradient goes to its maxima, split equally among ties.
    """

    def forward(
        self,
        x: Any,
        kernel_size: Tuple[int, int],
        stride: Tuple[int, int],
        padding: Tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> Any:
        (kh, kw), (sh, sw) = pair(kernel_size, "kernel_size", "max_pool2d"), pair(stride, "stride", "max_pool2d")
        top, bottom, left, right = padding
        self.shape, self.padding = x.shape, padding
        if top or bottom or left or right:
            x = _lib.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
        ho, wo = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
        # One strided slice per kernel offset (i, j): the (N, C, Ho, Wo) grid of pixels it covers.
        self.slices = [
            (slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
            for i in range(kh)
            for j in range(kw)
        ]
        out = None
        for region in self.slices:
            out = x[region] if out is None else _lib.maximum(out, x[region])
        self.x, self.out = x, out
        return out

    def backward(self, grad: Tensor) -> Any:
        hits = [self.x[region] == self.out for region in self.slices]
        count = sum(h.astype(grad.data.dtype) for h in hits)
        share = grad.data / count
        gx = _lib.zeros(self.x.shape, dtype=grad.data.dtype)
        for hit, region in zip(hits, self.slices):
            gx = backend.add_at(gx, region, _lib.where(hit, share, 0))
        top, bottom, left, right = self.padding
        if top or bottom or left or right:
            gx = gx[:, :, top : top + self.shape[2], left : left + self.shape[3]]
        return gx


class MaxPool2dKernel(Kernel):
    """The ``max_pool2d`` op: ``apply(x, *, kernel_size, stride, padding) -> y``.

    ``x`` (N, C, H, W); ``kernel_size`` and ``stride`` (height, width) pairs;
    ``padding`` (top, bottom, left, right) of ``-inf``, each smaller than the
    kernel along its axis. ``y`` (N, C, (H + top + bottom - kh) // sh + 1,
    ...) in ``x``'s dtype. The backward sends each window's gradient to its
    maxima, split equally among ties, and adds up where windows overlap.
    """

    op = "max_pool2d"
    differentiable = ("x",)

    def apply(
        self, x: Tensor, *, kernel_size: Tuple[int, int], stride: Tuple[int, int], padding: Tuple[int, int, int, int]
    ) -> Tensor:
        """(N, C, H, W) -> (N, C, Ho, Wo)."""
        return self.call_function(x, kernel_size=kernel_size, stride=stride, padding=padding)

    @classmethod
    def reference(cls) -> Kernel:
        return MaxPool2dReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        n, c, h, w = inputs.shape("x")
        (kh, kw), (sh, sw) = inputs.param("kernel_size"), inputs.param("stride")
        top, bottom, left, right = inputs.param("padding")
        return (n, c, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1), inputs.dtype

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Ties (coarse values, a window of equal zeros), overlapping windows, rectangular kernels, padding."""
        out = []
        for nb, c, h, w, k, s, pad in [
            (2, 3, 8, 8, (2, 2), (2, 2), (0, 0, 0, 0)),
            (1, 2, 7, 7, (3, 3), (2, 2), (0, 0, 0, 0)),
            (2, 2, 6, 6, (3, 3), (3, 3), (0, 0, 0, 0)),
            (1, 1, 5, 5, (2, 2), (1, 1), (0, 0, 0, 0)),
            (1, 2, 7, 6, (3, 2), (2, 1), (1, 1, 0, 1)),
            (2, 1, 5, 5, (2, 2), (2, 2), (0, 1, 0, 1)),
            (0, 2, 4, 4, (2, 2), (2, 2), (0, 0, 0, 0)),  # an empty batch
        ]:
            x = np.round(rng.standard_normal((nb, c, h, w)) * 2) / 2  # coarse values: ties inside windows
            x[:1, :1, :3, :3] = 0.0  # a window of equal values, as after a ReLU
            label = f"x{(nb, c, h, w)} k={k} stride={s} padding={pad}"
            out.append(KernelCase(label, [x], {"kernel_size": k, "stride": s, "padding": pad}, (True,)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A small CNN's pooling: 2x2 windows over (32, 16, 28, 28)."""
        params = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)}
        return make_inputs(cls, dtype, {"x": (32, 16, 28, 28)}, params)


class MaxPool2dReference(CoreReference, MaxPool2dKernel):
    """:class:`MaxPool2dFunction`."""

    function = MaxPool2dFunction
