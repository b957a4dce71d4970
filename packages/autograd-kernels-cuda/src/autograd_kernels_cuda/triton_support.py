"""How NumPy and CuPy arrays reach Triton kernels, without PyTorch.

Triton's JIT treats any argument with a ``data_ptr()`` method and a ``dtype``
attribute as a tensor: the pointer is passed to the kernel and the element
type comes from ``str(dtype)`` ("float32", "float16", "bfloat16", "int32"...).
Two small wrappers provide that:

* :class:`DeviceArray` wraps a CuPy array for compiled kernels. CuPy has no
  bfloat16 dtype, so a bfloat16 tensor travels as ``uint16`` storage with
  ``dtype="bfloat16"`` given explicitly.
* :class:`HostArray` wraps a NumPy array for Triton's interpreter
  (``TRITON_INTERPRET=1``), which additionally calls the handful of PyTorch
  tensor methods listed on the class to stage arguments on the host; here the
  memory already is on the host, so they are views of the same buffer and the
  kernel writes into the NumPy array in place.

:func:`launch` wraps the arguments and launches on CuPy's current stream and
device (Triton launches torch-free kernels on the default stream otherwise).
Nothing here imports triton or cupy at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "DeviceArray",
    "HostArray",
    "as_kernel_arg",
    "array_module",
    "interpreting",
    "launch",
    "triton_missing",
    "dtype_name",
    "next_power_of_2",
]


def triton_missing() -> Optional[str]:
    """Why Triton cannot be used here, or None when it can be imported."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed: pip install 'autograd-kernels-cuda[triton]'"
    return None


def interpreting() -> bool:
    """True when Triton's interpreter is selected (it must be set before triton is first imported)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def dtype_name(array: Any) -> str:
    """The element type's name as Triton spells it for this array (``bfloat16`` for ml_dtypes' too)."""
    return str(array.dtype).split(".")[-1]


def array_module(array: Any) -> Any:
    """numpy for NumPy arrays, cupy for CuPy arrays (imported only then)."""
    # CuPy's type is asked first: an array type that names itself cupy's is CuPy's (the tests' simulated CuPy
    # subclasses numpy.ndarray so the interpreter can read it).
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    if isinstance(array, np.ndarray):
        return np
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


class _HostStorage:
    """The storage object the interpreter asks for: its pointer, a host copy (itself) and ``copy_``."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def data_ptr(self) -> int:
        return int(self.array.__array_interface__["data"][0])

    def cpu(self) -> "_HostStorage":
        return self  # already host memory: the interpreter then reads and writes the caller's buffer

    def copy_(self, other: "_HostStorage") -> None:
        if other.array is not self.array:
            np.copyto(self.array, other.array)


