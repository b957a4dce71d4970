"""The kernel contract: the class every op's contract extends, and what a capability check sees of a call.

An op that plugins may implement (layer norm, attention, the Adam update...)
is defined once, in its module of :mod:`autograd.ops`, by a subclass of
:class:`Kernel` that sets ``op``: its **contract**. The contract's ``apply``
is the op's signature (array arguments positional, parameters keyword-only),
typed and documented; its class methods are the op's rules: the shape and
dtype of the output (:meth:`Kernel.output`) and of each gradient
(:meth:`Kernel.gradient`), the tolerances a kernel is held to per dtype, the
conformance cases, and core's reference implementation.

A kernel is a subclass of a contract that sets ``name``, ``backends`` and
``priority``, and computes the op in one of two ways:

* ``function = MyFunction``: a :class:`~autograd.engine.Function` whose
  ``forward`` takes the op's arrays positionally (same names, same order) and
  its parameters by keyword, and whose ``backward`` returns one gradient per
  array argument (``None`` where ``needs_input_grad`` is False); or
* an override of ``apply`` with exactly the contract's signature, for a
  composition of Tensor ops or several Functions.

Registration checks that signature (:func:`check_signature`). The dispatcher
(:mod:`autograd.kernels.registry`) checks the output of a plugin against
:meth:`Kernel.output` and every gradient its backward returns against
:meth:`Kernel.gradient`, and raises :class:`KernelOutputError` naming the
plugin, the op and the argument when one is wrong.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.engine import is_grad_enabled, tensor_class

__all__ = [
    "Kernel",
    "KernelInputs",
    "KernelCase",
    "OPS",
    "DEFAULT_TOLERANCES",
    "REFERENCE",
    "REFERENCE_PRIORITY",
    "ALL_BACKENDS",
    "KernelNotSupportedError",
    "UnknownKernelError",
    "KernelOutputError",
    "check_signature",
    "CoreReference",
    "make_inputs",
    "compare_arrays",
]

#: The name of core's implementation of every op.
REFERENCE = "reference"
#: Its priority: the lowest, so any implementation that accepts the inputs is preferred.
REFERENCE_PRIORITY = -1000
ALL_BACKENDS = ("numpy", "mlx", "cupy")
#: ``{dtype: (atol, rtol)}`` a kernel's values and gradients must meet against the float64 reference:
#: ``|got - reference| <= atol + rtol * max|reference|``. An op's contract may set its own.
DEFAULT_TOLERANCES: Mapping[str, Tuple[float, float]] = {
    "float64": (1e-9, 1e-7),
    "float32": (5e-5, 3e-4),
    "float16": (3e-3, 2e-2),
    "bfloat16": (2e-2, 5e-2),
}

#: Every op defined so far, by name: its contract class (filled as the modules of autograd.ops are imported).
OPS: Dict[str, type] = {}


class KernelNotSupportedError(ValueError):
    """An implementation requested by name (argument or ``AUTOGRAD_KERNELS``) cannot take these inputs."""


class UnknownKernelError(LookupError):
    """No implementation of that name is registered for the op."""


class KernelOutputError(RuntimeError):
    """A kernel returned something that breaks its op's rules (wrong type, shape or dtype, a missing gradient)."""


