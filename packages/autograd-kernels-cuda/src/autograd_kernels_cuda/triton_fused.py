"""The ``triton_fused`` implementations: the Triton kernels of :mod:`.triton_kernels` behind autograd's op contracts.

One class per op of the registry, each a subclass of the op's contract named
``triton_fused`` with this package's Triton priority (:data:`PRIORITY`). Each
computes the op with a :class:`~autograd.engine.Function` (or, for the
optimizer's update, an ``apply``) whose forward and backward launch the
kernels through :func:`autograd_kernels_cuda.triton_support.launch`: on CuPy
arrays, compiled and on CuPy's current stream.

The Functions never name CuPy: they allocate with the arrays' own module
(:func:`~autograd_kernels_cuda.triton_support.array_module`), so the same code
runs on NumPy arrays in Triton's interpreter. That is how it is tested without
a GPU: a subclass with ``backends = ("numpy",)`` (see :func:`host_variant`)
runs core's conformance cases in the interpreter (``TRITON_INTERPRET=1``,
which must be set before triton is first imported). The installed classes
keep ``backends = ("cupy",)``, so on NumPy and MLX they decline.

What every implementation declines, with the reason: float64 (the kernels
compute in float32), mixed floating dtypes, and whatever its class lists.
float32 products in attention and convolution run in full float32 by default:
the contract's float32 tolerance is tighter than TF32's 10-bit mantissa.
``AUTOGRAD_CUDA_TF32=1`` lets them use TF32 on the tensor cores (as
PyTorch's ``allow_tf32``); they then no longer meet the float32 conformance
tolerance.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from autograd import backend
from autograd.kernels import KernelInputs
from autograd.ops.activations import (
    GeluKernel,
    LogSoftmaxKernel,
    ReluKernel,
    SigmoidKernel,
    SoftmaxKernel,
    TanhKernel,
)
from autograd.ops.attention import AttentionKernel
from autograd.ops.conv import Conv2dKernel
from autograd.ops.embedding import EmbeddingKernel
from autograd.ops.losses import CrossEntropyKernel
from autograd.ops.norm import LayerNormKernel
from autograd.ops.optim import AdamKernel
from autograd.ops.pool import MaxPool2dKernel
from autograd.tensor import Function, Tensor
from autograd_kernels_cuda.triton_support import array_module, interpreting, triton_missing

__all__ = [
    "NAME",
    "PRIORITY",
    "IMPLEMENTATIONS",
    "host_variant",
    "TritonLayerNorm",
    "TritonSoftmax",
    "TritonLogSoftmax",
    "TritonCrossEntropy",
    "TritonGelu",
    "TritonRelu",
    "TritonSigmoid",
    "TritonTanh",
    "TritonEmbedding",
    "TritonAdam",
    "TritonMaxPool2d",
    "TritonConv2d",
    "TritonAttention",
]

NAME = "triton_fused"
#: This package's Triton priority (the plugin guide's table): above ``cuda_flash`` (300), below ``cudnn_sdpa``.
PRIORITY = 400
#: The floating dtypes the kernels take (they compute in float32 and store in the input's dtype).
DTYPES = ("float32", "float16", "bfloat16")
#: Widest head dim of the attention kernels (they pad it to a power of two inside).
MAX_HEAD_DIM = 256


# --- what every implementation shares ------------------------------------------------------------------------


def _environment(backend_name: str) -> Tuple[str, ...]:
    """Why Triton's kernels cannot run on this backend here."""
    return _environment_cached(backend_name, interpreting())


@functools.cache
def _environment_cached(backend_name: str, interpret: bool) -> Tuple[str, ...]:
    # Cached: check() runs on every dispatch, and the answer changes only with the interpreter flag.
    missing = triton_missing()
    if missing:
        return (missing,)
    if backend_name == "numpy":
        if not interpret:
            return ("NumPy arrays reach Triton kernels only in its interpreter (TRITON_INTERPRET=1 before triton is "
                    "first imported)",)  # fmt: skip
        return ()
    if interpret:
        return ("TRITON_INTERPRET is set: Triton would interpret the kernels on the host, which cannot read CuPy's "
                "device memory",)  # fmt: skip
    try:
        import cupy
    except ImportError:
        return (f"CuPy is not installed: {backend.install_hint('cupy')}",)
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return ("no CUDA device is visible",)
    except Exception as exc:  # noqa: BLE001 - any CUDA runtime failure means "cannot run here"
        return (f"no usable CUDA device: {exc}",)
    return ()


