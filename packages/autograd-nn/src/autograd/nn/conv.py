"""Convolution and pooling layers, computed by the ``conv2d`` and ``max_pool2d`` kernel ops."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.functional import relu
from autograd.init import xavier_uniform
from autograd.nn._checks import as_input, check, options
from autograd.nn.module import Module
from autograd.ops.conv import conv2d, conv2d_padding, same_padding
from autograd.ops.pool import MaxPool2dFunction, max_pool2d
from autograd.ops.shape import pair
from autograd.tensor import Tensor

__all__ = ["Conv2d", "MaxPool2d", "MaxPool2dFunction", "ResidualBlock", "extract_windows"]

_PADDING_MODES = ("valid", "same")


def extract_windows(
    x: Union[Tensor, Any, Sequence[Any], int, float, bool],
    kernel_size: int,
    stride: int,
    padding_mode: str = "valid",
    pad_value: float = 0.0,
) -> Tuple[Tensor, Tuple[int, int]]:
    """Sliding windows of an (N, C, H, W) input, keeping the graph.

    Returns ``(windows, (H_out, W_out))`` with windows of shape
    (H_out, W_out, N, C, kernel_size, kernel_size). ``"same"`` pads (with
    ``pad_value``) so that ``H_out = ceil(H / stride)``; ``"valid"`` does not pad.
    """
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    x = as_input(x)
    if x.ndim != 4:
        raise ValueError(f"extract_windows: expected (N, C, H, W), got shape {x.shape}")
    if padding_mode == "same":
        top, bottom = same_padding(x.shape[2], kernel_size, stride)
        left, right = same_padding(x.shape[3], kernel_size, stride)
        if top or bottom or left or right:
            x = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    windows = x.strided_windows(kernel_size=kernel_size, stride=stride)
    return windows, (windows.shape[0], windows.shape[1])


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch).

    Shapes: weight (out_channels, in_channels / groups, kh, kw), bias
    (out_channels,); input (N, in_channels, H, W) -> output (N, out_channels,
    H_out, W_out). ``"valid"``: ``H_out = (H - dh (kh - 1) - 1) // stride + 1``;
    ``"same"``: ``H_out = ceil(H / stride)``. Runs
    :func:`autograd.functional.conv2d` (the ``conv2d`` kernel op; core's
    reference computes windows (im2col) times the flattened kernel: one matmul
    per group).

    Args:
        in_channels, out_channels: Channel counts.
        kernel_size: An int, or a (height, width) pair.
        stride: An int, or a (height, width) pair.
        padding_mode: ``"valid"`` (no padding) or ``"same"``.
        bias: Whether to add a learned bias.
        **kwargs: PyTorch's names for the rest: ``padding`` (zeros: an int, a
            (height, width) pair or (top, bottom, left, right); replaces
            ``padding_mode``), ``dilation`` (an int or a pair) and ``groups``
            (an int dividing both channel counts; ``groups=in_channels`` is a
            depthwise convolution). Any other keyword raises ``TypeError``
            naming it.

    Examples:
        >>> Conv2d(3, 8, kernel_size=3, padding_mode="same")(Tensor(xp.random.randn(2, 3, 32, 32))).shape
        (2, 8, 32, 32)
        >>> Conv2d(4, 4, 3, dilation=2, groups=4)(Tensor(xp.random.randn(1, 4, 9, 9))).shape
        (1, 4, 5, 5)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Tuple[int, int]],
        stride: Union[int, Tuple[int, int]] = 1,
        padding_mode: str = "valid",
        bias: bool = True,
        **kwargs: Any,
    ) -> None:
        opts = options("Conv2d", kwargs, padding=None, dilation=1, groups=1)
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if opts["padding"] is not None and padding_mode != "valid":
            raise ValueError(f"Conv2d: give padding={opts['padding']!r} or padding_mode={padding_mode!r}, not both")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        kh, kw = pair(kernel_size, "kernel_size", "Conv2d")
        self.kernel_size = kh if kh == kw else (kh, kw)
        self.stride = pair(stride, "stride", "Conv2d")
        self.dilation = pair(opts["dilation"], "dilation", "Conv2d")
        groups = opts["groups"]
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"Conv2d: groups must be a positive int, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels ({in_channels}) and out_channels ({out_channels})"
            )
        self.groups = groups
        self.padding = opts["padding"]
        self.padding_mode = padding_mode if self.padding is None else "explicit"
        if self.padding is not None:
            conv2d_padding(self.padding, (1, 1), (kh, kw), self.stride, self.dilation)  # refuses a bad value now
        if self.stride[0] == self.stride[1]:
            self.stride = self.stride[0]  # the spec's int, where it is one
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = xavier_uniform(Tensor(backend.asarray(np.zeros(shape, np.float32))))
        self.bias = Tensor(backend.asarray(np.zeros(out_channels, np.float32))) if bias else None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""
        x = as_input(x)
        check(x.ndim == 4 and x.shape[1] == self.in_channels, self, f"(N, {self.in_channels}, H, W)", x)
        padding = self.padding if self.padding is not None else self.padding_mode
        kh, kw = self.weight.shape[2:]
        (dh, dw), (sh, sw) = self.dilation, pair(self.stride, "stride", "Conv2d")
        top, bottom, left, right = conv2d_padding(padding, x.shape[2:], (kh, kw), (sh, sw), (dh, dw))
        span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        if x.shape[2] + top + bottom < span[0] or x.shape[3] + left + right < span[1]:
            check(False, self, f"at least {span[0]} x {span[1]} pixels after padding (the kernel's span)", x)
        return conv2d(
            x, self.weight, self.bias, stride=(sh, sw), padding=padding, dilation=self.dilation, groups=self.groups
        )


class MaxPool2d(Module):
    """2-D max pooling; ``stride`` defaults to ``kernel_size``. Ties share the gradient equally.

    Shapes: (N, C, H, W) -> (N, C, H_out, W_out), with the same output sizes as
    :class:`Conv2d`; padding is -inf, so it never wins.

    Args:
        kernel_size: An int, or a (height, width) pair.
        stride: Defaults to ``kernel_size``.
        padding_mode: ``"valid"`` or ``"same"``.
        **kwargs: ``padding`` (PyTorch's name: an int, a (height, width) pair
            or (top, bottom, left, right), each smaller than the kernel;
            replaces ``padding_mode``). Any other keyword raises ``TypeError``
            naming it.

    Examples:
        >>> MaxPool2d(kernel_size=2, stride=2)(Tensor(xp.random.randn(1, 3, 32, 32))).shape
        (1, 3, 16, 16)
        >>> MaxPool2d(3, stride=2, padding=1)(Tensor(xp.random.randn(1, 3, 8, 8))).shape
        (1, 3, 4, 4)
    """

    def __init__(
        self,
        kernel_size: Union[int, Tuple[int, int]],
        stride: Optional[Union[int, Tuple[int, int]]] = None,
        padding_mode: str = "valid",
        **kwargs: Any,
    ):
        opts = options("MaxPool2d", kwargs, padding=None)
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"MaxPool2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if opts["padding"] is not None and padding_mode != "valid":
            raise ValueError(f"MaxPool2d: give padding={opts['padding']!r} or padding_mode={padding_mode!r}, not both")
        kh, kw = pair(kernel_size, "kernel_size", "MaxPool2d")
        self.kernel_size = kh if kh == kw else (kh, kw)
        self.stride = self.kernel_size if stride is None else stride
        pair(self.stride, "stride", "MaxPool2d")
        self.padding = opts["padding"]
        self.padding_mode = padding_mode if self.padding is None else "explicit"

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        x = as_input(x)
        check(x.ndim == 4, self, "(N, C, H, W)", x)
        padding = self.padding if self.padding is not None else self.padding_mode
        kh, kw = pair(self.kernel_size, "kernel_size", "MaxPool2d")
        if padding == "valid" and (x.shape[2] < kh or x.shape[3] < kw):
            check(False, self, f"at least {kh} x {kw} pixels", x)
        return max_pool2d(x, self.kernel_size, self.stride, padding=padding)


class ResidualBlock(Module):
    r"""Residual block :math:`H(x) = \mathrm{relu}(F(x) + S(x))`.

    ``F`` is conv3x3(stride) -> relu -> conv3x3 (both ``"same"``); the shortcut
    ``S`` is the identity, or a 1x1 convolution with the block's stride when
    the channel count or the stride changes. Shapes: (N, in_channels, H, W) ->
    (N, out_channels, ceil(H / stride), ceil(W / stride)).

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: Stride of the first convolution (and of the shortcut).

    Examples:
        >>> ResidualBlock(16, 16)(Tensor(xp.random.randn(1, 16, 32, 32))).shape
        (1, 16, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding_mode="same")
        self.conv2 = Conv2d(out_channels, out_channels, 3, stride=1, padding_mode="same")
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, 1, stride=stride, padding_mode="same")
        else:
            self.shortcut = None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H', W')."""
        x = as_input(x)
        identity = self.shortcut(x) if self.shortcut is not None else x
        return relu(self.conv2(relu(self.conv1(x))) + identity)
