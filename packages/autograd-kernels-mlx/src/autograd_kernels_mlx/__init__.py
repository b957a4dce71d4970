"""Fused, memory-linear attention for autograd on MLX, registered as the ``mlx_flash`` kernel plugin.

Installing this distribution is enough: it registers through the
``autograd.attention`` entry-point group, and
``autograd.functional.scaled_dot_product_attention`` picks it whenever the
backend is mlx and its capability check accepts the inputs.
"""

from autograd_kernels_mlx.attention import FlashAttentionFunction, MLXFlashAttention

__all__ = ["MLXFlashAttention", "FlashAttentionFunction"]
