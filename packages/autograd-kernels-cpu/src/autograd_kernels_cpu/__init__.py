"""Fused, multithreaded Numba kernels for autograd's NumPy backend, as plain functions on NumPy arrays.

Importing this package is cheap: each kernel module (and Numba itself, about
1.5 s to import) loads on first use of one of its functions, and each kernel
compiles on its first call for a dtype (then comes from Numba's on-disk
cache). See the README for what each function is for.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

__all__ = [
    "UnsupportedInputError",
    "layer_norm_forward",
    "layer_norm_backward",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "gelu_forward",
    "gelu_backward",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "adam_update",
    "conv2d_forward",
    "conv2d_backward",
    "columns_nbytes",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "embedding_backward",
    "attention_forward",
    "attention_backward",
    "num_threads",
]

# public name -> module that defines it
_WHERE: Dict[str, str] = {
    "UnsupportedInputError": "_common",
    "num_threads": "_threads",
    "adam_update": "adam",
    "embedding_backward": "embedding",
}
for _name in ("layer_norm_forward", "layer_norm_backward"):
    _WHERE[_name] = "norm"
for _name in ("softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"):
    _WHERE[_name] = "softmax"
for _name in ("cross_entropy_forward", "cross_entropy_backward"):
    _WHERE[_name] = "loss"
for _op in ("gelu", "relu", "sigmoid", "tanh"):
    _WHERE[f"{_op}_forward"] = _WHERE[f"{_op}_backward"] = "pointwise"
for _name in ("conv2d_forward", "conv2d_backward", "columns_nbytes"):
    _WHERE[_name] = "conv"
for _name in ("max_pool2d_forward", "max_pool2d_backward"):
    _WHERE[_name] = "pool"
for _name in ("attention_forward", "attention_backward"):
    _WHERE[_name] = "attention"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'autograd_kernels_cpu' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"autograd_kernels_cpu.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
