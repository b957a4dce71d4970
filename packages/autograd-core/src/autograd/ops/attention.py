r"""Scaled dot-product attention: the public function, the dense reference, and the contract a plugin implements.

:math:`\text{softmax}(QK^T \cdot scale + mask)\,V` on (batch, heads, seq, dim)
tensors. Core's reference materialises the (B, H, Tq, Tk) scores from Tensor
ops (its gradients come from them); kernels such as the CPU, MLX and CUDA
plugins work in tiles and keep memory linear in the sequence length. Under
:class:`~autograd.precision.autocast` attention runs in the policy's low dtype.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.backend import dtype_name
from autograd.engine import ShapeError, TensorTypeError
from autograd.kernels.contract import (
    CoreReference,
    Kernel,
    KernelCase,
    KernelInputs,
    compare_arrays,
    make_inputs,
)
from autograd.kernels.dropout import keep_scale
from autograd.kernels.registry import Explanation, dispatch, explain
from autograd.ops.activations import softmax
from autograd.precision import to_low
from autograd.tensor import Tensor

__all__ = [
    "scaled_dot_product_attention",
    "explain_attention",
    "dense_attention",
    "AttentionKernel",
    "mask_value",
    "causal_forbidden",
    "dropout_keep_scale",
    "ATTENTION_SHAPES",
]

#: (batch, heads, Tq, Tk, head_dim) of the conformance cases: lengths of 1 and non-multiples of tile sizes.
ATTENTION_SHAPES = [
    (1, 1, 1, 1, 16),
    (2, 3, 5, 5, 16),
    (1, 2, 17, 17, 32),
    (1, 2, 20, 33, 64),
    (2, 1, 33, 20, 64),
    (1, 1, 1, 40, 64),
    (1, 2, 70, 70, 32),
    (1, 1, 64, 64, 128),
    (0, 2, 3, 3, 16),  # an empty batch
]


def _arguments(query: Tensor, key: Tensor, value: Tensor, mask: Any, dropout_prob: float) -> Any:
    """Check an attention call; return the mask as a backend array (bool, or floating like the query) or None."""
    q, k, v = query.shape, key.shape, value.shape
    if len(q) != 4 or len(k) != 4 or len(v) != 4:
        raise ShapeError(
            f"scaled_dot_product_attention: expected query, key and value of shape (batch, heads, seq, dim), "
            f"got {q}, {k} and {v}"
        )
    if q[:2] != k[:2] or k[:2] != v[:2] or q[-1] != k[-1] or k[-2] != v[-2]:
        raise ShapeError(
            "scaled_dot_product_attention: query (B, H, Tq, D), key (B, H, Tk, D) and value (B, H, Tk, Dv) "
            f"do not fit together: got {q}, {k} and {v}"
        )
    if not 0.0 <= dropout_prob < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_prob must be in [0, 1), got {dropout_prob}")
    if not (backend.is_floating(query.dtype) and query.dtype == key.dtype == value.dtype):
        raise TensorTypeError(
            f"scaled_dot_product_attention: query, key and value need one floating dtype, got "
            f"{query.dtype}, {key.dtype} and {value.dtype}"
        )
    if mask is None:
        return None
    arr = mask.data if isinstance(mask, Tensor) else mask
    if not backend.is_array(arr):
        arr = backend.asarray(np.asarray(arr))
    target = (q[0], q[1], q[2], k[2])
    shape = tuple(arr.shape)
    if not (len(shape) <= 4 and all(m in (1, t) for m, t in zip(shape[::-1], target[::-1]))):
        raise ShapeError(
            f"scaled_dot_product_attention: mask of shape {shape} does not broadcast to "
            f"(batch, heads, Tq, Tk) = {target}"
        )
    if arr.dtype != backend.dtype("bool") and not backend.is_floating(arr.dtype):
        arr = arr.astype(query.dtype)
    return arr


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    *,
    scale: Optional[float] = None,
    seed: Optional[int] = None,
    implementation: Optional[str] = None,
) -> Tensor:
    r""":math:`\text{softmax}(QK^T \cdot scale + mask)\,V`, through the best attention implementation.

    Args:
        query: (B, H, Tq, D).
        key: (B, H, Tk, D).
        value: (B, H, Tk, Dv).
        mask: Broadcastable to (B, H, Tq, Tk). A float mask is additive with
            1.0 = forbidden and 0.0 = allowed; a bool mask forbids where True.
        is_causal: Structural causal masking (query ``i`` sees keys
            ``j <= i + Tk - Tq``), applied only when no ``mask`` is given.
        dropout_prob: Dropout on the attention probabilities (pass 0 in eval).
        scale: Defaults to ``1/sqrt(D)``.
        seed: Seed of the dropout mask; drawn from the backend generator when
            omitted (so ``autograd.backend.seed`` makes runs reproducible).
        implementation: Force one implementation by name (see
            ``python -m autograd.kernels``); otherwise ``AUTOGRAD_KERNELS`` or
            automatic selection decides.

    Returns:
        (B, H, Tq, Dv) in the query's dtype.

    Examples:
        >>> q = Tensor(xp.random.randn(1, 2, 5, 8))
        >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
        (1, 2, 5, 8)
    """
    query, key, value = to_low(query, key, value)  # under autocast, attention runs in the low dtype
    mask = _arguments(query, key, value, mask, dropout_prob)
    if dropout_prob > 0.0 and seed is None:
        seed = backend.random_seed()
    return dispatch(
        AttentionKernel,
        query,
        key,
        value,
        mask=mask,
        is_causal=bool(is_causal) and mask is None,
        dropout_prob=float(dropout_prob),
        scale=scale,
        seed=seed,
        dropout_mask=None,
        implementation=implementation,
    )


def explain_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    *,
    implementation: Optional[str] = None,
) -> Explanation:
    """Which implementation :func:`scaled_dot_product_attention` would run for these inputs, and why.

    ``print`` the returned :class:`~autograd.kernels.Explanation` for a readable report. Which implementation
    wins depends on the plugins installed and the backend; ``implementation=`` asks about one by name.

    Examples:
        >>> q = Tensor(xp.zeros((1, 2, 8, 16), dtype=xp.float32))
        >>> report = explain_attention(q, q, q, is_causal=True)
        >>> report.inputs.op, report.chosen in [c.name for c in report.candidates]
        ('attention', True)
        >>> print(explain_attention(q, q, q, implementation="reference"))  # doctest: +ELLIPSIS
        attention for backend=numpy, dtype=float32, query=(1, 2, 8, 16), ..., is_causal=False, ...
        selection: argument; chosen: reference
          * reference (priority -1000): chosen
    """
    query, key, value = to_low(query, key, value)
    mask = _arguments(query, key, value, mask, dropout_prob)
    inputs = AttentionKernel.describe(
        query,
        key,
        value,
        mask=mask,
        is_causal=bool(is_causal) and mask is None,
        dropout_prob=float(dropout_prob),
        scale=None,
        seed=None,
        dropout_mask=None,
    )
    return explain(inputs, implementation)


# --- the dense reference -----------------------------------------------------------------------------------------


def mask_value(dtype: str) -> float:
    """The large negative score a forbidden position gets (finite, so no NaN appears)."""
    return -3.0e4 if dtype == "float16" else -1.0e9


def causal_forbidden(seq_q: int, seq_k: int) -> Any:
    """Bool (Tq, Tk) array, True where key ``j > i + Tk - Tq`` (bottom-right aligned)."""
    i = np.arange(seq_q)[:, None]
    j = np.arange(seq_k)[None, :]
    return backend.asarray(j > i + (seq_k - seq_q))


def dropout_keep_scale(shape: Tuple[int, ...], dropout_prob: float, seed: int, dtype: Any) -> Any:
    """The dropout multiplier ``keep / (1 - p)`` of a whole (B, H, Tq, Tk) score matrix.

    The decisions are :func:`autograd.kernels.dropout.keep_mask`'s, so the
    dense and tiled implementations drop the same elements for a seed, on
    every backend.
    """
    b, h, tq, tk = shape
    return keep_scale(seed, b, h, range(tq), range(tk), dropout_prob, dtype)


def dense_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    mask: Any = None,
    is_causal: bool = False,
    dropout_prob: float = 0.0,
    scale: Optional[float] = None,
    seed: Optional[int] = None,
    dropout_mask: Any = None,
) -> Tensor:
    """softmax(q k^T * scale + mask) [* dropout] @ v, from Tensor ops.

    ``dropout_mask`` (a keep-scale array of shape (B, H, Tq, Tk)) replaces the
    seeded dropout decisions.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    neg = mask_value(dtype_name(query.dtype))
    # Every mask becomes an additive bias (0 allowed, `neg` forbidden): an Add passes the gradient through
    # untouched, where a masked fill would build two selects in its backward.
    if mask is not None and mask.dtype != backend.dtype("bool"):
        bias = (mask.astype(query.dtype) * neg).astype(query.dtype)  # bfloat16 * a Python float is float32
    elif mask is not None or is_causal:
        forbidden = mask if mask is not None else causal_forbidden(query.shape[-2], key.shape[-2])
        bias = backend.lib.where(forbidden, neg, 0.0).astype(query.dtype)
    else:
        bias = None
    if bias is not None:
        scores = scores + Tensor(bias, requires_grad=False)
    probs = softmax(scores)
    if dropout_mask is not None:
        probs = probs * Tensor(backend.asarray(dropout_mask).astype(query.dtype), requires_grad=False)
    elif dropout_prob > 0.0:
        if seed is None:
            seed = backend.random_seed()
        keep = dropout_keep_scale(tuple(probs.shape), dropout_prob, seed, query.dtype)
        probs = probs * Tensor(keep, requires_grad=False)
    return probs @ value


