"""Array backend selection and the helpers that hide backend differences.

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

Every backend branch of core, nn and optim lives in this module; the rest of
the library calls the helpers below.

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
from typing import Any, Iterable, Sequence, Tuple

import numpy as np

__all__ = [
    "BACKEND",
    "BACKENDS",
    "BackendUnavailableError",
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
    "as_strided",
    "contiguous",
    "add_into",
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
    "placeholder",
    "check_index",
    "cast_exact",
    "is_numeric",
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


class BackendUnavailableError(ImportError):
    """An explicitly requested backend could not be loaded."""


def install_hint(backend: str) -> str:
    """The pip command that installs what ``backend`` needs."""
    return _INSTALL[backend]


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


def _load(backend: str) -> tuple[Any, Any]:
    """Import ``backend``; return (module, xp). Raises ImportError/RuntimeError."""
    if backend == "numpy":
        return np, np
    if backend == "mlx":
        mx = importlib.import_module("mlx.core")
        return mx, _MLXNamespace(mx)
    cp = importlib.import_module("cupy")
    count = cp.cuda.runtime.getDeviceCount()
    if count < 1:
        raise RuntimeError("CuPy is installed but sees no CUDA device")
    return cp, cp


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


def _select() -> tuple[str, Any, Any]:
    requested = os.environ.get("AUTOGRAD_BACKEND", "").strip().lower()
    if not requested:
        chosen = _autodetect()
        mod, ns = _load(chosen)
        return chosen, mod, ns
    if requested not in BACKENDS:
        raise ValueError(
            f"AUTOGRAD_BACKEND={requested!r} is not a known backend; valid backends are: " + ", ".join(BACKENDS)
        )
    try:
        mod, ns = _load(requested)
    except Exception as exc:  # noqa: BLE001 - re-raised with context below
        raise BackendUnavailableError(
            f"AUTOGRAD_BACKEND={requested!r} was requested but the {requested} backend cannot "
            f"be loaded: {type(exc).__name__}: {exc}. Install it with: {install_hint(requested)}"
        ) from exc
    return requested, mod, ns


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


BACKEND, _mod, xp = _select()
#: Whether the glibc allocator tuning of the module docstring is in effect.
ALLOCATOR_TUNED: bool = _tune_allocator() if BACKEND == "numpy" else False
#: The raw array module (numpy, cupy or mlx.core), for library-internal calls
#: whose spelling is the same on every backend.
lib: Any = _mod
ndarray: type = _mod.array if BACKEND == "mlx" else _mod.ndarray

_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")

#: MLX's CPU float64 evaluates exp/log/tanh... at float32 precision, so
#: finite differences there need a larger step (see autograd.testing.gradcheck).
FLOAT64_TRANSCENDENTALS_EXACT: bool = BACKEND != "mlx"


def name() -> str:
    """The active backend's name: ``"numpy"``, ``"mlx"`` or ``"cupy"``."""
    return BACKEND


def is_array(x: Any) -> bool:
    """True when ``x`` is an array of the active backend."""
    return isinstance(x, ndarray)


def dtype(spec: Any) -> Any:
    """The backend dtype for a name (``"float32"``, ``"bfloat16"``...) or a dtype.

    Raises:
        TypeError: the backend has no such dtype (e.g. ``bfloat16`` on NumPy).
    """
    if not isinstance(spec, str):
        if BACKEND == "mlx":
            if isinstance(spec, _mod.Dtype):
                return spec
            spec = np.dtype(spec).name
        else:
            return np.dtype(spec)
    if BACKEND == "mlx":
        found = getattr(_mod, "bool_" if spec == "bool" else spec, None)
        if isinstance(found, _mod.Dtype):
            return found
    elif spec == "bfloat16":
        return _numpy_bfloat16()
    else:
        try:
            return np.dtype(spec)
        except TypeError:
            pass
    raise TypeError(f"dtype {spec!r} is not available on the {BACKEND} backend")


def _numpy_bfloat16() -> Any:
    """NumPy's bfloat16 comes from ml_dtypes (the ``bfloat16`` extra); CuPy has none."""
    if BACKEND == "cupy":
        raise TypeError("dtype 'bfloat16' is not available on the cupy backend (CuPy has no bfloat16); use float16")
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(
            f"dtype 'bfloat16' is not available on the numpy backend without ml_dtypes: {_BFLOAT16_HINT}"
        ) from None
    _saw_bfloat16(ml_dtypes.bfloat16)
    return np.dtype(ml_dtypes.bfloat16)


