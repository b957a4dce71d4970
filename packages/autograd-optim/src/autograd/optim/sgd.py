"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any

from autograd.optim.optimizer import Optimizer
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
        lr_scheduler_kwargs: See :class:`Optimizer`.
    """

    hyperparameter_names = ("momentum", "nesterov", "weight_decay", "dampening")

    def __init__(self, model_parameters: Any, lr: float, **kwargs: Any) -> None:
        self.momentum = float(kwargs.pop("momentum", 0.0))
        self.nesterov = bool(kwargs.pop("nesterov", False))
        self.weight_decay = float(kwargs.pop("weight_decay", 0.0))
        self.dampening = float(kwargs.pop("dampening", 0.0))
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {self.momentum}, {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(model_parameters, lr, **kwargs)

    def _update(self, name: str, param: Tensor, grad: Any, dtype: Any) -> None:
        """p <- p - lr * g, with weight decay and momentum as above."""
        value = self._value(param, dtype)
        g = grad + self.weight_decay * value if self.weight_decay else grad
        if self.momentum:
            state = self._states.setdefault(name, {})
            buf = state.get("momentum_buffer")
            buf = g if buf is None else self.momentum * buf + (1.0 - self.dampening) * g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        self._assign(param, value - self._lr * g)
