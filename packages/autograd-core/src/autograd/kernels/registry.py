"""The attention-kernel contract, the registry and the dispatcher's selection.

A kernel plugin is an installed distribution that names an
:class:`AttentionImplementation` in the ``autograd.attention`` entry-point
group::

    [project.entry-points."autograd.attention"]
    my_flash = "my_package.attention:MyFlashAttention"

The object may be an implementation class (instantiated with no arguments),
an instance, or a zero-argument factory. Plugins are discovered lazily, the
first time an attention call or :func:`implementations` needs them; one that
fails to import or load is reported once as a warning and skipped.

Selection, for each call (:func:`select`):

1. the implementation named by the ``implementation=`` argument, else
2. the one named by ``AUTOGRAD_ATTENTION`` (``auto`` or empty means automatic),
   else
3. the first, by priority (high first) then name, whose capability check
   accepts the inputs; ``dense`` (the reference, built from Tensor ops)
   accepts everything and has the lowest priority.

An explicitly named implementation that cannot take the inputs raises
:class:`AttentionNotSupportedError` listing the inputs and its reasons; in
automatic mode a declined implementation is skipped silently, and
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
    "ENV_VAR",
    "AttentionInputs",
    "AttentionImplementation",
    "AttentionNotSupportedError",
    "UnknownAttentionImplementationError",
    "Candidate",
    "Explanation",
    "register",
    "unregister",
    "implementations",
    "get",
    "select",
    "explain",
    "reset",
]

ENTRY_POINT_GROUP = "autograd.attention"
ENV_VAR = "AUTOGRAD_ATTENTION"
logger = logging.getLogger("autograd.kernels")


class AttentionNotSupportedError(ValueError):
    """An explicitly requested implementation cannot take these inputs."""


class UnknownAttentionImplementationError(LookupError):
    """No implementation of that name is registered."""


@dataclass(frozen=True)
class AttentionInputs:
    """What a capability check sees of an attention call.

    Shapes are (batch, heads, seq, head_dim); ``dtype`` is the name of the
    query's dtype (``"float32"``, ``"bfloat16"``...); ``mask`` is ``"none"``,
    ``"bool"`` or ``"additive"``.
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


class AttentionImplementation(ABC):
    """The contract a kernel author implements.

    Attributes:
        name: Unique name, used by ``implementation=`` and ``AUTOGRAD_ATTENTION``.
        backends: Backend names it runs on (``"numpy"``, ``"mlx"``, ``"cupy"``).
        priority: Higher wins in automatic selection (dense is -1000).
        tolerances: ``{dtype name: (atol, rtol)}`` against the float64 dense
            reference, used by :func:`autograd.testing.check_attention_implementation`.

    Semantics every implementation follows (the dense reference defines them):

    * inputs are (B, H, Tq, D) queries, (B, H, Tk, D) keys, (B, H, Tk, Dv)
      values; the output is (B, H, Tq, Dv) in the query's dtype;
    * ``scores = q @ k^T * scale`` (``scale`` defaults to ``1/sqrt(D)``);
    * an additive float mask adds ``mask * -1e9`` (1.0 forbids, 0.0 allows); a
      bool mask forbids where True; masks broadcast to (B, H, Tq, Tk);
    * ``is_causal`` (used only without a mask) lets query ``i`` see keys
      ``j <= i + Tk - Tq`` (aligned to the bottom right, as for a KV cache);
    * dropout multiplies the probabilities by ``keep / (1 - p)``, where the keep
      decision of element (b, h, i, j) is a function of ``seed`` and that
      position only, so the backward reproduces it without storing it;
    * rows whose every key is forbidden are unspecified.

    :meth:`attention` returns a Tensor built by a :class:`~autograd.tensor.Function`
    (or by Tensor ops), so gradients flow through it like any op.
    """

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

    def check(self, inputs: AttentionInputs) -> List[str]:
        """Reasons it cannot take ``inputs``; empty when it can. Extend with ``super().check(inputs)``."""
        return self.check_environment()

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

    def __repr__(self) -> str:
        return f"<attention implementation {self.name!r} backends={self.backends} priority={self.priority}>"


@dataclass
class _Entry:
    impl: AttentionImplementation
    package: str
    version: str


_lock = threading.Lock()
_entries: Dict[str, _Entry] = {}
_discovered = False
_reported: set = set()


