"""Test helpers for op, layer and kernel authors.

:func:`gradcheck` compares the gradients an op computes with float64 central
finite differences and reports the worst element.
:func:`check_attention_implementation` is the conformance suite every
attention kernel plugin runs against the dense reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from autograd import backend
from autograd.tensor import Tensor, no_grad

__all__ = [
    "import_torch",
    "GradcheckError",
    "gradcheck",
    "numerical_grad",
    "check_attention_implementation",
    "AttentionConformanceReport",
    "ATTENTION_SHAPES",
]


def import_torch() -> Any:
    """PyTorch for a parity test, with float64 as its default dtype.

    Without PyTorch the calling test is skipped (``unittest.SkipTest``, which
    pytest honours), unless ``AUTOGRAD_REQUIRE_TORCH`` is set: then the
    ImportError propagates, so a parity run can never pass by skipping.
    """
    import os
    import unittest

    try:
        import torch
    except ImportError:
        if os.environ.get("AUTOGRAD_REQUIRE_TORCH"):
            raise
        raise unittest.SkipTest("PyTorch is not installed (parity tests run in `nox -s parity`)") from None
    torch.set_default_dtype(torch.float64)
    return torch


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message names the worst element."""


def _as_float64_leaf(x: Any) -> Tensor:
    data = x.data if isinstance(x, Tensor) else x
    host = backend.to_numpy(backend.asarray(data) if not isinstance(data, np.ndarray) else data)
    if host.dtype.kind == "f":
        return Tensor(backend.asarray(host.astype(np.float64)), requires_grad=True)
    return Tensor(backend.asarray(host), requires_grad=False)


def _scalar(out: Any, weights: Optional[np.ndarray]) -> float:
    arr = backend.to_numpy(out.data if isinstance(out, Tensor) else out).astype(np.float64)
    if weights is None:
        return float(arr.sum())
    return float((arr * weights).sum())


def numerical_grad(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    index: int,
    eps: float = 1e-6,
    weights: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Central-difference gradient of ``sum(weights * fn(*inputs))`` w.r.t. ``inputs[index]``, in float64."""
    base = backend.to_numpy(inputs[index].data).astype(np.float64)
    grad = np.zeros_like(base)
    flat = base.reshape(-1)
    args = list(inputs)
    with no_grad():
        for i in range(flat.size):
            orig = flat[i]
            vals = []
            for step in (eps, -eps):
                flat[i] = orig + step
                args[index] = Tensor(backend.asarray(base.copy()), requires_grad=False)
                vals.append(_scalar(fn(*args), weights))
            flat[i] = orig
            grad.reshape(-1)[i] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: Optional[float] = None,
    atol: Optional[float] = None,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s analytic gradients against float64 central finite differences.

    Floating inputs are copied to float64 leaves; other inputs (integer
    targets, indices) are passed through unchanged and not differentiated.
    A non-scalar output is reduced with fixed random weights, so every output
    element's gradient path is exercised.

    Args:
        fn: Function of Tensors returning a Tensor.
        *inputs: Tensors or arrays.
        eps: Finite-difference step. Default 1e-6; 1e-3 on MLX, whose CPU
            float64 evaluates transcendental functions at float32 precision.
        atol, rtol: An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
            ``atol`` defaults to 1e-5 (1e-3 on MLX, for the same reason).
        seed: Seed of the output weights.

    Returns:
        True when every element passes.

    Raises:
        GradcheckError: naming the input, the worst element's index, and both values.
    """
    exact = backend.FLOAT64_TRANSCENDENTALS_EXACT
    eps = eps if eps is not None else (1e-6 if exact else 1e-3)
    atol = atol if atol is not None else (1e-5 if exact else 1e-3)
    leaves: List[Tensor] = [_as_float64_leaf(x) for x in inputs]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    weights = None
    if out.size != 1:
        weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
        loss = (out * Tensor(backend.asarray(weights.astype(np.float64)), requires_grad=False)).sum()
    else:
        loss = out.sum()
    if loss.requires_grad:
        loss.backward()
    for k, leaf in enumerate(leaves):
        if not leaf.requires_grad:
            continue
        numeric = numerical_grad(fn, [x.detach() if x.requires_grad else x for x in leaves], k, eps, weights)
        analytic = np.zeros_like(numeric) if leaf.grad is None else backend.to_numpy(leaf.grad.data).astype(np.float64)
        if analytic.shape != numeric.shape:
            raise GradcheckError(f"input {k}: gradient shape {analytic.shape} != input shape {numeric.shape}")
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if not np.all(np.isfinite(analytic)) or np.any(err > 0):
            bad = np.where(np.isfinite(analytic), err, np.inf)
            idx = np.unravel_index(int(np.argmax(bad)), numeric.shape) if numeric.ndim else ()
            raise GradcheckError(
                f"gradcheck failed for input {k} (shape {numeric.shape}): worst element {tuple(int(i) for i in idx)} "
                f"analytic={analytic[idx]!r} numeric={numeric[idx]!r} "
                f"(|diff|={abs(analytic[idx] - numeric[idx]):.3e}, atol={atol}, rtol={rtol})"
            )
    return True


# --- attention conformance -----------------------------------------------------

#: (batch, heads, Tq, Tk, head_dim): seq lengths of 1 and non-multiples of common tile sizes.
ATTENTION_SHAPES = [
    (1, 1, 1, 1, 16),
    (2, 3, 5, 5, 16),
    (1, 2, 17, 17, 32),
    (1, 2, 20, 33, 64),
    (2, 1, 33, 20, 64),
    (1, 1, 1, 40, 64),
    (1, 2, 70, 70, 32),
    (1, 1, 64, 64, 128),
]


@dataclass
class AttentionConformanceReport:
    """What :func:`check_attention_implementation` checked."""

    implementation: str
    passed: List[str] = field(default_factory=list)
    declined: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"attention conformance of {self.implementation!r}: {len(self.passed)} passed, "
            f"{len(self.declined)} declined (and honoured), {len(self.failures)} failed"
        ]
        lines += [f"  FAIL {f}" for f in self.failures]
        return "\n".join(lines)