def _contiguous(a: Any) -> Any:
    """``a`` in C order (the kernels index flat memory); 0-d arrays stay 0-d."""
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


def _like(a: Any, dtype: Any) -> Any:
    """``a`` contiguous and of ``dtype`` (an upstream gradient may arrive wider, or as a view)."""
    return _contiguous(a if a.dtype == dtype else a.astype(dtype))


def _dot_f32(a: Any) -> bool:
    # Triton's interpreter holds bfloat16 as raw bits and its tl.dot would multiply the bit patterns: widen the
    # operands there. Compiled kernels keep bfloat16 on the tensor cores.
    return interpreting() and backend.dtype_name(a.dtype) == "bfloat16"


def _precision() -> str:
    """``input_precision`` of float32 products: full float32 unless ``AUTOGRAD_CUDA_TF32=1``."""
    return "tf32" if os.environ.get("AUTOGRAD_CUDA_TF32", "") == "1" else "ieee"


def _needed(fn: Function, grads: Sequence[Any]) -> Tuple[Any, ...]:
    return tuple(g if need else None for g, need in zip(grads, fn.needs_input_grad))


class _Triton:
    """Name, backend, priority and the dtype rule every ``triton_fused`` implementation shares.

    ``typed`` lists the array arguments that must share one dtype of :data:`DTYPES` (by default every
    floating one); integer and bool arrays (targets, indices, masks) are never counted.
    """

    name = NAME
    backends: Tuple[str, ...] = ("cupy",)
    priority = PRIORITY
    typed: Tuple[str, ...] = ()

    def check_environment(self) -> List[str]:
        reasons = super().check_environment()  # type: ignore[misc]
        return reasons or list(_environment(backend.BACKEND))

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)  # type: ignore[misc]
        dtypes = [inputs.dtype_of(n) for n in self.typed] if self.typed else list(inputs.dtypes)
        floats = sorted({d for d in dtypes if d and d != "bool" and "int" not in d} or {inputs.dtype})
        if len(floats) > 1 or floats[0] not in DTYPES:
            reasons.append(f"dtypes {floats}: one of {', '.join(DTYPES)} throughout (the kernels compute in float32)")
        return reasons


# --- element-wise activations --------------------------------------------------------------------------------


class _ActivationFunction(Function):
    """One kernel each way; the backward reads x (GELU, ReLU) or the output (sigmoid, tanh)."""

    activation = ""

    def forward(self, x: Any) -> Any:
        from autograd_kernels_cuda.triton_kernels import activations

        x = _contiguous(x)
        y = activations.activation_forward(self.activation, x)
        self.saved = x if activations.BACKWARD_READS[self.activation] == "x" else y
        return y

    def backward(self, grad: Tensor) -> Any:
        from autograd_kernels_cuda.triton_kernels import activations

        return activations.activation_backward(self.activation, self.saved, _like(grad.data, self.saved.dtype))


class TritonGeluFunction(_ActivationFunction):
    activation = "gelu"


class TritonReluFunction(_ActivationFunction):
    activation = "relu"


class TritonSigmoidFunction(_ActivationFunction):
    activation = "sigmoid"


class TritonTanhFunction(_ActivationFunction):
    activation = "tanh"


class TritonGelu(_Triton, GeluKernel):
    """GELU (tanh approximation) in one pass each way, in float32; the backward recomputes from x."""

    function = TritonGeluFunction


class TritonRelu(_Triton, ReluKernel):
    """ReLU in one pass each way."""

    function = TritonReluFunction


class TritonSigmoid(_Triton, SigmoidKernel):
    """Sigmoid (overflow-free) in one pass each way; the backward works from the output."""

    function = TritonSigmoidFunction


class TritonTanh(_Triton, TanhKernel):
    """tanh in one pass each way; the backward works from the output."""

    function = TritonTanhFunction


# --- softmax, log-softmax, layer norm --------------------------------------------------------------------------


