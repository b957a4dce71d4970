"""LayerNorm (the ``layer_norm`` kernel op) and BatchNorm (composed of Tensor ops)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.nn._checks import as_input, check, options
from autograd.nn.module import Module
from autograd.ops.norm import LayerNormFunction, layer_norm
from autograd.tensor import Tensor, no_grad

__all__ = ["LayerNorm", "BatchNorm", "LayerNormFunction"]


class LayerNorm(Module):
    """Normalize each example over its last axis, then scale and shift (learned).

    Runs :func:`autograd.functional.layer_norm` (the ``layer_norm`` kernel op;
    core's reference is :class:`LayerNormFunction`).

    Shapes: weight and bias (input_size,); input (..., input_size) -> same shape.

    Args:
        input_size: Length of the last axis, which is normalized.
        epsilon: Added to the variance.
        **kwargs: Any keyword raises ``TypeError`` naming it (PyTorch's ``eps`` is ``epsilon`` here).

    Examples:
        >>> LayerNorm(10)(Tensor(xp.random.randn(4, 10))).shape
        (4, 10)
    """

    def __init__(self, input_size: int, epsilon: float = 1e-05, **kwargs: Any) -> None:
        options("LayerNorm", kwargs)
        super().__init__()
        self.input_size, self.epsilon = int(input_size), float(epsilon)
        self.weight = Tensor(backend.asarray(np.ones(input_size, np.float32)))
        self.bias = Tensor(backend.asarray(np.zeros(input_size, np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        """(..., input_size) -> (..., input_size)."""
        x = as_input(x)
        check(x.ndim >= 1 and x.shape[-1] == self.input_size, self, f"(..., {self.input_size})", x)
        return layer_norm(x, self.weight, self.bias, eps=self.epsilon)


class BatchNorm(Module):
    """Batch normalization over every axis but the channel axis 1.

    Shapes: input ``(N, C)`` or ``(N, C, *spatial)`` with ``C == input_size``; weight,
    bias and the states ``running_mean``/``running_var`` are (input_size,).
    Training uses the batch statistics and updates
    ``running = (1 - momentum) * running + momentum * batch`` (the running
    variance takes the unbiased batch variance, as in PyTorch); evaluation
    uses the running statistics. The forward is made of Tensor ops, so the
    backward comes from them.

    Args:
        input_size: Number of channels ``C``.
        momentum: Weight of the batch statistics in the running ones.
        epsilon: Added to the variance.
        **kwargs: Any keyword raises ``TypeError`` naming it.

    Examples:
        >>> bn = BatchNorm(10)
        >>> bn(Tensor(xp.random.randn(4, 10))).shape
        (4, 10)
        >>> bn.eval()  # now the running statistics normalize
        >>> bn(Tensor(xp.random.randn(4, 10, 5, 5))).shape
        (4, 10, 5, 5)
    """

    def __init__(self, input_size: int, momentum: float = 0.1, epsilon: float = 1e-05, **kwargs: Any) -> None:
        options("BatchNorm", kwargs)
        super().__init__()
        self.input_size, self.momentum, self.epsilon = int(input_size), float(momentum), float(epsilon)
        self.weight = Tensor(backend.asarray(np.ones(input_size, np.float32)))
        self.bias = Tensor(backend.asarray(np.zeros(input_size, np.float32)))
        self.running_mean = backend.asarray(np.zeros(input_size, np.float32))
        self.running_var = backend.asarray(np.ones(input_size, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, ...) -> same shape."""
        x = as_input(x)
        check(x.ndim >= 2 and x.shape[1] == self.input_size, self, f"(N, {self.input_size}, ...)", x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, self.input_size) + (1,) * (x.ndim - 2)
        if self.is_training:
            n = x.size // self.input_size
            if n < 2:
                raise ValueError(f"BatchNorm: training needs more than one value per channel, got shape {x.shape}")
            mean = x.mean(axis=axes, keepdims=True)
            centered = x - mean
            var = (centered * centered).mean(axis=axes, keepdims=True)
            with no_grad():
                m = self.momentum
                batch_mean = mean.data.reshape(self.input_size)
                batch_var = var.data.reshape(self.input_size) * (n / (n - 1))
                self.running_mean = ((1 - m) * self.running_mean + m * batch_mean).astype(self.running_mean.dtype)
                self.running_var = ((1 - m) * self.running_var + m * batch_var).astype(self.running_var.dtype)
            xhat = centered / (var + self.epsilon).sqrt()
        else:
            mean = Tensor(self.running_mean.reshape(shape), requires_grad=False)
            std = Tensor(_lib.sqrt(self.running_var + self.epsilon).reshape(shape), requires_grad=False)
            xhat = (x - mean) / std
        return xhat * self.weight.reshape(*shape) + self.bias.reshape(*shape)