def _host(x: Any) -> np.ndarray:
    return np.asarray(backend.to_numpy(x.data if isinstance(x, Tensor) else x), dtype=np.float64)


def _close(name: str, got: Any, ref: np.ndarray, atol: float, rtol: float) -> Optional[str]:
    got = _host(got)
    if got.shape != ref.shape:
        return f"{name}: shape {got.shape} != reference {ref.shape}"
    if not np.all(np.isfinite(got)):
        return f"{name}: non-finite values"
    err = float(np.max(np.abs(got - ref))) if got.size else 0.0
    bound = atol + rtol * (float(np.max(np.abs(ref))) if ref.size else 0.0)
    if err > bound:
        idx = np.unravel_index(int(np.argmax(np.abs(got - ref))), ref.shape)
        return f"{name}: max |error| {err:.3e} > {bound:.3e} at {idx} (got {got[idx]:.6g}, reference {ref[idx]:.6g})"
    return None


def _run_attention(
    fn: Callable[..., Tensor], arrays: Sequence[np.ndarray], dt: Any, upstream: np.ndarray, **kwargs: Any
) -> Tuple[Tensor, List[Optional[Tensor]]]:
    leaves = [Tensor(backend.asarray(a).astype(dt)) for a in arrays]
    out = fn(*leaves, **kwargs)
    out.backward(backend.asarray(upstream).astype(out.dtype))
    return out, [t.grad for t in leaves]


