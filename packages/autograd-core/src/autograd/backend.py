"""Array backend selection, and one class per backend holding everything that differs between them.

The backend is chosen once, when this module is first imported:

1. ``AUTOGRAD_BACKEND`` (``numpy`` | ``mlx`` | ``cupy``) wins when set. If the
   requested backend cannot be loaded, :class:`BackendUnavailableError` names
   the backend, the reason and the command that installs it. An unknown name is
   a :class:`ValueError` listing the valid ones.
2. Otherwise it is auto-detected: ``cupy`` when CuPy imports and sees a CUDA
   device, ``mlx`` when MLX imports and its default device is a GPU (Apple
   silicon), else ``numpy``. Auto-detection never raises.

``xp`` is the array namespace of the chosen backend: the ``numpy`` or ``cupy``
module itself, or, for MLX, a thin read-only namespace over ``mlx.core`` that
adds the few NumPy-style spellings the API reference uses (``xp.empty``,
``xp.random.rand``, ``xp.random.randn``, ``xp.ndarray``). No attribute is ever
set on the numpy, cupy or mlx modules.

Every backend difference of core, nn and optim lives here, in
:class:`NumpyBackend`, :class:`CupyBackend` (which extends it) and
:class:`MLXBackend`; the module-level functions (``asarray``, ``to_numpy``,
``add_at``, ``seed``...) are the active backend's methods.

Allocator tuning (NumPy backend, Linux with glibc): every op allocates its
result, and glibc's malloc hands freed multi-megabyte buffers straight back to
the kernel, so the next op of the same size pays page faults again (measured
7-9x slower for a GELU backward on (8, 128, 512) float32). On import, this
module raises glibc's mmap threshold to its 32 MiB maximum and its trim
threshold to 1 GiB (``mallopt``), so freed buffers are reused inside the
process, much as PyTorch's CPU caching allocator does. The cost is that up to
1 GiB of freed memory may stay mapped. Set ``AUTOGRAD_MALLOC_TUNING=0`` to
leave malloc alone.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import types
from typing import Any, Callable, Iterable, Sequence, Tuple

import numpy as np

from autograd import bounds

__all__ = [
    "BACKEND",
    "BACKENDS",
    "BackendUnavailableError",
    "NumpyBackend",
    "CupyBackend",
    "MLXBackend",
    "active",
    "xp",
    "lib",
    "ndarray",
    "name",
    "install_hint",
    "is_array",
    "asarray",
    "to_numpy",
    "materialize",
    "add_at",
    "total",
    "as_strided",
    "contiguous",
    "add_into",
    "matmul_add",
    "check_range",
    "round_to",
    "matmul",
    "dtype",
    "dtype_name",
    "is_floating",
    "is_low_precision",
    "widen",
    "keep_bfloat16",
    "float_dtypes",
    "seed",
    "uniform",
    "normal",
    "bernoulli",
    "random_seed",
    "copy",
    "storage",
    "write",
    "placeholder",
    "check_index",
    "cast_exact",
    "is_numeric",
    "itemsize",
]

BACKENDS = ("numpy", "mlx", "cupy")

_INSTALL = {
    "numpy": 'pip install "autograd-core" once it is released on PyPI; before the release, '
    "from a clone: pip install ./packages/autograd-core",
    "mlx": 'pip install "autograd-core[mlx]" once it is released on PyPI; before the release, '
    'the same packages directly: pip install "mlx[cpu]>=0.25" on Linux, pip install "mlx>=0.25" on macOS',
    "cupy": 'pip install "autograd-core[cuda12]" (or "autograd-core[cuda13]" for CUDA 13) once it is released on PyPI; '
    'before the release, the same packages directly: pip install "cupy-cuda12x>=13.3" (or "cupy-cuda13x>=13.6")',
}
_BFLOAT16_HINT = (
    'pip install "autograd-core[bfloat16]" once it is released on PyPI; before the release: pip install ml_dtypes'
)
_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
_FLOAT32 = np.dtype("float32")


class BackendUnavailableError(ImportError):
    """An explicitly requested backend could not be loaded."""


def install_hint(backend: str) -> str:
    """The pip command that installs what ``backend`` needs."""
    return _INSTALL[backend]


def _shape(shape: int | Iterable[int]) -> Tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class NumpyBackend:
    """NumPy: the default. bfloat16 through ``ml_dtypes``; half-precision products computed in float32."""

    name = "numpy"
    #: NumPy checks indices itself; MLX and CuPy do not (see :meth:`check_index`).
    checks_bounds = True
    #: Arrays can be written in place, so views and other aliases see the writes (MLX's cannot).
    mutable = True
    #: Whether float64 exp/log/tanh are computed in float64 (MLX's CPU build evaluates them at float32 precision).
    float64_transcendentals_exact = True
    #: Whether reading a value on the host costs nothing: on CuPy it waits for the GPU, on MLX it evaluates the
    #: lazy graph, so the library decides on the device there (clipping, range checks) instead.
    host_reads_free = True
    #: Whether float16 and bfloat16 products are computed in float32 and rounded once: NumPy has no
    #: half-precision BLAS (its float16 and ml_dtypes' bfloat16 loops are scalar, 10-100 times slower).
    half_products_in_float32 = True

    def __init__(self, module: Any) -> None:
        self.lib = self.xp = module
        self.ndarray: type = getattr(module, "ndarray", None) or module.array
        self._rng = np.random.default_rng()
        self._names: dict = {}
        self._bfloat16: Any = None  # ml_dtypes' bfloat16 once this process has met it

    # -- dtypes ---------------------------------------------------------------------------------------------

    def dtype(self, spec: Any) -> Any:
        if not isinstance(spec, str):
            return np.dtype(spec)
        if spec == "bfloat16":
            return self._numpy_bfloat16()
        try:
            return np.dtype(spec)
        except TypeError:
            raise TypeError(f"dtype {spec!r} is not available on the {self.name} backend") from None

    def _numpy_bfloat16(self) -> Any:
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError(
                f"dtype 'bfloat16' is not available on the numpy backend without ml_dtypes: {_BFLOAT16_HINT}"
            ) from None
        self._bfloat16 = np.dtype(ml_dtypes.bfloat16)
        return self._bfloat16

    def dtype_name(self, dt: Any) -> str:
        # Cached: NumPy computes ``dtype.name`` in Python, and the dispatcher asks for it on every call.
        try:
            return self._names[dt]
        except (KeyError, TypeError):
            pass
        out = self._name_of(dt)
        try:
            self._names[dt] = out
        except TypeError:
            pass
        return out

    def _name_of(self, dt: Any) -> str:
        return np.dtype(dt).name

    def is_floating(self, dt: Any) -> bool:
        dt = np.dtype(dt)
        if dt.kind == "f":
            return True
        if dt.kind == "V" and dt.name == "bfloat16":  # ml_dtypes' bfloat16 is not an np.floating subtype
            self._bfloat16 = dt
            return True
        return False

    def is_low_precision(self, dt: Any) -> bool:
        if isinstance(dt, np.dtype) and dt.itemsize != 2:
            return False  # the common case, without a name lookup
        return self.dtype_name(dt) in ("float16", "bfloat16")

    def is_numeric(self, dt: Any) -> bool:
        dt = np.dtype(dt)
        return dt.kind in "biufc" or dt.name == "bfloat16"

    def itemsize(self, dt: Any) -> int:
        """Bytes per element of ``dt``."""
        return np.dtype(dt).itemsize

    def keep_bfloat16(self, out: Any, inputs: Sequence[Any]) -> Any:
        bf16 = self._bfloat16
        if bf16 is None or getattr(out, "dtype", None) is not _FLOAT32:
            return out  # every op's fast path: no bfloat16 has been seen, or the result is not float32
        found = False
        for a in inputs:
            dt = getattr(a, "dtype", None)
            if dt is bf16:
                found = True
            elif dt is not None and dt.kind == "f":
                return out  # a genuinely wider input: the promotion is NumPy's usual one
        return out.astype(bf16) if found else out

    # -- arrays ---------------------------------------------------------------------------------------------

    def is_array(self, x: Any) -> bool:
        return isinstance(x, self.ndarray)

    def asarray(self, x: Any, dt: Any = None) -> Any:
        return self.lib.asarray(x, dtype=None if dt is None else self.dtype(dt))

    def to_numpy(self, x: Any) -> np.ndarray:
        out = np.asarray(x)
        return out.astype(np.float32) if out.dtype.name == "bfloat16" else out

    def materialize(self, *arrays: Any) -> None:
        """Arrays are computed eagerly here: nothing to do."""

    def copy(self, x: Any) -> Any:
        return x.copy()

    def storage(self, x: Any) -> Any:
        """The array that owns ``x``'s memory (``x`` itself unless it is a view)."""
        while isinstance(x.base, self.ndarray):
            x = x.base
        return x

    def write(self, target: Any, value: Any) -> None:
        """Copy ``value`` into ``target``'s memory (every view of it sees the change); float into int is refused."""
        self.lib.copyto(target, value, casting="same_kind")

    def contiguous(self, x: Any) -> Any:
        return self.lib.ascontiguousarray(x)

    def placeholder(self, shape: Sequence[int], dt: Any) -> Any:
        return self.lib.broadcast_to(self.lib.zeros((), dtype=dt), tuple(shape))

    def _strided(self) -> Any:
        from numpy.lib.stride_tricks import as_strided

        return as_strided

    def as_strided(self, x: Any, shape: Sequence[int], strides: Sequence[int]) -> Any:
        x = self.lib.ascontiguousarray(x)
        return self._strided()(x, shape=tuple(shape), strides=tuple(s * x.itemsize for s in strides))

    def total(self, x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
        """``x`` summed over ``axis``, accumulated (and returned) in ``dtype`` when given."""
        return self.lib.sum(x, axis=axis, keepdims=keepdims, dtype=dtype)

    def add_at(self, target: Any, index: Any, values: Any) -> Any:
        if _is_basic_index(index):
            target[index] += values
        else:
            self._scatter_add(target, index, values)
        return target

    def _scatter_add(self, target: Any, index: Any, values: Any) -> None:
        np.add.at(target, index, values)

    def add_into(self, out: Any, x: Any) -> Any:
        if self.lib.result_type(out, x) != out.dtype:
            return out + x  # a wider x: the result needs its own (promoted) array
        out += x
        return out

    def matmul(self, a: Any, b: Any) -> Any:
        low = self._low_product(a, b)
        if low is not None:
            # multiplied in float32, as half-precision matrix units accumulate, and rounded once
            return self.round_to(self.matmul(a.astype(np.float32), b.astype(np.float32)), low)
        if b.ndim > 2 and not b.flags.c_contiguous:
            b = np.ascontiguousarray(b)
        return a @ b

    def matmul_add(self, a: Any, b: Any, bias: Any) -> Any:
        low = self._low_product(a, b)
        if low is None:
            return self.add_into(self.matmul(a, b), bias)
        out = self.matmul(a.astype(np.float32), b.astype(np.float32))
        out += bias  # in float32, before the one rounding, as a GEMM epilogue adds it
        return self.round_to(out, low)

    def round_to(self, x: Any, dt: Any) -> Any:
        """``x`` cast to the narrower float ``dt``; overflow becomes inf silently (the loss scaler's cue)."""
        if x.dtype == dt:
            return x
        with np.errstate(over="ignore"):
            return x.astype(dt)

    def _low_product(self, a: Any, b: Any) -> Any:
        """The half-precision dtype of ``a @ b`` when this backend computes such products in float32, else None."""
        dt = np.result_type(a.dtype, b.dtype) if self.half_products_in_float32 else None
        return dt if dt is not None and self.is_low_precision(dt) else None

    def check_index(self, shape: Sequence[int], index: Any) -> None:
        """NumPy raises its own IndexError for an index out of bounds: nothing to check."""

    def check_range(self, x: Any, low: int, high: int, error: Callable[[int], Exception], ignore: Any = None) -> Any:
        """Raise ``error(v)`` for the first ``v`` in ``x`` outside ``low..high-1`` (not ``ignore``); return ``x``."""
        if x.size:
            host = self.to_numpy(x)
            outside = (host < low) | (host >= high)
            if ignore is not None:
                outside &= host != ignore
            if outside.any():
                raise error(int(host[outside][0]))
        return x

    # -- random numbers -------------------------------------------------------------------------------------

    def seed(self, value: int) -> None:
        self._rng = np.random.default_rng(int(value))

    def uniform(self, low: float, high: float, shape: Any, dt: Any = "float32") -> Any:
        return self._rng.uniform(low, high, _shape(shape)).astype(self.dtype(dt))

    def normal(self, shape: Any, dt: Any = "float32", scale: float = 1.0) -> Any:
        return (self._rng.standard_normal(_shape(shape)) * scale).astype(self.dtype(dt))

    def random_seed(self) -> int:
        return int(self._rng.integers(0, 2**31 - 1))

    def bernoulli(self, keep_prob: float, shape: Any) -> Any:
        return self._rng.random(_shape(shape)) < keep_prob


class CupyBackend(NumpyBackend):
    """CuPy on a CUDA device: no bfloat16; host copies through ``asnumpy``; indices checked before they wrap."""

    name = "cupy"
    checks_bounds = False
    half_products_in_float32 = False  # cuBLAS has half precision
    host_reads_free = False
    #: Range checks waiting on the device (see :meth:`check_range`); at most this many before one is read.
    MAX_PENDING = 64

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        self._pending: list = []

    def dtype(self, spec: Any) -> Any:
        if spec == "bfloat16":
            raise TypeError("dtype 'bfloat16' is not available on the cupy backend (CuPy has no bfloat16); use float16")
        return super().dtype(spec)

    def asarray(self, x: Any, dt: Any = None) -> Any:
        dt = None if dt is None else self.dtype(dt)
        if not isinstance(x, self.ndarray):
            return self.lib.asarray(np.asarray(x), dtype=dt)
        return self.lib.asarray(x, dtype=dt)

    def to_numpy(self, x: Any) -> np.ndarray:
        self.raise_pending()
        if isinstance(x, self.ndarray):
            return self.lib.asnumpy(x)
        return super().to_numpy(x)

    def check_range(self, x: Any, low: int, high: int, error: Callable[[int], Exception], ignore: Any = None) -> Any:
        """Checked on the device and raised at the next host read (``to_numpy``, ``.item()``, printing), as CUDA
        reports device-side errors: reading the answer now would wait for the GPU in every training step. Until
        then kernels index with the returned array, clipped into range (``ignore`` kept), so they stay in bounds.
        """
        if not x.size:
            return x
        outside = (x < low) | (x >= high)
        if ignore is not None:
            outside &= x != ignore
        self._pending.append((outside.any(), x, low, high, error, ignore))
        if len(self._pending) > self.MAX_PENDING:  # bounds what the queue keeps alive
            self.raise_pending()
        safe = self.lib.clip(x, low, high - 1)
        return safe if ignore is None else self.lib.where(x == ignore, x, safe)

    def raise_pending(self) -> None:
        """Raise the error of the first range check that found a value outside its range (a host read)."""
        pending, self._pending = self._pending, []
        for outside, x, low, high, error, ignore in pending:
            if bool(outside):
                NumpyBackend.check_range(self, self.lib.asnumpy(x), low, high, error, ignore)

    def _strided(self) -> Any:
        from cupy.lib.stride_tricks import as_strided

        return as_strided

    def _scatter_add(self, target: Any, index: Any, values: Any) -> None:
        import cupyx

        cupyx.scatter_add(target, index, values)

    def matmul(self, a: Any, b: Any) -> Any:
        return a @ b  # cuBLAS takes strided batches

    def check_index(self, shape: Sequence[int], index: Any) -> None:
        bounds.check_index(self, shape, index)

    def seed(self, value: int) -> None:
        self.lib.random.seed(int(value))

    def uniform(self, low: float, high: float, shape: Any, dt: Any = "float32") -> Any:
        return self.lib.random.uniform(low, high, _shape(shape)).astype(self.dtype(dt))

    def normal(self, shape: Any, dt: Any = "float32", scale: float = 1.0) -> Any:
        return (self.lib.random.standard_normal(_shape(shape)) * scale).astype(self.dtype(dt))

    def random_seed(self) -> int:
        return int(self.lib.random.randint(0, 2**31 - 1))

    def bernoulli(self, keep_prob: float, shape: Any) -> Any:
        return self.lib.random.random_sample(_shape(shape)) < keep_prob


class _MLXRandom:
    """``xp.random`` for MLX: MLX's own random module plus NumPy spellings."""

    def __init__(self, mx: Any) -> None:
        self._mx = mx

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._mx.random, attr)

    def rand(self, *shape: int) -> Any:
        return self._mx.random.uniform(shape=shape)

    def randn(self, *shape: int) -> Any:
        return self._mx.random.normal(shape=shape)


