"""Conformance suites a kernel author runs: values and gradients against core's float64 reference.

:func:`check_attention_implementation` checks an attention kernel against the
dense reference; :func:`check_kernel_implementation` checks a kernel of any
other op of :mod:`autograd.kernels.contracts` against core's reference of that
op, over fixed edge cases and shapes drawn from a seeded generator. Both
also check that every "no" of the kernel's ``check`` is honoured by the
dispatcher, and report the cases they skip with the reason. Both are
re-exported by :mod:`autograd.testing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from autograd import backend
from autograd.tensor import Tensor

__all__ = [
    "ATTENTION_SHAPES",
    "ConformanceReport",
    "AttentionConformanceReport",
    "KernelConformanceReport",
    "check_attention_implementation",
    "check_kernel_implementation",
    "kernel_cases",
    "KernelCase",
]

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

_DTYPES = ("float64", "float32", "float16", "bfloat16")


@dataclass
class ConformanceReport:
    """What a conformance suite checked: passed, declined (and honoured), skipped (with why) and failed cases."""

    implementation: str
    op: str = "attention"
    passed: List[str] = field(default_factory=list)
    declined: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"{self.op} conformance of {self.implementation!r}: {len(self.passed)} passed, "
            f"{len(self.declined)} declined (and honoured), {len(self.skipped)} skipped, {len(self.failures)} failed"
        ]
        lines += [f"  SKIP {s}" for s in self.skipped]
        lines += [f"  FAIL {f}" for f in self.failures]
        return "\n".join(lines)


AttentionConformanceReport = ConformanceReport
KernelConformanceReport = ConformanceReport


def _host(x: Any) -> np.ndarray:
    return np.asarray(backend.to_numpy(x.data if isinstance(x, Tensor) else x), dtype=np.float64)


def _close(name: str, got: Any, ref: np.ndarray, atol: float, rtol: float) -> Optional[str]:
    got = _host(got)
    if got.shape != ref.shape:
        return f"{name}: shape {got.shape} != reference {ref.shape}"
    if not np.all(np.isfinite(got)) and not np.array_equal(np.isfinite(got), np.isfinite(ref)):
        return f"{name}: non-finite values"
    diff = np.where(np.isfinite(ref), np.abs(got - ref), 0.0)
    err = float(np.max(diff)) if got.size else 0.0
    bound = atol + rtol * (float(np.max(np.abs(ref[np.isfinite(ref)]))) if np.isfinite(ref).any() else 0.0)
    if err > bound:
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), ref.shape))
        return (
            f"{name}: max |error| {err:.3e} > {bound:.3e} at {idx} "
            f"(got {float(got[idx]):.6g}, reference {float(ref[idx]):.6g})"
        )
    return None


def _available(dtypes: Sequence[str]) -> List[Tuple[str, Any]]:
    out = []
    for name in dtypes:
        try:
            out.append((name, backend.dtype(name)))
        except TypeError:
            continue
    return out


class _Registered:
    """While the suite runs, the object under test is what the dispatcher sees under its name."""

    def __init__(self, obj: Any) -> None:
        from autograd.kernels import registry

        self.registry, self.obj = registry, obj

    def __enter__(self) -> "_Registered":
        try:
            self.previous = self.registry.entry(self.obj.name, self.obj.op)
        except self.registry.UnknownKernelError:
            self.previous = None
        if self.previous is None or self.previous.impl is not self.obj:
            self.registry.register(self.obj, replace=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        prev = self.previous
        if prev is None:
            self.registry.unregister(self.obj.name, self.obj.op)
        elif prev.impl is not self.obj:
            self.registry.register(prev.impl, package=prev.package, version=prev.version, replace=True)


def _verdict(impl: Any, inputs: Any) -> List[str]:
    from autograd.kernels.registry import _ask

    return _ask(impl, "check", inputs)


def _check_decline_honoured(name: str, inputs: Any, reasons: List[str]) -> Optional[str]:
    from autograd.kernels import registry

    auto = registry.explain(inputs, None)
    if auto.mode == "automatic" and auto.chosen == name:
        return f"{inputs.describe()}: declined ({reasons}) but chosen automatically"
    try:
        registry.select(inputs, name)
    except registry.KernelNotSupportedError as exc:
        if not all(r in str(exc) for r in reasons):
            return f"{inputs.describe()}: the error for an explicit request does not list the reasons: {exc}"
        return None
    return f"{inputs.describe()}: declined but an explicit request did not raise"


def _record(report: ConformanceReport, label: str, problems: List[Optional[str]]) -> None:
    problems = [p for p in problems if p]
    if problems:
        report.failures.extend(f"{label}: {p}" for p in problems)
    else:
        report.passed.append(label)


# --- attention -----------------------------------------------------------------------------------------------


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
    dtypes: Sequence[str] = _DTYPES,
    shapes: Sequence[Tuple[int, int, int, int, int]] = tuple(ATTENTION_SHAPES),
    seed: int = 0,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Check an attention implementation against the dense float64 reference.

    For every shape in ``shapes`` (batch, heads, Tq, Tk, head_dim), causal and
    not, without a mask and with bool and additive masks, and every dtype of
    ``dtypes`` the backend has (float64 included by default): when the
    implementation's capability check accepts the inputs, its output and its
    gradients for query, key and value must match the reference within
    ``impl.tolerances[dtype]`` (``atol + rtol * max|reference|``); when it
    declines, the dispatcher must pass it over in automatic mode and raise
    ``AttentionNotSupportedError`` (with its reasons) when it is requested by
    name. Cases whose result the contract leaves unspecified (causal attention
    with ``Tq > Tk``, where the first rows see no key) are listed in
    ``report.skipped`` with that reason. Dropout is checked with a fixed mask:
    the implementation's own mask is read back through an identity value
    matrix, its values and keep rate are checked, and output and gradients
    must match the reference run with that same mask (which also proves the
    backward reproduces it).

    Call it from a kernel package's tests::

        def test_conformance():
            check_attention_implementation(MyFlashAttention())

    Returns the report; raises ``AssertionError`` listing every failure unless
    ``raise_on_failure`` is False.
    """
    from autograd.kernels.contracts import AttentionInputs
    from autograd.kernels.dense import dense_attention

    obj = impl() if isinstance(impl, type) else impl
    report = ConformanceReport(obj.name, "attention")
    with _Registered(obj):
        rng = np.random.default_rng(seed)
        available = _available(dtypes)
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
                    label = f"{dt_name} B={b} H={h} Tq={tq} Tk={tk} D={d} mask={mask_kind} causal={causal}"
                    if causal and tq > tk:
                        report.skipped.append(f"{label}: the first {tq - tk} rows see no key (unspecified)")
                        continue
                    mask = masks[mask_kind]
                    if mask is not None and mask_kind == "additive":
                        mask = mask.astype(dt)
                    inputs = AttentionInputs(
                        backend=backend.BACKEND,
                        query_shape=(b, h, tq, d),
                        key_shape=(b, h, tk, d),
                        value_shape=(b, h, tk, d),
                        dtype=dt_name,
                        mask=mask_kind,
                        mask_shape=None if mask is None else tuple(mask.shape),
                        is_causal=causal,
                    )
                    reasons = _verdict(obj, inputs)
                    if reasons:
                        problem = _check_decline_honoured(obj.name, inputs, reasons)
                        (report.failures if problem else report.declined).append(problem or f"{label}: {reasons}")
                        continue
                    try:
                        out, grads = _run_attention(obj.attention, cast, dt, upstream, mask=mask, is_causal=causal)
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
                    _record(report, label, problems)
        _check_dropout(obj, report, rng)
    if report.failures and raise_on_failure:
        raise AssertionError(str(report))
    return report


