"""The ``cuda_flash`` attention kernel (:class:`autograd.ops.attention.AttentionKernel`): CUDA C compiled by CuPy."""

from __future__ import annotations

import functools
import math
import os
from importlib import resources
from typing import Any, List, Optional, Tuple

from autograd import backend
from autograd.kernels import KernelInputs
from autograd.ops.attention import AttentionKernel
from autograd.tensor import Function, Tensor

__all__ = ["CUDAFlashAttention", "CUDAFlashFunction", "kernel_sources"]

HEAD_DIMS = (32, 64, 128)
ROWS = 64  # FLASH_ROWS in kernels/common.cuh: threads per block, one row each
_DTYPE_SUFFIX = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def kernel_sources() -> dict:
    """The .cu/.cuh files shipped in the package, by name."""
    folder = resources.files("autograd_kernels_cuda") / "kernels"
    return {f.name: f.read_text() for f in folder.iterdir() if f.name.endswith((".cu", ".cuh"))}


def _kernel_dir() -> str:
    return os.fspath(resources.files("autograd_kernels_cuda") / "kernels")


@functools.cache
def _module(name: str) -> Any:
    """Compile ``name``.cu once per process (CuPy also caches the binary on disk)."""
    import cupy

    source = kernel_sources()[f"{name}.cu"]
    return cupy.RawModule(code=source, options=("-std=c++17", f"-I{_kernel_dir()}"))


def _function(module: str, kernel: str) -> Any:
    return _module(module).get_function(kernel)


def _environment_problems() -> List[str]:
    if backend.BACKEND != "cupy":
        return [f"the active backend is {backend.BACKEND}; cuda_flash runs on cupy"]
    try:
        import cupy
    except ImportError:
        return [f"CuPy is not installed: {backend.install_hint('cupy')}"]
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return ["no CUDA device is visible"]
    except Exception as exc:  # noqa: BLE001 - any CUDA runtime failure means "cannot run here"
        return [f"no usable CUDA device: {exc}"]
    return []


class CUDAFlashFunction(Function):
    """Forward and backward kernels; saves q, k, v, the output and the per-row log-sum-exp (float32)."""

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        *,
        is_causal: bool = False,
        dropout_prob: float = 0.0,
        scale: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> Any:
        import cupy

        b, h, tq, d = query.shape
        tk = key.shape[2]
        self.shape, self.tk = (b, h, tq, d), tk
        self.scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
        self.causal, self.p, self.seed = int(bool(is_causal)), float(dropout_prob), int(seed or 0)
        self.suffix = f"{_DTYPE_SUFFIX[backend.dtype_name(query.dtype)]}_d{d}"
        self.q, self.k, self.v = (cupy.ascontiguousarray(x).reshape(b * h, -1, d) for x in (query, key, value))
        out = cupy.empty_like(self.q)
        self.lse = cupy.empty((b * h, tq), dtype=cupy.float32)
        grid = ((tq + ROWS - 1) // ROWS, b * h)
        _function("flash_fwd", f"flash_fwd_{self.suffix}")(
            grid,
            (ROWS,),
            (self.q, self.k, self.v, out, self.lse) + self._scalars(),
        )
        self.out = out
        return out.reshape(b, h, tq, d)

    def _scalars(self) -> tuple:
        """The trailing kernel arguments shared by all three kernels: tq, tk, scale, causal, dropout_p, seed."""
        import cupy

        return (
            cupy.int32(self.shape[2]),
            cupy.int32(self.tk),
            cupy.float32(self.scale),
            cupy.int32(self.causal),
            cupy.float32(self.p),
            cupy.uint64(self.seed),
        )

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        import cupy

        b, h, tq, d = self.shape
        tk = self.tk
        dout = cupy.ascontiguousarray(grad.data).reshape(b * h, tq, d).astype(self.q.dtype, copy=False)
        delta = (dout.astype(cupy.float32) * self.out.astype(cupy.float32)).sum(axis=-1)
        dq, dk, dv = cupy.empty_like(self.q), cupy.empty_like(self.k), cupy.empty_like(self.v)
        common = self._scalars()
        _function("flash_bwd", f"flash_bwd_dkdv_{self.suffix}")(
            ((tk + ROWS - 1) // ROWS, b * h), (ROWS,), (self.q, self.k, self.v, dout, self.lse, delta, dk, dv) + common
        )
        _function("flash_bwd", f"flash_bwd_dq_{self.suffix}")(
            ((tq + ROWS - 1) // ROWS, b * h), (ROWS,), (self.q, self.k, self.v, dout, self.lse, delta, dq) + common
        )
        return dq.reshape(b, h, tq, d), dk.reshape(b, h, tk, d), dv.reshape(b, h, tk, d)


class CUDAFlashAttention(AttentionKernel):
    """FlashAttention-2 style CUDA kernels for the cupy backend.

    Takes float32 and float16 (bfloat16 kernels are compiled too, for when CuPy
    has a bfloat16 dtype), head_dim 32, 64 or 128 with value dim equal, any
    sequence lengths, causal or not, and dropout from a Philox generator keyed
    by the seed and the element's position. Declines explicit masks (use
    ``is_causal``), an explicit ``dropout_mask`` and everything else with a
    reason, so the dispatcher falls back to the reference.
    """

    name = "cuda_flash"
    backends = ("cupy",)
    #: This package's priority (the plugin guide's table).
    priority = 300

    def check_environment(self) -> List[str]:
        return _environment_problems()

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = self.check_environment()
        if inputs.dtype not in _DTYPE_SUFFIX:
            reasons.append(f"dtype {inputs.dtype} is not supported (float32, float16, bfloat16)")
        head_dim, value_dim = inputs.shape("query")[-1], inputs.shape("value")[-1]
        if head_dim not in HEAD_DIMS:
            reasons.append(f"head_dim {head_dim} is not one of {HEAD_DIMS}")
        if value_dim != head_dim:
            reasons.append(f"value dim {value_dim} differs from head_dim {head_dim}")
        if inputs.present("mask"):
            reasons.append(f"explicit {inputs.dtype_of('mask')} masks are not supported (use is_causal)")
        if inputs.present("dropout_mask"):
            reasons.append("an explicit dropout_mask is not supported (it draws its own from the seed)")
        if any(0 in inputs.shape(n) for n in ("query", "key", "value")):
            reasons.append("empty inputs: core's reference returns the empty result")
        return reasons

    def apply(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: Any,
        is_causal: bool,
        dropout_prob: float,
        scale: Optional[float],
        seed: Optional[int],
        dropout_mask: Any,
    ) -> Tensor:
        if mask is not None or dropout_mask is not None:
            raise ValueError("cuda_flash takes neither explicit masks nor a dropout_mask (its check declines them)")
        return CUDAFlashFunction.apply(
            query, key, value, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )
