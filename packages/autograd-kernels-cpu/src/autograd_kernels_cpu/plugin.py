"""The package's kernels as implementations of autograd's kernel contracts, registered through entry points.

Every class here subclasses its op's contract (``autograd.ops.norm.LayerNormKernel``...),
is named ``cpu_fused`` and has priority 100 (this package's, see the plugin
guide), so on the NumPy backend each op runs here whenever the inputs fit:
float32 or float64 throughout (attention and the element-wise activations also
float16 and bfloat16, computed in float32 and rounded back), and for softmax and
log-softmax the last axis. Anything else is declined with the reason, and core's
reference runs.
``AUTOGRAD_KERNELS=reference`` turns the package off for a run;
``python -m autograd.kernels`` shows what was chosen.

Importing this module does not import Numba: each kernel module (and Numba)
loads the first time one of its Functions runs.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any, List, Optional, Tuple

import numpy as np

import autograd_kernels_cpu as K
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
from autograd.tensor import Function, Tensor, is_grad_enabled

__all__ = [
    "CPUAttention",
    "CPULayerNorm",
    "CPUSoftmax",
    "CPULogSoftmax",
    "CPUGelu",
    "CPURelu",
    "CPUSigmoid",
    "CPUTanh",
    "CPUCrossEntropy",
    "CPUConv2d",
    "CPUMaxPool2d",
    "CPUEmbedding",
    "CPUAdam",
]

NAME = "cpu_fused"
#: This package's priority (the plugin guide's table): above core's own kernels (10), below the GPU plugins.
PRIORITY = 100
_FLOATS = ("float32", "float64")
_LOW = ("float16", "bfloat16")


def _c(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a)


def _keep_shape(a: Any) -> np.ndarray:
    """``a`` in C order with its own shape: a 0-d array stays 0-d (a copy only when it is not contiguous)."""
    return np.require(a, requirements="C")


@functools.cache
def _has_numba() -> bool:
    # Looked up once: find_spec searches sys.path on disk (about 0.1 ms), and check() runs on every dispatch.
    return importlib.util.find_spec("numba") is not None


class _CPU:
    """What every implementation of this package shares: name, backend, priority, and the dtype rule."""

    name = NAME
    backends = ("numpy",)
    priority = PRIORITY
    floats: Tuple[str, ...] = _FLOATS  # the dtypes taken (one of them throughout)
    typed: Tuple[str, ...] = ()  # the array arguments that must have that dtype (default: every floating one)

    def check_environment(self) -> List[str]:
        reasons = super().check_environment()  # type: ignore[misc]
        if not _has_numba():
            reasons.append("numba is not installed (pip install numba)")
        return reasons

    def check(self, inputs: Any) -> List[str]:
        reasons = super().check(inputs)  # type: ignore[misc]
        dtypes = [inputs.dtype_of(n) for n in self.typed] if self.typed else inputs.dtypes
        floats = [d for d in dtypes if d and "int" not in d and d != "bool"] or [inputs.dtype]
        if any(d not in self.floats for d in floats) or len(set(floats)) > 1:
            reasons.append(f"dtypes {sorted(set(floats))}: only one of {', '.join(self.floats)} throughout")
        empty = [n for n, s, d in zip(inputs.names, inputs.shapes, inputs.dtypes) if d and 0 in s]
        if empty:
            reasons.append(f"empty {', '.join(empty)}: core's reference returns the empty result")
        return reasons


# --- element-wise activations ------------------------------------------------------------------------------------


def _pointwise(op: str, saves_input: bool) -> type:
    class Pointwise(Function):
        __doc__ = (
            f"{op} through autograd_kernels_cpu.{op}_forward/_backward (one fused pass each); float16 and bfloat16 "
            "are computed in float32 and rounded back, and saved in their own dtype."
        )

        def forward(self, x: Any) -> Any:
            self.dtype = x.dtype
            y = getattr(K, f"{op}_forward")(_c(_f32(x)))
            y = y if y.dtype == x.dtype else y.astype(x.dtype)
            self.saved = x if saves_input else y
            return y

        def backward(self, grad: Tensor) -> Any:
            dx = getattr(K, f"{op}_backward")(_c(_f32(grad.data)), _c(_f32(self.saved)))
            return dx if dx.dtype == self.dtype else dx.astype(self.dtype)

    Pointwise.__name__ = Pointwise.__qualname__ = f"CPU{op.capitalize()}Function"
    return Pointwise


def _f32(a: np.ndarray) -> np.ndarray:
    """float16 and bfloat16 as float32 (NumPy's half-precision loops are scalar: widening is the fast path)."""
    return a.astype(np.float32) if a.dtype.name in _LOW else a


class CPUGelu(_CPU, GeluKernel):
    """GELU (tanh approximation, computed as ``x * sigmoid(2u)``): one pass each way; the backward works from x."""

    floats = _FLOATS + _LOW
    function = _pointwise("gelu", saves_input=True)


class CPURelu(_CPU, ReluKernel):
    """ReLU: one pass each way (bit-identical to the reference)."""

    floats = _FLOATS + _LOW
    function = _pointwise("relu", saves_input=True)


class CPUSigmoid(_CPU, SigmoidKernel):
    """Sigmoid (overflow-free form), backward from the output."""

    floats = _FLOATS + _LOW
    function = _pointwise("sigmoid", saves_input=False)


class CPUTanh(_CPU, TanhKernel):
    """tanh, backward from the output."""

    floats = _FLOATS + _LOW
    function = _pointwise("tanh", saves_input=False)


# --- row-wise ops ----------------------------------------------------------------------------------------------


def _rows(a: Any) -> np.ndarray:
    return _c(a).reshape(-1, a.shape[-1])


class CPULayerNormFunction(Function):
    """Layer norm over the last axis, (rows, F) at a time; saves x, the mean and 1/std."""

    def forward(self, x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
        self.shape, self.x, self.weight = x.shape, _rows(x), _c(weight)
        y, self.mean, self.rstd = K.layer_norm_forward(self.x, self.weight, _c(bias), float(eps))
        return y.reshape(self.shape)

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        need = self.needs_input_grad
        dx, dw, db = K.layer_norm_backward(
            _rows(grad.data), self.x, self.weight, self.mean, self.rstd, need[0], need[1], need[2]
        )
        return (None if dx is None else dx.reshape(self.shape)), dw, db


class CPULayerNorm(_CPU, LayerNormKernel):
    """Layer norm: statistics and normalisation in one pass per row; dx, dw, db in one backward pass."""

    function = CPULayerNormFunction


def _last_axis(inputs: KernelInputs) -> List[str]:
    x = inputs.shape("x")
    if inputs.param("dim") != len(x) - 1:
        return [f"dim {inputs.param('dim')} of shape {x}: only the last axis"]
    return []


class _CPUSoftmaxFunction(Function):
    forward_fn = backward_fn = ""

    def forward(self, x: Any, dim: int = -1) -> Any:
        self.shape = x.shape
        self.y = getattr(K, self.forward_fn)(_rows(x))
        return self.y.reshape(self.shape)

    def backward(self, grad: Tensor) -> Any:
        return getattr(K, self.backward_fn)(_rows(grad.data), self.y).reshape(self.shape)


class CPUSoftmaxFunction(_CPUSoftmaxFunction):
    """Softmax over the last axis, one pass per row each way."""

    forward_fn, backward_fn = "softmax_forward", "softmax_backward"


class CPULogSoftmaxFunction(_CPUSoftmaxFunction):
    """Log-softmax over the last axis, one pass per row each way."""

    forward_fn, backward_fn = "log_softmax_forward", "log_softmax_backward"


class CPUSoftmax(_CPU, SoftmaxKernel):
    """Softmax over the last axis (other axes are declined)."""

    function = CPUSoftmaxFunction

    def check(self, inputs: KernelInputs) -> List[str]:
        return super().check(inputs) + _last_axis(inputs)


class CPULogSoftmax(_CPU, LogSoftmaxKernel):
    """Log-softmax over the last axis (other axes are declined)."""

    function = CPULogSoftmaxFunction

    def check(self, inputs: KernelInputs) -> List[str]:
        return super().check(inputs) + _last_axis(inputs)


class CPUCrossEntropyFunction(Function):
    """Log-softmax and NLL fused: one pass per row forward (keeping the log-sum-exp), one backward."""

    def forward(
        self, y_pred: Any, y_true: Any, ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean"
    ) -> Any:
        logits = y_pred
        self.shape, self.logits, self.targets = logits.shape, _rows(logits), _c(y_true.reshape(-1))
        self.ignore_index, self.smoothing = int(ignore_index), float(label_smoothing)
        total, count, self.lse = K.cross_entropy_forward(self.logits, self.targets, self.ignore_index, self.smoothing)
        self.scale = 1.0 if reduction == "sum" else (1.0 / count if count else 0.0)
        return np.asarray(float(total) * self.scale, dtype=logits.dtype)

    def backward(self, grad: Tensor) -> Tuple[Any, None]:
        scale = self.scale * float(np.asarray(grad.data))
        d = K.cross_entropy_backward(self.logits, self.lse, self.targets, self.ignore_index, self.smoothing, scale)
        return d.reshape(self.shape), None


class CPUCrossEntropy(_CPU, CrossEntropyKernel):
    """Cross-entropy with label smoothing and ignore_index, fused with its log-softmax."""

    function = CPUCrossEntropyFunction


# --- convolution, pooling, embedding --------------------------------------------------------------------------------


#: The forward keeps its im2col columns for the weight gradient when they take at most this many bytes;
#: larger ones are rebuilt in the backward. Keeping them saves one im2col pass per layer and step (the small
#: CNN benchmark's two convolutions keep 5 MiB); the cap bounds what a large input costs, since the columns
#: are about k*k times the input's size (9x for 3x3). The backward lets go of them.
KEEP_COLUMNS_BYTES = 16 << 20


class CPUConv2dFunction(Function):
    """Convolution as a fused pad+im2col, one BLAS product, and a fused col2im in the backward.

    With ``groups`` > 1 each group's channels go through the same kernels on their own (a depthwise
    convolution is one small product per channel), and the outputs are joined along the channel axis.
    """

    def forward(
        self,
        x: Any,
        weight: Any,
        *bias: Any,
        stride: int = 1,
        padding: Tuple[int, ...] = (0, 0, 0, 0),
        dilation: int = 1,
        groups: int = 1,
    ) -> Any:
        # The bias is the optional third input (absent, not None, so it never becomes a Tensor of None).
        self.x, self.weight, self.stride, self.padding = _c(x), _c(weight), int(stride), tuple(padding)
        self.dilation, self.groups = int(dilation), int(groups)
        self.has_bias = bool(bias)
        b = _c(bias[0]) if bias else None
        xs, ws, bs = self._groups(self.x, self.weight, b)
        keep = (
            is_grad_enabled()
            and self.needs_input_grad[1]
            and sum(
                K.columns_nbytes(xg, wg, self.stride, self.padding, b is not None, self.dilation)
                for xg, wg in zip(xs, ws)
            )
            <= KEEP_COLUMNS_BYTES
        )
        outs, self.cols = [], [] if keep else None
        for xg, wg, bg in zip(xs, ws, bs):
            if keep:
                y, cols = K.conv2d_forward(
                    xg, wg, bg, self.stride, self.padding, return_columns=True, dilation=self.dilation
                )
                self.cols.append(cols)
            else:
                y = K.conv2d_forward(xg, wg, bg, self.stride, self.padding, dilation=self.dilation)
            outs.append(y)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)

    def _groups(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> Tuple[List[Any], List[Any], List[Any]]:
        """Each group's input channels, filters and bias (the whole arrays for one group)."""
        g = self.groups
        if g == 1:
            return [x], [w], [b]
        cg, og = x.shape[1] // g, w.shape[0] // g
        xs = [_c(x[:, i * cg : (i + 1) * cg]) for i in range(g)]
        ws = [w[i * og : (i + 1) * og] for i in range(g)]
        bs = [None if b is None else b[i * og : (i + 1) * og] for i in range(g)]
        return xs, ws, bs

    def backward(self, grad: Tensor) -> Tuple[Any, ...]:
        need = self.needs_input_grad
        # The graph (and this Function) can outlive the backward: let the columns go now. A second backward
        # (retain_graph) rebuilds them.
        kept, self.cols = self.cols, None
        xs, ws, _ = self._groups(self.x, self.weight, None)
        og = self.weight.shape[0] // self.groups
        g = _c(grad.data)
        parts = []
        for i, (xg, wg) in enumerate(zip(xs, ws)):
            gi = g if self.groups == 1 else _c(g[:, i * og : (i + 1) * og])
            parts.append(
                K.conv2d_backward(
                    gi,
                    xg,
                    wg,
                    self.stride,
                    self.padding,
                    need[0],
                    need[1],
                    self.has_bias and need[2],
                    cols=None if kept is None else kept[i],
                    dilation=self.dilation,
                )
            )

        def joined(which: int, axis: int) -> Any:
            got = [p[which] for p in parts]
            if got[0] is None:
                return None
            return got[0] if len(got) == 1 else np.concatenate(got, axis=axis)

        dx, dw, db = joined(0, 1), joined(1, 0), joined(2, 0)
        return (dx, dw, db) if self.has_bias else (dx, dw)


class CPUConv2d(_CPU, Conv2dKernel):
    """2-D convolution: square kernels of any size, one stride and one dilation for both axes, any zero
    padding, any number of groups."""

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        _, _, kh, kw = inputs.shape("weight")
        (sh, sw), (dh, dw) = inputs.param("stride"), inputs.param("dilation")
        if kh != kw:
            reasons.append(f"kernel {kh}x{kw}: only square kernels")
        if sh != sw:
            reasons.append(f"stride {(sh, sw)}: only one stride for both axes")
        if dh != dw:
            reasons.append(f"dilation {(dh, dw)}: only one dilation for both axes")
        return reasons

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
        return CPUConv2dFunction.apply(*tensors, stride=stride[0], padding=padding, dilation=dilation[0], groups=groups)


class CPUMaxPool2dFunction(Function):
    """Max over k x k windows in one pass; the backward splits each window's gradient among its ties."""

    def forward(
        self, x: Any, kernel_size: Tuple[int, int], stride: Tuple[int, int], padding: Tuple[int, ...] = (0, 0, 0, 0)
    ) -> Any:
        self.x, self.k, self.s = _c(x), int(kernel_size[0]), int(stride[0])
        self.y = K.max_pool2d_forward(self.x, self.k, self.s)
        return self.y

    def backward(self, grad: Tensor) -> Any:
        return K.max_pool2d_backward(_c(grad.data), self.x, self.y, self.k, self.s)


class CPUMaxPool2d(_CPU, MaxPool2dKernel):
    """Max-pooling with the reference's tie rule (bit-identical gradients): square windows, one stride, no padding."""

    function = CPUMaxPool2dFunction

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        (kh, kw), (sh, sw) = inputs.param("kernel_size"), inputs.param("stride")
        if kh != kw or sh != sw:
            reasons.append(f"kernel {(kh, kw)} stride {(sh, sw)}: only square windows and one stride")
        if any(inputs.param("padding")):
            reasons.append(f"padding {inputs.param('padding')}: only none")
        return reasons


class CPUEmbeddingFunction(Function):
    """Row lookup; the backward scatter-adds the gradient rows in parallel without races."""

    def forward(self, indices: Any, weight: Any) -> Any:
        self.rows, self.indices = weight.shape[0], indices
        return weight[indices]

    def backward(self, grad: Tensor) -> Tuple[None, Any]:
        g = grad.data
        return None, K.embedding_backward(_c(g.reshape(-1, g.shape[-1])), _c(self.indices.reshape(-1)), self.rows)


class CPUEmbedding(_CPU, EmbeddingKernel):
    """Embedding with a parallel scatter-add backward (bit-identical to the reference)."""

    function = CPUEmbeddingFunction


# --- attention ---------------------------------------------------------------------------------------------------


class CPUAttentionFunction(Function):
    """Memory-linear attention: per head, score blocks through single-threaded BLAS and one fused Numba pass.

    float16 and bfloat16 inputs (the mixed-precision policy's products) are widened to float32 for the
    kernels and the results rounded back: what the backward keeps is the low-precision inputs and output
    (those the graph holds anyway) and the float32 log-sum-exp, never a (Tq, Tk) block, where the dense
    path would keep several.
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
        self.low = query.dtype if query.dtype.name in _LOW else None
        self.q, self.k, self.v = _c(query), _c(key), _c(value)
        self.scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
        self.causal, self.p, self.seed = bool(is_causal) and mask is None, float(dropout_prob), int(seed or 0)
        self.bias = None
        if mask is not None:  # the contract's additive form: 0 allowed, -1e9 forbidden
            work = np.float32 if self.low is not None else query.dtype  # widened first: -1e9 overflows float16
            forbid = np.where(mask, -1.0e9, 0.0) if mask.dtype == np.bool_ else mask.astype(work) * -1.0e9
            self.bias = forbid.astype(work, copy=False)
        q, k, v = self._wide(self.q), self._wide(self.k), self._wide(self.v)
        out, self.lse = K.attention_forward(q, k, v, self.scale, self.causal, self.bias, self.p, self.seed)
        self.out = out if self.low is None else out.astype(self.low)
        return self.out

    def backward(self, grad: Tensor) -> Tuple[Any, Any, Any]:
        grads = K.attention_backward(
            self._wide(self.q),
            self._wide(self.k),
            self._wide(self.v),
            self._wide(self.out),
            self.lse,
            self._wide(_c(grad.data)),
            self.scale,
            self.causal,
            self.bias,
            self.p,
            self.seed,
        )
        return grads if self.low is None else tuple(g.astype(self.low) for g in grads)  # type: ignore[return-value]

    def _wide(self, a: np.ndarray) -> np.ndarray:
        return a if self.low is None else a.astype(np.float32)


class CPUAttention(_CPU, AttentionKernel):
    """Fused, memory-linear attention for NumPy: any shapes, bool and additive masks, causal, dropout.

    Its dropout decisions are core's (``autograd.kernels.dropout``), so a seeded run drops the same elements as
    the dense and ``numpy_tiled`` paths. It also takes float16 and bfloat16 (computed in float32, rounded back),
    so a mixed-precision model keeps its memory-linear attention.
    """

    floats = _FLOATS + _LOW
    typed = ("query", "key", "value")  # a floating mask is converted, whatever its dtype

    def check(self, inputs: KernelInputs) -> List[str]:
        reasons = super().check(inputs)
        if inputs.present("dropout_mask"):
            reasons.append("an explicit dropout_mask is not supported (it regenerates seeded decisions)")
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
        return CPUAttentionFunction.apply(
            query, key, value, mask=mask, is_causal=is_causal, dropout_prob=dropout_prob, scale=scale, seed=seed
        )


# --- Adam ----------------------------------------------------------------------------------------------------------


class CPUAdam(_CPU, AdamKernel):
    """The Adam/AdamW update of every parameter in one parallel pass, in place (bit-identical to the reference)."""

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
        # The parameters may be views (or, for float16 models, the optimizer's float32 masters): work on
        # contiguous arrays and hand those back, as the contract allows.
        # 0-d parameters stay 0-d (np.ascontiguousarray would make them (1,)), and a gradient set by hand in
        # another dtype (``p.grad = 0.7`` is float64) is cast to the parameter's, as the reference's arithmetic does.
        params = [_keep_shape(p) for p in params]
        exp_avgs = [_keep_shape(m) for m in exp_avgs]
        exp_avg_sqs = [_keep_shape(v) for v in exp_avg_sqs]
        grads = [_keep_shape(np.asarray(g, dtype=p.dtype)) for g, p in zip(grads, params)]
        K.adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay)
        return params, exp_avgs, exp_avg_sqs