@dataclass(frozen=True)
class KernelInputs:
    """What a capability check sees of one call of an op.

    Attributes:
        op: The op's name (``"layer_norm"``, ``"attention"``...).
        backend: The active backend's name.
        dtype: The name of the floating dtype the op computes in (its first
            floating array argument's: ``"float32"``, ``"bfloat16"``...).
        names: The op's array arguments, in order: the positional arguments
            of its contract, then its array-valued keyword parameters (such as
            attention's ``mask``).
        shapes: Their shapes, in the same order (``()`` for an absent one).
        dtypes: The dtype name of each, in order (``""`` for an absent one):
            under mixed precision a float32 weight may meet a bfloat16
            activation, so a kernel that needs one dtype checks them all.
        params: The op's other keyword parameters as ``(name, value)`` pairs.
        requires_grad: Whether a backward will follow (grad mode, and some
            differentiable input requires grad).
    """

    op: str
    backend: str
    dtype: str
    names: Tuple[str, ...]
    shapes: Tuple[Tuple[int, ...], ...]
    dtypes: Tuple[str, ...] = ()
    params: Tuple[Tuple[str, Any], ...] = ()
    requires_grad: bool = True

    def shape(self, name: str) -> Tuple[int, ...]:
        """The shape of the array argument ``name`` (``()`` when it is absent)."""
        return self.shapes[self.names.index(name)]

    def dtype_of(self, name: str) -> str:
        """The dtype name of the array argument ``name`` (``""`` when it is absent)."""
        return self.dtypes[self.names.index(name)] if self.dtypes else self.dtype

    def present(self, name: str) -> bool:
        """Whether the optional array argument ``name`` was given."""
        return self.dtype_of(name) != ""

    def param(self, name: str, default: Any = None) -> Any:
        """The value of the parameter ``name``."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def describe(self) -> str:
        """One line naming every field, for error messages."""
        arrays = ", ".join(
            f"{n}={s}" + (f" {d}" if d and d != self.dtype else "")
            for n, s, d in zip(self.names, self.shapes, self.dtypes or ("",) * len(self.names))
            if d or not self.dtypes
        )
        params = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"backend={self.backend}, dtype={self.dtype}, {arrays}{params}, requires_grad={self.requires_grad}"


@dataclass
class KernelCase:
    """One conformance call of an op: host arrays (floating ones are cast to the dtype under test) and parameters.

    ``arrays`` are NumPy arrays (or None for an absent optional argument), one
    per positional argument of the contract; ``differentiable`` says which are
    floating inputs that get gradients; ``raw`` which are passed as backend
    arrays rather than Tensors (the embedding's indices). Floating NumPy
    arrays among ``params`` (an additive mask) are cast to the dtype under
    test too. ``skip`` is the reason a case is left out (the contract leaves
    its result unspecified).
    """

    label: str
    arrays: List[Optional[np.ndarray]]
    params: Dict[str, Any]
    differentiable: Tuple[bool, ...]
    raw: Tuple[bool, ...] = ()
    skip: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


def _shape(a: Any) -> Tuple[int, ...]:
    return () if a is None else tuple(int(s) for s in a.shape)


def _dtype(a: Any) -> str:
    return "" if a is None else backend.dtype_name(a.dtype)


class Kernel:
    """Base of every op's contract and, through them, of every kernel.

    A kernel sets ``name``, ``backends``, ``priority`` and ``function`` (or
    overrides ``apply``); the op's contract sets ``op`` (its name),
    ``array_params`` (keyword parameters that are arrays), ``differentiable``
    (the array arguments that get gradients) and ``tolerances``.

    Attributes:
        name: Unique among the op's implementations; what ``implementation=``
            and ``AUTOGRAD_KERNELS`` name.
        backends: Backend names it runs on (``"numpy"``, ``"mlx"``, ``"cupy"``).
        priority: Higher wins in automatic selection. Core's reference has
            -1000 and its own faster kernels 10; each first-party plugin
            package has its own (see the plugin guide), so two never tie on
            a backend. A priority applies to every program of the environment
            the plugin is installed in: claim a high one only for the inputs
            ``check`` and ``advise`` let through.
        function: The :class:`~autograd.engine.Function` that computes the op
            (or override ``apply``).

    The dispatcher asks three questions, in this order:

    * :meth:`check_environment`: can it run here at all (backend, library,
      device)? The CLI's "usable" column.
    * :meth:`check`: can it take these inputs ("I can't": it is never used
      for them, and naming it raises).
    * :meth:`advise`: should automatic selection pass it over for these
      inputs ("I shouldn't": another is expected to be faster, but a call
      that names it still runs it).
    """

    op: ClassVar[str]
    name: ClassVar[str]
    backends: ClassVar[Tuple[str, ...]]
    priority: ClassVar[int] = 0
    function: ClassVar[Optional[type]] = None
    array_params: ClassVar[Tuple[str, ...]] = ()
    differentiable: ClassVar[Tuple[str, ...]] = ()
    tolerances: ClassVar[Mapping[str, Tuple[float, float]]] = DEFAULT_TOLERANCES
    #: Derived from the contract's ``apply``: its positional (array) and keyword-only parameter names.
    positional: ClassVar[Tuple[str, ...]] = ()
    keywords: ClassVar[Tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "op" not in cls.__dict__:
            return
        if any(getattr(base, "op", None) for base in cls.__mro__[1:]):
            raise TypeError(
                f"{cls.__name__} sets op, but it subclasses the contract of {cls.op!r}: only a contract sets op"
            )
        params = list(inspect.signature(cls.apply).parameters.values())[1:]
        cls.positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
        cls.keywords = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
        OPS[cls.op] = cls

    @classmethod
    def contract(cls) -> type:
        """The op's contract class (the class in this one's ancestry that sets ``op``)."""
        for klass in cls.__mro__:
            if "op" in klass.__dict__:
                return klass
        raise TypeError(f"{cls.__name__} is not a kernel of any op: subclass an op's contract from autograd.ops")

    @classmethod
    def arrays(cls) -> Tuple[str, ...]:
        """The op's array arguments, as :class:`KernelInputs` lists them."""
        return cls.positional + cls.array_params

    # -- the questions the dispatcher asks ------------------------------------------------------------------

    def check_environment(self) -> List[str]:
        """Reasons this implementation cannot run here at all (backend, missing library, device)."""
        if backend.BACKEND not in self.backends:
            return [f"the active backend is {backend.BACKEND}; {self.name} runs on {', '.join(self.backends)}"]
        return []

    def check(self, inputs: KernelInputs) -> List[str]:
        """Reasons it cannot take ``inputs``; empty when it can. Extend with ``super().check(inputs)``."""
        return self.check_environment()

    def advise(self, inputs: KernelInputs) -> List[str]:
        """Reasons automatic selection should pass it over for ``inputs`` although it can take them."""
        return []

    # -- running it -----------------------------------------------------------------------------------------

    def apply(self, *args: Any, **params: Any) -> Any:
        """Run the op; each contract restates this with the op's exact signature."""
        return self.call_function(*args, **params)

    def call_function(self, *args: Any, **params: Any) -> Any:
        """``function.apply(*args, **params)``: what a contract's ``apply`` does unless a kernel overrides it."""
        if self.function is None:
            raise NotImplementedError(f"{type(self).__name__} sets neither `function` nor overrides `apply`")
        return self.function.apply(*args, **params)

    # -- the op's rules (class methods of the contract) -----------------------------------------------------

    @classmethod
    def reference(cls) -> "Kernel":
        """Core's implementation of the op (each contract returns its own)."""
        raise NotImplementedError(f"the contract of {cls.op!r} names no reference implementation")

    @classmethod
    def describe(cls, *args: Any, **params: Any) -> KernelInputs:
        """The :class:`KernelInputs` of a call ``apply(*args, **params)``."""
        Tensor = tensor_class()
        datas = [a._data if isinstance(a, Tensor) else a for a in args]
        datas += [p._data if isinstance(p, Tensor) else p for p in (params.get(name) for name in cls.array_params)]
        dtype = ""
        for d in datas:
            if d is not None and hasattr(d, "dtype") and backend.is_floating(d.dtype):
                dtype = backend.dtype_name(d.dtype)
                break
        requires_grad = False
        if is_grad_enabled():
            for name, a in zip(cls.positional, args):
                if name in cls.differentiable and isinstance(a, Tensor) and a.requires_grad:
                    requires_grad = True
                    break
        return KernelInputs(
            op=cls.op,
            backend=backend.BACKEND,
            dtype=dtype,
            names=cls.arrays(),
            shapes=tuple(_shape(d) for d in datas),
            dtypes=tuple(_dtype(d) for d in datas),
            params=tuple((k, params[k]) for k in cls.keywords if k in params and k not in cls.array_params),
            requires_grad=requires_grad,
        )

    @classmethod
    def output(cls, inputs: KernelInputs) -> Tuple[Tuple[int, ...], str]:
        """The (shape, dtype name) the forward must return for ``inputs``."""
        raise NotImplementedError(f"the contract of {cls.op!r} states no output rule")

    @classmethod
    def gradient(cls, inputs: KernelInputs, name: str) -> Tuple[Tuple[int, ...], str]:
        """The (shape, dtype name) of the gradient of the array argument ``name``: that argument's own."""
        return inputs.shape(name), inputs.dtype_of(name)

    @classmethod
    def check_output(cls, impl: "Kernel", inputs: KernelInputs, out: Any) -> None:
        """Raise :class:`KernelOutputError` unless ``out`` is a Tensor of :meth:`output`'s shape and dtype."""
        if not isinstance(out, tensor_class()):
            raise KernelOutputError(
                f"{cls.op} implementation {impl.name!r} returned {type(out).__name__}, not a Tensor, for "
                f"{inputs.describe()}"
            )
        want, want_dtype = cls.output(inputs)
        got_dtype = backend.dtype_name(out.dtype)
        if tuple(out.shape) != tuple(want) or got_dtype != want_dtype:
            raise KernelOutputError(
                f"{cls.op} implementation {impl.name!r} returned shape {tuple(out.shape)} {got_dtype}, expected "
                f"{tuple(want)} {want_dtype}, for {inputs.describe()}"
            )

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """The conformance cases: edge cases, plus shapes drawn from ``rng``."""
        raise NotImplementedError(f"the contract of {cls.op!r} has no conformance cases")

    @classmethod
    def case_arguments(cls, case: KernelCase, dt: Any) -> Tuple[List[Any], Dict[str, Any]]:
        """The arguments of ``apply`` for ``case`` in dtype ``dt``: Tensors, backend arrays and parameters."""
        Tensor = tensor_class()
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
        params = {}
        for k, v in case.params.items():
            if isinstance(v, np.ndarray):
                v = backend.asarray(v.astype(np.float64)).astype(dt) if v.dtype.kind == "f" else backend.asarray(v)
            params[k] = v
        return args, params

    @classmethod
    def run_case(cls, impl: "Kernel", case: KernelCase, dt: Any, seed: int) -> List[Tuple[str, Any]]:
        """Run ``impl`` on ``case`` in ``dt``: the output and the gradient of each differentiable argument.

        The backward gets a random upstream gradient drawn from ``seed``.
        Returns ``(name, host array or None)`` pairs: ``("output", ...)``, then
        ``("d<argument>", ...)`` (None where no gradient arrived).
        """
        args, params = cls.case_arguments(case, dt)
        out = impl.apply(*args, **params)
        results: List[Tuple[str, Any]] = [("output", out)]
        if out.requires_grad:
            upstream = np.random.default_rng(seed).standard_normal(tuple(out.shape))
            out.backward(backend.asarray(upstream).astype(out.dtype))
        for name, a, diff in zip(cls.positional, args, case.differentiable):
            if diff and a is not None:
                results.append((f"d{name}", None if a.grad is None else a.grad))
        return results

    @classmethod
    def extra_cases(cls, impl: "Kernel", rng: np.random.Generator) -> List[Tuple[str, KernelInputs, Callable]]:
        """Checks beyond :meth:`cases` (label, inputs for ``check``, and a function returning the problems found)."""
        return []

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A typical call of the op in ``dtype`` (the sizes of a small training step), for the CLI's report."""
        raise NotImplementedError(f"the contract of {cls.op!r} has no probe")

    def __repr__(self) -> str:
        name = getattr(self, "name", "?")
        return f"<{self.op} implementation {name!r} backends={getattr(self, 'backends', ())} priority={self.priority}>"


