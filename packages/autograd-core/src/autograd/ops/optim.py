"""The optimizers' update ops: Adam/AdamW over every parameter at once, which plugins may fuse.

``autograd.optim.Adam`` calls :func:`adam_update` once per step (once per
parameter dtype); core's reference updates one parameter at a time, a fused
kernel all of them in a few passes. The update is not differentiable: arrays
in, arrays out.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.kernels.contract import (
    CoreReference,
    Kernel,
    KernelCase,
    KernelInputs,
    KernelOutputError,
)
from autograd.kernels.registry import dispatch

__all__ = ["adam_update", "AdamKernel"]

Arrays = List[Any]


def adam_update(
    params: Arrays,
    grads: Arrays,
    exp_avgs: Arrays,
    exp_avg_sqs: Arrays,
    steps: Sequence[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> Tuple[Arrays, Arrays, Arrays]:
    """One Adam(W) step of every parameter: ``(params, exp_avgs, exp_avg_sqs)`` after it.

    Lists of backend arrays, one per parameter (each its own shape, all of one
    floating dtype); ``steps`` holds each parameter's step count ``t``,
    counting this step. See :class:`AdamKernel` for the update. NumPy and
    CuPy kernels may update the arrays in place and return them; use the
    returned arrays (MLX arrays are immutable).

    Runs the best registered ``adam`` kernel (:mod:`autograd.kernels`).
    """
    n = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(steps) == n):
        raise ValueError(
            f"adam_update: {n} params, {len(grads)} grads, {len(exp_avgs)} exp_avgs, {len(exp_avg_sqs)} exp_avg_sqs "
            f"and {len(steps)} steps: one of each per parameter"
        )
    return dispatch(
        AdamKernel,
        list(params),
        list(grads),
        list(exp_avgs),
        list(exp_avg_sqs),
        list(steps),
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
    )


class AdamKernel(Kernel):
    """The ``adam`` op: ``apply(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, eps, weight_decay)``.

    Lists of equally long backend arrays (each parameter's own shape, all of
    one floating dtype) and ``steps``, each parameter's step count ``t``
    (already counting this step). For each parameter::

        p = p * (1 - lr * weight_decay)                      # when weight_decay > 0
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Returns ``(params, exp_avgs, exp_avg_sqs)``: three lists of new arrays,
    each shaped and typed like the parameters (NumPy and CuPy kernels may
    update in place and return the same arrays; MLX arrays are immutable).
    :class:`~autograd.kernels.KernelInputs` names one array argument,
    ``params``, with the shape ``(count,)``; its parameters are ``numel``,
    ``shapes`` (each parameter's) and ``weight_decay``, and ``dtypes`` lists
    the parameters' distinct dtypes.
    """

    op = "adam"

    def apply(
        self,
        params: Arrays,
        grads: Arrays,
        exp_avgs: Arrays,
        exp_avg_sqs: Arrays,
        steps: List[int],
        *,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
    ) -> Tuple[Arrays, Arrays, Arrays]:
        """One update of every parameter (see the class docstring)."""
        hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        return self.call_function(params, grads, exp_avgs, exp_avg_sqs, steps, **hyper)

    @classmethod
    def reference(cls) -> Kernel:
        return AdamReference()

    @classmethod
    def describe(cls, *args: Any, **params: Any) -> KernelInputs:
        values = args[0]
        names = sorted({backend.dtype_name(p.dtype) for p in values})
        shapes = tuple(tuple(int(s) for s in p.shape) for p in values)
        return KernelInputs(
            op=cls.op,
            backend=backend.BACKEND,
            dtype=backend.dtype_name(values[0].dtype) if values else "",
            names=("params",),
            shapes=((len(values),),),
            dtypes=tuple(names),
            params=(
                ("numel", sum(int(p.size) for p in values)),
                ("shapes", shapes),
                ("weight_decay", params.get("weight_decay")),
            ),
            requires_grad=False,
        )

    @classmethod
    def check_output(cls, impl: Kernel, inputs: KernelInputs, out: Any) -> None:
        """Three lists, each with one array per parameter, of the parameter's shape and dtype."""
        shapes = inputs.param("shapes")
        ok = isinstance(out, (tuple, list)) and len(out) == 3
        for group in out if ok else ():
            ok = ok and isinstance(group, (tuple, list)) and len(group) == len(shapes)
            ok = ok and all(
                tuple(a.shape) == s and backend.dtype_name(a.dtype) == inputs.dtype for a, s in zip(group, shapes)
            )
        if not ok:
            raise KernelOutputError(
                f"adam implementation {impl.name!r} must return (params, exp_avgs, exp_avg_sqs), three lists of "
                f"{len(shapes)} arrays shaped and typed like the parameters ({inputs.dtype}, shapes {list(shapes)})"
            )

    @classmethod
    def cases(cls, rng: np.random.Generator) -> List[KernelCase]:
        """Several parameter shapes (0-d included), weight decay off and on; ``arrays`` is p, g, m, v per parameter."""
        n = rng.standard_normal
        out = []
        for shapes, wd in [([(3, 2), (2,)], 0.0), ([(5,), (4, 3), (1,), (16, 8)], 0.01), ([(1,), (), (0,)], 0.1)]:
            arrays: List[Any] = []
            for shape in shapes:
                arrays += [n(shape), n(shape), n(shape) * 0.1, np.abs(n(shape)) * 0.01]
            params = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": wd}
            out.append(KernelCase(f"{len(shapes)} params {shapes} weight_decay={wd}", arrays, params, ()))
        return out

    @classmethod
    def case_arguments(cls, case: KernelCase, dt: Any) -> Tuple[List[Any], Dict[str, Any]]:
        """``[params, grads, exp_avgs, exp_avg_sqs, steps]`` in ``dt`` (from p, g, m, v per parameter), and the rest."""
        groups = [case.arrays[i : i + 4] for i in range(0, len(case.arrays), 4)]
        lists = [[backend.asarray(np.asarray(g[j])).astype(dt) for g in groups] for j in range(4)]
        return [*lists, [1] * len(groups)], dict(case.params)

    @classmethod
    def run_case(cls, impl: Kernel, case: KernelCase, dt: Any, seed: int) -> List[Tuple[str, Any]]:
        """Three successive updates, with per-parameter step counts that differ; every array after each."""
        state, _ = cls.case_arguments(case, dt)
        results: List[Tuple[str, Any]] = []
        for step in range(1, 4):
            steps = [step + i % 2 for i in range(len(state[0]))]
            inputs = cls.describe(state[0], weight_decay=case.params["weight_decay"])
            out = impl.apply(state[0], state[1], state[2], state[3], steps, **case.params)
            cls.check_output(impl, inputs, out)
            p, m, v = out
            for name, arrays in (("param", p), ("exp_avg", m), ("exp_avg_sq", v)):
                results += [(f"step {step} {name}[{i}]", backend.to_numpy(a)) for i, a in enumerate(arrays)]
            state = [list(p), state[1], list(m), list(v)]
        return results

    @classmethod
    def probe(cls, dtype: str = "float32", **options: Any) -> KernelInputs:
        """A small GPT's 50 parameters, 800k numbers, with weight decay."""
        return KernelInputs(
            op=cls.op,
            backend=backend.BACKEND,
            dtype=dtype,
            names=("params",),
            shapes=((50,),),
            dtypes=(dtype,),
            params=(("numel", 800_000), ("shapes", ((16_000,),) * 50), ("weight_decay", 0.01)),
            requires_grad=False,
        )


class AdamReference(CoreReference, AdamKernel):
    """The update of :class:`AdamKernel`, one parameter at a time, in the parameters' dtype."""

    def apply(
        self,
        params: Arrays,
        grads: Arrays,
        exp_avgs: Arrays,
        exp_avg_sqs: Arrays,
        steps: List[int],
        *,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
    ) -> Tuple[Arrays, Arrays, Arrays]:
        new_p, new_m, new_v = [], [], []
        keep = backend.keep_bfloat16  # NumPy bfloat16 times a Python float is float32
        for param, grad, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
            value = param
            if weight_decay:
                value = value * (1.0 - lr * weight_decay)
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * (grad * grad)
            denom = _lib.sqrt(v) / math.sqrt(1.0 - beta2**t) + eps
            new_p.append(keep(value - (lr / (1.0 - beta1**t)) * (m / denom), [param]))
            new_m.append(keep(m, [param]))
            new_v.append(keep(v, [param]))
        return new_p, new_m, new_v