_NAMES: dict = {}


def dtype_name(dt: Any) -> str:
    """The plain name of a dtype: ``"float32"``, ``"bfloat16"``, ``"int64"``..."""
    # Cached: NumPy computes ``dtype.name`` in Python, and the dispatcher asks for it on every call.
    try:
        return _NAMES[dt]
    except (KeyError, TypeError):
        pass
    name = str(dt).rsplit(".", 1)[-1] if BACKEND == "mlx" else np.dtype(dt).name
    try:
        _NAMES[dt] = name
    except TypeError:
        pass
    return name


def float_dtypes() -> tuple[Any, ...]:
    """The floating dtypes this backend has, narrowest first."""
    out = []
    for n in _FLOAT_NAMES:
        try:
            out.append(dtype(n))
        except TypeError:
            continue
    return tuple(out)


def is_floating(dt: Any) -> bool:
    """True for floating-point dtypes (bfloat16 included)."""
    if BACKEND == "mlx":
        return _mod.issubdtype(dt, _mod.floating)
    dt = np.dtype(dt)
    if dt.kind == "f":
        return True
    if dt.kind == "V" and dt.name == "bfloat16":  # ml_dtypes' bfloat16 is not an np.floating subtype
        _saw_bfloat16(dt)
        return True
    return False


def is_low_precision(dt: Any) -> bool:
    """True for float16 and bfloat16."""
    if BACKEND != "mlx" and isinstance(dt, np.dtype) and dt.itemsize != 2:
        return False  # the common case, without a name lookup
    return dtype_name(dt) in ("float16", "bfloat16")


def keep_bfloat16(out: Any, inputs: Sequence[Any]) -> Any:
    """``out`` rounded back to bfloat16 when NumPy promoted bfloat16 inputs to float32 through a Python scalar.

    ml_dtypes' bfloat16 does not follow NumPy's rule that a Python scalar
    keeps an array's dtype (``bf16_array * 0.5`` is float32), so on the NumPy
    backend an op whose floating inputs are all bfloat16 and whose result came
    out float32 is rounded back, as on MLX. Every other backend and dtype is
    returned as is.
    """
    bf16 = _NUMPY_BFLOAT16[0]
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


_FLOAT32 = np.dtype("float32")
#: ml_dtypes' bfloat16 dtype once this process has met it (the NumPy backend only).
_NUMPY_BFLOAT16: list = [None]


def _saw_bfloat16(dt: Any) -> None:
    if BACKEND == "numpy":
        _NUMPY_BFLOAT16[0] = np.dtype(dt)


def widen(x: Any) -> Any:
    """``x`` as float32 when it is float16 or bfloat16, else ``x`` itself (where arithmetic must run in float32)."""
    return x.astype(dtype("float32")) if is_low_precision(x.dtype) else x


def is_numeric(dt: Any) -> bool:
    """True for bool, integer, floating and complex dtypes (not strings or objects)."""
    if BACKEND == "mlx":
        return True
    dt = np.dtype(dt)
    return dt.kind in "biufc" or dt.name == "bfloat16"


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
        same = same | (_mod.isnan(back) & _mod.isnan(x))
    if not bool(_mod.all(same)):
        host_same = np.asarray(to_numpy(same)).reshape(-1)
        i = int(np.argmin(host_same))
        before = np.asarray(to_numpy(x)).reshape(-1)[i].item()
        after = np.asarray(to_numpy(out)).reshape(-1)[i].item()
        raise TypeError(f"{src} -> {dst} changes values (element {i}: {before!r} becomes {after!r})")
    return out


def asarray(x: Any, dt: Any = None) -> Any:
    """Convert ``x`` to a backend array, keeping its dtype unless ``dt`` is given.

    NumPy arrays keep their dtype on every backend (MLX would otherwise narrow
    float64 to float32).
    """
    if dt is not None:
        dt = dtype(dt)
    if BACKEND == "mlx":
        if isinstance(x, _mod.array):
            return x if dt is None or x.dtype == dt else x.astype(dt)
        if dt is None and isinstance(x, (np.ndarray, np.generic)):
            x = np.asarray(x)
            dt = dtype(x.dtype.name) if x.dtype.kind != "b" else _mod.bool_
        return _mod.array(x, dtype=dt) if dt is not None else _mod.array(x)
    if BACKEND == "cupy" and not isinstance(x, _mod.ndarray):
        return _mod.asarray(np.asarray(x), dtype=dt)
    return _mod.asarray(x, dtype=dt)