def check_attention_implementation(
    impl: Any,
    *,
    dtypes: Sequence[str] = ("float32", "float16", "bfloat16"),
    shapes: Sequence[Tuple[int, int, int, int, int]] = tuple(ATTENTION_SHAPES),
    seed: int = 0,
    raise_on_failure: bool = True,
) -> AttentionConformanceReport:
    """Check an attention implementation against the dense float64 reference.

    For every shape in ``shapes`` (batch, heads, Tq, Tk, head_dim), causal and
    not, without a mask and with bool and additive masks, and every dtype of
    ``dtypes`` the backend has: when the implementation's capability check
    accepts the inputs, its output and its gradients for query, key and value
    must match the reference within ``impl.tolerances[dtype]`` (``atol + rtol *
    max|reference|``); when it declines, the dispatcher must pass it over in
    automatic mode and raise ``AttentionNotSupportedError`` (with its reasons)
    when it is requested by name. Dropout is checked with a fixed mask: the
    implementation's own mask is read back through an identity value matrix,
    its values and keep rate are checked, and output and gradients must match
    the reference run with that same mask (which also proves the backward
    reproduces it).

    Call it from a kernel package's tests::

        def test_conformance():
            check_attention_implementation(MyFlashAttention())

    Returns the report; raises ``AssertionError`` listing every failure unless
    ``raise_on_failure`` is False.
    """
    from autograd.kernels import registry
    from autograd.kernels.dense import dense_attention

    obj = impl() if isinstance(impl, type) else impl
    report = AttentionConformanceReport(obj.name)
    # The object under test is what the dispatcher must see while the suite runs.
    try:
        previous = registry.entry(obj.name)
    except registry.UnknownAttentionImplementationError:
        previous = None
    if previous is None or previous.impl is not obj:
        registry.register(obj, replace=True)
    registered = obj
    try:
        rng = np.random.default_rng(seed)
        available = []
        for name in dtypes:
            try:
                available.append((name, backend.dtype(name)))
            except TypeError:
                continue
        f64 = backend.dtype("float64")
        for b, h, tq, tk, d in shapes:
            arrays = [
                rng.standard_normal((b, h, tq, d)),
                rng.standard_normal((b, h, tk, d)),
                rng.standard_normal((b, h, tk, d)),
            ]
            upstream = rng.standard_normal((b, h, tq, d))
            allowed = rng.random((b, 1, tq, tk)) > 0.3
            allowed[..., 0] = True  # every row keeps at least one key
            masks = {
                "none": None,
                "bool": backend.asarray(~allowed),
                "additive": backend.asarray((~allowed).astype(np.float32)),
            }
            for dt_name, dt in available:
                cast = [_host(backend.asarray(a).astype(dt)) for a in arrays]
                atol, rtol = obj.tolerances.get(dt_name, (1e-2, 1e-1))
                for mask_kind, causal in [("none", False), ("none", True), ("bool", False), ("additive", False)]:
                    if causal and tq > tk:
                        continue  # rows with no visible key are unspecified
                    label = f"{dt_name} B={b} H={h} Tq={tq} Tk={tk} D={d} mask={mask_kind} causal={causal}"
                    mask = masks[mask_kind]
                    if mask is not None and mask_kind == "additive":
                        mask = mask.astype(dt)
                    inputs = registry.AttentionInputs(
                        backend=backend.BACKEND,
                        query_shape=(b, h, tq, d),
                        key_shape=(b, h, tk, d),
                        value_shape=(b, h, tk, d),
                        dtype=dt_name,
                        mask=mask_kind,
                        mask_shape=None if mask is None else tuple(mask.shape),
                        is_causal=causal,
                    )
                    reasons = registered.check(inputs)
                    if reasons:
                        problem = _check_decline_honoured(registry, obj.name, inputs, reasons)
                        (report.failures if problem else report.declined).append(problem or f"{label}: {reasons}")
                        continue
                    try:
                        out, grads = _run_attention(
                            registered.attention, cast, dt, upstream, mask=mask, is_causal=causal
                        )
                        ref, ref_grads = _run_attention(
                            dense_attention, cast, f64, upstream, mask=mask, is_causal=causal
                        )
                    except Exception as exc:  # noqa: BLE001 - reported as a failure of this case
                        report.failures.append(f"{label}: raised {type(exc).__name__}: {exc}")
                        continue
                    problems = [_close("output", out, _host(ref), atol, rtol)]
                    if out.dtype != dt:
                        problems.append(f"output dtype {out.dtype} != input dtype {dt}")
                    for gname, g, r in zip("qkv", grads, ref_grads):
                        problems.append(
                            f"d{gname}: no gradient" if g is None else _close(f"d{gname}", g, _host(r), atol, rtol)
                        )
                    problems = [p for p in problems if p]
                    (report.failures if problems else report.passed).extend(
                        [f"{label}: {p}" for p in problems] or [label]
                    )
        _check_dropout(registry, registered, report, rng)
    finally:
        if previous is None:
            registry.unregister(obj.name)
        elif previous.impl is not obj:
            registry.register(previous.impl, package=previous.package, version=previous.version, replace=True)
    if report.failures and raise_on_failure:
        raise AssertionError(str(report))
    return report


