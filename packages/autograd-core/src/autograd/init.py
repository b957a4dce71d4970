"""Weight initialization methods for neural network parameters."""

from __future__ import annotations

import math
from typing import Any

from autograd import backend
from autograd.tensor import Tensor

__all__ = ["xavier_uniform", "compute_in_out_tensor_count"]


def compute_in_out_tensor_count(tensor: Any) -> tuple[int, int]:
    r"""The (input, output) counts Xavier initialization uses for ``tensor``.

    With :math:`r = \prod_{i \ge 2} \text{shape}[i]` (1 for a matrix):
    input count :math:`= \text{shape}[0] \cdot r` and output count
    :math:`= \text{shape}[1] \cdot r`. For a matrix (input_size, output_size) this
    is (input_size, output_size); for a convolution kernel
    (out_channels, in_channels, kh, kw) it is (out_channels * kh * kw,
    in_channels * kh * kw). (The reference's formula writes ``shape[-1]`` for
    the second factor; it agrees with ``shape[1]`` for matrices and for its
    square-kernel example, and ``shape[1]`` is the input-channel count the text
    describes, so that is what is used.)

    Args:
        tensor: A Tensor or a backend array with at least 2 dimensions.

    Raises:
        ValueError: if it has fewer than 2 dimensions.

    Examples:
        >>> compute_in_out_tensor_count(Tensor(xp.empty((5, 10))).data)
        (5, 10)
        >>> compute_in_out_tensor_count(Tensor(xp.empty((16, 3, 3, 3))).data)
        (144, 27)
    """
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(f"compute_in_out_tensor_count needs a tensor with at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[0] * receptive, shape[1] * receptive


def xavier_uniform(tensor: Tensor) -> Tensor:
    r"""Fill ``tensor`` in place from :math:`U(-l, l)`, :math:`l = \sqrt{6 / (n_{in} + n_{out})}`.

    The tensor keeps its dtype and identity (the same object is returned). The
    numbers come from the backend's seeded generator: ``autograd.backend.seed``
    makes them reproducible.

    Examples:
        >>> tensor = xavier_uniform(Tensor(xp.empty((3, 4))))
    """
    fan_in, fan_out = compute_in_out_tensor_count(tensor)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    dtype = tensor.dtype if backend.is_floating(tensor.dtype) else "float32"
    tensor.data = backend.uniform(-limit, limit, tensor.shape, dtype)
    return tensor
