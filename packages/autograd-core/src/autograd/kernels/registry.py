"""The kernel registry: plugin discovery, the dispatcher's selection, and its reports.

A kernel is an implementation of one of the hot ops of :mod:`autograd.kernels.contracts`
(attention, layer norm, softmax, cross-entropy, the activations, conv2d,
max-pool, the embedding's scatter-add and the Adam update). Core registers a
reference implementation of every op; an installed distribution adds others
through an entry point, in the ``autograd.kernels`` group for any op, or the
``autograd.attention`` group (attention only, kept for existing plugins)::

    [project.entry-points."autograd.kernels"]
    my_layer_norm = "my_package.kernels:MyLayerNorm"

The object may be an implementation class (instantiated with no arguments),
an instance, or a zero-argument factory. Plugins are discovered lazily, the
first time a dispatched call or :func:`implementations` needs them. One that
fails to import or load is skipped and reported once as a ``RuntimeWarning``
(logged instead when warnings are errors, so ``-W error`` never turns a broken
plugin into a failure of every call) and listed by :func:`load_failures` and
the ``autograd-kernels`` CLI.

Selection, for each call (:func:`select`):

1. the implementation named by the call's ``implementation=`` argument, else
2. the one named by the environment: ``AUTOGRAD_ATTENTION`` for attention,
   ``AUTOGRAD_KERNELS`` for every op (``op=name`` pairs separated by commas, or
   a bare ``name`` that applies to every op that has an implementation of
   that name; ``auto`` or empty means automatic), else
3. automatic: the first implementation, by priority (high first) then name,
   whose :meth:`~KernelImplementation.check` accepts the inputs and whose
   :meth:`~KernelImplementation.advise` raises no objection. The reference
   implementation accepts everything and has the lowest priority.

A named implementation is used when its ``check`` accepts the inputs, even if
``advise`` says another would be faster; when ``check`` declines, the call
raises :class:`KernelNotSupportedError` (:class:`AttentionNotSupportedError`
for attention) listing the inputs and the reasons. A ``check`` (or
``check_environment``/``advise``) that raises is treated as a decline whose
reason names the plugin and the exception, reported once as a warning. The
dispatcher checks the shape and dtype of what a plugin returns and raises
:class:`KernelOutputError` naming the plugin when they are wrong.
:func:`explain` (or the ``autograd.kernels`` logger at DEBUG) tells which
implementation ran and why each other one was passed over.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from autograd import backend

__all__ = [
    "ENTRY_POINT_GROUP",
    "KERNELS_ENTRY_POINT_GROUP",
    "ENV_VAR",
    "KERNELS_ENV_VAR",
    "KernelImplementation",
    "KernelInputs",
    "KernelNotSupportedError",
    "AttentionNotSupportedError",
    "UnknownKernelError",
    "UnknownAttentionImplementationError",
    "KernelOutputError",
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
    "load_failures",
    "reset",
]

#: The attention-only entry-point group of the first plugins (still read).
ENTRY_POINT_GROUP = "autograd.attention"
#: The entry-point group for kernels of any op.
KERNELS_ENTRY_POINT_GROUP = "autograd.kernels"
#: Environment variable naming the attention implementation.
ENV_VAR = "AUTOGRAD_ATTENTION"
#: Environment variable naming implementations of any op (``op=name,...`` or ``name``).
KERNELS_ENV_VAR = "AUTOGRAD_KERNELS"
logger = logging.getLogger("autograd.kernels")


class KernelNotSupportedError(ValueError):
    """An explicitly requested implementation cannot take these inputs."""


class AttentionNotSupportedError(KernelNotSupportedError):
    """An explicitly requested attention implementation cannot take these inputs."""


class UnknownKernelError(LookupError):
    """No implementation of that name is registered for the op."""


class UnknownAttentionImplementationError(UnknownKernelError):
    """No attention implementation of that name is registered."""


class KernelOutputError(RuntimeError):
    """A kernel returned something that breaks its op's contract (wrong shape, dtype or type)."""