def to_numpy(x: Any) -> np.ndarray:
    """Copy (or view) a backend array as a host NumPy array.

    bfloat16 (which NumPy lacks) comes back as float32.
    """
    if BACKEND == "cupy" and isinstance(x, _mod.ndarray):
        return _mod.asnumpy(x)
    if BACKEND == "mlx" and isinstance(x, _mod.array) and x.dtype == _mod.bfloat16:
        x = x.astype(_mod.float32)
    out = np.asarray(x)
    return out.astype(np.float32) if out.dtype.name == "bfloat16" else out


def materialize(*arrays: Any) -> None:
    """Force evaluation of lazy arrays (MLX); a no-op elsewhere."""
    if BACKEND == "mlx":
        _mod.eval(*[a for a in arrays if isinstance(a, _mod.array)])


def copy(x: Any) -> Any:
    """An independent copy of ``x`` (MLX arrays are immutable values, so no copy)."""
    if BACKEND == "mlx":
        return _mod.array(x)
    return x.copy()


def placeholder(shape: Sequence[int], dt: Any) -> Any:
    """A read-only array of ``shape`` and dtype ``dt`` that holds no memory of its own (zero strides).

    Graph nodes that only need the shape and dtype of an old value keep one of
    these instead of the value itself.
    """
    return _mod.broadcast_to(_mod.zeros((), dtype=dt), tuple(shape))  # MLX: lazy, never evaluated


def _host_int_range(arr: Any) -> Tuple[int, int]:
    host = to_numpy(arr)
    return int(host.min()), int(host.max())


def check_index(shape: Sequence[int], index: Any) -> None:
    """Raise ``IndexError`` for an index that does not fit ``shape``, before it reaches the backend.

    NumPy checks bounds itself, so this is a no-op there. MLX does not check
    (an out-of-range index reads or writes other memory, or crashes the
    process) and CuPy wraps out-of-range indices around, so on those backends
    every integer, integer array and bool mask in ``index`` is checked against
    the axis it indexes, with NumPy's rules (negative integers count from the
    end). Slices, ``None`` and ``...`` are always in range.
    """
    if BACKEND == "numpy":
        return
    shape = tuple(int(s) for s in shape)
    items = index if isinstance(index, tuple) else (index,)

    def width(item: Any) -> int:
        if item is None or item is Ellipsis or isinstance(item, (bool, np.bool_)):
            return 0
        if hasattr(item, "dtype") and hasattr(item, "ndim") and dtype_name(item.dtype) == "bool":
            return max(item.ndim, 1)
        return 1

    used = sum(width(i) for i in items)
    if used > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}: {used} axes indexed")
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    axis = 0
    for item in items:
        if item is Ellipsis:
            axis += len(shape) - used
            continue
        step = width(item)
        if step == 0 or isinstance(item, slice):
            axis += step
            continue
        if isinstance(item, (int, np.integer)):
            n = shape[axis]
            if not -n <= int(item) < n:
                raise IndexError(f"index {int(item)} is out of bounds for axis {axis} with size {n}")
        elif hasattr(item, "dtype"):
            name = dtype_name(item.dtype)
            if name == "bool":
                want = shape[axis : axis + step]
                if tuple(item.shape) != want:
                    raise IndexError(
                        f"boolean index of shape {tuple(item.shape)} does not match the indexed axes {want} "
                        f"of a tensor of shape {shape}"
                    )
            elif "int" in name:
                n = shape[axis]
                if item.size:
                    lo, hi = _host_int_range(item)
                    if lo < -n or hi >= n:
                        bad = lo if lo < -n else hi
                        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}")
            else:
                raise IndexError(f"arrays used as indices must be of integer or bool dtype, got {name}")
        axis += step


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


def add_at(target: Any, index: Any, values: Any) -> Any:
    """``target[index] += values`` with repeated indices accumulated.

    Returns the updated array: NumPy and CuPy update ``target`` in place, MLX
    returns a new array, so always use the return value.
    """
    if BACKEND == "mlx":
        return target.at[index].add(values)
    if _is_basic_index(index):
        target[index] += values
    elif BACKEND == "cupy":
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
    return target


