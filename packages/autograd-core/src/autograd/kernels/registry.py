"""The kernel registry: plugin discovery, selection, the dispatcher, and the reports of what ran and why.

Core registers its reference implementation of every op (named
``"reference"``). An installed distribution adds kernels through one entry
point group, ``autograd.kernels``::

    [project.entry-points."autograd.kernels"]
    my_layer_norm = "my_package.kernels:MyLayerNorm"

The object may be a kernel class (instantiated with no arguments), an
instance, or a zero-argument factory; it must subclass an op's contract (see
:mod:`autograd.kernels.contract`) and compute the op with the contract's
signature, which is checked here. Plugins are discovered lazily, the first
time a dispatched call or :func:`implementations` needs them. One that fails
to import or load is skipped and reported once as a ``RuntimeWarning``
(logged instead when warnings are errors, so ``-W error`` never turns a
broken plugin into a failure of every call) and listed by
:func:`load_failures` and the ``autograd-kernels`` CLI.

Selection, for each call (:func:`select`):

1. the implementation named by the call's ``implementation=`` argument, else
2. the one named by ``AUTOGRAD_KERNELS``: ``op=name`` pairs separated by
   commas, or a bare ``name`` for every op that has an implementation of that
   name (``AUTOGRAD_KERNELS=reference`` runs core's code everywhere); ``auto``
   or empty means automatic; else
3. automatic: the first implementation, by priority (high first) then name,
   whose :meth:`~autograd.kernels.contract.Kernel.check` accepts the inputs
   and whose :meth:`~autograd.kernels.contract.Kernel.advise` raises no
   objection. The reference accepts everything and has the lowest priority.

A named implementation is used when its ``check`` accepts the inputs, even if
``advise`` says another would be faster; when ``check`` declines, the call
raises :class:`~autograd.kernels.contract.KernelNotSupportedError` listing the
inputs and the reasons. A ``check`` (or ``check_environment``/``advise``) that
raises is treated as a decline whose reason names the plugin and the
exception, reported once as a warning. Two implementations of one op with the
same priority on a common backend are reported once too: the tie would be
broken by name, by accident.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from autograd import backend
from autograd.engine import Function, tensor_class
from autograd.kernels.contract import (
    OPS,
    REFERENCE,
    Kernel,
    KernelInputs,
    KernelNotSupportedError,
    KernelOutputError,
    UnknownKernelError,
    check_signature,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "LoadFailure",
    "Candidate",
    "Explanation",
    "register",
    "unregister",
    "implementations",
    "get",
    "entry",
    "select",
    "explain",
    "dispatch",
    "load_failures",
    "reset",
    "sole",
    "isolated",
]

#: The entry-point group plugins register their kernels in.
ENTRY_POINT_GROUP = "autograd.kernels"
#: The environment variable naming implementations (``op=name,...`` or a bare ``name``).
ENV_VAR = "AUTOGRAD_KERNELS"
logger = logging.getLogger("autograd.kernels")
CORE = "autograd-core"

Op = Union[str, type]


@dataclass
class _Entry:
    impl: Kernel
    package: str
    version: str


@dataclass(frozen=True)
class LoadFailure:
    """A plugin entry point that could not be loaded, and why."""

    group: str
    name: str
    value: str
    package: str
    version: str
    error: str


_lock = threading.RLock()
_entries: Dict[str, Dict[str, _Entry]] = {}
_failures: List[LoadFailure] = []
_discovered = False
_reported: set = set()
#: When set (inside ``isolated``), only these distributions' entry points are discovered.
_only: Optional[frozenset] = None


def _core_version() -> str:
    try:
        return metadata.version(CORE)
    except metadata.PackageNotFoundError:
        return "unknown"


def _op_name(op: Op) -> str:
    return op if isinstance(op, str) else op.op


def _validate(obj: Any, where: str) -> Kernel:
    if isinstance(obj, type):
        obj = obj()
    elif callable(obj) and not isinstance(obj, Kernel):
        obj = obj()
    if not isinstance(obj, Kernel) or "op" in type(obj).__dict__:
        raise TypeError(
            f"{where} gave {type(obj).__name__}, not a kernel (a subclass of an op's contract, such as "
            "autograd.ops.norm.LayerNormKernel)"
        )
    for attr in ("name", "backends"):
        if not getattr(obj, attr, None):
            raise TypeError(f"{where}: the kernel does not declare {attr!r}")
    check_signature(obj)
    return obj


def _warn_once(key: str, message: str) -> None:
    """Warn once per key; where warnings are errors, log instead (a broken plugin is never fatal)."""
    if key in _reported:
        return
    _reported.add(key)
    try:
        warnings.warn(message, RuntimeWarning, stacklevel=4)
    except Warning:
        logger.warning("%s", message)


def _add(impl: Kernel, package: str, version: str, replace: bool) -> Optional[str]:
    """Put ``impl`` in its op's table; the reason when its name is taken (and ``replace`` is False)."""
    table = _table(impl.op)
    if impl.name in table and not replace:
        return f"the {impl.op} name {impl.name!r} is already registered by {table[impl.name].package}"
    for other in table.values():
        o = other.impl
        if o.name != impl.name and o.priority == impl.priority and set(o.backends) & set(impl.backends):
            _warn_once(
                f"tie:{impl.op}:{min(o.name, impl.name)}:{max(o.name, impl.name)}",
                f"autograd: {impl.op} implementations {o.name!r} ({other.package}) and {impl.name!r} ({package}) "
                f"share priority {impl.priority} on {', '.join(sorted(set(o.backends) & set(impl.backends)))}; "
                "the name breaks the tie",
            )
    table[impl.name] = _Entry(impl, package, version)
    return None