def _parameters(func: Any) -> List[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    return params[1:] if params and params[0].name == "self" else params


def check_signature(impl: Kernel) -> None:
    """Raise ``TypeError`` unless ``impl`` computes its op with the contract's signature.

    An ``apply`` override must take the contract's positional arguments, in
    order and by the same names, and its keyword-only parameters (extra
    parameters need defaults; ``*args``/``**kwargs`` would hide the
    signature and are refused). A ``function`` must take the arrays
    positionally by the same names and accept every parameter by keyword.

    Args:
        impl: A kernel instance.

    Examples:
        >>> from autograd import kernels
        >>> from autograd.ops.activations import ReluKernel
        >>> class LeakyRelu(ReluKernel):
        ...     name, backends = "leaky", ("numpy",)
        ...     def apply(self, x, slope):  # relu's contract is apply(self, x)
        ...         return x.maximum(x * slope)
        >>> kernels.check_signature(LeakyRelu())
        Traceback (most recent call last):
        ...
        TypeError: LeakyRelu (relu implementation 'leaky'): apply has extra parameters without defaults: ['slope']
    """
    contract = type(impl).contract()
    where = f"{type(impl).__name__} ({contract.op} implementation {getattr(impl, 'name', '?')!r})"
    want = _parameters(contract.apply)
    if type(impl).apply is not contract.apply:
        got = _parameters(type(impl).apply)
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in got):
            raise TypeError(f"{where}: apply must spell out the contract's signature, not *args/**kwargs: {_sig(want)}")
        got_names = [(p.name, p.kind) for p in got if p.name in {w.name for w in want}]
        if got_names != [(p.name, p.kind) for p in want]:
            raise TypeError(f"{where}: apply{_sig(got)} does not match the contract's apply{_sig(want)}")
        extra = [p.name for p in got if p.name not in {w.name for w in want} and p.default is p.empty]
        if extra:
            raise TypeError(f"{where}: apply has extra parameters without defaults: {extra}")
        return
    if impl.function is None:
        raise TypeError(f"{where}: set `function` to a Function or override `apply{_sig(want)}`")
    got = _parameters(impl.function.forward)
    positional = [p.name for p in got if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional[: len(contract.positional)] != list(contract.positional):
        raise TypeError(
            f"{where}: {impl.function.__name__}.forward{_sig(got)} must take the arrays "
            f"{', '.join(contract.positional)} first, in that order"
        )
    takes_any = any(p.kind is p.VAR_KEYWORD for p in got)
    names = {p.name for p in got if p.kind is not p.POSITIONAL_ONLY}
    missing = [k for k in contract.keywords if k not in names and not takes_any]
    if missing:
        raise TypeError(f"{where}: {impl.function.__name__}.forward does not take the parameters {missing} by keyword")


def _sig(params: List[inspect.Parameter]) -> str:
    out, star = [], False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star:
            out.append("*")
            star = True
        out.append(("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name)
    return "(" + ", ".join(out) + ")"


class CoreReference:
    """Mixed into core's reference implementation of each op: its name, backends and priority."""

    name = REFERENCE
    backends = ALL_BACKENDS
    priority = REFERENCE_PRIORITY


def make_inputs(
    contract: type,
    dtype: str,
    shapes: Mapping[str, Tuple[int, ...]],
    params: Mapping[str, Any] = {},  # noqa: B006 - read only
    dtypes: Optional[Mapping[str, str]] = None,
    requires_grad: bool = True,
) -> KernelInputs:
    """The :class:`KernelInputs` of a call described by shapes (for probes and tests): absent arrays get ``()``."""
    names = contract.arrays()
    dtypes = dict(dtypes or {})
    return KernelInputs(
        op=contract.op,
        backend=backend.BACKEND,
        dtype=dtype,
        names=names,
        shapes=tuple(tuple(shapes.get(n, ())) for n in names),
        dtypes=tuple(dtypes.get(n, dtype if n in shapes else "") for n in names),
        params=tuple((k, params[k]) for k in contract.keywords if k in params),
        requires_grad=requires_grad,
    )


def compare_arrays(name: str, got: Any, ref: Any, atol: float, rtol: float) -> Optional[str]:
    """Why ``got`` is not ``ref`` within ``atol + rtol * max|ref|`` (shape, non-finite values, worst element).

    None when it is.
    """
    Tensor = tensor_class()
    host = [np.asarray(backend.to_numpy(a._data if isinstance(a, Tensor) else a), dtype=np.float64) for a in (got, ref)]
    got, ref = host
    if got.shape != ref.shape:
        return f"{name}: shape {got.shape} != reference {ref.shape}"
    finite = np.isfinite(ref)
    if not np.array_equal(np.isfinite(got), finite):
        return f"{name}: non-finite values where the reference has none (or the reverse)"
    diff = np.where(finite, np.abs(got - ref), 0.0)
    err = float(np.max(diff)) if got.size else 0.0
    bound = atol + rtol * (float(np.max(np.abs(ref[finite]))) if finite.any() else 0.0)
    if err > bound:
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), ref.shape))
        return (
            f"{name}: max |error| {err:.3e} > {bound:.3e} at {idx} "
            f"(got {float(got[idx]):.6g}, reference {float(ref[idx]):.6g})"
        )
    return None
