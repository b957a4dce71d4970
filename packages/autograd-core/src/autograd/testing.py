"""Test helpers for op, layer and kernel authors.

:func:`gradcheck` compares the gradients an op computes with float64 central
finite differences and reports the worst element.
:func:`check_kernel_implementation` is the conformance suite a kernel plugin
runs against core's reference of its op (see :mod:`autograd.conformance`), and
:func:`isolated_kernels` pins the implementations a test sees, whatever else
is installed.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from autograd import backend
from autograd.conformance import ConformanceReport, check_kernel_implementation
from autograd.kernels.contract import KernelCase
from autograd.kernels.registry import isolated as isolated_kernels
from autograd.tensor import Tensor, no_grad

__all__ = [
    "import_torch",
    "GradcheckError",
    "gradcheck",
    "numerical_grad",
    "check_kernel_implementation",
    "isolated_kernels",
    "KernelCase",
    "ConformanceReport",
]


def import_torch() -> Any:
    """PyTorch for a parity test, with float64 as its default dtype.

    Without PyTorch the calling test is skipped (``unittest.SkipTest``, which
    pytest honours), unless ``AUTOGRAD_REQUIRE_TORCH`` is set: then the
    ImportError propagates, so a parity run can never pass by skipping.
    On the mlx backend the test is skipped too: parity is asserted at float64
    tolerances (1e-10), and MLX's float64 results differ from float64 math by
    about float32's epsilon (``nox -s parity`` runs on NumPy).
    """
    import os
    import unittest

    if backend.BACKEND == "mlx":
        raise unittest.SkipTest(
            "PyTorch parity is checked at float64 tolerances, which the mlx backend does not reach (it runs on numpy)"
        )
    try:
        import torch
    except ImportError:
        if os.environ.get("AUTOGRAD_REQUIRE_TORCH"):
            raise
        raise unittest.SkipTest("PyTorch is not installed (parity tests run in `nox -s parity`)") from None
    torch.set_default_dtype(torch.float64)
    return torch


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message names the worst element."""


def _as_float64_leaf(x: Any) -> Tensor:
    data = x.data if isinstance(x, Tensor) else x
    host = backend.to_numpy(backend.asarray(data) if not isinstance(data, np.ndarray) else data)
    if host.dtype.kind == "f":
        return Tensor(backend.asarray(host.astype(np.float64)), requires_grad=True)
    return Tensor(backend.asarray(host), requires_grad=False)


def _scalar(out: Any, weights: Optional[np.ndarray]) -> float:
    arr = backend.to_numpy(out.data if isinstance(out, Tensor) else out).astype(np.float64)
    if weights is None:
        return float(arr.sum())
    return float((arr * weights).sum())


def numerical_grad(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    index: int,
    eps: float = 1e-6,
    weights: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Central-difference gradient of ``sum(weights * fn(*inputs))`` w.r.t. ``inputs[index]``, in float64."""
    base = backend.to_numpy(inputs[index].data).astype(np.float64)
    grad = np.zeros_like(base)
    flat = base.reshape(-1)
    args = list(inputs)
    with no_grad():
        for i in range(flat.size):
            orig = flat[i]
            vals = []
            for step in (eps, -eps):
                flat[i] = orig + step
                args[index] = Tensor(backend.asarray(base.copy()), requires_grad=False)
                vals.append(_scalar(fn(*args), weights))
            flat[i] = orig
            grad.reshape(-1)[i] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: Optional[float] = None,
    atol: Optional[float] = None,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s analytic gradients against float64 central finite differences.

    Floating inputs are copied to float64 leaves; other inputs (integer
    targets, indices) are passed through unchanged and not differentiated.
    A non-scalar output is reduced with fixed random weights, so every output
    element's gradient path is exercised.

    Args:
        fn: Function of Tensors returning a Tensor.
        *inputs: Tensors or arrays.
        eps: Finite-difference step. Default 1e-6; 1e-3 on MLX, whose CPU
            float64 evaluates transcendental functions at float32 precision.
        atol, rtol: An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
            ``atol`` defaults to 1e-5 (1e-3 on MLX, for the same reason).
        seed: Seed of the output weights.

    Returns:
        True when every element passes.

    Raises:
        GradcheckError: naming the input, the worst element's index, and both values.
    """
    exact = backend.FLOAT64_TRANSCENDENTALS_EXACT
    eps = eps if eps is not None else (1e-6 if exact else 1e-3)
    atol = atol if atol is not None else (1e-5 if exact else 1e-3)
    leaves: List[Tensor] = [_as_float64_leaf(x) for x in inputs]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    weights = None
    if out.size != 1:
        weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
        loss = (out * Tensor(backend.asarray(weights.astype(np.float64)), requires_grad=False)).sum()
    else:
        loss = out.sum()
    if loss.requires_grad:
        loss.backward()
    for k, leaf in enumerate(leaves):
        if not leaf.requires_grad:
            continue
        numeric = numerical_grad(fn, [x.detach() if x.requires_grad else x for x in leaves], k, eps, weights)
        analytic = np.zeros_like(numeric) if leaf.grad is None else backend.to_numpy(leaf.grad.data).astype(np.float64)
        if analytic.shape != numeric.shape:
            raise GradcheckError(f"input {k}: gradient shape {analytic.shape} != input shape {numeric.shape}")
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if not np.all(np.isfinite(analytic)) or np.any(err > 0):
            bad = np.where(np.isfinite(analytic), err, np.inf)
            idx = np.unravel_index(int(np.argmax(bad)), numeric.shape) if numeric.ndim else ()
            raise GradcheckError(
                f"gradcheck failed for input {k} (shape {numeric.shape}): worst element {tuple(int(i) for i in idx)} "
                f"analytic={analytic[idx]!r} numeric={numeric[idx]!r} "
                f"(|diff|={abs(analytic[idx] - numeric[idx]):.3e}, atol={atol}, rtol={rtol})"
            )
    return True
