"""The functions of the library in one namespace: activations, losses, normalization, convolution, attention.

``from autograd import functional as F`` gives ``F.relu``, ``F.cross_entropy``,
``F.layer_norm``, ``F.conv2d``, ``F.scaled_dot_product_attention``... Each is
defined, with its Function, its kernel contract and core's reference, in its
family's module of :mod:`autograd.ops` (``autograd.ops.activations``,
``losses``, ``norm``, ``conv``, ``pool``, ``embedding``, ``attention``); this
module gathers them under the names the API reference documents, and holds
the front ends of the MLX kernel the API reference names
(:func:`scaled_dot_product_attention_mlx_custom` and
:class:`ScaledDotProductAttentionMLXCustom`), which run the ``mlx_flash``
kernel of the ``autograd-kernels-mlx`` plugin through the registry.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from autograd import backend
from autograd.engine import Function, ShapeError, enable_grad, no_grad
from autograd.kernels import registry
from autograd.kernels.contract import UnknownKernelError
from autograd.ops.activations import (
    Gelu,
    LogSoftmax,
    Relu,
    Sigmoid,
    Softmax,
    Tanh,
    gelu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from autograd.ops.attention import AttentionKernel, explain_attention, scaled_dot_product_attention
from autograd.ops.conv import conv2d
from autograd.ops.embedding import embedding
from autograd.ops.losses import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    HingeLoss,
    MeanSquaredLoss,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge_loss,
    mean_squared_loss,
)
from autograd.ops.norm import layer_norm
from autograd.ops.pool import max_pool2d
from autograd.tensor import Tensor

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
    "layer_norm",
    "conv2d",
    "max_pool2d",
    "embedding",
    "scaled_dot_product_attention",
    "explain_attention",
    "scaled_dot_product_attention_mlx_custom",
    "ScaledDotProductAttentionMLXCustom",
    "MLX_KERNEL_NAME",
]

#: The attention kernel the MLX front ends run: the ``autograd-kernels-mlx`` plugin's.
MLX_KERNEL_NAME = "mlx_flash"


def _mlx_kernel_ready() -> None:
    """Raise a RuntimeError saying what to install or select unless the MLX kernel can run here."""
    try:
        impl = registry.get(AttentionKernel, MLX_KERNEL_NAME)
    except UnknownKernelError:
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


def scaled_dot_product_attention_mlx_custom(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    is_training: Optional[bool] = None,
    dropout_prob: float = 0.0,
) -> Tensor:
    """Causal attention through the custom MLX kernel (``mlx_flash``, from the ``autograd-kernels-mlx`` plugin).

    ``is_training=False`` disables dropout; ``None`` applies ``dropout_prob`` as given.
    Shapes: (B, H, T, D) each -> (B, H, T, D).

    Raises:
        RuntimeError: the plugin is not installed or the backend is not mlx
            (the message says what to install or select).
    """
    _mlx_kernel_ready()
    p = 0.0 if is_training is False else dropout_prob
    return scaled_dot_product_attention(
        query, key, value, is_causal=True, dropout_prob=p, implementation=MLX_KERNEL_NAME
    )


class ScaledDotProductAttentionMLXCustom(Function):
    r"""Fused causal attention on MLX with an explicit dropout multiplier, run by the ``mlx_flash`` kernel.

    ``forward(query, key, value, dropout_scale_mask=M)`` computes
    :math:`\widetilde{P}V` with :math:`\widetilde{P} = \text{softmax}(QK^T/\sqrt{d})_{causal} \odot M`
    (``M`` already scaled by :math:`1/(1-p)`, or None). The kernel's backward
    recomputes :math:`P` instead of saving it and returns
    :math:`dV = \widetilde{P}^T G`, :math:`dS = P \odot (dP - \sum_k dP_k P_k)` with
    :math:`dP = (G V^T) \odot M`, :math:`dQ = dS\,K/\sqrt{d}`, :math:`dK = dS^T Q/\sqrt{d}`.

    This Function is a front end over the kernel registry: its forward runs
    the registered ``mlx_flash`` attention (with ``dropout_mask=M``) on the
    arrays it is given and keeps that call's graph, which its backward walks.
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
        _mlx_kernel_ready()
        self.leaves = [Tensor(a, requires_grad=need) for a, need in zip((query, key, value), self.needs_input_grad)]
        with enable_grad() if any(self.needs_input_grad) else no_grad():
            self.out = registry.dispatch(
                AttentionKernel,
                *self.leaves,
                mask=None,
                is_causal=True,
                dropout_prob=0.0,
                scale=None,
                seed=None,
                dropout_mask=dropout_scale_mask,
                implementation=MLX_KERNEL_NAME,
            )
        return self.out.data

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        self.out.backward(grad.data)
        return tuple(None if t.grad is None else t.grad.data for t in self.leaves)  # type: ignore[return-value]