class _SoftmaxFunction(Function):
    """One program per row over the last axis; another axis is moved last (a copy) and back."""

    log = False

    def forward(self, x: Any, *, dim: int = -1) -> Any:
        from autograd_kernels_cuda.triton_kernels.softmax import softmax_forward

        self.dim = dim % max(x.ndim, 1)
        self.last = self.dim == x.ndim - 1 or x.ndim == 0
        self.y = softmax_forward(self._rows(x), log=self.log)
        return self._back(self.y)

    def backward(self, grad: Tensor) -> Any:
        from autograd_kernels_cuda.triton_kernels.softmax import softmax_backward

        g = self._rows(grad.data if grad.data.dtype == self.y.dtype else grad.data.astype(self.y.dtype))
        return self._back(softmax_backward(self.y, g, log=self.log))

    def _rows(self, a: Any) -> Any:
        return _contiguous(a if self.last else array_module(a).moveaxis(a, self.dim, -1))

    def _back(self, a: Any) -> Any:
        return a if self.last else array_module(a).moveaxis(a, -1, self.dim)


class TritonSoftmaxFunction(_SoftmaxFunction):
    log = False


class TritonLogSoftmaxFunction(_SoftmaxFunction):
    log = True


class TritonSoftmax(_Triton, SoftmaxKernel):
    """Softmax along any axis (the last without a copy); rows longer than 4096 are read in blocks."""

    function = TritonSoftmaxFunction


class TritonLogSoftmax(_Triton, LogSoftmaxKernel):
    """Log-softmax along any axis (the last without a copy)."""

    function = TritonLogSoftmaxFunction


class TritonLayerNormFunction(Function):
    """Statistics and normalisation in one program per row; dx and the (dw, db) partial sums in one backward."""

    def forward(self, x: Any, weight: Any, bias: Any, *, eps: float = 1e-5) -> Any:
        from autograd_kernels_cuda.triton_kernels.norm import layer_norm_forward

        self.x, self.weight = _contiguous(x), _contiguous(weight)
        y, self.mean, self.rstd = layer_norm_forward(self.x, self.weight, _contiguous(bias), float(eps))
        return y

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        from autograd_kernels_cuda.triton_kernels.norm import layer_norm_backward

        g = _like(grad.data, self.x.dtype)
        return _needed(self, layer_norm_backward(self.x, self.weight, self.mean, self.rstd, g))


class TritonLayerNorm(_Triton, LayerNormKernel):
    """Layer norm over the last axis with float32 statistics; x, weight and bias of one dtype."""

    function = TritonLayerNormFunction


# --- cross-entropy --------------------------------------------------------------------------------------------


class TritonCrossEntropyFunction(Function):
    """Log-softmax and the loss in one online pass per row, reduced on the device; the (N, V) probabilities
    are never stored, and no value is read back to the host."""

    keeps_input_precision = False  # float16/bfloat16 logits give a float32 loss

    def forward(
        self,
        y_pred: Any,
        y_true: Any,
        *,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> Any:
        from autograd_kernels_cuda.triton_kernels.cross_entropy import cross_entropy_forward

        self.logits, self.targets = _contiguous(y_pred), _contiguous(y_true)
        self.options = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing))
        loss, self.saved = cross_entropy_forward(self.logits, self.targets, reduction=reduction, **self.options)
        return loss  # float32: the contract's dtype for float16/bfloat16 and float32 logits alike

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        from autograd_kernels_cuda.triton_kernels.cross_entropy import cross_entropy_backward

        g = _like(grad.data, backend.dtype("float32"))
        return cross_entropy_backward(self.logits, self.targets, self.saved, g, **self.options), None


class TritonCrossEntropy(_Triton, CrossEntropyKernel):
    """Cross-entropy fused with its log-softmax for any vocabulary size (rows read in blocks of 4096)."""

    function = TritonCrossEntropyFunction
    typed = ("y_pred",)


# --- embedding and Adam ------------------------------------------------------------------------------------------


class TritonEmbeddingFunction(Function):
    """Row gather forward; the backward scatter-adds the gradient rows in float32 with atomics."""

    def forward(self, indices: Any, weight: Any) -> Any:
        from autograd_kernels_cuda.triton_kernels.embedding import embedding_forward

        self.indices, self.rows = _contiguous(indices), int(weight.shape[0])
        return embedding_forward(_contiguous(weight), self.indices)

    def backward(self, grad: Tensor) -> Tuple[None, Any]:
        from autograd_kernels_cuda.triton_kernels.embedding import embedding_backward

        return None, embedding_backward(_contiguous(grad.data), self.indices, self.rows)


class TritonEmbedding(_Triton, EmbeddingKernel):
    """Embedding lookup; the backward adds repeated indices with float32 atomics (not bit-reproducible)."""

    function = TritonEmbeddingFunction
    typed = ("weight",)


class TritonAdam(_Triton, AdamKernel):
    """The Adam/AdamW update of every parameter in one launch, in place (pointer tables cached per arrays)."""

    def apply(
        self,
        params: List[Any],
        grads: List[Any],
        exp_avgs: List[Any],
        exp_avg_sqs: List[Any],
        steps: List[int],
        *,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
    ) -> Tuple[List[Any], List[Any], List[Any]]:
        from autograd_kernels_cuda.triton_kernels.adam import adam_update

        # Non-contiguous arrays are updated as contiguous copies and handed back (the contract allows new
        # arrays); a gradient of another dtype (``p.grad = 0.7``) is cast to its parameter's.
        params = [_contiguous(p) for p in params]
        grads = [_like(g, p.dtype) for g, p in zip(grads, params)]
        exp_avgs = [_contiguous(m) for m in exp_avgs]
        exp_avg_sqs = [_contiguous(v) for v in exp_avg_sqs]
        hyper = dict(lr=float(lr), beta1=float(beta1), beta2=float(beta2), eps=float(eps))
        adam_update(params, grads, exp_avgs, exp_avg_sqs, list(steps), weight_decay=float(weight_decay), **hyper)
        return params, exp_avgs, exp_avg_sqs


# --- pooling and convolution ---------------------------------------------------------------------------------------


class TritonMaxPool2dFunction(Function):
    """Window maxima and tie counts forward; the backward gathers each pixel's share (no atomics).

    Padding is ``-inf`` added around the input (a copy), then cut from the gradient.
    """

    def forward(
        self,
        x: Any,
        *,
        kernel_size: Tuple[int, int],
        stride: Tuple[int, int],
        padding: Tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> Any:
        from autograd_kernels_cuda.triton_kernels.pool import max_pool2d_forward

        self.k, self.s, self.padding = int(kernel_size[0]), int(stride[0]), tuple(int(p) for p in padding)
        top, bottom, left, right = self.padding
        x = _contiguous(x)
        if any(self.padding):
            xp = array_module(x)
            x = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=float("-inf"))
        self.x = x
        self.y, self.count = max_pool2d_forward(x, self.k, self.s)
        return self.y

    def backward(self, grad: Tensor) -> Any:
        from autograd_kernels_cuda.triton_kernels.pool import max_pool2d_backward

        dx = max_pool2d_backward(self.x, self.y, self.count, _like(grad.data, self.y.dtype), self.k, self.s)
        top, bottom, left, right = self.padding
        if any(self.padding):
            dx = _contiguous(dx[:, :, top : dx.shape[2] - bottom, left : dx.shape[3] - right])
        return dx


class TritonMaxPool2d(_Triton, MaxPool2dKernel):
    """Max-pooling with the reference's tie rule: square windows and one stride for both axes, any padding."""

    function = TritonMaxPool2dFunction

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        (kh, kw), (sh, sw) = inputs.param("kernel_size"), inputs.param("stride")
        if kh != kw or sh != sw:
            reasons.append(f"kernel {(kh, kw)} stride {(sh, sw)}: only square windows and one stride")
        return reasons


class TritonConv2dFunction(Function):
    """Implicit GEMM on the tensor cores: forward, dgrad and wgrad without unfolding anything in memory.

    The bias is the optional third input (absent rather than None, so it never becomes a Tensor of None).
    """

    def forward(
        self,
        x: Any,
        weight: Any,
        *bias: Any,
        stride: Tuple[int, int] = (1, 1),
        padding: Tuple[int, int, int, int] = (0, 0, 0, 0),
        dilation: Tuple[int, int] = (1, 1),
        groups: int = 1,
    ) -> Any:
        from autograd_kernels_cuda.triton_kernels.conv import conv2d_forward

        self.x, self.weight, self.has_bias = _contiguous(x), _contiguous(weight), bool(bias)
        self.options: Dict[str, Any] = dict(
            stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation), groups=int(groups),
            precision=_precision(), dot_f32=_dot_f32(x),
        )  # fmt: skip
        b = _contiguous(bias[0]) if bias else None
        return conv2d_forward(self.x, self.weight, b, **self.options)

    def backward(self, grad: Tensor) -> Tuple[Any, ...]:
        from autograd_kernels_cuda.triton_kernels.conv import conv2d_backward

        need = self.needs_input_grad
        dx, dw, db = conv2d_backward(
            self.x, self.weight, _like(grad.data, self.x.dtype), has_bias=self.has_bias and need[2],
            need_dx=need[0], need_dw=need[1], **self.options,
        )  # fmt: skip
        return (dx, dw, db) if self.has_bias else (dx, dw)