def register(impl: Any, *, package: str = "", version: str = "", replace: bool = False) -> Kernel:
    """Register a kernel (class, instance or factory) programmatically; returns the instance.

    Plugins installed with entry points are discovered first, so a name taken
    by one of them is already taken here (pass ``replace=True`` to override it).

    Args:
        impl: A kernel class (instantiated with no arguments), an instance, or a zero-argument factory.
        package: The distribution it comes from, for reports (default: its top-level module's name).
        version: That distribution's version, for reports.
        replace: Replace an implementation already registered under the same name for the op.

    Raises:
        ValueError: the name is taken for that op and ``replace`` is False.
        TypeError: the object is not a kernel, or its signature is not its contract's.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated():  # a registry of core's references alone, restored afterwards
        ...     impl = kernels.register(MyRelu, package="my-kernels", version="1.0")
        ...     [k.name for k in kernels.implementations("relu")]
        ['my_relu', 'reference']
    """
    obj = _validate(impl, f"register({impl!r})")
    _discover()
    with _lock:
        taken = _add(obj, package or type(obj).__module__.split(".")[0], version or "", replace)
    if taken:
        raise ValueError(taken)
    return obj


def unregister(op: Op, name: str) -> None:
    """Remove the implementation ``name`` of ``op`` (until :func:`reset`; an entry point does not come back).

    Args:
        op: The op's name (``"relu"``) or its contract class.
        name: The implementation's name.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated(MyRelu):
        ...     kernels.unregister("relu", "my_relu")
        ...     [k.name for k in kernels.implementations("relu")]
        ['reference']
    """
    _discover()
    with _lock:
        _table(_op_name(op)).pop(name, None)


