"""Convolution and pooling layers, computed by the ``conv2d`` and ``max_pool2d`` kernel ops."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.functional import relu
from autograd.init import xavier_uniform
from autograd.nn._checks import as_input, check
from autograd.nn.module import Module
from autograd.ops.conv import conv2d, same_padding
from autograd.ops.pool import MaxPool2dFunction, max_pool2d
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

    Shapes: weight (out_channels, in_channels, k, k), bias (out_channels,);
    input (N, in_channels, H, W) -> output (N, out_channels, H_out, W_out).
    ``"valid"``: ``H_out = (H - k) // stride + 1``; ``"same"``: ``H_out = ceil(H / stride)``.
    Runs :func:`autograd.functional.conv2d` (the ``conv2d`` kernel op; core's
    reference computes windows (im2col) times the flattened kernel: one matmul).

    Examples:
        >>> Conv2d(3, 8, kernel_size=3, padding_mode="same")(Tensor(xp.random.randn(2, 3, 32, 32))).shape
        (2, 8, 32, 32)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding_mode: str = "valid",
        bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if kernel_size < 1 or stride < 1:
            raise ValueError(f"Conv2d: kernel_size {kernel_size} and stride {stride} must be >= 1")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding_mode = int(kernel_size), int(stride), padding_mode
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = xavier_uniform(Tensor(backend.asarray(np.zeros(shape, np.float32))))
        self.bias = Tensor(backend.asarray(np.zeros(out_channels, np.float32))) if bias else None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""
        x = as_input(x)
        check(x.ndim == 4 and x.shape[1] == self.in_channels, self, f"(N, {self.in_channels}, H, W)", x)
        k = self.kernel_size
        if self.padding_mode == "valid" and (x.shape[2] < k or x.shape[3] < k):
            check(False, self, f"at least {k} x {k} pixels for kernel_size {k}", x)
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding_mode)


class MaxPool2d(Module):
    """2-D max pooling; ``stride`` defaults to ``kernel_size``. Ties share the gradient equally.

    Shapes: (N, C, H, W) -> (N, C, H_out, W_out), with the same output sizes as
    :class:`Conv2d`; ``"same"`` pads with -inf so padding never wins.

    Examples:
        >>> MaxPool2d(kernel_size=2, stride=2)(Tensor(xp.random.randn(1, 3, 32, 32))).shape
        (1, 3, 16, 16)
    """

    def __init__(self, kernel_size: int, stride: Optional[int] = None, padding_mode: str = "valid", **kwargs: Any):
        super().__init__()
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"MaxPool2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding_mode = padding_mode

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        x = as_input(x)
        check(x.ndim == 4, self, "(N, C, H, W)", x)
        k = self.kernel_size
        if self.padding_mode == "valid" and (x.shape[2] < k or x.shape[3] < k):
            check(False, self, f"at least {k} x {k} pixels", x)
        return max_pool2d(x, k, self.stride, padding=self.padding_mode)


class ResidualBlock(Module):
    r"""Residual block :math:`H(x) = \mathrm{relu}(F(x) + S(x))`.

    ``F`` is conv3x3(stride) -> relu -> conv3x3 (both ``"same"``); the shortcut
    ``S`` is the identity, or a 1x1 convolution with the block's stride when
    the channel count or the stride changes. Shapes: (N, in_channels, H, W) ->
    (N, out_channels, ceil(H / stride), ceil(W / stride)).

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
