"""FlashAttention-2 style CUDA kernels for autograd's cupy backend, registered as the ``cuda_flash`` plugin.

The ``.cu`` sources ship in ``kernels/`` and are compiled at run time through
``cupy.RawModule`` (cached per process and on disk by CuPy). Without CuPy or a
CUDA device the plugin still registers and declines with its reason.
"""

from autograd_kernels_cuda.attention import CUDAFlashAttention, CUDAFlashFunction, kernel_sources

__all__ = ["CUDAFlashAttention", "CUDAFlashFunction", "kernel_sources"]