class TritonConv2d(_Triton, Conv2dKernel):
    """2-D convolution of any kernel size, stride, zero padding, dilation and groups (implicit GEMM)."""

    def apply(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Optional[Tensor],
        *,
        stride: Tuple[int, int],
        padding: Tuple[int, int, int, int],
        dilation: Tuple[int, int],
        groups: int,
    ) -> Tensor:
        tensors = (x, weight) if bias is None else (x, weight, bias)
        return TritonConv2dFunction.apply(*tensors, stride=stride, padding=padding, dilation=dilation, groups=groups)


# --- attention ---------------------------------------------------------------------------------------------------


class TritonAttentionFunction(Function):
    """FlashAttention-2 forward and backward (tl.dot on the tensor cores, float32 accumulation).

    Saves q, k, v, the output and the float32 log-sum-exp per row; nothing of size Tq x Tk. Masks are read
    with zero strides on broadcast axes; dropout decisions are core's hash, regenerated in the backward.
    """

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
    ) -> Any:
        from autograd_kernels_cuda.triton_kernels.attention import attention_forward

        self.q, self.k, self.v = _contiguous(query), _contiguous(key), _contiguous(value)
        self.options: Dict[str, Any] = dict(
            mask=mask, is_causal=bool(is_causal), dropout_p=float(dropout_prob), seed=int(seed or 0), scale=scale,
            precision=_precision(), dot_f32=_dot_f32(query),
        )  # fmt: skip
        self.out, self.lse = attention_forward(self.q, self.k, self.v, **self.options)
        return self.out

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        from autograd_kernels_cuda.triton_kernels.attention import attention_backward

        g = _like(grad.data, self.out.dtype)
        return _needed(self, attention_backward(self.q, self.k, self.v, self.out, self.lse, g, **self.options))


class TritonAttention(_Triton, AttentionKernel):
    """FlashAttention-2 in Triton: the CUDA attention for what ``cudnn_sdpa`` declines.

    Any sequence lengths, head dims up to 256 (value dim too), causal or not, bool and additive masks of any
    broadcast shape, dropout with core's decisions; float32 (full float32 unless ``AUTOGRAD_CUDA_TF32=1``),
    float16 and bfloat16. Declines an explicit ``dropout_mask`` and empty inputs.
    """

    typed = ("query", "key", "value")  # a floating mask is read as float32, whatever its dtype

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        dims = {inputs.shape("query")[-1], inputs.shape("value")[-1]}
        if max(dims) > MAX_HEAD_DIM:
            reasons.append(f"head dims {sorted(dims)}: at most {MAX_HEAD_DIM}")
        if inputs.present("dropout_mask"):
            reasons.append("an explicit dropout_mask is not supported (it regenerates core's seeded decisions)")
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
        if dropout_mask is not None:
            raise ValueError("triton_fused attention takes no dropout_mask (its check declines it)")
        return TritonAttentionFunction.apply(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )


#: Every implementation of this module, one per op of the registry.
IMPLEMENTATIONS = (
    TritonAttention,
    TritonLayerNorm,
    TritonSoftmax,
    TritonLogSoftmax,
    TritonCrossEntropy,
    TritonGelu,
    TritonRelu,
    TritonSigmoid,
    TritonTanh,
    TritonEmbedding,
    TritonAdam,
    TritonMaxPool2d,
    TritonConv2d,
)


def host_variant(cls: type) -> type:
    """``cls`` running on the NumPy backend, in Triton's interpreter: the same Functions, for tests without a GPU.

    Only a test process that set ``TRITON_INTERPRET=1`` before importing triton can run it (its
    ``check_environment`` says so otherwise). It keeps the name ``triton_fused``: register it in an isolated
    registry (:func:`autograd.testing.isolated_kernels`), never next to the installed class.
    """
    if cls not in IMPLEMENTATIONS:
        raise TypeError(f"{cls!r} is not one of the triton_fused implementations")
    doc = f"{cls.__doc__} (NumPy arrays, in Triton's interpreter)"
    return type(f"Host{cls.__name__}", (cls,), {"backends": ("numpy",), "__doc__": doc})
