"""A stand-in for CuPy on the host that records every device-to-host transfer: sync counting without a GPU.

:func:`install` puts modules named ``cupy`` and ``cupyx`` in ``sys.modules``,
so ``AUTOGRAD_BACKEND=cupy`` selects autograd's CuPy backend (its own code
paths: ``asnumpy``, ``cupyx.scatter_add``, index checks...) on top of NumPy.
Its :class:`ndarray` is a ``numpy.ndarray`` subclass that behaves like CuPy's
where the difference matters here:

* every operation returns a device array: reductions and scalar indexing give
  0-d arrays, never Python or NumPy scalars (as CuPy does);
* every way a value reaches the host is recorded in :data:`LOG` with the line
  of library code that asked for it: ``float()``, ``int()``, ``bool()``,
  ``operator.index``, ``.item()``, ``.tolist()``, ``.get()``,
  ``cupy.asnumpy``, printing, ``Stream.synchronize``, and ``numpy.asarray`` /
  ``numpy.array`` of a device array called from outside NumPy (real CuPy
  refuses those implicit conversions; here they are counted).

What it cannot see: host copies NumPy makes internally without going through
those entry points, and the time a real device would wait. The GPU check
(``tools/gpu_check.py``) measures the real device: it queues a long kernel
before a training step and checks that the step returns while the kernel still
runs.

Install it in a fresh process, before autograd is imported (the backend is
chosen at import).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List

import numpy as np

__all__ = ["ndarray", "LOG", "SyncLog", "install", "module"]

_REAL_ASARRAY = np.asarray
_REAL_ARRAY = np.array
_HERE = __file__


@dataclass
class SyncLog:
    """Device-to-host transfers recorded while :attr:`active`: ``{what, file, line, function}`` each."""

    active: bool = False
    events: List[Dict[str, Any]] = field(default_factory=list)

    @contextlib.contextmanager
    def recording(self) -> Iterator["SyncLog"]:
        self.events.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False


LOG = SyncLog()


def _site() -> Dict[str, Any]:
    """The innermost frame of the code that asked: not NumPy, not this module, not autograd's backend helpers
    (``to_numpy`` is how the library asks; its caller is the one that wanted the value). ``function`` is the
    enclosing named function (a generator expression's own frame is ``<genexpr>``)."""
    stack = [f for f in traceback.extract_stack()[:-2] if not _skipped(f.filename)]
    if not stack:
        return {"file": "?", "line": 0, "function": "?"}
    inner = stack[-1]
    named = next((f for f in reversed(stack) if f.filename == inner.filename and not f.name.startswith("<")), inner)
    return {"file": _short(inner.filename), "line": inner.lineno, "function": named.name}


def _skipped(filename: str) -> bool:
    return filename == _HERE or "/numpy/" in filename or filename.endswith("/autograd/backend.py")


def _short(path: str) -> str:
    for marker in ("/src/", "/site-packages/"):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


def _sync(what: str) -> None:
    if LOG.active:
        LOG.events.append({"what": what, **_site()})


def _device(value: Any) -> Any:
    """``value`` as the simulated device holds it: arrays (and scalars) become :class:`ndarray`."""
    if isinstance(value, ndarray):
        return value
    if isinstance(value, np.ndarray):
        return value.view(ndarray)
    if isinstance(value, np.generic):
        return _REAL_ASARRAY(value).view(ndarray)
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    if isinstance(value, list):
        return [_device(v) for v in value]
    return value


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    """A device array of the simulated CuPy (see the module docstring).

    Its type names the module ``cupy``, as CuPy's does, so code that tells CuPy arrays by their type's module
    (``autograd_kernels_cuda.triton_support.array_module``) takes it for one.
    """

    def __array_wrap__(self, obj: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # CuPy returns 0-d arrays where NumPy returns scalars: ignore return_scalar.
        return obj.view(ndarray) if isinstance(obj, np.ndarray) else _device(obj)

    def __getitem__(self, index: Any) -> Any:
        return _device(super().__getitem__(index))

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def __float__(self) -> float:
        _sync("float()")
        return float(self.view(np.ndarray))

    def __int__(self) -> int:
        _sync("int()")
        return int(self.view(np.ndarray))

    def __index__(self) -> int:
        _sync("operator.index()")
        return self.view(np.ndarray).__index__()

    def __bool__(self) -> bool:
        _sync("bool()")
        return bool(self.view(np.ndarray))

    def __complex__(self) -> complex:
        _sync("complex()")
        return complex(self.view(np.ndarray))

    def item(self, *args: Any) -> Any:
        _sync(".item()")
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        _sync(".tolist()")
        return self.view(np.ndarray).tolist()

    def get(self, *args: Any, **kwargs: Any) -> np.ndarray:
        _sync(".get()")
        return _REAL_ARRAY(self.view(np.ndarray))

    def __repr__(self) -> str:
        _sync("repr()")
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        _sync("str()")
        return str(self.view(np.ndarray))

    def __format__(self, spec: str) -> str:
        _sync("format()")
        return format(self.view(np.ndarray), spec)


def _asnumpy(a: Any, *args: Any, **kwargs: Any) -> np.ndarray:
    if isinstance(a, ndarray):
        _sync("cupy.asnumpy()")
        return _REAL_ARRAY(a.view(np.ndarray))
    return _REAL_ARRAY(a)


def _to_device(func: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _device(func(*args, **kwargs))

    call.__name__ = getattr(func, "__name__", "call")
    return call


def _copy_in(func: Callable[..., Any]) -> Callable[..., Any]:
    """``cupy.asarray``/``cupy.array`` of host data copy it to the device (never alias the host buffer)."""

    def call(a: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(a, ndarray):
            return _device(func(a, *args, **kwargs))
        return _device(_REAL_ARRAY(a, *args, **kwargs))

    return call


def _counted(real: Callable[..., Any], what: str) -> Callable[..., Any]:
    """``numpy.asarray``/``numpy.array`` that count a device argument when called from outside NumPy."""

    def call(a: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(a, ndarray) and not kwargs.get("subok"):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith("numpy") and caller != __name__:
                _sync(what)
        return real(a, *args, **kwargs)

    return call


class _Stream:
    ptr = 0

    def synchronize(self) -> None:
        _sync("Stream.synchronize()")


class _Device:
    def __init__(self, index: int = 0) -> None:
        self.id = index
        self.compute_capability = "90"

    def synchronize(self) -> None:
        _sync("Device.synchronize()")


def _namespace(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def module() -> types.ModuleType:
    """The simulated ``cupy`` module (NumPy's functions, returning device arrays)."""
    special: Dict[str, Any] = {
        "ndarray": ndarray,
        "asnumpy": _asnumpy,
        "asarray": _copy_in(_REAL_ASARRAY),
        "array": _copy_in(_REAL_ARRAY),
        "__version__": "0.0-simulated",
    }

    def getattr_(attr: str) -> Any:
        if attr in special:
            return special[attr]
        obj = getattr(np, attr)
        if isinstance(obj, (type, np.ufunc, types.ModuleType)) or not callable(obj):
            return obj  # dtypes and classes as they are; ufuncs wrap through ndarray.__array_wrap__
        return _to_device(obj)

    cp = _namespace("cupy", __getattr__=getattr_)
    cp.get_array_module = lambda *arrays: cp
    runtime = _namespace("cupy.cuda.runtime", getDeviceCount=lambda: 1, getDevice=lambda: 0)
    stream = _Stream()
    cp.cuda = _namespace(
        "cupy.cuda", runtime=runtime, Device=_Device, get_current_stream=lambda: stream, Stream=_Stream
    )
    rng = np.random.default_rng(0)
    state = {"rng": rng}

    def seed(value: int) -> None:
        state["rng"] = np.random.default_rng(int(value))

    cp.random = _namespace(
        "cupy.random",
        seed=seed,
        uniform=lambda low, high, size=None: _device(_REAL_ASARRAY(state["rng"].uniform(low, high, size))),
        standard_normal=lambda size=None: _device(_REAL_ASARRAY(state["rng"].standard_normal(size))),
        randint=lambda low, high=None, size=None: _device(_REAL_ASARRAY(state["rng"].integers(low, high, size))),
        random_sample=lambda size=None: _device(_REAL_ASARRAY(state["rng"].random(size))),
    )
    from numpy.lib import stride_tricks

    cp.lib = _namespace("cupy.lib", stride_tricks=_namespace("cupy.lib.stride_tricks"))
    cp.lib.stride_tricks.as_strided = _to_device(stride_tricks.as_strided)
    return cp


def install() -> types.ModuleType:
    """Register the simulated ``cupy`` and ``cupyx`` and count NumPy conversions of device arrays; returns cupy."""
    if "autograd.backend" in sys.modules:
        raise RuntimeError("install the simulated CuPy before autograd is imported (the backend is chosen then)")
    cp = module()

    def scatter_add(target: Any, index: Any, values: Any) -> None:
        np.add.at(target, index, values)

    sys.modules["cupy"] = cp
    sys.modules["cupy.cuda"] = cp.cuda
    sys.modules["cupy.random"] = cp.random
    sys.modules["cupy.lib"] = cp.lib
    sys.modules["cupy.lib.stride_tricks"] = cp.lib.stride_tricks
    sys.modules["cupyx"] = _namespace("cupyx", scatter_add=scatter_add)
    np.asarray = _counted(_REAL_ASARRAY, "numpy.asarray()")
    np.array = _counted(_REAL_ARRAY, "numpy.array()")
    return cp


ndarray.__module__ = "cupy"
