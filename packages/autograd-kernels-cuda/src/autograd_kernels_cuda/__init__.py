"""CUDA kernels for autograd's cupy backend, registered as kernel plugins (priority order):

* ``cudnn_sdpa`` (:mod:`.cudnn_attention`): cuDNN's fused attention through
  ``nvidia-cudnn-frontend`` (extra ``[cudnn-cu12]``/``[cudnn-cu13]``);
* ``triton_fused`` (:mod:`.triton_fused`): Triton kernels for every op of the
  registry (extra ``[triton]``), attention included for what cuDNN declines;
* ``cuda_flash`` (:mod:`.attention`): hand-written FlashAttention-2 style
  kernels, CUDA C compiled at run time through ``cupy.RawModule``.

Without CuPy, a CUDA device or an extra's library each still registers and
declines with its reason. Importing the package imports neither CuPy, triton
nor cuDNN.
"""

from autograd_kernels_cuda.attention import CUDAFlashAttention, CUDAFlashFunction, kernel_sources

__all__ = ["CUDAFlashAttention", "CUDAFlashFunction", "kernel_sources"]
