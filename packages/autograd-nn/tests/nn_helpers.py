"""Helpers shared by autograd-nn's tests."""

from __future__ import annotations

import numpy as np

from autograd import backend
from autograd.tensor import Tensor
from autograd.testing import gradcheck


def to_np(x):
    # Only a Tensor is unwrapped: a raw CuPy array's .data is its MemoryPointer.
    data = x.data if isinstance(x, Tensor) else x
    return np.asarray(backend.to_numpy(data), dtype=np.float64)


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a)), **kw)


def check_module_gradients(module, *inputs, **kw):
    """gradcheck of ``module(*inputs)`` w.r.t. the inputs and every parameter, in float64."""
    module.astype("float64")
    owners = {}
    for prefix, m in module.named_modules():
        for name in m._parameters:
            owners[f"{prefix}.{name}" if prefix else name] = (m, name)
    names = list(module.parameters)
    originals = {n: getattr(*owners[n]) for n in names}

    def fn(*args):
        xs, ps = args[: len(inputs)], args[len(inputs) :]
        for n, p in zip(names, ps):
            m, attr = owners[n]
            setattr(m, attr, p)
        out = module(*xs)
        return out[0] if isinstance(out, tuple) else out

    try:
        gradcheck(fn, *inputs, *[originals[n].data for n in names], **kw)
    finally:
        for n in names:
            m, attr = owners[n]
            setattr(m, attr, originals[n])