def _check_dropout(impl: Any, report: ConformanceReport, rng: np.random.Generator) -> None:
    from autograd.kernels.contracts import AttentionInputs
    from autograd.kernels.dense import dense_attention

    p, dt = 0.25, backend.dtype("float32")
    atol, rtol = impl.tolerances.get("float32", (2e-5, 1e-4))
    for b, h, tq, tk, causal in [(2, 2, 24, 32, False), (1, 2, 32, 32, True)]:
        d = tk  # head_dim == Tk lets an identity value matrix read the mask back
        label = f"dropout p={p} B={b} H={h} Tq={tq} Tk={tk} D={d} causal={causal}"
        inputs = AttentionInputs(
            backend=backend.BACKEND,
            query_shape=(b, h, tq, d),
            key_shape=(b, h, tk, d),
            value_shape=(b, h, tk, d),
            dtype="float32",
            is_causal=causal,
            dropout_prob=p,
        )
        reasons = _verdict(impl, inputs)
        if reasons:
            problem = _check_decline_honoured(impl.name, inputs, reasons)
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
            problems: List[Optional[str]] = []
            if np.any(mask[..., ~visible.astype(bool)] != 0):
                problems.append("dropout mask is non-zero where causal masking forbids")
            if not np.all((np.abs(on) < 1e-4) | (np.abs(on - scale) < 1e-3 * scale)):
                problems.append(f"dropout multipliers are not 0 or 1/(1-p) = {scale:.4f}")
            rate = float(np.mean(np.abs(on) > 1e-4))
            sigma = float(np.sqrt(p * (1 - p) / on.size))
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
        _record(report, label, problems)