# --- the contract --------------------------------------------------------------------------------------------------


class AttentionKernel(Kernel):
    """The ``attention`` op: ``apply(query, key, value, *, mask, is_causal, dropout_prob, scale, seed, dropout_mask)``.

    Tensors in, a Tensor out (built by your own Function or by Tensor ops, so
    gradients flow):

    * ``query`` (B, H, Tq, D), ``key`` (B, H, Tk, D), ``value`` (B, H, Tk, Dv),
      one floating dtype; the output is (B, H, Tq, Dv) in that dtype.
    * ``scale``: a float, or ``None`` for ``1/sqrt(D)``.
    * ``mask``: ``None`` or a backend array that broadcasts to (B, H, Tq, Tk),
      with 2 to 4 dimensions as the caller gave it (expand it yourself). A bool
      mask forbids where True; a floating mask is additive with 1.0 =
      forbidden and 0.0 = allowed: the scores get ``mask * -1e9`` (``-3e4`` in
      float16). Integer masks arrive converted to the query's dtype. A mask
      turns ``is_causal`` off (it arrives False).
    * ``is_causal``: query ``i`` sees keys ``j <= i + Tk - Tq`` (aligned to the
      bottom right, as for a KV cache). Rows that see no key are unspecified.
    * ``dropout_prob`` in [0, 1) and ``seed`` (an int, or ``None`` when
      ``dropout_prob`` is 0): the probabilities are multiplied by
      ``keep / (1 - p)``, where the keep decision of element (b, h, i, j) must
      be a function of ``seed`` and that position only, so the backward can
      regenerate it. Core's implementations use
      :func:`autograd.kernels.dropout.keep_mask`; call it to reproduce their
      decisions exactly.
    * ``dropout_mask``: ``None``, or an explicit (B, H, Tq, Tk) multiplier that
      replaces the seeded decisions (the MLX custom front end passes one);
      decline it in ``check`` if you do not take it
      (``inputs.present("dropout_mask")``).

    In :class:`~autograd.kernels.KernelInputs`, ``mask`` and ``dropout_mask``
    are array arguments (``inputs.dtype_of("mask")`` is ``"bool"``, a float
    dtype, or ``""`` when absent); the others are parameters.
    """

    op = "attention"
    array_params = ("mask", "dropout_mask")
    differentiable = ("query", "key", "value")
    tolerances = {
        "float64": (1e-9, 1e-7),
        "float32": (1e-4, 1e-3),
        "float16": (3e-3, 2e-2),
        "bfloat16": (2e-2, 5e-2),
    }

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
        """(B, H, Tq, D), (B, H, Tk, D), (B, H, Tk, Dv) -> (B, H, Tq, Dv)."""
        return self.call_function(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            dropout_mask=dropout_mask,
        )

    @classmethod
    def reference(cls) -> Kernel:
        return AttentionReference()

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        b, h, tq, _ = inputs.shape("query")
        return (b, h, tq, inputs.shape("value")[-1]), inputs.dtype_of("query")

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Every shape of :data:`ATTENTION_SHAPES`, plain, causal, with a bool and with an additive mask.

        Causal cases with ``Tq > Tk`` are skipped: their first rows see no key (unspecified).
        """
        out = []
        for b, h, tq, tk, d in ATTENTION_SHAPES:
            arrays = [rng.standard_normal((b, h, tq, d)), rng.standard_normal((b, h, tk, d))]
            arrays.append(rng.standard_normal((b, h, tk, d)))
            allowed = rng.random((b, 1, tq, tk)) > 0.3
            allowed[..., 0] = True  # every row keeps at least one key
            masks = {"none": None, "bool": ~allowed, "additive": (~allowed).astype(np.float64)}
            for kind, causal in [("none", False), ("none", True), ("bool", False), ("additive", False)]:
                label = f"B={b} H={h} Tq={tq} Tk={tk} D={d} mask={kind} causal={causal}"
                params = dict(
                    mask=masks[kind], is_causal=causal, dropout_prob=0.0, scale=None, seed=None, dropout_mask=None
                )
                skip = f"the first {tq - tk} rows see no key (unspecified)" if causal and tq > tk else ""
                out.append(KernelCase(label, list(arrays), params, (True, True, True), skip=skip))
        return out

    @classmethod
    def extra_cases(cls, impl: Kernel, rng: np.random.Generator) -> List[Tuple[str, KernelInputs, Callable]]:
        """Dropout: the kernel's own mask read back through an identity value matrix, then compared exactly.

        Its multipliers must be 0 or ``1/(1-p)``, zero where causal masking
        forbids, kept at the rate ``1 - p``, the same for the same seed, and
        the output and gradients must match the reference run with that same
        mask (which also proves the backward regenerates it).
        """
        out = []
        for b, h, tq, tk, causal in [(2, 2, 24, 32, False), (1, 2, 32, 32, True)]:
            d = tk  # head_dim == Tk lets an identity value matrix read the mask back
            label = f"dropout p=0.25 B={b} H={h} Tq={tq} Tk={tk} D={d} causal={causal}"
            shapes = {"query": (b, h, tq, d), "key": (b, h, tk, d), "value": (b, h, tk, d)}
            params = {"is_causal": causal, "dropout_prob": 0.25, "scale": None, "seed": 0}
            inputs = make_inputs(cls, "float32", shapes, params)
            seed = int(rng.integers(0, 2**31 - 1))
            data = [rng.standard_normal(shapes[n]) for n in ("query", "key", "value")]
            upstream = rng.standard_normal((b, h, tq, d))
            out.append((label, inputs, _dropout_check(cls, impl, (b, h, tq, tk, d), causal, seed, data, upstream)))
        return out

    @classmethod
    def probe(
        cls,
        dtype: str = "float32",
        seq: int = 128,
        head_dim: int = 64,
        mask: str = "none",
        dropout: float = 0.0,
        causal: bool = True,
        **options: Any,
    ) -> KernelInputs:
        """Batch 1, 8 heads, self-attention of ``seq`` tokens; causal unless a ``mask`` (bool/additive) is given."""
        shape = (1, 8, int(seq), int(head_dim))
        shapes = {"query": shape, "key": shape, "value": shape}
        dtypes = {}
        if mask != "none":
            shapes["mask"] = (int(seq), int(seq))
            dtypes["mask"] = "bool" if mask == "bool" else dtype
        params = {"is_causal": bool(causal) and mask == "none", "dropout_prob": float(dropout), "scale": None}
        params["seed"] = 0 if dropout else None
        return make_inputs(cls, dtype, shapes, params, dtypes)


def _dropout_check(
    contract: type,
    impl: Kernel,
    dims: Tuple[int, ...],
    causal: bool,
    seed: int,
    data: List[np.ndarray],
    upstream: np.ndarray,
) -> Callable[[], List[Optional[str]]]:
    b, h, tq, tk, d = dims
    p, dt = 0.25, backend.dtype("float32")
    atol, rtol = contract.tolerances["float32"]
    kw = dict(mask=None, is_causal=causal, dropout_prob=p, scale=None, seed=seed, dropout_mask=None)

    def run() -> List[Optional[str]]:
        zeros_q, zeros_k = np.zeros((b, h, tq, d)), np.zeros((b, h, tk, d))
        eye = np.broadcast_to(np.eye(tk), (b, h, tk, tk))
        probe = impl.apply(*(Tensor(backend.asarray(a).astype(dt)) for a in (zeros_q, zeros_k, eye)), **kw)
        probe = np.asarray(backend.to_numpy(probe.data), dtype=np.float64)
        visible = np.ones((tq, tk), bool) if not causal else np.arange(tk)[None] <= np.arange(tq)[:, None] + tk - tq
        mask = probe * visible.sum(-1, keepdims=True)
        scale = 1 / (1 - p)
        on = mask[..., visible]
        problems: List[Optional[str]] = []
        if np.any(mask[..., ~visible] != 0):
            problems.append("dropout mask is non-zero where causal masking forbids")
        if not np.all((np.abs(on) < 1e-4) | (np.abs(on - scale) < 1e-3 * scale)):
            problems.append(f"dropout multipliers are not 0 or 1/(1-p) = {scale:.4f}")
        rate = float(np.mean(np.abs(on) > 1e-4))
        if abs(rate - (1 - p)) > 5 * float(np.sqrt(p * (1 - p) / on.size)):
            problems.append(f"keep rate {rate:.3f} is far from 1 - p = {1 - p:.3f}")
        mask = np.where(np.abs(mask) < 1e-4, 0.0, scale) * visible
        mine = [Tensor(backend.asarray(a).astype(dt)) for a in data]
        out = impl.apply(*mine, **kw)
        out.backward(backend.asarray(upstream).astype(out.dtype))
        again = impl.apply(*(Tensor(backend.asarray(a).astype(dt)) for a in data), **kw)
        if not np.array_equal(backend.to_numpy(again.data), backend.to_numpy(out.data)):
            problems.append("the same seed gave a different output")
        f64 = backend.dtype("float64")
        theirs = [Tensor(backend.asarray(a).astype(f64)) for a in data]
        ref = dense_attention(*theirs, is_causal=causal, dropout_mask=mask)
        ref.backward(backend.asarray(upstream))
        problems.append(compare_arrays("output", out, ref, atol, rtol))
        for name, g, r in zip("qkv", mine, theirs):
            grad = g.grad
            problems.append(
                f"d{name}: no gradient" if grad is None else compare_arrays(f"d{name}", grad, r.grad, atol, rtol)
            )
        return problems

    return run


class AttentionReference(CoreReference, AttentionKernel):
    """:func:`dense_attention`: any backend, dtype, mask, causal flag and dropout."""

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
        return dense_attention(
            query,
            key,
            value,
            mask=mask,
            is_causal=is_causal,
            dropout_prob=dropout_prob,
            scale=scale,
            seed=seed,
            dropout_mask=dropout_mask,
        )
