"""The contract of each hot op a kernel plugin can implement, and the dispatcher that routes calls to them.

Every op has a base class here. A kernel author subclasses it, sets ``name``,
``backends`` and ``priority``, extends ``check`` (and optionally ``advise``),
and provides the computation, in one of two ways:

* set ``function`` to a :class:`~autograd.tensor.Function` subclass whose
  ``forward`` takes the op's arrays and keyword parameters, exactly as listed
  in the base class, and whose ``backward`` returns one gradient per array
  argument (``None`` where ``needs_input_grad`` is False): the base class's
  ``apply`` calls ``function.apply(...)``; or
* override ``apply`` itself (it receives Tensors and returns a Tensor), for a
  composition of Tensor ops or several Functions.

The Adam update is not differentiable and has an ``update`` method instead.

Arrays are the active backend's, C-contiguous unless stated, of the dtype the
inputs report. The reference implementation of every op is in
:mod:`autograd.kernels.reference` (attention: :mod:`autograd.kernels.dense`);
:func:`autograd.testing.check_kernel_implementation` checks a kernel against
it. ``python -m autograd.kernels`` lists what is installed.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

from autograd import backend
from autograd.kernels import registry
from autograd.kernels.registry import KernelImplementation, KernelInputs, KernelOutputError
from autograd.precision import to_low

__all__ = [
    "AttentionInputs",
    "AttentionImplementation",
    "FunctionKernel",
    "LayerNormImplementation",
    "SoftmaxImplementation",
    "LogSoftmaxImplementation",
    "CrossEntropyImplementation",
    "GeluImplementation",
    "ReluImplementation",
    "SigmoidImplementation",
    "TanhImplementation",
    "Conv2dImplementation",
    "MaxPool2dImplementation",
    "EmbeddingImplementation",
    "AdamImplementation",
    "OpSpec",
    "OPS",
    "describe",
    "dispatch",
]


# --- attention ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionInputs:
    """What a capability check sees of an attention call.

    Shapes are (batch, heads, seq, head_dim); ``dtype`` is the name of the
    query's dtype (``"float32"``, ``"bfloat16"``...); ``mask`` is ``"none"``,
    ``"bool"`` or ``"additive"``, and ``mask_shape`` its shape (any shape that
    broadcasts to (B, H, Tq, Tk), as the caller gave it). ``is_causal`` is
    already False when a mask is given.
    """

    backend: str
    query_shape: Tuple[int, ...]
    key_shape: Tuple[int, ...]
    value_shape: Tuple[int, ...]
    dtype: str
    mask: str = "none"
    mask_shape: Optional[Tuple[int, ...]] = None
    is_causal: bool = False
    dropout_prob: float = 0.0
    requires_grad: bool = True

    op: ClassVar[str] = "attention"

    @property
    def batch(self) -> int:
        return self.query_shape[0]

    @property
    def heads(self) -> int:
        return self.query_shape[1]

    @property
    def seq_q(self) -> int:
        return self.query_shape[-2]

    @property
    def seq_k(self) -> int:
        return self.key_shape[-2]

    @property
    def head_dim(self) -> int:
        return self.query_shape[-1]

    @property
    def value_dim(self) -> int:
        return self.value_shape[-1]

    def describe(self) -> str:
        """One line naming every field, for error messages."""
        mask = self.mask if self.mask_shape is None else f"{self.mask} {self.mask_shape}"
        return (
            f"backend={self.backend}, query={self.query_shape}, key={self.key_shape}, value={self.value_shape}, "
            f"dtype={self.dtype}, mask={mask}, is_causal={self.is_causal}, dropout_prob={self.dropout_prob}"
        )


class AttentionImplementation(KernelImplementation):
    """Attention: ``attention(query, key, value, *, mask, is_causal, dropout_prob, scale, seed) -> Tensor``.

    Arguments (Tensors in, a Tensor out, built by your own
    :class:`~autograd.tensor.Function` or by Tensor ops so gradients flow):

    * ``query`` (B, H, Tq, D), ``key`` (B, H, Tk, D), ``value`` (B, H, Tk, Dv),
      one floating dtype; the output is (B, H, Tq, Dv) in that dtype (the
      dispatcher checks).
    * ``scale``: a float, or ``None`` for ``1/sqrt(D)``.
    * ``mask``: ``None`` or a backend array that broadcasts to (B, H, Tq, Tk),
      with 2 to 4 dimensions as the caller gave it (expand it yourself). A bool
      mask forbids where True; a floating mask (the query's dtype) is additive
      with 1.0 = forbidden and 0.0 = allowed: the scores get ``mask * -1e9``
      (``-3e4`` in float16). Integer masks arrive converted to the query's
      dtype. An explicit mask turns ``is_causal`` off (it arrives False).
    * ``is_causal``: query ``i`` sees keys ``j <= i + Tk - Tq`` (aligned to the
      bottom right, as for a KV cache). Rows that see no key are unspecified.
    * ``dropout_prob`` in [0, 1) and ``seed`` (an int, or ``None`` when
      ``dropout_prob`` is 0): the probabilities are multiplied by
      ``keep / (1 - p)``, where the keep decision of element (b, h, i, j) must
      be a function of ``seed`` and that position only, so the backward can
      regenerate it. Core's implementations use
      :func:`autograd.kernels.dropout.keep_mask`; call it to reproduce their
      decisions exactly.

    ``scores = q @ k^T * scale``; the dense reference (:mod:`autograd.kernels.dense`) defines the rest.
    """

    op: ClassVar[str] = "attention"

    @abstractmethod
    def attention(
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
        """Compute attention on Tensors (masks arrive as backend arrays or None)."""

    def apply(self, query: Any, key: Any, value: Any, **kwargs: Any) -> Any:
        """The generic entry point: :meth:`attention`."""
        return self.attention(query, key, value, **kwargs)


# --- ops computed by a Function ------------------------------------------------------------------------------


class FunctionKernel(KernelImplementation):
    """Base of the ops whose computation is one :class:`~autograd.tensor.Function` (``function``).

    ``apply(*tensors, **params)`` is ``function.apply(*tensors, **params)``;
    override ``apply`` instead to compose Tensor ops.
    """

    function: ClassVar[Optional[type]] = None

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise NotImplementedError(f"{type(self).__name__} sets neither `function` nor overrides `apply`")
        return self.function.apply(*args, **kwargs)


class LayerNormImplementation(FunctionKernel):
    """Layer normalization over the last axis: ``apply(x, weight, bias, *, eps) -> y``.

    ``x`` (..., F), ``weight`` and ``bias`` (F,), ``y`` like ``x``:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the
    (biased) variance over the last axis. The backward returns ``(dx, dw, db)``.
    Inputs: names ``("x", "weight", "bias")``, params ``eps``.
    """

    op: ClassVar[str] = "layer_norm"


class SoftmaxImplementation(FunctionKernel):
    """Softmax along one axis: ``apply(x, *, dim) -> y`` (``dim`` non-negative, ``y`` like ``x``).

    Inputs: names ``("x",)``, params ``dim``. Backward: ``dx = y * (g - sum(g * y, dim))``.
    """

    op: ClassVar[str] = "softmax"


class LogSoftmaxImplementation(FunctionKernel):
    """Log-softmax along one axis: ``apply(x, *, dim) -> y`` (``dim`` non-negative, ``y`` like ``x``).

    Inputs: names ``("x",)``, params ``dim``. Backward: ``dx = g - exp(y) * sum(g, dim)``.
    """

    op: ClassVar[str] = "log_softmax"


class _Pointwise(FunctionKernel):
    """An element-wise activation: ``apply(x) -> y`` with ``y`` like ``x``; inputs: names ``("x",)``."""


class GeluImplementation(_Pointwise):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, element-wise."""

    op: ClassVar[str] = "gelu"


class ReluImplementation(_Pointwise):
    """ReLU: ``max(x, 0)``; the gradient passes where ``x > 0``."""

    op: ClassVar[str] = "relu"


class SigmoidImplementation(_Pointwise):
    """Sigmoid ``1 / (1 + exp(-x))``, computed without overflow for any ``x``."""

    op: ClassVar[str] = "sigmoid"


class TanhImplementation(_Pointwise):
    """Hyperbolic tangent, element-wise."""

    op: ClassVar[str] = "tanh"


class CrossEntropyImplementation(FunctionKernel):
    """Fused log-softmax + NLL: ``apply(logits, targets, *, ignore_index, label_smoothing, reduction) -> loss``.

    ``logits`` (N, C) or (N, T, C); ``targets`` an integer Tensor (N,) or
    (N, T) whose values are in ``0..C-1`` or equal ``ignore_index`` (checked
    before the call); ``reduction`` is ``"mean"`` (over the non-ignored
    targets; 0 when all are ignored) or ``"sum"``; the loss is a 0-d Tensor in
    the logits' dtype (float32 for low-precision logits). With smoothing ``eps`` the target distribution is
    ``(1 - eps) onehot + eps / C``. The backward returns ``(dlogits, None)``.
    float16 and bfloat16 logits: the loss is computed, and returned, in float32
    (losses run in float32, see :mod:`autograd.precision`).
    Inputs: names ``("logits", "targets")``, params ``ignore_index``,
    ``label_smoothing``, ``reduction``.
    """

    op: ClassVar[str] = "cross_entropy"


class Conv2dImplementation(FunctionKernel):
    """2-D cross-correlation: ``apply(x, weight, bias, *, stride, padding) -> y``.

    ``x`` (N, C, H, W), ``weight`` (O, C, k, k), ``bias`` (O,) or ``None``,
    ``stride`` an int, ``padding`` ``(top, bottom, left, right)`` zeros;
    ``y`` (N, O, Ho, Wo) with ``Ho = (H + top + bottom - k) // stride + 1``.
    The backward returns ``(dx, dweight, dbias)`` (``dbias`` None without bias).
    Inputs: names ``("x", "weight", "bias")`` (the bias shape is ``()`` when
    absent), params ``stride``, ``padding``.
    """

    op: ClassVar[str] = "conv2d"


class MaxPool2dImplementation(FunctionKernel):
    """Max over k x k windows: ``apply(x, *, kernel_size, stride) -> y``.

    ``x`` (N, C, H, W) (already padded by the caller, with -inf),
    ``y`` (N, C, (H - k) // stride + 1, (W - k) // stride + 1). The backward
    sends each window's gradient to its maxima, split equally among ties, and
    adds up where windows overlap. Inputs: names ``("x",)``, params
    ``kernel_size``, ``stride``.
    """

    op: ClassVar[str] = "max_pool2d"


class EmbeddingImplementation(FunctionKernel):
    """Row lookup: ``apply(weight, indices) -> rows``.

    ``weight`` (V, E); ``indices`` an integer backend array of any shape with
    values in ``0..V-1`` (checked before the call; not a Tensor); ``rows`` is
    ``indices.shape + (E,)``. The backward is the hot part: a scatter-add of
    the gradient rows into a (V, E) zero array (repeated indices add up).
    Inputs: names ``("weight", "indices")``.
    """

    op: ClassVar[str] = "embedding"


class AdamImplementation(KernelImplementation):
    """The Adam/AdamW update of every parameter at once (not differentiable).

    ``update(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay)``:
    lists of equally long backend arrays (each parameter's own shape, all of
    one floating dtype) and ``steps``, each parameter's step count ``t``
    (already counting this step). For each parameter::

        p = p * (1 - lr * weight_decay)                      # when weight_decay > 0
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Returns ``(params, exp_avgs, exp_avg_sqs)``: the new arrays (NumPy and CuPy
    kernels may update in place and return the same arrays; MLX arrays are
    immutable). Inputs: names ``("params",)`` with the shape ``(count,)``,
    params ``numel``, ``weight_decay``; ``dtypes`` lists the distinct dtypes
    of the parameters (the optimizer calls once per dtype).
    """

    op: ClassVar[str] = "adam"

    @abstractmethod
    def update(
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
        """Apply one update (see the class docstring)."""

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        return self.update(*args, **kwargs)


# --- the table of ops ------------------------------------------------------------------------------------------


def _shape_of(x: Any) -> Tuple[int, ...]:
    return () if x is None else tuple(int(s) for s in x.shape)


def _same_as(name: str) -> Callable[[KernelInputs], Tuple[int, ...]]:
    return lambda inputs: inputs.shape(name)


def _conv_out(inputs: KernelInputs) -> Tuple[int, ...]:
    n, _, h, w = inputs.shape("x")
    o, _, k, _ = inputs.shape("weight")
    s = inputs.param("stride")
    top, bottom, left, right = inputs.param("padding")
    return (n, o, (h + top + bottom - k) // s + 1, (w + left + right - k) // s + 1)


def _pool_out(inputs: KernelInputs) -> Tuple[int, ...]:
    n, c, h, w = inputs.shape("x")
    k, s = inputs.param("kernel_size"), inputs.param("stride")
    return (n, c, (h - k) // s + 1, (w - k) // s + 1)


@dataclass(frozen=True)
class OpSpec:
    """An op: its base class, argument names and parameters, and the shape of its output (None: not checked)."""

    name: str
    base: type
    arrays: Tuple[str, ...]
    params: Tuple[str, ...]
    output_shape: Optional[Callable[[KernelInputs], Tuple[int, ...]]]


OPS: Dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("attention", AttentionImplementation, ("query", "key", "value"), (), None),
        OpSpec("layer_norm", LayerNormImplementation, ("x", "weight", "bias"), ("eps",), _same_as("x")),
        OpSpec("softmax", SoftmaxImplementation, ("x",), ("dim",), _same_as("x")),
        OpSpec("log_softmax", LogSoftmaxImplementation, ("x",), ("dim",), _same_as("x")),
        OpSpec("gelu", GeluImplementation, ("x",), (), _same_as("x")),
        OpSpec("relu", ReluImplementation, ("x",), (), _same_as("x")),
        OpSpec("sigmoid", SigmoidImplementation, ("x",), (), _same_as("x")),
        OpSpec("tanh", TanhImplementation, ("x",), (), _same_as("x")),
        OpSpec(
            "cross_entropy",
            CrossEntropyImplementation,
            ("logits", "targets"),
            ("ignore_index", "label_smoothing", "reduction"),
            lambda inputs: (),
        ),
        OpSpec("conv2d", Conv2dImplementation, ("x", "weight", "bias"), ("stride", "padding"), _conv_out),
        OpSpec("max_pool2d", MaxPool2dImplementation, ("x",), ("kernel_size", "stride"), _pool_out),
        OpSpec(
            "embedding",
            EmbeddingImplementation,
            ("weight", "indices"),
            (),
            lambda inputs: inputs.shape("indices") + inputs.shape("weight")[1:],
        ),
        OpSpec("adam", AdamImplementation, ("params",), ("numel", "weight_decay"), None),
    )
}


def describe(op: str, *args: Any, **params: Any) -> KernelInputs:
    """The :class:`~autograd.kernels.registry.KernelInputs` of a call of ``op`` (not attention)."""
    from autograd.tensor import Tensor, is_grad_enabled

    spec = OPS[op]
    if op == "adam":
        params_list = args[0]
        names = {backend.dtype_name(p.dtype) for p in params_list}
        return KernelInputs(
            op=op,
            backend=backend.BACKEND,
            dtype=backend.dtype_name(params_list[0].dtype) if params_list else "",
            names=spec.arrays,
            shapes=((len(params_list),),),
            params=(("numel", sum(int(p.size) for p in params_list)), ("weight_decay", params.get("weight_decay"))),
            requires_grad=False,
            dtypes=tuple(sorted(names)),
        )
    dtype = ""
    requires_grad = False
    for a in args:
        data = a.data if isinstance(a, Tensor) else a
        if not dtype and data is not None and hasattr(data, "dtype") and backend.is_floating(data.dtype):
            dtype = backend.dtype_name(data.dtype)
        requires_grad = requires_grad or (isinstance(a, Tensor) and a.requires_grad)
    datas = [a.data if isinstance(a, Tensor) else a for a in args]
    return KernelInputs(
        op=op,
        backend=backend.BACKEND,
        dtype=dtype,
        names=spec.arrays,
        shapes=tuple(_shape_of(a) for a in datas),
        params=tuple((k, params[k]) for k in spec.params if k in params),
        requires_grad=requires_grad and is_grad_enabled(),
        dtypes=tuple("" if a is None else backend.dtype_name(a.dtype) for a in datas),
    )


def _check_output(impl: KernelImplementation, inputs: KernelInputs, out: Any) -> None:
    from autograd.tensor import Tensor

    if not isinstance(out, Tensor):
        raise KernelOutputError(
            f"{impl.op} implementation {impl.name!r} returned {type(out).__name__}, not a Tensor, for "
            f"{inputs.describe()}"
        )
    want = OPS[impl.op].output_shape(inputs)  # type: ignore[misc]
    want_dtype = output_dtype(inputs)
    got_dtype = backend.dtype_name(out.dtype)
    if tuple(out.shape) != tuple(want) or got_dtype != want_dtype:
        raise KernelOutputError(
            f"{impl.op} implementation {impl.name!r} returned shape {tuple(out.shape)} {got_dtype}, expected "
            f"{tuple(want)} {want_dtype}, for {inputs.describe()}"
        )


def output_dtype(inputs: KernelInputs) -> str:
    """The dtype an op's output must have: its inputs' dtype, except a loss of low-precision logits (float32)."""
    if inputs.op == "cross_entropy" and inputs.dtype in ("float16", "bfloat16"):
        return "float32"
    return inputs.dtype


#: Ops that run in the low dtype under :class:`autograd.precision.autocast` (attention casts in its front end).
_LOW_PRECISION_OPS = frozenset({"conv2d"})


def dispatch(op: str, *args: Any, implementation: Optional[str] = None, **params: Any) -> Any:
    """Run ``op`` through the best registered implementation (see :mod:`autograd.kernels.registry`).

    With only core's reference registered for the op and no environment
    override this calls the reference directly: installing no plugin costs
    nothing. A plugin's output is checked against the op's contract.
    """
    if op in _LOW_PRECISION_OPS:
        args = to_low(*args)  # under autocast: convolutions run in the policy's low dtype
    if implementation is None:
        only = registry.sole(op)
        if only is not None:
            return only.apply(*args, **params)
    inputs = describe(op, *args, **params)
    impl = registry.select(inputs, implementation)
    out = impl.apply(*args, **params)
    if registry.entry(impl.name, op).package != "autograd-core":
        if op == "adam":
            check_adam_output(impl, args[0], out)
        elif OPS[op].output_shape is not None:
            _check_output(impl, inputs, out)
    return out


def check_attention_output(impl: KernelImplementation, inputs: AttentionInputs, out: Any) -> None:
    """The attention contract: a Tensor of shape (B, H, Tq, Dv) in the query's dtype."""
    from autograd.tensor import Tensor

    want = (inputs.batch, inputs.heads, inputs.seq_q, inputs.value_dim)
    if not isinstance(out, Tensor):
        raise KernelOutputError(
            f"attention implementation {impl.name!r} returned {type(out).__name__}, not a Tensor, for "
            f"{inputs.describe()}"
        )
    got_dtype = backend.dtype_name(out.dtype)
    if tuple(out.shape) != want or got_dtype != inputs.dtype:
        raise KernelOutputError(
            f"attention implementation {impl.name!r} returned shape {tuple(out.shape)} {got_dtype}, expected "
            f"{want} {inputs.dtype}, for {inputs.describe()}"
        )


def check_adam_output(impl: KernelImplementation, params: Sequence[Any], out: Any) -> None:
    """The Adam contract: three lists, each with one array per parameter, of the parameter's shape and dtype."""
    ok = isinstance(out, (tuple, list)) and len(out) == 3
    if ok:
        for group in out:
            ok = ok and len(group) == len(params)
            ok = ok and all(tuple(a.shape) == tuple(p.shape) and a.dtype == p.dtype for a, p in zip(group, params))
    if not ok:
        raise KernelOutputError(
            f"adam implementation {impl.name!r} must return (params, exp_avgs, exp_avg_sqs), three lists of "
            f"{len(params)} arrays shaped and typed like the parameters"
        )