def _table(op: str) -> Dict[str, _Entry]:
    """``op``'s implementations by name, its reference registered on first use."""
    table = _entries.get(op)
    if table is None:
        contract = OPS.get(op)
        if contract is None:
            raise UnknownKernelError(f"no op named {op!r}; the ops are {', '.join(OPS)}")
        table = _entries[op] = {}
        table[REFERENCE] = _Entry(contract.reference(), CORE, _core_version())
    return table


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    pending: List[Tuple[str, str]] = []
    with _lock:
        if _discovered:
            return
        _discovered = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if _only is not None and package not in _only:
                continue
            where = f"{ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value}) of {package} {version}"
            try:
                impl = _validate(ep.load(), where)
                taken = _add(impl, package, version, replace=False)
                if taken:
                    raise ValueError(taken)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must never be fatal
                error = f"{type(exc).__name__}: {exc}"
                _failures.append(LoadFailure(ENTRY_POINT_GROUP, ep.name, ep.value, package, version, error))
                pending.append((f"load:{ep.name}:{ep.value}", f"autograd: skipping {where}: {error}"))
    for key, message in pending:  # outside the lock: a warning filter may run arbitrary code
        _warn_once(key, message)


def reset() -> None:
    """Forget every registration and load failure; plugins are discovered again on next use (for tests).

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated(plugins=True):  # every installed plugin; restored afterwards
        ...     _ = kernels.register(MyRelu)
        ...     kernels.reset()  # the programmatic registration is forgotten
        ...     "my_relu" in [k.name for k in kernels.implementations("relu")]
        False
    """
    global _discovered
    with _lock:
        _entries.clear()
        _failures.clear()
        _discovered = False
        _reported.clear()


@contextmanager
def isolated(*impls: Any, plugins: Any = ()) -> Iterator[None]:
    """Inside the block the registry holds core's references, ``impls``, and the plugins of the distributions named
    in ``plugins`` (their entry points, discovered afresh) only; afterwards, exactly what it held before.

    A test that uses it sees the same implementations whatever else is
    installed in the environment (``autograd.testing.isolated_kernels`` is
    this function). ``plugins=True`` discovers every installed plugin.

    Args:
        *impls: Kernels to register inside the block (as :func:`register` takes them).
        plugins: The distributions whose entry points are discovered (a name or several), or True for all.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated(MyRelu):
        ...     [k.name for k in kernels.implementations("relu")]
        ['my_relu', 'reference']
        >>> with kernels.isolated(plugins="autograd-kernels-cpu"):  # core's references and the CPU plugin
        ...     [k.name for k in kernels.implementations("relu")]  # doctest: +SKIP
        ['cpu_fused', 'reference']
    """
    global _discovered, _only
    with _lock:
        saved = ({op: dict(t) for op, t in _entries.items()}, list(_failures), _discovered, set(_reported), _only)
        _entries.clear()
        _failures.clear()
        _reported.clear()
        _discovered = False
        _only = None if plugins is True else frozenset([plugins] if isinstance(plugins, str) else plugins)
    try:
        for impl in impls:
            register(impl)
        yield
    finally:
        with _lock:
            _entries.clear()
            _entries.update(saved[0])
            _failures[:] = saved[1]
            _reported.clear()
            _reported.update(saved[3])
            _discovered, _only = saved[2], saved[4]


def load_failures() -> List[LoadFailure]:
    """The plugin entry points that failed to load (after discovery), with their reasons.

    Examples:
        >>> from autograd import kernels
        >>> for failure in kernels.load_failures():  # what ``python -m autograd.kernels`` lists too
        ...     print(failure.package, failure.name, failure.error)  # doctest: +SKIP
        >>> with kernels.isolated(plugins="autograd-kernels-cpu"):  # that distribution's entry points only
        ...     kernels.load_failures()  # all of them loaded
        []
    """
    _discover()
    return list(_failures)


def _ordered(op: str) -> List[_Entry]:
    _discover()
    return sorted(_table(op).values(), key=lambda e: (-e.impl.priority, e.impl.name))


def implementations(op: Op) -> List[Kernel]:
    """Every registered implementation of ``op`` (a name or its contract class), in selection order.

    Args:
        op: The op's name (``"attention"``, ``"relu"``... the keys of ``autograd.kernels.OPS``) or its contract.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated(MyRelu):
        ...     [(k.name, k.priority) for k in kernels.implementations(ReluKernel)]
        [('my_relu', 5), ('reference', -1000)]
    """
    return [e.impl for e in _ordered(_op_name(op))]


