"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from autograd.optim.optimizer import Optimizer, _number
from autograd.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""SGD, with the options and update rule of ``torch.optim.SGD``.

    With :math:`g = \nabla + \lambda p` (``weight_decay`` :math:`\lambda`) and
    momentum :math:`\mu` > 0: :math:`b \leftarrow \mu b + (1 - \text{dampening}) g`
    (:math:`b = g` on the first step), then :math:`g \leftarrow g + \mu b` (Nesterov)
    or :math:`g \leftarrow b`; finally :math:`p \leftarrow p - \eta g`.

    Args:
        model_parameters: See :class:`Optimizer`.
        lr: Learning rate.
        momentum: :math:`\mu` (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (default 0).
        dampening: Dampening of the momentum (default 0).
        **kwargs: ``lr_scheduler_kwargs``, ``loss_scaler`` and the other options of :class:`Optimizer`.

    Examples:
        >>> from autograd.tensor import Tensor
        >>> w = Tensor([1.0, -2.0])
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     (w * w).sum().backward()  # the gradient is 2w
        ...     opt.step()
        >>> w.numpy().round(4)
        array([ 0.062, -0.124], dtype=float32)
    """

    hyperparameter_names = ("momentum", "nesterov", "weight_decay", "dampening")
    slots = {"momentum_buffer": "array", "master": "array"}

    @classmethod
    def check_hyperparameters(cls, hyperparams: Dict[str, Any]) -> Dict[str, Any]:
        """``momentum``, ``weight_decay`` >= 0; ``nesterov`` a bool needing momentum > 0 and dampening 0."""
        out = super().check_hyperparameters(hyperparams)
        for name in ("momentum", "weight_decay", "dampening"):
            if name in out:
                out[name] = _number(out[name], f"SGD: {name}")
        if out.get("momentum", 0.0) < 0 or out.get("weight_decay", 0.0) < 0:
            raise ValueError(
                f"SGD: momentum and weight_decay must be >= 0, got {out.get('momentum')}, {out.get('weight_decay')}"
            )
        if "nesterov" in out:
            if not isinstance(out["nesterov"], (bool, np.bool_)):
                raise ValueError(f"SGD: nesterov must be True or False, got {out['nesterov']!r}")
            out["nesterov"] = bool(out["nesterov"])
            if out["nesterov"] and (out.get("momentum", 0.0) <= 0 or out.get("dampening", 0.0) != 0):
                raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        return out

    def __init__(self, model_parameters: Any, lr: float, **kwargs: Any) -> None:
        hp = self.check_hyperparameters(
            {
                "momentum": kwargs.pop("momentum", 0.0),
                "nesterov": kwargs.pop("nesterov", False),
                "weight_decay": kwargs.pop("weight_decay", 0.0),
                "dampening": kwargs.pop("dampening", 0.0),
            }
        )
        self.momentum, self.nesterov, self.weight_decay, self.dampening = (hp[k] for k in self.hyperparameter_names)
        super().__init__(model_parameters, lr, **kwargs)

    def _update(self, name: str, param: Tensor, grad: Any, dtype: Any) -> None:
        """p <- p - lr * g, with weight decay and momentum as above."""
        value = self._value(name, param, dtype)
        g = grad + self.weight_decay * value if self.weight_decay else grad
        if self.momentum:
            state = self._states.setdefault(name, {})
            buf = state.get("momentum_buffer")
            buf = g if buf is None else self.momentum * buf + (1.0 - self.dampening) * g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        self._assign(name, param, value - self._lr * g)