def _core_version() -> str:
    try:
        return metadata.version("autograd-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def _validate(obj: Any, where: str) -> AttentionImplementation:
    if isinstance(obj, type):
        obj = obj()
    elif callable(obj) and not isinstance(obj, AttentionImplementation):
        obj = obj()
    if not isinstance(obj, AttentionImplementation):
        raise TypeError(f"{where} gave {type(obj).__name__}, not an AttentionImplementation")
    for attr in ("name", "backends"):
        if not getattr(obj, attr, None):
            raise TypeError(f"{where}: the implementation does not declare {attr!r}")
    return obj


def register(impl: Any, *, package: str = "", version: str = "", replace: bool = False) -> AttentionImplementation:
    """Register an implementation (class, instance or factory) programmatically.

    Raises:
        ValueError: the name is taken and ``replace`` is False.
    """
    obj = _validate(impl, f"register({impl!r})")
    with _lock:
        if obj.name in _entries and not replace:
            raise ValueError(f"an attention implementation named {obj.name!r} is already registered")
        _entries[obj.name] = _Entry(obj, package or type(obj).__module__.split(".")[0], version or "")
    return obj


def unregister(name: str) -> None:
    """Remove an implementation (mostly for tests)."""
    with _lock:
        _entries.pop(name, None)


def _warn_once(key: str, message: str) -> None:
    if key not in _reported:
        _reported.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    with _lock:
        if _discovered:
            return
        _discovered = True
        from autograd.kernels.dense import DenseAttention

        _entries.setdefault("dense", _Entry(DenseAttention(), "autograd-core", _core_version()))
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            where = f"entry point {ep.name!r} ({ep.value}) of {package} {version}"
            try:
                impl = _validate(ep.load(), where)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must never be fatal
                _warn_once(
                    f"load:{ep.name}:{ep.value}",
                    f"autograd: skipping attention plugin {where}: {type(exc).__name__}: {exc}",
                )
                continue
            if impl.name in _entries:
                if _entries[impl.name].package != package:
                    _warn_once(
                        f"dup:{impl.name}",
                        f"autograd: skipping attention plugin {where}: the name {impl.name!r} is already "
                        f"registered by {_entries[impl.name].package}",
                    )
                continue
            _entries[impl.name] = _Entry(impl, package, version)


def reset() -> None:
    """Forget every registration and discover the plugins again on next use (for tests)."""
    global _discovered
    with _lock:
        _entries.clear()
        _discovered = False
        _reported.clear()


def _ordered() -> List[_Entry]:
    _discover()
    return sorted(_entries.values(), key=lambda e: (-e.impl.priority, e.impl.name))


def implementations() -> List[AttentionImplementation]:
    """Every registered implementation, in selection order."""
    return [e.impl for e in _ordered()]


def entry(name: str) -> _Entry:
    _discover()
    try:
        return _entries[name]
    except KeyError:
        known = ", ".join(e.impl.name for e in _ordered())
        raise UnknownAttentionImplementationError(
            f"no attention implementation named {name!r}; registered: {known}"
        ) from None


def get(name: str) -> AttentionImplementation:
    """The implementation registered under ``name``."""
    return entry(name).impl


@dataclass
class Candidate:
    """One implementation's verdict for a call."""

    name: str
    priority: int
    reasons: List[str]
    chosen: bool = False


@dataclass
class Explanation:
    """Which implementation a call uses, why, and why the others were passed over."""

    inputs: AttentionInputs
    mode: str  # "argument", "environment" or "automatic"
    chosen: Optional[str]
    candidates: List[Candidate] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"attention for {self.inputs.describe()}", f"selection: {self.mode}; chosen: {self.chosen}"]
        for c in self.candidates:
            if c.chosen:
                lines.append(f"  * {c.name} (priority {c.priority}): chosen")
            elif c.reasons:
                lines.append(f"  - {c.name} (priority {c.priority}): declined: {'; '.join(c.reasons)}")
            else:
                lines.append(f"  - {c.name} (priority {c.priority}): not needed (a higher choice was taken)")
        return "\n".join(lines)


def _requested(implementation: Optional[str]) -> Tuple[Optional[str], str]:
    if implementation:
        return implementation, "argument"
    env = os.environ.get(ENV_VAR, "").strip()
    if env and env.lower() != "auto":
        return env, "environment"
    return None, "automatic"


def explain(inputs: AttentionInputs, implementation: Optional[str] = None) -> Explanation:
    """Run the selection for ``inputs`` and report every implementation's verdict (never raises for a decline)."""
    name, mode = _requested(implementation)
    candidates: List[Candidate] = []
    chosen: Optional[str] = None
    if name is not None:
        impl = get(name)
        reasons = impl.check(inputs)
        candidates.append(Candidate(impl.name, impl.priority, reasons, chosen=not reasons))
        chosen = None if reasons else impl.name
        return Explanation(inputs, mode, chosen, candidates)
    for impl in implementations():
        if chosen is not None:
            candidates.append(Candidate(impl.name, impl.priority, []))
            continue
        reasons = impl.check(inputs)
        candidates.append(Candidate(impl.name, impl.priority, reasons, chosen=not reasons))
        if not reasons:
            chosen = impl.name
    return Explanation(inputs, mode, chosen, candidates)


def select(inputs: AttentionInputs, implementation: Optional[str] = None) -> AttentionImplementation:
    """The implementation to run for ``inputs`` (see the module docstring for the order).

    Raises:
        AttentionNotSupportedError: an explicitly requested implementation declines.
        UnknownAttentionImplementationError: the requested name is not registered.
    """
    report = explain(inputs, implementation)
    if report.chosen is None:
        c = report.candidates[0]
        how = "implementation=" if report.mode == "argument" else f"{ENV_VAR}="
        raise AttentionNotSupportedError(
            f"attention implementation {c.name!r} (requested with {how}{c.name!r}) cannot take "
            f"{inputs.describe()}: " + "; ".join(c.reasons)
        )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", report)
    return get(report.chosen)