def _check_decline_honoured(registry: Any, name: str, inputs: Any, reasons: List[str]) -> Optional[str]:
    auto = registry.explain(inputs, None)
    if auto.mode == "automatic" and auto.chosen == name:
        return f"{inputs.describe()}: declined ({reasons}) but chosen automatically"
    try:
        registry.select(inputs, name)
    except registry.AttentionNotSupportedError as exc:
        if not all(r in str(exc) for r in reasons):
            return f"{inputs.describe()}: the error for an explicit request does not list the reasons: {exc}"
        return None
    return f"{inputs.describe()}: declined but an explicit request did not raise"


def _check_dropout(registry: Any, impl: Any, report: AttentionConformanceReport, rng: np.random.Generator) -> None:
    from autograd.kernels.dense import dense_attention

    p, dt = 0.25, backend.dtype("float32")
    atol, rtol = impl.tolerances.get("float32", (2e-5, 1e-4))
    for b, h, tq, tk, causal in [(2, 2, 24, 32, False), (1, 2, 32, 32, True)]:
        d = tk  # head_dim == Tk lets an identity value matrix read the mask back
        label = f"dropout p={p} B={b} H={h} Tq={tq} Tk={tk} D={d} causal={causal}"
        inputs = registry.AttentionInputs(
            backend=backend.BACKEND,
            query_shape=(b, h, tq, d),
            key_shape=(b, h, tk, d),
            value_shape=(b, h, tk, d),
            dtype="float32",
            is_causal=causal,
            dropout_prob=p,
        )
        reasons = impl.check(inputs)
        if reasons:
            problem = _check_decline_honoured(registry, impl.name, inputs, reasons)
            (report.failures if problem else report.declined).append(problem or f"{label}: {reasons}")
            continue
        seed = int(rng.integers(0, 2**31 - 1))
        zeros_q, zeros_k = np.zeros((b, h, tq, d)), np.zeros((b, h, tk, d))
        eye = np.broadcast_to(np.eye(tk), (b, h, tk, tk))
        kw = dict(mask=None, is_causal=causal, dropout_prob=p, seed=seed)
        try:
            probe = _host(
                impl.attention(*(Tensor(backend.asarray(a).astype(dt)) for a in (zeros_q, zeros_k, eye)), **kw)
            )
            visible = np.ones((tq, tk)) if not causal else (np.arange(tk)[None] <= np.arange(tq)[:, None] + tk - tq)
            mask = probe * visible.sum(-1, keepdims=True)
            scale = 1 / (1 - p)
            on = mask[..., visible.astype(bool)]
            problems = []
            if np.any(mask[..., ~visible.astype(bool)] != 0):
                problems.append("dropout mask is non-zero where causal masking forbids")
            if not np.all((np.abs(on) < 1e-4) | (np.abs(on - scale) < 1e-3 * scale)):
                problems.append(f"dropout multipliers are not 0 or 1/(1-p) = {scale:.4f}")
            rate = float(np.mean(np.abs(on) > 1e-4))
            sigma = np.sqrt(p * (1 - p) / on.size)
            if abs(rate - (1 - p)) > 5 * sigma:
                problems.append(f"keep rate {rate:.3f} is far from 1 - p = {1 - p:.3f}")
            mask = np.where(np.abs(mask) < 1e-4, 0.0, scale) * visible
            arrays = [
                rng.standard_normal((b, h, tq, d)),
                rng.standard_normal((b, h, tk, d)),
                rng.standard_normal((b, h, tk, d)),
            ]
            upstream = rng.standard_normal((b, h, tq, d))
            out, grads = _run_attention(impl.attention, arrays, dt, upstream, **kw)
            again = _host(impl.attention(*(Tensor(backend.asarray(a).astype(dt)) for a in arrays), **kw))
            if not np.array_equal(again, _host(out)):
                problems.append("the same seed gave a different output")
            ref, ref_grads = _run_attention(
                dense_attention, arrays, backend.dtype("float64"), upstream, is_causal=causal, dropout_mask=mask
            )
            problems.append(_close("output", out, _host(ref), atol, rtol))
            for gname, g, r in zip("qkv", grads, ref_grads):
                problems.append(f"d{gname}: no gradient" if g is None else _close(f"d{gname}", g, _host(r), atol, rtol))
        except Exception as exc:  # noqa: BLE001 - reported as a failure of this case
            problems = [f"raised {type(exc).__name__}: {exc}"]
        problems = [q for q in problems if q]
        (report.failures if problems else report.passed).extend([f"{label}: {q}" for q in problems] or [label])
