"""The ``cudnn_sdpa`` attention: cuDNN's fused SDPA graphs (:mod:`.cudnn_sdpa`) behind autograd's attention contract.

The highest-priority CUDA attention (:data:`PRIORITY`). It runs cuDNN's fused
forward and backward on CuPy device pointers, on CuPy's current stream, with
execution plans built once per call shape and kept in a bounded LRU cache
(:attr:`CudnnAttention.runner`, ``plan_cache_size`` plans: forward and
backward of a configuration are one each).

How the contract maps onto cuDNN:

* causal (bottom-right aligned in the contract): top-left when ``Tq == Tk``
  (the two agree there, and top-left combines with masks and dropout),
  bottom-right otherwise;
* bool and additive masks: an additive bias (1|B, 1|H, Tq, Tk) in the
  inputs' dtype, ``mask * NEG`` or ``where(mask, NEG, 0)`` with core's NEG
  (-3e4 in float16), expanded over Tq and Tk when the mask broadcasts there;
* dropout: cuDNN's Philox generator keyed by the call's seed (offset 0). Its
  keep decisions are cuDNN's, not core's hash (the contract asks only that
  they depend on the seed and the position), so a seeded run drops other
  elements than the reference; the backward replays them.

It declines, with the reason: no CuPy device, no ``nvidia-cudnn-frontend`` or
no cuDNN library, a GPU older than sm_80, float32 (and float64), head dims that
are not multiples of 8 or over cuDNN's limits, shapes cuDNN's rules refuse
(bottom-right causal with a mask or dropout, or with Tq > Tk; Tq = Tk = 1 with
a backward), an explicit ``dropout_mask``, empty inputs. ``triton_fused``
(then ``cuda_flash``, then core's reference) takes what it declines.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Tuple

from autograd import backend
from autograd.kernels import KernelInputs
from autograd.ops.attention import AttentionKernel, mask_value
from autograd.tensor import Function, Tensor
from autograd_kernels_cuda import cudnn_sdpa
from autograd_kernels_cuda.cudnn_sdpa import DEFAULT_CACHE_SIZE, CudnnSdpa, SdpaKey, bias_from_mask, plan_key

__all__ = ["CudnnAttention", "CudnnAttentionFunction", "PRIORITY", "prepare", "plan_keys", "causal_kind"]

#: This package's cuDNN priority (the plugin guide's table): the highest CUDA attention.
PRIORITY = 500
#: Above this many bytes, a mask that cuDNN would need expanded to a full (1|B, 1|H, Tq, Tk) bias is left to
#: ``triton_fused``, which reads it broadcast (``advise``: a call that names cudnn_sdpa still runs it).
EXPANDED_BIAS_LIMIT = 64 << 20


def causal_kind(is_causal: bool, seq_q: int, seq_k: int) -> str:
    """cuDNN's causal alignment for the contract's bottom-right causal mask."""
    if not is_causal:
        return "none"
    return "top_left" if seq_q == seq_k else "bottom_right"


def _bias_dims(mask_shape: Tuple[int, ...], b: int, h: int, tq: int, tk: int) -> Tuple[int, int, int, int]:
    dims = (1,) * (4 - len(mask_shape)) + tuple(int(s) for s in mask_shape)
    return (b if dims[0] != 1 else 1, h if dims[1] != 1 else 1, tq, tk)


def _last_stride_one(a: Any) -> Any:
    """``a`` as cuDNN takes it: any strides with a contiguous head dim (a (B, T, H, D) view is not copied)."""
    if a.ndim == 0 or a.strides[-1] == a.itemsize:
        return a
    from autograd_kernels_cuda.triton_support import array_module

    return array_module(a).ascontiguousarray(a)


def prepare(
    query: Any,
    key: Any,
    value: Any,
    *,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    scale: Optional[float] = None,
    seed: Optional[int] = None,
) -> Tuple[Any, Any, Any, Dict[str, Any], Dict[str, int]]:
    """An attention call in :meth:`CudnnSdpa.forward`'s terms: ``(q, k, v, options, rng)``.

    ``options`` (causal kind, bias, dropout, scale) decide the plan; ``rng`` (seed, offset) is passed by value.
    Works on NumPy arrays too, so tests build the very graphs a call requests without a GPU.
    """
    q, k, v = (_last_stride_one(a) for a in (query, key, value))
    b, h, tq, _ = (int(s) for s in q.shape)
    tk = int(k.shape[2])
    bias = None
    if mask is not None:
        dtype = backend.dtype_name(q.dtype)
        bias = bias_from_mask(mask, q.dtype, (b, h, tq, tk), mask_value(dtype))
    options: Dict[str, Any] = dict(
        causal=causal_kind(is_causal, tq, tk), bias=bias, dropout_p=float(dropout_prob), scale=scale
    )
    return q, k, v, options, dict(seed=int(seed or 0), offset=0)


def plan_keys(query: Any, key: Any, value: Any, **call: Any) -> Tuple[SdpaKey, SdpaKey]:
    """The (forward, backward) plan keys a call with these arrays and contract parameters requests."""
    q, k, v, options, _ = prepare(query, key, value, **call)
    return plan_key(q, k, v, backward=False, **options), plan_key(q, k, v, backward=True, **options)


class CudnnAttentionFunction(Function):
    """cuDNN's fused forward and backward; saves q, k, v, the output and cuDNN's float32 row statistics."""

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        *,
        mask: Any = None,
        is_causal: bool = False,
        dropout_prob: float = 0.0,
        scale: Optional[float] = None,
        seed: Optional[int] = None,
        runner: Optional[CudnnSdpa] = None,
    ) -> Any:
        if runner is None:
            raise ValueError("CudnnAttentionFunction needs the CudnnSdpa runner of its implementation")
        self.runner = runner
        self.q, self.k, self.v, self.options, self.rng = prepare(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )
        self.out, self.stats = runner.forward(self.q, self.k, self.v, **self.options, **self.rng)
        return self.out

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        g = grad.data if grad.data.dtype == self.out.dtype else grad.data.astype(self.out.dtype)
        grads = self.runner.backward(self.q, self.k, self.v, self.out, self.stats, g, **self.options, **self.rng)
        return tuple(d if need else None for d, need in zip(grads, self.needs_input_grad))  # type: ignore[return-value]


@functools.cache
def _environment(device: int) -> Tuple[Tuple[str, ...], Optional[int]]:
    """(reasons cuDNN cannot run on this CUDA device, its compute capability); cached per device."""
    import cupy

    major_minor = int(cupy.cuda.Device(device).compute_capability)
    missing = cudnn_sdpa.library_missing()  # the frontend first, then libcudnn
    if missing:
        return (missing,), major_minor
    if major_minor < cudnn_sdpa.MIN_COMPUTE_CAPABILITY:
        return (f"GPU too old: sm_{major_minor} (cuDNN's fused attention needs sm_80 or newer)",), major_minor
    return (), major_minor


def _device() -> Tuple[List[str], Optional[int]]:
    """(reasons, compute capability) for the current CUDA device, on the cupy backend."""
    try:
        import cupy
    except ImportError:
        return [f"CuPy is not installed: {backend.install_hint('cupy')}"], None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return ["no CUDA device is visible"], None
        reasons, cc = _environment(cupy.cuda.runtime.getDevice())
    except Exception as exc:  # noqa: BLE001 - any CUDA runtime failure means "cannot run here"
        return [f"no usable CUDA device: {exc}"], None
    return list(reasons), cc


class CudnnAttention(AttentionKernel):
    """cuDNN's fused attention (float16; bfloat16 once CuPy has it) on the cupy backend."""

    name = "cudnn_sdpa"
    backends = ("cupy",)
    priority = PRIORITY

    def __init__(self, plan_cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if int(plan_cache_size) < 1:
            raise ValueError(f"plan_cache_size must be >= 1, got {plan_cache_size}")
        #: Runs the graphs; its ``plans`` is the bounded LRU cache of built execution plans.
        self.runner = CudnnSdpa(cache_size=int(plan_cache_size))

    def check_environment(self) -> List[str]:
        reasons = super().check_environment()
        return reasons or _device()[0]

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons, cc = super().check_environment(), None
        if not reasons:
            reasons, cc = _device()
        return reasons + self.input_reasons(inputs, None if reasons else cc)

    def input_reasons(self, inputs: KernelInputs, compute_capability: Optional[int]) -> List[str]:
        """Why cuDNN cannot take these inputs on a GPU of ``compute_capability`` (None: judged without a GPU)."""
        q, k, v = (inputs.shape(n) for n in ("query", "key", "value"))
        out: List[str] = []
        if any(0 in s for s in (q, k, v)):
            return ["empty inputs: core's reference returns the empty result"]
        if inputs.present("dropout_mask"):
            out.append("an explicit dropout_mask is not supported (cuDNN draws its own from the seed)")
        b, h, tq, d = q
        tk = k[2]
        bias = _bias_dims(inputs.shape("mask"), b, h, tq, tk) if inputs.present("mask") else None
        out += cudnn_sdpa.reasons(
            dtype=inputs.dtype_of("query"), head_dim=d, value_dim=v[-1], seq_q=tq, seq_k=tk,
            causal=causal_kind(bool(inputs.param("is_causal")), tq, tk), mask_shape=bias,
            dropout=float(inputs.param("dropout_prob") or 0.0), backward=inputs.requires_grad,
            compute_capability=compute_capability, check_library=False, check_device=compute_capability is not None,
        )  # fmt: skip
        return out

    def advise(self, inputs: KernelInputs) -> List[str]:
        if not inputs.present("mask"):
            return []
        mask = (1,) * (4 - len(inputs.shape("mask"))) + tuple(inputs.shape("mask"))
        b, h, tq, _ = inputs.shape("query")
        bias = _bias_dims(mask, b, h, tq, inputs.shape("key")[2])
        nbytes = 2 * bias[0] * bias[1] * bias[2] * bias[3]
        if mask[2:] != bias[2:] and nbytes > EXPANDED_BIAS_LIMIT:
            return [
                f"the mask {inputs.shape('mask')} would be expanded to a {bias} bias of {nbytes >> 20} MiB for "
                "cuDNN; triton_fused reads it broadcast"
            ]
        return []

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
        if dropout_mask is not None:
            raise ValueError("cudnn_sdpa takes no dropout_mask (its check declines it)")
        return CudnnAttentionFunction.apply(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed,
            runner=self.runner,
        )  # fmt: skip