# --- every other op ----------------------------------------------------------------------------------------------


@dataclass
class KernelCase:
    """One call of an op: host arrays (float arrays are cast to the dtype under test), parameters, a label.

    ``arrays`` are NumPy arrays (or None for an absent optional argument);
    ``differentiable`` says which of them are float inputs that get gradients;
    ``raw`` says which are passed as backend arrays rather than Tensors (the
    embedding's indices).
    """

    label: str
    arrays: List[Optional[np.ndarray]]
    params: Dict[str, Any]
    differentiable: Tuple[bool, ...]
    raw: Tuple[bool, ...] = ()


def _shapes(rng: np.random.Generator, count: int, rank: Tuple[int, int], high: int) -> List[Tuple[int, ...]]:
    return [
        tuple(int(s) for s in rng.integers(1, high, size=int(rng.integers(rank[0], rank[1] + 1)))) for _ in range(count)
    ]


def kernel_cases(op: str, rng: np.random.Generator) -> List[KernelCase]:
    """The cases :func:`check_kernel_implementation` runs for ``op``: edge cases plus shapes drawn from ``rng``."""
    n = rng.standard_normal
    cases: List[KernelCase] = []
    if op in ("gelu", "relu", "sigmoid", "tanh"):
        for shape in [(1,), (3, 7), (2, 5, 33)] + _shapes(rng, 2, (1, 3), 40):
            x = n(shape) * 3
            x.reshape(-1)[:: max(1, x.size // 3)] = 0.0  # exact zeros: ReLU's kink, GELU's fixed point
            cases.append(KernelCase(f"x{shape}", [x], {}, (True,)))
        if op == "sigmoid":
            cases.append(KernelCase("x(4,) extremes", [np.array([-100.0, -30.0, 30.0, 100.0])], {}, (True,)))
    elif op in ("softmax", "log_softmax"):
        for shape, dim in [((1, 1), 1), ((3, 7), 1), ((2, 5, 33), 2), ((2, 5, 33), 0), ((4, 3), 0)]:
            cases.append(KernelCase(f"x{shape} dim={dim}", [n(shape) * 4], {"dim": dim}, (True,)))
        cases.append(KernelCase("x(3, 6) dim=1 large", [n((3, 6)) * 60], {"dim": 1}, (True,)))
        for shape in _shapes(rng, 2, (2, 3), 30):
            cases.append(KernelCase(f"x{shape} dim=last", [n(shape)], {"dim": len(shape) - 1}, (True,)))
    elif op == "layer_norm":
        for shape, eps in [((1, 1), 1e-5), ((3, 5), 1e-5), ((2, 7, 33), 1e-3), ((4, 128), 1e-5), ((5, 64), 1e-5)]:
            f = shape[-1]
            x = n(shape) * 2 + 1
            cases.append(KernelCase(f"x{shape} eps={eps}", [x, n(f), n(f)], {"eps": eps}, (True, True, True)))
        for shape in _shapes(rng, 2, (2, 3), 40):
            f = shape[-1]
            cases.append(KernelCase(f"x{shape}", [n(shape), n(f), n(f)], {"eps": 1e-5}, (True, True, True)))
    elif op == "cross_entropy":
        for shape, smooth, reduction, ignored in [
            ((4, 5), 0.0, "mean", 0),
            ((7, 3), 0.1, "mean", 2),
            ((2, 6, 11), 0.0, "sum", 3),
            ((3, 4, 9), 0.2, "mean", 1),
            ((3, 4), 0.0, "mean", 3),  # every target ignored
            ((1, 1), 0.0, "sum", 0),
        ]:
            c = shape[-1]
            t = rng.integers(0, c, size=shape[:-1])
            t.reshape(-1)[:ignored] = -100
            for index_dtype in (np.int32, np.int64):
                label = f"logits{shape} smoothing={smooth} {reduction} ignored={ignored} {np.dtype(index_dtype).name}"
                params = {"ignore_index": -100, "label_smoothing": smooth, "reduction": reduction}
                cases.append(KernelCase(label, [n(shape) * 3, t.astype(index_dtype)], params, (True, False)))
    elif op == "conv2d":
        for nb, c, h, w, o, k, s, pad, bias in [
            (2, 3, 7, 7, 4, 3, 1, (1, 1, 1, 1), True),
            (1, 2, 8, 6, 3, 3, 2, (0, 1, 0, 1), False),
            (2, 1, 5, 5, 2, 1, 1, (0, 0, 0, 0), True),
            (1, 4, 9, 9, 8, 5, 2, (2, 2, 2, 2), True),
            (3, 2, 6, 6, 2, 2, 2, (0, 0, 0, 0), True),
            (1, 1, 3, 3, 1, 3, 1, (0, 0, 0, 0), True),
        ]:
            label = f"x{(nb, c, h, w)} w{(o, c, k, k)} stride={s} padding={pad} bias={bias}"
            arrays = [n((nb, c, h, w)), n((o, c, k, k)), n(o) if bias else None]
            cases.append(KernelCase(label, arrays, {"stride": s, "padding": pad}, (True, True, bias)))
    elif op == "max_pool2d":
        for nb, c, h, w, k, s in [(2, 3, 8, 8, 2, 2), (1, 2, 7, 7, 3, 2), (2, 2, 6, 6, 3, 3), (1, 1, 5, 5, 2, 1)]:
            x = np.round(n((nb, c, h, w)) * 2) / 2  # coarse values: ties inside windows
            x[0, 0, :3, :3] = 0.0  # a window of equal values, as after a ReLU
            label = f"x{(nb, c, h, w)} k={k} stride={s}"
            cases.append(KernelCase(label, [x], {"kernel_size": k, "stride": s}, (True,)))
    elif op == "embedding":
        for v, e, shape in [(10, 4, (3, 5)), (7, 16, (20,)), (1, 3, (4,)), (50, 8, (2, 3, 4))]:
            idx = rng.integers(0, v, size=shape)
            idx.reshape(-1)[: min(3, idx.size)] = 0  # repeated indices accumulate
            for index_dtype in (np.int32, np.int64):
                label = f"weight{(v, e)} indices{shape} {np.dtype(index_dtype).name}"
                cases.append(
                    KernelCase(label, [n((v, e)), idx.astype(index_dtype)], {}, (True, False), raw=(False, True))
                )
    elif op == "adam":
        for shapes, wd in [([(3, 2), (2,)], 0.0), ([(5,), (4, 3), (1,), (16, 8)], 0.01), ([(1,)], 0.1)]:
            arrays: List[Optional[np.ndarray]] = []
            for shape in shapes:
                arrays += [n(shape), n(shape), n(shape) * 0.1, np.abs(n(shape)) * 0.01]
            params = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": wd}
            cases.append(KernelCase(f"{len(shapes)} params {shapes} weight_decay={wd}", arrays, params, ()))
    else:
        raise ValueError(f"no conformance cases for op {op!r}")
    return cases


def _reference(op: str) -> Any:
    from autograd.kernels.reference import builtin_implementations

    return next(impl for impl in builtin_implementations() if impl.op == op)


def _to_args(case: KernelCase, dt: Any) -> List[Any]:
    args: List[Any] = []
    raw = case.raw or (False,) * len(case.arrays)
    for a, diff, is_raw in zip(case.arrays, case.differentiable, raw):
        if a is None:
            args.append(None)
        elif is_raw:
            args.append(backend.asarray(a))
        elif diff:
            args.append(Tensor(backend.asarray(a).astype(dt)))
        else:
            args.append(Tensor(backend.asarray(a), requires_grad=False))
    return args


def _run_op(impl: Any, case: KernelCase, dt: Any, rng_seed: int) -> Tuple[Tensor, List[Optional[np.ndarray]]]:
    args = _to_args(case, dt)
    out = impl.apply(*args, **case.params)
    upstream = np.random.default_rng(rng_seed).standard_normal(tuple(out.shape))
    out.backward(backend.asarray(np.asarray(upstream)).astype(out.dtype))
    grads = [
        (None if a.grad is None else _host(a.grad)) if isinstance(a, Tensor) and diff else None
        for a, diff in zip(args, case.differentiable)
    ]
    return out, grads


def _check_adam_case(impl: Any, case: KernelCase, dt_name: str, dt: Any) -> List[Optional[str]]:
    from autograd.kernels.contracts import check_adam_output

    ref = _reference("adam")
    atol, rtol = impl.tolerances.get(dt_name, (1e-2, 1e-1))
    groups = [case.arrays[i : i + 4] for i in range(0, len(case.arrays), 4)]
    mine = [[backend.asarray(g[j]).astype(dt) for g in groups] for j in range(4)]
    theirs = [[backend.asarray(_host(backend.asarray(g[j]).astype(dt))) for g in groups] for j in range(4)]
    problems: List[Optional[str]] = []
    for step in range(1, 4):
        steps = [step + i % 2 for i in range(len(groups))]  # parameters may have taken different step counts
        out = impl.update(mine[0], mine[1], mine[2], mine[3], steps, **case.params)
        check_adam_output(impl, mine[0], out)
        p, m, v = out
        rp, rm, rv = ref.update(theirs[0], theirs[1], theirs[2], theirs[3], steps, **case.params)
        for name, got, want in (("param", p, rp), ("exp_avg", m, rm), ("exp_avg_sq", v, rv)):
            for i, (g, w) in enumerate(zip(got, want)):
                problems.append(_close(f"step {step} {name}[{i}]", g, _host(w), atol, rtol))
        mine = [list(p), mine[1], list(m), list(v)]
        theirs = [list(rp), theirs[1], list(rm), list(rv)]
    return problems


def check_kernel_implementation(
    impl: Any,
    *,
    dtypes: Sequence[str] = _DTYPES,
    cases: Optional[Sequence[KernelCase]] = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Check a kernel of any op but attention against core's reference of that op, computed in float64.

    For every case (``kernel_cases(impl.op, rng)`` unless ``cases`` is given:
    edge cases such as single elements, ties, exact zeros, ignored targets,
    strides and paddings, plus shapes drawn from a generator seeded with
    ``seed``) and every dtype of ``dtypes`` the backend has: when the kernel's
    ``check`` accepts the inputs, its output (shape, dtype and values) and the
    gradient of every differentiable input for a random upstream gradient
    must match the reference within ``impl.tolerances[dtype]``; when it
    declines, the dispatcher must honour the decline. For ``adam`` three
    successive updates (with per-parameter step counts that differ) must
    match the reference's parameters and moments.

    Call it from a kernel package's tests::

        def test_conformance():
            check_kernel_implementation(MyLayerNorm())

    Returns the report; raises ``AssertionError`` listing every failure unless
    ``raise_on_failure`` is False.
    """
    from autograd.kernels.contracts import describe, output_dtype

    obj = impl() if isinstance(impl, type) else impl
    if obj.op == "attention":
        return check_attention_implementation(obj, dtypes=dtypes, seed=seed, raise_on_failure=raise_on_failure)
    report = ConformanceReport(obj.name, obj.op)
    reference = _reference(obj.op)
    rng = np.random.default_rng(seed)
    cases = list(cases) if cases is not None else kernel_cases(obj.op, rng)
    f64 = backend.dtype("float64")
    with _Registered(obj):
        for case_index, case in enumerate(cases):
            for dt_name, dt in _available(dtypes):
                label = f"{dt_name} {case.label}"
                if obj.op == "adam":
                    shapes = [a for a in case.arrays[::4]]
                    inputs = describe(
                        "adam",
                        [backend.asarray(a).astype(dt) for a in shapes],
                        weight_decay=case.params["weight_decay"],
                    )
                else:
                    inputs = describe(obj.op, *_to_args(case, dt), **case.params)
                reasons = _verdict(obj, inputs)
                if reasons:
                    problem = _check_decline_honoured(obj.name, inputs, reasons)
                    (report.failures if problem else report.declined).append(problem or f"{label}: {reasons}")
                    continue
                try:
                    if obj.op == "adam":
                        _record(report, label, _check_adam_case(obj, case, dt_name, dt))
                        continue
                    atol, rtol = obj.tolerances.get(dt_name, (1e-2, 1e-1))
                    # The reference sees the inputs as rounded to the dtype under test, then computes in float64.
                    rounded = KernelCase(
                        case.label,
                        [
                            None if a is None else (_host(backend.asarray(a).astype(dt)) if d else a)
                            for a, d in zip(case.arrays, case.differentiable)
                        ],
                        case.params,
                        case.differentiable,
                        case.raw,
                    )
                    out, grads = _run_op(obj, rounded, dt, seed + case_index)
                    ref, ref_grads = _run_op(reference, rounded, f64, seed + case_index)
                except Exception as exc:  # noqa: BLE001 - reported as a failure of this case
                    report.failures.append(f"{label}: raised {type(exc).__name__}: {exc}")
                    continue
                problems: List[Optional[str]] = [_close("output", out, _host(ref), atol, rtol)]
                want_dtype = output_dtype(inputs)
                if backend.dtype_name(out.dtype) != want_dtype:
                    problems.append(f"output dtype {backend.dtype_name(out.dtype)} != {want_dtype}")
                for i, (g, r) in enumerate(zip(grads, ref_grads)):
                    if r is None:
                        continue
                    name = case_name(obj.op, i)
                    problems.append(f"{name}: no gradient" if g is None else _close(name, g, r, atol, rtol))
                _record(report, label, problems)
    if report.failures and raise_on_failure:
        raise AssertionError(str(report))
    return report


def case_name(op: str, index: int) -> str:
    """``"d<argument>"`` for the gradient of the op's argument ``index``."""
    from autograd.kernels.contracts import OPS

    return "d" + OPS[op].arrays[index]