def matmul(a: Any, b: Any) -> Any:
    """``a @ b``; exact for integer arrays on MLX too (MLX's matmul takes floats only).

    On NumPy a strided batched second operand (such as the transposed view in ``q @ k^T``) is copied to C order
    first: NumPy's batched matmul is about 2x slower on it, and the copy costs a tenth of that.
    """
    if BACKEND == "mlx":
        if not (is_floating(a.dtype) or is_floating(b.dtype)):
            return asarray(np.matmul(to_numpy(a), to_numpy(b)))
        return a @ b
    if BACKEND == "numpy":
        out_dtype = np.result_type(a.dtype, b.dtype)
        if is_low_precision(out_dtype):
            # NumPy has no half-precision BLAS (its float16 and ml_dtypes' bfloat16 loops are scalar): multiply in
            # float32, as half-precision matrix units accumulate, and round the result once.
            return matmul(a.astype(np.float32), b.astype(np.float32)).astype(out_dtype)
        if b.ndim > 2 and not b.flags.c_contiguous:
            b = np.ascontiguousarray(b)
    return a @ b


def add_into(out: Any, x: Any) -> Any:
    """``out + x``, written into ``out`` where arrays are mutable (``out`` must be a fresh array nobody else holds).

    Returns the result: NumPy and CuPy add in place, MLX (immutable arrays) returns a new array.
    """
    if BACKEND == "mlx" or _mod.result_type(out, x) != out.dtype:
        return out + x  # immutable arrays, or a wider x: the result needs its own (promoted) array
    out += x
    return out


def contiguous(x: Any) -> Any:
    """``x`` laid out in C order (a copy only when it is not); MLX manages layout itself."""
    if BACKEND == "mlx":
        return x
    return _mod.ascontiguousarray(x)


def as_strided(x: Any, shape: Sequence[int], strides: Sequence[int]) -> Any:
    """A strided view of ``x`` with ``strides`` counted in elements of its C-order layout."""
    if BACKEND == "mlx":
        return _mod.as_strided(x, tuple(shape), tuple(strides))
    x = _mod.ascontiguousarray(x)
    item = x.itemsize
    if BACKEND == "cupy":
        from cupy.lib.stride_tricks import as_strided as _as_strided
    else:
        from numpy.lib.stride_tricks import as_strided as _as_strided
    return _as_strided(x, shape=tuple(shape), strides=tuple(s * item for s in strides))


# --- random numbers --------------------------------------------------------

_rng = np.random.default_rng()


def seed(value: int) -> None:
    """Seed the backend's random generator so runs are reproducible.

    Each backend has its own generator, so the same seed reproduces the same
    numbers on the same backend (not across backends).
    """
    global _rng
    if BACKEND == "mlx":
        _mod.random.seed(int(value))
    elif BACKEND == "cupy":
        _mod.random.seed(int(value))
    else:
        _rng = np.random.default_rng(int(value))


def _shape(shape: int | Iterable[int]) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def uniform(low: float, high: float, shape: int | Iterable[int], dt: Any = "float32") -> Any:
    """Samples from U[low, high) with the given shape and dtype."""
    shape, dt = _shape(shape), dtype(dt)
    if BACKEND == "mlx":
        return _mod.random.uniform(low, high, shape, dtype=_mod.float32).astype(dt)
    if BACKEND == "cupy":
        return _mod.random.uniform(low, high, shape).astype(dt)
    return _rng.uniform(low, high, shape).astype(dt)


def normal(shape: int | Iterable[int], dt: Any = "float32", scale: float = 1.0) -> Any:
    """Samples from N(0, scale**2) with the given shape and dtype."""
    shape, dt = _shape(shape), dtype(dt)
    if BACKEND == "mlx":
        return (_mod.random.normal(shape, dtype=_mod.float32) * scale).astype(dt)
    if BACKEND == "cupy":
        return (_mod.random.standard_normal(shape) * scale).astype(dt)
    return (_rng.standard_normal(shape) * scale).astype(dt)


def random_seed() -> int:
    """A fresh 31-bit seed drawn from the backend's (seeded) generator."""
    if BACKEND == "mlx":
        return int(_mod.random.randint(0, 2**31 - 1, ()).item())
    if BACKEND == "cupy":
        return int(_mod.random.randint(0, 2**31 - 1))
    return int(_rng.integers(0, 2**31 - 1))


def bernoulli(keep_prob: float, shape: int | Iterable[int]) -> Any:
    """A boolean array, True with probability ``keep_prob``."""
    shape = _shape(shape)
    if BACKEND == "mlx":
        return _mod.random.bernoulli(keep_prob, shape)
    if BACKEND == "cupy":
        return _mod.random.random_sample(shape) < keep_prob
    return _rng.random(shape) < keep_prob
