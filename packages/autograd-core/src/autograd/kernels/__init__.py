"""Attention kernels as plugins: the contract, the registry and the dispatcher's selection.

``python -m autograd.kernels`` (or the ``autograd-kernels`` command) lists every
registered implementation. See :mod:`autograd.kernels.registry` for the rules
and :class:`AttentionImplementation` for the contract; the dense reference is
:mod:`autograd.kernels.dense`.
"""

from autograd.kernels.registry import (
    ENTRY_POINT_GROUP,
    ENV_VAR,
    AttentionImplementation,
    AttentionInputs,
    AttentionNotSupportedError,
    Candidate,
    Explanation,
    UnknownAttentionImplementationError,
    explain,
    get,
    implementations,
    register,
    reset,
    select,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "AttentionImplementation",
    "AttentionInputs",
    "AttentionNotSupportedError",
    "Candidate",
    "Explanation",
    "UnknownAttentionImplementationError",
    "explain",
    "get",
    "implementations",
    "register",
    "reset",
    "select",
    "unregister",
]
