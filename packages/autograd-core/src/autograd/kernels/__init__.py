"""Kernels for hot ops, as plugins: the contract they implement, the registry that finds and chooses them.

Each op a plugin may implement is defined once, in its module of
:mod:`autograd.ops` (its public function, its contract class, its output
rule, tolerances, conformance cases and core's reference). This package is
the generic machinery around them:

* :mod:`autograd.kernels.contract`: :class:`Kernel`, the base of every op's
  contract, and :class:`KernelInputs`, what a capability check sees;
* :mod:`autograd.kernels.registry`: discovery (the ``autograd.kernels``
  entry-point group), selection (``implementation=``, ``AUTOGRAD_KERNELS``,
  priorities), the dispatcher and :func:`explain`;
* :mod:`autograd.kernels.dropout`: the attention dropout decisions core makes,
  for kernels that want to reproduce them;
* ``python -m autograd.kernels`` (or ``autograd-kernels``): what is installed
  and what each op would use here.

:func:`autograd.testing.check_kernel_implementation` is the conformance suite
a plugin runs against core's reference.
"""

from autograd.kernels.contract import (
    ALL_BACKENDS,
    DEFAULT_TOLERANCES,
    OPS,
    REFERENCE,
    REFERENCE_PRIORITY,
    Kernel,
    KernelCase,
    KernelInputs,
    KernelNotSupportedError,
    KernelOutputError,
    UnknownKernelError,
    check_signature,
)
from autograd.kernels.registry import (
    ENTRY_POINT_GROUP,
    ENV_VAR,
    Candidate,
    Explanation,
    LoadFailure,
    dispatch,
    entry,
    explain,
    get,
    implementations,
    isolated,
    load_failures,
    register,
    reset,
    select,
    unregister,
)

__all__ = [
    "OPS",
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "REFERENCE",
    "REFERENCE_PRIORITY",
    "ALL_BACKENDS",
    "DEFAULT_TOLERANCES",
    "Kernel",
    "KernelInputs",
    "KernelCase",
    "KernelNotSupportedError",
    "UnknownKernelError",
    "KernelOutputError",
    "LoadFailure",
    "Candidate",
    "Explanation",
    "check_signature",
    "dispatch",
    "entry",
    "explain",
    "get",
    "implementations",
    "isolated",
    "load_failures",
    "register",
    "reset",
    "select",
    "unregister",
]