class _MLXNamespace(types.SimpleNamespace):
    """Read-only view of ``mlx.core`` with a few NumPy-compatible additions."""

    def __init__(self, mx: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_mx", mx)
        object.__setattr__(self, "random", _MLXRandom(mx))
        object.__setattr__(self, "ndarray", mx.array)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._mx, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError("autograd.backend.xp is read-only")

    def empty(self, shape: Any, dtype: Any = None) -> Any:
        return self._mx.zeros(shape, dtype=dtype or self._mx.float32)

    def __repr__(self) -> str:
        return "<autograd.backend.xp: mlx.core>"


class MLXBackend(NumpyBackend):
    """MLX: lazy, immutable arrays (updates return new arrays); float64 only on the CPU; no index checks of its own.

    It reuses NumPy's spellings where ``mlx.core`` has the same ones and overrides everything else.
    """

    name = "mlx"
    checks_bounds = False
    float64_transcendentals_exact = False
    half_products_in_float32 = False  # MLX multiplies half precision itself
    host_reads_free = False
    #: MLX arrays are immutable values: an in-place update makes a new array, and no alias sees it.
    mutable = False

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        self.xp = _MLXNamespace(module)
        self.ndarray = module.array

    def dtype(self, spec: Any) -> Any:
        if not isinstance(spec, str):
            if isinstance(spec, self.lib.Dtype):
                return spec
            spec = np.dtype(spec).name
        found = getattr(self.lib, "bool_" if spec == "bool" else spec, None)
        if isinstance(found, self.lib.Dtype):
            return found
        raise TypeError(f"dtype {spec!r} is not available on the mlx backend")

    def _name_of(self, dt: Any) -> str:
        return str(dt).rsplit(".", 1)[-1]

    def is_floating(self, dt: Any) -> bool:
        return self.lib.issubdtype(dt, self.lib.floating)

    def is_low_precision(self, dt: Any) -> bool:
        return self.dtype_name(dt) in ("float16", "bfloat16")

    def is_numeric(self, dt: Any) -> bool:
        return True

    def itemsize(self, dt: Any) -> int:
        return int(dt.size)

    def keep_bfloat16(self, out: Any, inputs: Sequence[Any]) -> Any:
        return out  # MLX keeps bfloat16 through Python scalars itself

    def asarray(self, x: Any, dt: Any = None) -> Any:
        mx = self.lib
        dt = None if dt is None else self.dtype(dt)
        if isinstance(x, mx.array):
            return x if dt is None or x.dtype == dt else x.astype(dt)
        if dt is None and isinstance(x, (np.ndarray, np.generic)):
            x = np.asarray(x)  # keep NumPy's dtype: MLX would narrow float64 to float32
            dt = self.dtype(x.dtype.name) if x.dtype.kind != "b" else mx.bool_
        return mx.array(x, dtype=dt) if dt is not None else mx.array(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, self.lib.array) and x.dtype == self.lib.bfloat16:
            x = x.astype(self.lib.float32)
        return super().to_numpy(x)

    def materialize(self, *arrays: Any) -> None:
        self.lib.eval(*[a for a in arrays if isinstance(a, self.lib.array)])

    def copy(self, x: Any) -> Any:
        return self.lib.array(x)  # immutable values: a new handle is an independent copy

    def storage(self, x: Any) -> Any:
        raise TypeError("MLX arrays are immutable: there is no storage to write into")

    def write(self, target: Any, value: Any) -> None:
        raise TypeError("MLX arrays are immutable: updates make new arrays")

    def contiguous(self, x: Any) -> Any:
        return x  # MLX manages layout itself

    def as_strided(self, x: Any, shape: Sequence[int], strides: Sequence[int]) -> Any:
        return self.lib.as_strided(x, tuple(shape), tuple(strides))

    def total(self, x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
        return self.lib.sum(x if dtype is None else x.astype(dtype), axis=axis, keepdims=keepdims)

    def add_at(self, target: Any, index: Any, values: Any) -> Any:
        if getattr(values, "size", 1) == 0:
            return target  # MLX's scatter refuses empty updates; adding nothing changes nothing
        return target.at[index].add(values)

    def add_into(self, out: Any, x: Any) -> Any:
        return out + x  # immutable arrays

    def matmul(self, a: Any, b: Any) -> Any:
        if not (self.is_floating(a.dtype) or self.is_floating(b.dtype)):
            return self.asarray(np.matmul(self.to_numpy(a), self.to_numpy(b)))  # MLX multiplies floats only
        return a @ b

    def check_index(self, shape: Sequence[int], index: Any) -> None:
        bounds.check_index(self, shape, index)

    def seed(self, value: int) -> None:
        self.lib.random.seed(int(value))

    def uniform(self, low: float, high: float, shape: Any, dt: Any = "float32") -> Any:
        return self.lib.random.uniform(low, high, _shape(shape), dtype=self.lib.float32).astype(self.dtype(dt))

    def normal(self, shape: Any, dt: Any = "float32", scale: float = 1.0) -> Any:
        return (self.lib.random.normal(_shape(shape), dtype=self.lib.float32) * scale).astype(self.dtype(dt))

    def random_seed(self) -> int:
        return int(self.lib.random.randint(0, 2**31 - 1, ()).item())

    def bernoulli(self, keep_prob: float, shape: Any) -> Any:
        return self.lib.random.bernoulli(keep_prob, _shape(shape))


# --- selection ---------------------------------------------------------------------------------------------------

_CLASSES = {"numpy": NumpyBackend, "mlx": MLXBackend, "cupy": CupyBackend}


def _load(backend: str) -> Any:
    """Import ``backend``'s module. Raises ImportError/RuntimeError."""
    if backend == "numpy":
        return np
    if backend == "mlx":
        return importlib.import_module("mlx.core")
    cp = importlib.import_module("cupy")
    if cp.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("CuPy is installed but sees no CUDA device")
    return cp


def _autodetect() -> str:
    try:
        cp = importlib.import_module("cupy")
        if cp.cuda.runtime.getDeviceCount() > 0:
            return "cupy"
    except Exception:  # noqa: BLE001 - any failure means "no usable CUDA"
        pass
    try:
        mx = importlib.import_module("mlx.core")
        if mx.default_device().type == mx.DeviceType.gpu:
            return "mlx"
    except Exception:  # noqa: BLE001
        pass
    return "numpy"


def _select() -> Tuple[str, Any]:
    requested = os.environ.get("AUTOGRAD_BACKEND", "").strip().lower()
    if not requested:
        chosen = _autodetect()
        return chosen, _load(chosen)
    if requested not in BACKENDS:
        raise ValueError(
            f"AUTOGRAD_BACKEND={requested!r} is not a known backend; valid backends are: " + ", ".join(BACKENDS)
        )
    try:
        return requested, _load(requested)
    except Exception as exc:  # noqa: BLE001 - re-raised with context below
        raise BackendUnavailableError(
            f"AUTOGRAD_BACKEND={requested!r} was requested but the {requested} backend cannot "
            f"be loaded: {type(exc).__name__}: {exc}. Install it with: {install_hint(requested)}"
        ) from exc


def _tune_allocator() -> bool:
    """Keep freed large buffers in the process (see the module docstring); True when applied."""
    if os.environ.get("AUTOGRAD_MALLOC_TUNING", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc only; musl has none
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    ok &= mallopt(m_trim_threshold, 1 << 30)
    ok &= mallopt(m_top_pad, 64 * 1024 * 1024)
    return bool(ok)


BACKEND, _module = _select()
#: The active backend: an instance of :class:`NumpyBackend`, :class:`CupyBackend` or :class:`MLXBackend`.
active: NumpyBackend = _CLASSES[BACKEND](_module)
#: Whether the glibc allocator tuning of the module docstring is in effect.
ALLOCATOR_TUNED: bool = _tune_allocator() if BACKEND == "numpy" else False
#: The array namespace of the API reference (see the module docstring).
xp: Any = active.xp
#: The raw array module (numpy, cupy or mlx.core), for library-internal calls spelled the same on every backend.
lib: Any = active.lib
ndarray: type = active.ndarray
#: MLX's CPU float64 evaluates exp/log/tanh... at float32 precision, so finite differences there need a larger
#: step (see autograd.testing.gradcheck).
FLOAT64_TRANSCENDENTALS_EXACT: bool = active.float64_transcendentals_exact


def name() -> str:
    """The active backend's name: ``"numpy"``, ``"mlx"`` or ``"cupy"``."""
    return BACKEND


# The helpers of the rest of the library: the active backend's methods under their module-level names.
#: The backend dtype for a name (``"float32"``, ``"bfloat16"``...) or a dtype; ``TypeError`` if the backend has none.
dtype = active.dtype
#: The plain name of a dtype: ``"float32"``, ``"bfloat16"``, ``"int64"``...
dtype_name = active.dtype_name
#: True for floating-point dtypes (bfloat16 included).
is_floating = active.is_floating
#: True for float16 and bfloat16.
is_low_precision = active.is_low_precision
#: True for bool, integer, floating and complex dtypes (not strings or objects).
is_numeric = active.is_numeric
#: Bytes per element of a dtype.
itemsize = active.itemsize
#: ``out`` rounded back to bfloat16 when NumPy promoted bfloat16 inputs to float32 through a Python scalar
#: (ml_dtypes' bfloat16 does not keep its dtype against a Python float); other backends and dtypes unchanged.
keep_bfloat16 = active.keep_bfloat16
#: True when ``x`` is an array of the active backend.
is_array = active.is_array
#: ``x`` as a backend array, keeping its dtype unless ``dt`` is given (NumPy arrays keep theirs on every backend).
asarray = active.asarray
#: A host NumPy copy (or view) of a backend array; bfloat16 comes back as float32.
to_numpy = active.to_numpy
#: Force evaluation of lazy arrays (MLX); a no-op elsewhere.
materialize = active.materialize
#: An independent copy of ``x``.
copy = active.copy
#: The array that owns ``x``'s memory (NumPy and CuPy; MLX arrays are immutable and have none).
storage = active.storage
#: Copy ``value`` into ``target``'s memory, so every view sees it (NumPy and CuPy).
write = active.write
#: ``x`` laid out in C order (a copy only when it is not).
contiguous = active.contiguous
#: A read-only array of ``shape`` and dtype that holds no memory (zero strides), for nodes that keep only shapes.
placeholder = active.placeholder
#: A strided view of ``x`` with ``strides`` counted in elements of its C-order layout.
as_strided = active.as_strided
#: ``target[index] += values`` with repeated indices accumulated; always use the returned array (MLX's is new).
add_at = active.add_at
#: ``x`` summed over ``axis``, accumulated (and returned) in ``dtype`` when one is given.
total = active.total
#: ``out + x``, written into ``out`` where arrays are mutable (``out`` must be a fresh array nobody else holds).
add_into = active.add_into
#: ``a @ b``: half precision through float32 on NumPy, exact for integers on MLX.
matmul = active.matmul
#: ``x`` cast to a narrower float dtype, overflowing to inf without a warning (the loss scaler handles it).
round_to = active.round_to
#: ``a @ b + bias`` with the bias broadcast over the rows; on NumPy a half-precision product and its bias are
#: summed in float32 and rounded once.
matmul_add = active.matmul_add
#: Raise ``IndexError`` for an index that does not fit ``shape``, before it reaches a backend that does not check.
check_index = active.check_index
#: Check that an integer array's values lie in ``low..high-1``; returns the array to index with. On CuPy the
#: check runs on the device and its error is raised at the next host read (see CupyBackend.check_range).
check_range = active.check_range
#: Seed the backend's random generator (each backend has its own: the same seed reproduces runs on that backend).
seed = active.seed
#: Samples from U[low, high) with the given shape and dtype.
uniform = active.uniform
#: Samples from N(0, scale**2) with the given shape and dtype.
normal = active.normal
#: A fresh 31-bit seed drawn from the backend's (seeded) generator.
random_seed = active.random_seed
#: A boolean array, True with probability ``keep_prob``.
bernoulli = active.bernoulli


def float_dtypes() -> Tuple[Any, ...]:
    """The floating dtypes this backend has, narrowest first."""
    out = []
    for n in _FLOAT_NAMES:
        try:
            out.append(dtype(n))
        except TypeError:
            continue
    return tuple(out)


def widen(x: Any) -> Any:
    """``x`` as float32 when it is float16 or bfloat16, else ``x`` itself (where arithmetic must run in float32)."""
    return x.astype(dtype("float32")) if is_low_precision(x.dtype) else x


def _kind(dt: Any) -> str:
    n = dtype_name(dt)
    if n == "bool":
        return "bool"
    if "float" in n:
        return "float"
    if "int" in n:
        return "integer"
    return "complex" if "complex" in n else n


def cast_exact(x: Any, dt: Any) -> Any:
    """``x`` (a backend array) as dtype ``dt``, only when every value survives the cast unchanged.

    Loading stored arrays into parameters uses this: a cast between kinds
    (bool, integer, floating) is refused, and so is one that changes a value
    (``1e300`` becoming ``inf`` in float32, ``0.1`` in float64 rounding to
    float32, ``300`` wrapping in int8). Widening casts and exact narrowing ones
    (float64 data that came from float32) pass.

    Raises:
        TypeError: naming both dtypes and the first value that would change.
    """
    dt = dtype(dt)
    if x.dtype == dt:
        return x
    src, dst = dtype_name(x.dtype), dtype_name(dt)
    if _kind(x.dtype) != _kind(dt):
        raise TypeError(f"{src} -> {dst} changes the kind of data ({_kind(x.dtype)} -> {_kind(dt)})")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as a refusal
        out = x.astype(dt)
        back = out.astype(x.dtype)
    same = back == x
    if _kind(dt) == "float":
        same = same | (lib.isnan(back) & lib.isnan(x))
    if not bool(lib.all(same)):
        i = int(np.argmin(np.asarray(to_numpy(same)).reshape(-1)))
        before = np.asarray(to_numpy(x)).reshape(-1)[i].item()
        after = np.asarray(to_numpy(out)).reshape(-1)[i].item()
        raise TypeError(f"{src} -> {dst} changes values (element {i}: {before!r} becomes {after!r})")
    return out
