"""What a test module that runs Triton's kernels in the interpreter, on NumPy arrays, does before importing them."""

from __future__ import annotations

import os
import sys

import pytest

from autograd import backend


def use_triton_interpreter() -> None:
    """Skip the calling module off the numpy backend; set ``TRITON_INTERPRET=1`` before triton's first import.

    The interpreter runs the kernels on NumPy arrays, so the numpy sessions run these tests. On cupy the kernels
    run compiled on the GPU (test_gpu.py), and setting the flag would make that process interpret them; on MLX
    the tests would only repeat the numpy sessions'. The flag must come before triton is first imported:
    triton.jit reads it when it decorates a function, and triton.language's own helpers (tl.sum, tl.max...) are
    @jit functions decorated at that first import.
    """
    if backend.BACKEND != "numpy":
        pytest.skip(
            f"the interpreter runs the Triton kernels on NumPy arrays, in the numpy sessions (this one is "
            f"{backend.BACKEND}; on cupy they run compiled on the GPU, test_gpu.py)",
            allow_module_level=True,
        )
    imported_early = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
    os.environ["TRITON_INTERPRET"] = "1"
    if imported_early:
        raise RuntimeError(
            "triton was imported before TRITON_INTERPRET=1 could be set, so its kernels cannot run in the "
            "interpreter: run this file in its own pytest process, or set TRITON_INTERPRET=1 in the environment"
        )