class HostArray:
    """A NumPy array as Triton's interpreter wants an argument.

    The interpreter (triton 3.9) calls ``untyped_storage()`` (and on it
    ``data_ptr()``, ``cpu()``, ``copy_()``), ``new_empty(0, device=...)``,
    ``set_(storage, offset, size, stride)``, ``storage_offset()``, ``size()``,
    ``stride()``, ``data_ptr()`` and reads ``dtype``. ``dtype`` may be
    overridden (e.g. a bool mask read as ``uint8``). Strides are in elements.
    """

    __slots__ = ("array", "dtype", "_storage", "_offset")

    def __init__(self, array: np.ndarray, dtype: Any = None) -> None:
        self.array = array
        self.dtype = array.dtype if dtype is None else dtype
        base = array
        while isinstance(base.base, np.ndarray):
            base = base.base
        self._storage = _HostStorage(base)
        self._offset = (self.data_ptr() - self._storage.data_ptr()) // max(array.itemsize, 1)

    def data_ptr(self) -> int:
        return int(self.array.__array_interface__["data"][0])

    def untyped_storage(self) -> _HostStorage:
        return self._storage

    def storage_offset(self) -> int:
        return int(self._offset)

    def size(self) -> Tuple[int, ...]:
        return tuple(self.array.shape)

    def stride(self) -> Tuple[int, ...]:
        return tuple(s // max(self.array.itemsize, 1) for s in self.array.strides)

    def new_empty(self, *sizes: Any, device: Any = None) -> "HostArray":
        return HostArray(self.array, self.dtype)

    def set_(self, storage: _HostStorage, offset: int, size: Sequence[int], stride: Sequence[int]) -> "HostArray":
        # The interpreter rebuilds the argument from (storage, offset, size, stride); with host storage that is
        # the original view, which this object already is.
        return self


class DeviceArray:
    """A CuPy array as Triton's JIT wants an argument: ``data_ptr()`` and a ``dtype`` whose name Triton knows."""

    __slots__ = ("array", "dtype", "_ptr")

    def __init__(self, array: Any, dtype: Any = None) -> None:
        self.array = array
        self.dtype = array.dtype if dtype is None else dtype
        self._ptr = int(array.data.ptr)

    def data_ptr(self) -> int:
        return self._ptr


def as_kernel_arg(array: Any, dtype: Any = None) -> Any:
    """Wrap an array for a kernel launch (``dtype`` overrides the element type's name, e.g. ``"bfloat16"``)."""
    if isinstance(array, np.ndarray):
        return HostArray(array, dtype)
    if type(array).__module__.startswith("cupy"):
        return DeviceArray(array, dtype)
    return array


# --- CuPy's stream and device for Triton's launches -------------------------------------------------------------

_LOCAL = threading.local()
_HOOK_LOCK = threading.Lock()


def _install_cupy_hooks() -> None:
    """Let the active Triton driver report CuPy's stream and device while one of our launches is in flight.

    Triton asks ``driver.active.get_current_stream(device)`` on every launch. Only our own launches (a
    thread-local flag) see CuPy's answer, so other Triton users in the process (PyTorch's) are unaffected.
    """
    from triton.runtime import driver

    active = driver.active
    with _HOOK_LOCK:
        if getattr(active, "_autograd_cupy_hooks", False):
            return
        base_stream: Callable[..., Any] = active.get_current_stream
        base_device: Callable[..., Any] = active.get_current_device

        def get_current_stream(device: Any = None) -> Any:
            if getattr(_LOCAL, "depth", 0):
                import cupy

                return cupy.cuda.get_current_stream().ptr
            return base_stream(device)

        def get_current_device() -> Any:
            if getattr(_LOCAL, "depth", 0):
                import cupy

                return cupy.cuda.runtime.getDevice()
            return base_device()

        active.get_current_stream = get_current_stream
        active.get_current_device = get_current_device
        active._autograd_cupy_hooks = True


@contextlib.contextmanager
def _cupy_launch_scope() -> Iterator[None]:
    _install_cupy_hooks()
    _LOCAL.depth = getattr(_LOCAL, "depth", 0) + 1
    try:
        yield
    finally:
        _LOCAL.depth -= 1


#: Compilation options passed on every compiled launch (the interpreter ignores them). fp fusion is stated
#: explicitly: Triton 3.9 warns when it is left to its default, which changes in 3.10.
COMPILE_DEFAULTS = {"enable_fp_fusion": True}


def launch(kernel: Any, grid: Tuple[int, ...], *args: Any, **meta: Any) -> None:
    """``kernel[grid](*args, **meta)`` with NumPy/CuPy arrays wrapped, on CuPy's current stream for CuPy arrays.

    Arrays already wrapped (with an explicit dtype) pass through. ``None`` stays None.
    """
    wrapped = [as_kernel_arg(a) if not isinstance(a, (HostArray, DeviceArray)) else a for a in args]
    on_device = any(isinstance(a, DeviceArray) for a in wrapped)
    if any(isinstance(a, HostArray) for a in wrapped) and not interpreting():
        raise RuntimeError("NumPy arrays reach Triton kernels only in the interpreter (TRITON_INTERPRET=1)")
    options = {**COMPILE_DEFAULTS, **meta}
    if on_device:
        with _cupy_launch_scope():
            kernel[grid](*wrapped, **options)
    else:
        kernel[grid](*wrapped, **options)