def entry(op: Op, name: str) -> _Entry:
    """The registration of ``name`` for ``op``: its ``impl`` (the kernel), ``package`` and ``version``.

    Args:
        op: The op's name or its contract class.
        name: The implementation's name.

    Raises:
        UnknownKernelError: no implementation of that name (the message lists the registered ones).

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> with kernels.isolated():
        ...     _ = kernels.register(MyRelu, package="my-kernels", version="1.0")
        ...     e = kernels.entry("relu", "my_relu")
        ...     e.impl.name, e.package, e.version
        ('my_relu', 'my-kernels', '1.0')
        >>> kernels.entry("relu", "reference").package
        'autograd-core'
    """
    op = _op_name(op)
    _discover()
    try:
        return _table(op)[name]
    except KeyError:
        known = ", ".join(e.impl.name for e in _ordered(op)) or "none"
        raise UnknownKernelError(f"no {op} implementation named {name!r}; registered: {known}") from None


def get(op: Op, name: str) -> Kernel:
    """The implementation of ``op`` registered under ``name``.

    Args:
        op: The op's name or its contract class.
        name: The implementation's name.

    Raises:
        UnknownKernelError: no implementation of that name.

    Examples:
        >>> from autograd import kernels
        >>> kernels.get("relu", "reference")
        <relu implementation 'reference' backends=('numpy', 'mlx', 'cupy') priority=-1000>
    """
    return entry(op, name).impl