@dataclass(frozen=True)
class KernelInputs:
    """What a capability check sees of a call to an op other than attention.

    Attributes:
        op: The op's name (``"layer_norm"``, ``"conv2d"``...).
        backend: The active backend's name.
        dtype: The name of the floating dtype the op computes in (``"float32"``...).
        names: The op's array arguments, in order (see each contract in
            :mod:`autograd.kernels.contracts`).
        shapes: Their shapes, in the same order (``()`` for an absent optional
            argument, such as a convolution without bias).
        params: The op's other arguments as ``(name, value)`` pairs.
        requires_grad: Whether a backward will follow (grad mode and some
            input requires grad).
        dtypes: The dtype name of each array argument, in order (``""`` for
            an absent one): a kernel that needs one dtype throughout checks
            them (under mixed precision a float32 weight may meet a bfloat16
            activation).
    """

    op: str
    backend: str
    dtype: str
    names: Tuple[str, ...]
    shapes: Tuple[Tuple[int, ...], ...]
    params: Tuple[Tuple[str, Any], ...] = ()
    requires_grad: bool = True
    dtypes: Tuple[str, ...] = ()

    def shape(self, name: str) -> Tuple[int, ...]:
        """The shape of the argument ``name``."""
        return self.shapes[self.names.index(name)]

    def param(self, name: str, default: Any = None) -> Any:
        """The value of the parameter ``name``."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def describe(self) -> str:
        """One line naming every field, for error messages."""
        arrays = ", ".join(f"{n}={s}" for n, s in zip(self.names, self.shapes))
        params = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"backend={self.backend}, dtype={self.dtype}, {arrays}{params}, requires_grad={self.requires_grad}"


class KernelImplementation(ABC):
    """The contract every kernel implements; each op's base class in :mod:`autograd.kernels.contracts` extends it.

    Attributes:
        op: The op it implements (set by the op's base class).
        name: Unique among the op's implementations; used by ``implementation=``
            and the environment variables.
        backends: Backend names it runs on (``"numpy"``, ``"mlx"``, ``"cupy"``).
        priority: Higher wins in automatic selection. Conventions: core's
            references -1000; core's own faster kernels 10; first-party plugin
            packages 100. A plugin's priority applies to every program in the
            environment it is installed in, so claim a high one only for the
            inputs ``check`` and ``advise`` let through.
        tolerances: ``{dtype name: (atol, rtol)}`` against the float64
            reference, used by the conformance suites of :mod:`autograd.testing`.

    Three questions, in the order the dispatcher asks them:

    * :meth:`check_environment`: can it run here at all (backend, library,
      device)? Listed by the CLI's "usable" column.
    * :meth:`check`: can it take these inputs ("I can't": it is never used
      for them, and naming it raises).
    * :meth:`advise`: should it be skipped for these inputs in automatic
      selection ("I shouldn't": another implementation is expected to be
      faster, but a call that names it still runs it).
    """

    op: ClassVar[str]
    name: ClassVar[str]
    backends: ClassVar[Tuple[str, ...]]
    priority: ClassVar[int] = 0
    tolerances: ClassVar[Mapping[str, Tuple[float, float]]] = {
        "float64": (1e-9, 1e-7),
        "float32": (2e-5, 1e-4),
        "float16": (2e-3, 2e-2),
        "bfloat16": (1.5e-2, 5e-2),
    }

    def check_environment(self) -> List[str]:
        """Reasons this implementation cannot run here at all (backend, missing library, device)."""
        if backend.BACKEND not in self.backends:
            return [f"the active backend is {backend.BACKEND}; {self.name} runs on {', '.join(self.backends)}"]
        return []

    def check(self, inputs: Any) -> List[str]:
        """Reasons it cannot take ``inputs``; empty when it can. Extend with ``super().check(inputs)``."""
        return self.check_environment()

    def advise(self, inputs: Any) -> List[str]:
        """Reasons automatic selection should pass it over for ``inputs`` although it can take them."""
        return []

    @abstractmethod
    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Run the op (each op's base class states the arguments and what to return)."""

    def __repr__(self) -> str:
        return f"<{self.op} implementation {self.name!r} backends={self.backends} priority={self.priority}>"


@dataclass
class _Entry:
    impl: KernelImplementation
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


def _core_version() -> str:
    try:
        return metadata.version("autograd-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def _validate(obj: Any, where: str) -> KernelImplementation:
    from autograd.kernels.contracts import OPS

    if isinstance(obj, type):
        obj = obj()
    elif callable(obj) and not isinstance(obj, KernelImplementation):
        obj = obj()
    if not isinstance(obj, KernelImplementation):
        raise TypeError(
            f"{where} gave {type(obj).__name__}, not a kernel implementation (a subclass of "
            "autograd.kernels.AttentionImplementation or of another op's base class in autograd.kernels)"
        )
    for attr in ("op", "name", "backends"):
        if not getattr(obj, attr, None):
            raise TypeError(f"{where}: the implementation does not declare {attr!r}")
    if obj.op not in OPS:
        raise TypeError(f"{where}: unknown op {obj.op!r}; the ops are {', '.join(OPS)}")
    if not isinstance(obj, OPS[obj.op].base):
        raise TypeError(f"{where}: an implementation of {obj.op!r} must subclass {OPS[obj.op].base.__name__}")
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


def register(impl: Any, *, package: str = "", version: str = "", replace: bool = False) -> KernelImplementation:
    """Register an implementation (class, instance or factory) programmatically.

    Plugins installed with entry points are discovered first, so a name taken
    by one of them is already taken here (pass ``replace=True`` to override it).

    Raises:
        ValueError: the name is taken for that op and ``replace`` is False.
        TypeError: the object is not an implementation of a known op.
    """
    obj = _validate(impl, f"register({impl!r})")
    _discover()
    with _lock:
        table = _entries.setdefault(obj.op, {})
        if obj.name in table and not replace:
            raise ValueError(f"an {obj.op} implementation named {obj.name!r} is already registered")
        table[obj.name] = _Entry(obj, package or type(obj).__module__.split(".")[0], version or "")
    return obj


def unregister(name: str, op: str = "attention") -> None:
    """Remove the implementation ``name`` of ``op``.

    Plugins are discovered first, so removing an entry-point plugin before any
    call has discovered it still removes it for good (until :func:`reset`).
    """
    _discover()
    with _lock:
        _entries.get(op, {}).pop(name, None)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    pending: List[Tuple[str, str]] = []
    with _lock:
        if _discovered:
            return
        _discovered = True
        from autograd.kernels.reference import builtin_implementations

        for impl in builtin_implementations():
            _entries.setdefault(impl.op, {}).setdefault(impl.name, _Entry(impl, "autograd-core", _core_version()))
        seen = set()
        for group in (KERNELS_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP):
            for ep in metadata.entry_points(group=group):
                if (ep.name, ep.value) in seen:
                    continue
                seen.add((ep.name, ep.value))
                dist = getattr(ep, "dist", None)
                package = dist.name if dist is not None else "?"
                version = dist.version if dist is not None else "?"
                where = f"{group} entry point {ep.name!r} ({ep.value}) of {package} {version}"
                try:
                    impl = _validate(ep.load(), where)
                    if group == ENTRY_POINT_GROUP and impl.op != "attention":
                        raise TypeError(f"{where}: the {group!r} group takes attention only, got {impl.op!r}")
                except Exception as exc:  # noqa: BLE001 - a broken plugin must never be fatal
                    error = f"{type(exc).__name__}: {exc}"
                    _failures.append(LoadFailure(group, ep.name, ep.value, package, version, error))
                    pending.append((f"load:{group}:{ep.name}:{ep.value}", f"autograd: skipping {where}: {error}"))
                    continue
                table = _entries.setdefault(impl.op, {})
                if impl.name in table:
                    if table[impl.name].package != package:
                        error = f"the {impl.op} name {impl.name!r} is already registered by {table[impl.name].package}"
                        _failures.append(LoadFailure(group, ep.name, ep.value, package, version, error))
                        pending.append((f"dup:{impl.op}:{impl.name}", f"autograd: skipping {where}: {error}"))
                    continue
                table[impl.name] = _Entry(impl, package, version)
    for key, message in pending:  # outside the lock: a warning filter may run arbitrary code
        _warn_once(key, message)


def reset() -> None:
    """Forget every registration and load failure; plugins are discovered again on next use (for tests)."""
    global _discovered
    with _lock:
        _entries.clear()
        _failures.clear()
        _discovered = False
        _reported.clear()


def load_failures() -> List[LoadFailure]:
    """The plugin entry points that failed to load (after discovery), with their reasons."""
    _discover()
    return list(_failures)


def _ordered(op: str) -> List[_Entry]:
    _discover()
    return sorted(_entries.get(op, {}).values(), key=lambda e: (-e.impl.priority, e.impl.name))


def implementations(op: str = "attention") -> List[KernelImplementation]:
    """Every registered implementation of ``op``, in selection order."""
    return [e.impl for e in _ordered(op)]


def _unknown(op: str, name: str) -> UnknownKernelError:
    known = ", ".join(e.impl.name for e in _ordered(op)) or "none"
    if op == "attention":
        return UnknownAttentionImplementationError(f"no attention implementation named {name!r}; registered: {known}")
    return UnknownKernelError(f"no {op} implementation named {name!r}; registered: {known}")


def entry(name: str, op: str = "attention") -> _Entry:
    """The registration (implementation, package, version) of ``name`` for ``op``."""
    _discover()
    try:
        return _entries[op][name]
    except KeyError:
        raise _unknown(op, name) from None


def get(name: str, op: str = "attention") -> KernelImplementation:
    """The implementation of ``op`` registered under ``name``."""
    return entry(name, op).impl


@dataclass
class Candidate:
    """One implementation's verdict for a call.

    ``reasons`` are why it cannot take the inputs; ``advice`` why automatic
    selection passed it over although it could.
    """

    name: str
    priority: int
    reasons: List[str]
    chosen: bool = False
    advice: List[str] = field(default_factory=list)


@dataclass
class Explanation:
    """Which implementation a call uses, why, and why the others were passed over."""

    inputs: Any
    mode: str  # "argument", "environment" or "automatic"
    chosen: Optional[str]
    candidates: List[Candidate] = field(default_factory=list)

    def __str__(self) -> str:
        op = getattr(self.inputs, "op", "attention")
        lines = [f"{op} for {self.inputs.describe()}", f"selection: {self.mode}; chosen: {self.chosen}"]
        for c in self.candidates:
            if c.chosen:
                extra = f" (although: {'; '.join(c.advice)})" if c.advice else ""
                lines.append(f"  * {c.name} (priority {c.priority}): chosen{extra}")
            elif c.reasons:
                lines.append(f"  - {c.name} (priority {c.priority}): declined: {'; '.join(c.reasons)}")
            elif c.advice:
                lines.append(f"  - {c.name} (priority {c.priority}): passed over: {'; '.join(c.advice)}")
            else:
                lines.append(f"  - {c.name} (priority {c.priority}): not needed (a higher choice was taken)")
        return "\n".join(lines)


def _ask(impl: KernelImplementation, method: str, inputs: Any) -> List[str]:
    """``impl.check(inputs)`` or ``impl.advise(inputs)``; an exception becomes a reason (and a warning)."""
    try:
        out = getattr(impl, method)(inputs)
        return [str(r) for r in out] if out else []
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break other implementations
        reason = f"{impl.name}.{method}() raised {type(exc).__name__}: {exc}"
        _warn_once(f"{method}:{impl.op}:{impl.name}:{type(exc).__name__}", f"autograd: {reason}; treated as a decline")
        return [reason]


def _environment_choice(op: str) -> Optional[str]:
    if op == "attention":
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env.lower() != "auto":
            return env
    spec = os.environ.get(KERNELS_ENV_VAR, "").strip()
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
    if bare is not None and bare in _entries.get(op, {}):
        return bare
    return None


def _requested(op: str, implementation: Optional[str]) -> Tuple[Optional[str], str]:
    if implementation:
        return implementation, "argument"
    name = _environment_choice(op)
    return (name, "environment") if name else (None, "automatic")


def explain(inputs: Any, implementation: Optional[str] = None) -> Explanation:
    """Run the selection for ``inputs`` and report every implementation's verdict (never raises for a decline).

    Raises:
        UnknownKernelError: a requested name is not registered for the op.
    """
    op = getattr(inputs, "op", "attention")
    _discover()
    name, mode = _requested(op, implementation)
    if name is not None:
        impl = get(name, op)
        reasons = _ask(impl, "check", inputs)
        advice = [] if reasons else _ask(impl, "advise", inputs)
        cand = Candidate(impl.name, impl.priority, reasons, chosen=not reasons, advice=advice)
        return Explanation(inputs, mode, None if reasons else impl.name, [cand])
    candidates: List[Candidate] = []
    chosen: Optional[str] = None
    for impl in implementations(op):
        if chosen is not None:
            candidates.append(Candidate(impl.name, impl.priority, []))
            continue
        reasons = _ask(impl, "check", inputs)
        advice = [] if reasons else _ask(impl, "advise", inputs)
        take = not reasons and not advice
        candidates.append(Candidate(impl.name, impl.priority, reasons, chosen=take, advice=advice))
        if take:
            chosen = impl.name
    return Explanation(inputs, mode, chosen, candidates)


def select(inputs: Any, implementation: Optional[str] = None) -> KernelImplementation:
    """The implementation to run for ``inputs`` (see the module docstring for the order).

    Raises:
        KernelNotSupportedError: an explicitly requested implementation declines
            (:class:`AttentionNotSupportedError` for attention).
        UnknownKernelError: the requested name is not registered.
    """
    report = explain(inputs, implementation)
    op = getattr(inputs, "op", "attention")
    if report.chosen is None:
        if report.mode == "automatic":  # cannot happen while the reference is registered; say so if it is not
            raise KernelNotSupportedError(f"no {op} implementation accepts {inputs.describe()}:\n{report}")
        c = report.candidates[0]
        if report.mode == "argument":
            how = "implementation="
        elif op == "attention" and os.environ.get(ENV_VAR, "").strip():
            how = f"{ENV_VAR}="
        else:
            how = f"{KERNELS_ENV_VAR}={op}="
        kind = AttentionNotSupportedError if op == "attention" else KernelNotSupportedError
        raise kind(
            f"{op} implementation {c.name!r} (requested with {how}{c.name!r}) cannot take "
            f"{inputs.describe()}: " + "; ".join(c.reasons)
        )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", report)
    return get(report.chosen, op)


def sole(op: str) -> Optional[KernelImplementation]:
    """The only implementation of ``op`` when no plugin adds one and no environment variable names one, else None.

    The dispatcher's fast path: with nothing to choose from, it skips describing the inputs.
    """
    if not _discovered:
        _discover()
    table = _entries.get(op)
    if not table or len(table) != 1 or os.environ.get(KERNELS_ENV_VAR):
        return None
    return next(iter(table.values())).impl


def __getattr__(name: str) -> Any:
    # The attention contract lived here before the registry took every op; old imports keep working.
    if name in ("AttentionInputs", "AttentionImplementation"):
        from autograd.kernels import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
