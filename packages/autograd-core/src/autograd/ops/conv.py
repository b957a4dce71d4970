"""2-D convolution: the public function, core's reference, and the contract a plugin implements.

Shapes: ``x`` (N, C, H, W), ``weight`` (O, C / groups, kh, kw), ``bias`` (O,)
or None; the output is (N, O, Ho, Wo) with
``Ho = (H + top + bottom - dh (kh - 1) - 1) // sh + 1`` (and the same for
the width). It is a cross-correlation, as in PyTorch. Under
:class:`~autograd.precision.autocast` it runs in the policy's low dtype.

Core's reference builds no Function of its own: padding, a strided view of
the windows (im2col), and one matrix product per group, so its gradients
come from those ops.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple, Union

import numpy as np

from autograd.engine import ShapeError
from autograd.kernels.contract import CoreReference, Kernel, KernelCase, KernelInputs, make_inputs
from autograd.kernels.registry import dispatch
from autograd.ops.shape import pair
from autograd.precision import to_low
from autograd.tensor import Tensor

__all__ = ["conv2d", "conv2d_padding", "same_padding", "Conv2dKernel", "conv2d_reference"]

Padding = Union[int, str, Tuple[int, int], Tuple[int, int, int, int]]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TensorFlow's "same" padding of one axis: ``ceil(size / stride)`` outputs, the odd pixel after.

    For stride 1 and an odd kernel this is PyTorch's ``padding="same"``.
    """
    span = dilation * (kernel - 1) + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def conv2d_padding(
    padding: Padding, hw: Tuple[int, int], kernel: Tuple[int, int], stride: Tuple[int, int], dilation: Tuple[int, int]
) -> Tuple[int, int, int, int]:
    """``padding`` as (top, bottom, left, right).

    Accepts an int (every side), a (height, width) pair (both sides of each
    axis), a (top, bottom, left, right) tuple, ``"valid"`` (none) or
    ``"same"`` (``ceil(size / stride)`` outputs; see :func:`same_padding`).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            return same_padding(hw[0], kernel[0], stride[0], dilation[0]) + same_padding(
                hw[1], kernel[1], stride[1], dilation[1]
            )
        raise ValueError(f"padding must be an int, a pair, 4 ints, 'valid' or 'same', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        out = tuple(int(p) for p in padding)
    else:
        ph, pw = pair(padding, "padding", "conv2d", minimum=0)
        out = (ph, ph, pw, pw)
    if min(out) < 0:
        raise ValueError(f"padding {padding!r} must not be negative")
    return out  # type: ignore[return-value]


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: Union[int, Tuple[int, int]] = 1,
    padding: Padding = 0,
    dilation: Union[int, Tuple[int, int]] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of ``x`` (N, C, H, W) with ``weight`` (O, C / groups, kh, kw), plus ``bias`` (O,).

    Args:
        x: (N, C, H, W).
        weight: (O, C / groups, kh, kw), the filters.
        bias: (O,), or None.
        stride: An int or a (height, width) pair.
        padding: Zeros around the input: an int, a (height, width) pair, a
            (top, bottom, left, right) tuple, ``"valid"`` or ``"same"``.
        dilation: Spacing between kernel elements (int or pair).
        groups: ``C`` and ``O`` are split into this many groups, each
            convolved with its own filters (``groups == C``: depthwise).

    Returns:
        (N, O, Ho, Wo), ``Ho = (H + top + bottom - dh (kh - 1) - 1) // sh + 1``.

    Runs the best registered ``conv2d`` kernel (:mod:`autograd.kernels`).

    Examples:
        >>> from autograd import functional as F
        >>> x = Tensor(xp.arange(16, dtype="float32").reshape(1, 1, 4, 4))
        >>> F.conv2d(x, Tensor(xp.ones((1, 1, 2, 2), dtype="float32")), stride=2).numpy()  # sums of 2x2 blocks
        array([[[[10., 18.],
                 [42., 50.]]]], dtype=float32)
        >>> F.conv2d(Tensor(xp.ones((1, 4, 7, 7))), Tensor(xp.ones((4, 1, 3, 3))), groups=4, dilation=2).shape
        (1, 4, 3, 3)
    """
    if not isinstance(x, Tensor):
        x = Tensor(x, requires_grad=False)
    if x.ndim != 4 or weight.ndim != 4:
        raise ShapeError(
            f"conv2d: x must be (N, C, H, W) and weight (O, C/groups, kh, kw); got {x.shape} and {weight.shape}"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c % groups or o % groups or cg != c // groups:
        raise ShapeError(
            f"conv2d: weight {weight.shape} does not fit x {x.shape} with groups={groups} (need C and O divisible by "
            f"groups and weight of shape (O, C/groups, kh, kw) = ({o}, {c // groups if c % groups == 0 else '?'}, "
            f"{kh}, {kw}))"
        )
    if bias is not None and tuple(bias.shape) != (o,):
        raise ShapeError(f"conv2d: bias of shape {bias.shape} does not fit {o} output channels")
    s, d = pair(stride, "stride", "conv2d"), pair(dilation, "dilation", "conv2d")
    pad = conv2d_padding(padding, (h, w), (kh, kw), s, d)
    span_h, span_w = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    if h + pad[0] + pad[1] < span_h or w + pad[2] + pad[3] < span_w:
        raise ShapeError(
            f"conv2d: the padded input ({h + pad[0] + pad[1]} x {w + pad[2] + pad[3]}) is smaller than the kernel's "
            f"span ({span_h} x {span_w}: kernel {(kh, kw)}, dilation {d})"
        )
    x, weight, bias = to_low(x, weight, bias)  # under autocast: convolutions run in the policy's low dtype
    return dispatch(Conv2dKernel, x, weight, bias, stride=s, padding=pad, dilation=d, groups=groups)


def conv2d_reference(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    *,
    stride: Tuple[int, int],
    padding: Tuple[int, int, int, int],
    dilation: Tuple[int, int],
    groups: int,
) -> Tensor:
    """Zero padding, the windows as a strided view (im2col), one (batched over groups) matrix product, the bias."""
    top, bottom, left, right = padding
    if top or bottom or left or right:
        x = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=0)
    o, cg, kh, kw = weight.shape
    windows = x.strided_windows(kernel_size=(kh, kw), stride=stride, dilation=dilation)  # (Ho, Wo, N, C, kh, kw)
    ho, wo, n, c = windows.shape[:4]
    rows = ho * wo * n
    if groups == 1:
        out = windows.reshape(rows, c * kh * kw) @ weight.reshape(o, -1).T  # (Ho*Wo*N, O)
    else:
        k = cg * kh * kw
        cols = windows.reshape(rows, groups, k).permute(1, 0, 2)  # (G, rows, K)
        out = cols @ weight.reshape(groups, o // groups, k).transpose(1, 2)  # (G, rows, O/G)
        out = out.permute(1, 0, 2).reshape(rows, o)
    out = out.reshape(ho, wo, n, o).permute(2, 3, 0, 1)
    if bias is not None:
        out = out + bias.reshape(1, o, 1, 1)
    return out


class Conv2dKernel(Kernel):
    """The ``conv2d`` op: ``apply(x, weight, bias, *, stride, padding, dilation, groups) -> y``.

    ``x`` (N, C, H, W); ``weight`` (O, C / groups, kh, kw); ``bias`` (O,) or
    ``None`` (then :class:`~autograd.kernels.KernelInputs` reports it absent);
    ``stride`` and ``dilation`` (height, width) pairs; ``padding`` zeros as
    (top, bottom, left, right); ``groups`` an int dividing C and O. ``y`` is
    (N, O, Ho, Wo) with ``Ho = (H + top + bottom - dh (kh - 1) - 1) // sh + 1``,
    in ``x``'s dtype. The backward gives ``(dx, dweight, dbias)``, each like
    its input (no ``dbias`` without a bias).
    """

    op = "conv2d"
    differentiable = ("x", "weight", "bias")

    def apply(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Optional[Tensor],
        *,
        stride: Tuple[int, int],
        padding: Tuple[int, int, int, int],
        dilation: Tuple[int, int],
        groups: int,
    ) -> Tensor:
        """(N, C, H, W), (O, C/groups, kh, kw), (O,) or None -> (N, O, Ho, Wo)."""
        tensors = (x, weight) if bias is None else (x, weight, bias)
        return self.call_function(*tensors, stride=stride, padding=padding, dilation=dilation, groups=groups)

    @classmethod
    def reference(cls) -> Kernel:
        return Conv2dReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        n, _, h, w = inputs.shape("x")
        o, _, kh, kw = inputs.shape("weight")
        (sh, sw), (dh, dw) = inputs.param("stride"), inputs.param("dilation")
        top, bottom, left, right = inputs.param("padding")
        ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
        wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
        return (n, o, ho, wo), inputs.dtype_of("x")

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Kernel sizes 1 to 5, rectangular kernels, strides, uneven padding, dilation, groups, no bias."""
        n = rng.standard_normal
        out = []
        for nb, c, h, w, o, k, s, pad, dil, g, bias in [
            (2, 3, 7, 7, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
            (1, 2, 8, 6, 3, (3, 3), (2, 2), (0, 1, 0, 1), (1, 1), 1, False),
            (2, 1, 5, 5, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
            (1, 4, 9, 9, 8, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 1, True),
            (3, 2, 6, 6, 2, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, True),
            (1, 1, 3, 3, 1, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
            (1, 2, 7, 8, 3, (2, 3), (1, 2), (1, 0, 2, 1), (1, 1), 1, True),
            (2, 3, 9, 9, 2, (3, 3), (1, 1), (0, 0, 0, 0), (2, 2), 1, True),
            (1, 4, 6, 6, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True),
            (2, 4, 7, 7, 6, (3, 2), (2, 1), (1, 1, 0, 0), (1, 2), 2, False),
            (0, 2, 5, 5, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),  # an empty batch
        ]:
            label = f"x{(nb, c, h, w)} w{(o, c // g) + k} stride={s} padding={pad} dilation={dil} groups={g}"
            label += f" bias={bias}"
            arrays = [n((nb, c, h, w)), n((o, c // g) + k), n(o) if bias else None]
            params = {"stride": s, "padding": pad, "dilation": dil, "groups": g}
            out.append(KernelCase(label, arrays, params, (True, True, bias)))
        return out

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A small CNN's 3x3 layer: (32, 16, 28, 28) with 32 filters, padding 1."""
        shapes = {"x": (32, 16, 28, 28), "weight": (32, 16, 3, 3), "bias": (32,)}
        params = {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1}
        return make_inputs(cls, dtype, shapes, params)


class Conv2dReference(CoreReference, Conv2dKernel):
    """:func:`conv2d_reference`: padding, strided windows and one matrix product per group."""

    def apply(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Optional[Tensor],
        *,
        stride: Tuple[int, int],
        padding: Tuple[int, int, int, int],
        dilation: Tuple[int, int],
        groups: int,
    ) -> Tensor:
        return conv2d_reference(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
