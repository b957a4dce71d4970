"""The conformance suite a kernel author runs: values and gradients against core's reference, in float64.

:func:`check_kernel_implementation` takes a kernel of any op. Everything it
checks comes from the op's contract (in :mod:`autograd.ops`), never from the
kernel under test: the cases (edge cases and shapes drawn from a seeded
generator, :meth:`~autograd.kernels.Kernel.cases`), the extra checks some ops
have (attention's dropout), and the tolerances per dtype. It also checks that
every "no" of the kernel's ``check`` is honoured by the dispatcher, and lists
the cases it skips with the reason. Re-exported by :mod:`autograd.testing`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from autograd import backend
from autograd.kernels import registry
from autograd.kernels.contract import Kernel, KernelCase, KernelInputs, KernelNotSupportedError, compare_arrays
from autograd.tensor import Tensor

__all__ = ["ConformanceReport", "check_kernel_implementation", "DTYPES"]

#: The dtypes checked by default (those the backend lacks are left out).
DTYPES = ("float64", "float32", "float16", "bfloat16")


@dataclass
class ConformanceReport:
    """What the suite checked: passed, declined (and honoured), skipped (with why) and failed cases."""

    implementation: str
    op: str
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

    def __init__(self, obj: Kernel) -> None:
        self.obj = obj

    def __enter__(self) -> "_Registered":
        try:
            self.previous = registry.entry(self.obj.op, self.obj.name)
        except registry.UnknownKernelError:
            self.previous = None
        if self.previous is None or self.previous.impl is not self.obj:
            registry.register(self.obj, replace=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        prev = self.previous
        if prev is None:
            registry.unregister(self.obj.op, self.obj.name)
        elif prev.impl is not self.obj:
            registry.register(prev.impl, package=prev.package, version=prev.version, replace=True)


def _decline_problem(name: str, inputs: KernelInputs, reasons: List[str]) -> Optional[str]:
    """Why the dispatcher does not honour a decline (chosen anyway, or no error naming the reasons), or None."""
    auto = registry.explain(inputs, None)
    if auto.mode == "automatic" and auto.chosen == name:
        return f"{inputs.describe()}: declined ({reasons}) but chosen automatically"
    try:
        registry.select(inputs, name)
    except KernelNotSupportedError as exc:
        if not all(r in str(exc) for r in reasons):
            return f"{inputs.describe()}: the error for an explicit request does not list the reasons: {exc}"
        return None
    return f"{inputs.describe()}: declined but an explicit request did not raise"


def _record(report: ConformanceReport, label: str, problems: List[Optional[str]]) -> None:
    found = [p for p in problems if p]
    if found:
        report.failures.extend(f"{label}: {p}" for p in found)
    else:
        report.passed.append(label)


def _run_case(
    report: ConformanceReport, impl: Kernel, label: str, inputs: KernelInputs, run: Callable[[], List[Optional[str]]]
) -> None:
    """One case: a decline is recorded (and must be honoured by the dispatcher), else ``run()``'s problems."""
    reasons = registry._ask(impl, "check", inputs)
    if reasons:
        problem = _decline_problem(impl.name, inputs, reasons)
        (report.failures if problem else report.declined).append(problem or f"{label}: {reasons}")
        return
    try:
        problems = run()
    except Exception as exc:  # noqa: BLE001 - reported as a failure of this case
        problems = [f"raised {type(exc).__name__}: {exc}"]
    _record(report, label, problems)


def _rounded(case: KernelCase, dt: Any) -> KernelCase:
    """``case`` with its floating inputs rounded to ``dt`` (as float64): what the reference computes from."""

    def host(a: Any) -> np.ndarray:
        return np.asarray(backend.to_numpy(backend.asarray(np.asarray(a, dtype=np.float64)).astype(dt)), np.float64)

    arrays = [None if a is None else (host(a) if d else a) for a, d in zip(case.arrays, case.differentiable)]
    params = {k: host(v) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for k, v in case.params.items()}
    return KernelCase(case.label, arrays, params, case.differentiable, case.raw, case.skip, case.extra)


def _compare(contract: type, impl: Kernel, case: KernelCase, dt_name: str, dt: Any, seed: int) -> List[Optional[str]]:
    atol, rtol = contract.tolerances.get(dt_name, (1e-2, 1e-1))
    mine = contract.run_case(impl, case, dt, seed)
    theirs = dict(contract.run_case(contract.reference(), _rounded(case, dt), backend.dtype("float64"), seed))
    problems: List[Optional[str]] = []
    for name, got in mine:
        want = theirs.get(name)
        if want is None:
            continue
        if got is None:
            problems.append(f"{name}: no gradient")
            continue
        problems.append(compare_arrays(name, got, want, atol, rtol))
        if name == "output" and isinstance(got, Tensor):
            args, params = contract.case_arguments(case, dt)
            _, want_dtype = contract.output(contract.describe(*args, **params))
            if backend.dtype_name(got.dtype) != want_dtype:
                problems.append(f"output dtype {backend.dtype_name(got.dtype)} != {want_dtype}")
    return problems


def check_kernel_implementation(
    impl: Any,
    *,
    dtypes: Sequence[str] = DTYPES,
    cases: Optional[Sequence[KernelCase]] = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Check a kernel of any op against core's reference of that op, computed in float64.

    For every case of the op's contract (or ``cases``) and every dtype of
    ``dtypes`` the backend has: when the kernel's ``check`` accepts the
    inputs, its output (shape, dtype and values) and the gradient of every
    differentiable input, for a random upstream gradient, must match the
    reference run on the same inputs (rounded to that dtype) in float64,
    within the contract's tolerance for the dtype (``atol + rtol *
    max|reference|``); when it declines, the dispatcher must pass it over in
    automatic selection and raise, listing the reasons, when it is named.
    Then the contract's extra checks run (attention: dropout).

    Call it from a kernel package's tests::

        def test_conformance():
            check_kernel_implementation(MyLayerNorm())

    Returns the report; raises ``AssertionError`` listing every failure unless
    ``raise_on_failure`` is False.
    """
    obj = impl() if isinstance(impl, type) else impl
    contract = type(obj).contract()
    report = ConformanceReport(obj.name, contract.op)
    rng = np.random.default_rng(seed)
    cases = list(cases) if cases is not None else contract.cases(rng)
    with _Registered(obj):
        for index, case in enumerate(cases):
            for dt_name, dt in _available(dtypes):
                label = f"{dt_name} {case.label}"
                if case.skip:
                    report.skipped.append(f"{label}: {case.skip}")
                    continue
                args, params = contract.case_arguments(case, dt)
                compare = functools.partial(_compare, contract, obj, case, dt_name, dt, seed + index)
                _run_case(report, obj, label, contract.describe(*args, **params), compare)
        for label, inputs, run in contract.extra_cases(obj, rng):
            _run_case(report, obj, label, inputs, run)
    if report.failures and raise_on_failure:
        raise AssertionError(str(report))
    return report