@dataclass
class Candidate:
    """One implementation's verdict for a call.

    ``reasons`` are why it cannot take the inputs (for implementations after
    the chosen one, only why it cannot run here at all); ``advice`` why
    automatic selection passed it over although it could.
    """

    name: str
    priority: int
    reasons: List[str]
    chosen: bool = False
    advice: List[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``chosen``, ``declined`` (cannot), ``advised against`` (should not) or ``outranked``."""
        if self.chosen:
            return "chosen"
        return "declined" if self.reasons else "advised against" if self.advice else "outranked"


@dataclass
class Explanation:
    """Which implementation a call uses, why, and why the others were passed over."""

    inputs: KernelInputs
    mode: str  # "argument", "environment" or "automatic"
    chosen: Optional[str]
    candidates: List[Candidate] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.inputs.op} for {self.inputs.describe()}", f"selection: {self.mode}; chosen: {self.chosen}"]
        for c in self.candidates:
            head = f"{c.name} (priority {c.priority})"
            if c.chosen:
                extra = f" (although: {'; '.join(c.advice)})" if c.advice else ""
                lines.append(f"  * {head}: chosen{extra}")
            elif c.reasons:
                lines.append(f"  - {head}: declined: {'; '.join(c.reasons)}")
            elif c.advice:
                lines.append(f"  - {head}: passed over: {'; '.join(c.advice)}")
            else:
                lines.append(f"  - {head}: outranked (a higher choice was taken)")
        return "\n".join(lines)


def _ask(impl: Kernel, method: str, inputs: Any) -> List[str]:
    """``impl.check(inputs)`` (or ``advise``, ``check_environment``); an exception becomes a reason and a warning."""
    try:
        out = getattr(impl, method)(inputs) if method != "check_environment" else impl.check_environment()
        return [str(r) for r in out] if out else []
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break other implementations
        reason = f"{impl.name}.{method}() raised {type(exc).__name__}: {exc}"
        _warn_once(f"{method}:{impl.op}:{impl.name}:{type(exc).__name__}", f"autograd: {reason}; treated as a decline")
        return [reason]


def _environment_choice(op: str) -> Optional[str]:
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec or spec.lower() == "auto":
        return None
    bare = None
    for part in spec.split(","):
        part = part.strip()
        if "=" in part:
            key, _, value = part.partition("=")
            if key.strip() == op:
                value = value.strip()
                return None if value.lower() == "auto" else value
        elif part:
            bare = part
    if bare is not None and bare in _table(op):
        return bare
    return None


def _requested(op: str, implementation: Optional[str]) -> Tuple[Optional[str], str]:
    if implementation:
        return implementation, "argument"
    name = _environment_choice(op)
    return (name, "environment") if name else (None, "automatic")


def explain(inputs: KernelInputs, implementation: Optional[str] = None) -> Explanation:
    """Run the selection for ``inputs`` and report every implementation's verdict (never raises for a decline).

    Implementations after the chosen one are not asked about the inputs, but
    those that cannot run here at all (another backend, a missing library) are
    reported as declined with that reason rather than as outranked.

    Args:
        inputs: What the call passes, as the op's contract describes it (``Contract.describe(*args, **params)``).
        implementation: A name to use instead of the selection (as a call's ``implementation=``).

    Raises:
        UnknownKernelError: a requested name is not registered for the op.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> from autograd.tensor import Tensor
        >>> with kernels.isolated(MyRelu):
        ...     print(kernels.explain(ReluKernel.describe(Tensor([-1.0, 2.0]))))
        relu for backend=numpy, dtype=float32, x=(2,), requires_grad=True
        selection: automatic; chosen: my_relu
          * my_relu (priority 5): chosen
          - reference (priority -1000): outranked (a higher choice was taken)
    """
    op = inputs.op
    _discover()
    name, mode = _requested(op, implementation)
    if name is not None:
        impl = get(op, name)
        reasons = _ask(impl, "check", inputs)
        advice = [] if reasons else _ask(impl, "advise", inputs)
        cand = Candidate(impl.name, impl.priority, reasons, chosen=not reasons, advice=advice)
        return Explanation(inputs, mode, None if reasons else impl.name, [cand])
    candidates: List[Candidate] = []
    chosen: Optional[str] = None
    for impl in implementations(op):
        if chosen is not None:
            candidates.append(Candidate(impl.name, impl.priority, _ask(impl, "check_environment", inputs)))
            continue
        reasons = _ask(impl, "check", inputs)
        advice = [] if reasons else _ask(impl, "advise", inputs)
        take = not reasons and not advice
        candidates.append(Candidate(impl.name, impl.priority, reasons, chosen=take, advice=advice))
        if take:
            chosen = impl.name
    return Explanation(inputs, mode, chosen, candidates)


def select(inputs: KernelInputs, implementation: Optional[str] = None) -> Kernel:
    """The implementation to run for ``inputs`` (see the module docstring for the order).

    Args:
        inputs: What the call passes, as the op's contract describes it.
        implementation: A name to use instead of the selection.

    Raises:
        KernelNotSupportedError: an explicitly requested implementation declines.
        UnknownKernelError: the requested name is not registered.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import Relu, ReluKernel
        >>> class MyRelu(ReluKernel):  # a kernel: the op's contract, a name, backends, a priority, a Function
        ...     name, backends, priority, function = "my_relu", ("numpy",), 5, Relu
        >>> from autograd.tensor import Tensor
        >>> inputs = ReluKernel.describe(Tensor([-1.0, 2.0]))
        >>> with kernels.isolated(MyRelu):
        ...     kernels.select(inputs).name, kernels.select(inputs, "reference").name
        ('my_relu', 'reference')
    """
    op = inputs.op
    _discover()
    name, mode = _requested(op, implementation)
    if name is None and not logger.isEnabledFor(logging.DEBUG):
        for e in _ordered(op):  # the hot path: no report objects
            if not _ask(e.impl, "check", inputs) and not _ask(e.impl, "advise", inputs):
                return e.impl
    report = explain(inputs, implementation)
    if report.chosen is None:
        if report.mode == "automatic":  # cannot happen while the reference is registered; say so if it is not
            raise KernelNotSupportedError(f"no {op} implementation accepts {inputs.describe()}:\n{report}")
        c = report.candidates[0]
        how = "implementation=" if report.mode == "argument" else f"{ENV_VAR}={op}="
        raise KernelNotSupportedError(
            f"{op} implementation {c.name!r} (requested with {how}{c.name!r}) cannot take "
            f"{inputs.describe()}: " + "; ".join(c.reasons)
        )
    logger.debug("%s", report)
    return get(op, report.chosen)


def sole(op: str) -> Optional[Kernel]:
    """The only implementation of ``op`` when no plugin adds one and ``AUTOGRAD_KERNELS`` is unset, else None.

    The dispatcher's fast path: with nothing to choose from, it skips describing the inputs.
    """
    if not _discovered:
        _discover()
    table = _entries.get(op) or _table(op)
    if len(table) != 1 or os.environ.get(ENV_VAR):
        return None
    return next(iter(table.values())).impl


def dispatch(op: type, *args: Any, implementation: Optional[str] = None, **params: Any) -> Any:
    """Run the op whose contract is ``op`` through the best implementation for these arguments.

    With only core's reference registered and ``AUTOGRAD_KERNELS`` unset it is
    called directly: installing no plugin costs nothing. What a plugin returns
    is checked against the op's output rule, and the gradients its backward
    returns against the gradient rule (:class:`KernelOutputError` names the
    plugin, the op and the argument).

    Args:
        op: The op's contract class (``autograd.ops.attention.AttentionKernel``...).
        *args: The op's array arguments.
        implementation: A name to use instead of the selection.
        **params: The op's other parameters.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import ReluKernel
        >>> from autograd.tensor import Tensor
        >>> kernels.dispatch(ReluKernel, Tensor([-1.0, 2.0]), implementation="reference").numpy()
        array([0., 2.], dtype=float32)
    """
    if implementation is None:
        only = sole(op.op)
        if only is not None:
            return only.apply(*args, **params)
    inputs = op.describe(*args, **params)
    impl = select(inputs, implementation)
    out = impl.apply(*args, **params)
    if _table(op.op)[impl.name].package != CORE:
        op.check_output(impl, inputs, out)
        if op.differentiable:
            _check_gradients_of(op, impl, inputs, args, out)
    return out


class _GradientCheck:
    """The gradient rule of a plugin's node, applied to what its backward returns (see ``Function.check_gradients``)."""

    def __init__(self, op: str, name: str, rules: Tuple[Optional[Tuple[str, Tuple[int, ...], str]], ...]) -> None:
        self.op, self.name, self.rules = op, name, rules

    def __call__(self, fn: Function, grads: Tuple[Any, ...]) -> Tuple[Any, ...]:
        Tensor = tensor_class()
        for i, rule in enumerate(self.rules):
            if rule is None:
                continue
            arg, shape, dtype = rule
            g = grads[i] if i < len(grads) else None
            if g is None:
                if fn.needs_input_grad[i]:
                    raise KernelOutputError(
                        f"{self.op} implementation {self.name!r}: its backward returned no gradient for {arg!r}, "
                        "which requires one"
                    )
                continue
            a = g._data if isinstance(g, Tensor) else g
            got = backend.dtype_name(a.dtype) if hasattr(a, "dtype") else type(a).__name__
            if tuple(getattr(a, "shape", ())) != shape or got != dtype:
                raise KernelOutputError(
                    f"{self.op} implementation {self.name!r}: its backward returned a gradient of shape "
                    f"{tuple(getattr(a, 'shape', ()))} {got} for {arg!r}, expected {shape} {dtype} "
                    "(the shape and dtype of that input)"
                )
        return grads


def _check_gradients_of(op: type, impl: Kernel, inputs: KernelInputs, args: Tuple[Any, ...], out: Any) -> None:
    fn = getattr(out, "creator", None)
    if fn is None or fn.check_gradients is not None:
        return
    rules = []
    for t in fn.tensors:
        rule = None
        for name, a in zip(op.positional, args):
            if a is t and name in op.differentiable:
                rule = (name,) + tuple(op.gradient(inputs, name))
                break
        rules.append(rule)
    if any(r is not None for r in rules):
        fn.check_gradients = _GradientCheck(op.op, impl.name, tuple(rules))
