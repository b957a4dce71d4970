"""Adam, and AdamW when weight_decay > 0."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from autograd import backend
from autograd.ops.optim import adam_update
from autograd.optim.optimizer import Optimizer, _number
from autograd.tensor import Tensor

__all__ = ["Adam"]


class Adam(Optimizer):
    r"""Adam with decoupled weight decay (AdamW when ``weight_decay > 0``).

    Per parameter, at its step :math:`t`:
    :math:`p \leftarrow p (1 - \eta\lambda)`;
    :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`; :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`;
    :math:`p \leftarrow p - \frac{\eta}{1-\beta_1^t} \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}`
    (the arrangement of ``torch.optim.Adam``/``AdamW``). With ``weight_decay = 0`` it is Adam.

    Args:
        model_parameters: The parameters to train: ``model.parameters`` (a dict of name -> Tensor) or an
            iterable of Tensors (see :class:`Optimizer`).
        lr: Learning rate :math:`\eta`.
        beta1: Decay rate :math:`\beta_1` of the first moment (the running mean of the gradients), in [0, 1).
        beta2: Decay rate :math:`\beta_2` of the second moment (the running mean of the squared
            gradients), in [0, 1).
        epsilon: :math:`\epsilon`, added to the denominator for stability (> 0).
        weight_decay: Decoupled weight decay :math:`\lambda` (AdamW when > 0).
        **kwargs: ``lr_scheduler_kwargs``, ``loss_scaler`` and the other options of :class:`Optimizer`.

    Examples:
        >>> from autograd import backend, nn
        >>> from autograd import functional as F
        >>> from autograd.tensor import Tensor
        >>> backend.seed(0)
        >>> model = nn.Linear(2, 1)
        >>> opt = Adam(model.parameters, lr=0.1, weight_decay=0.01)  # AdamW
        >>> x = Tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=False)
        >>> y = Tensor([[1.0], [-1.0], [0.0]], requires_grad=False)
        >>> for _ in range(200):
        ...     opt.zero_grad()
        ...     loss = F.mean_squared_loss(model(x), y)
        ...     loss.backward()
        ...     opt.step()
        >>> round(loss.item(), 3)
        0.0
        >>> opt.timestep
        200
    """

    hyperparameter_names = ("beta1", "beta2", "epsilon", "weight_decay")
    slots = {"m": "array", "v": "array", "step": "count", "master": "array"}
    nonnegative_slots = ("v",)

    @classmethod
    def check_hyperparameters(cls, hyperparams: Dict[str, Any]) -> Dict[str, Any]:
        """``beta1`` and ``beta2`` in [0, 1), ``epsilon > 0``, ``weight_decay >= 0`` (and the base rules)."""
        out = super().check_hyperparameters(hyperparams)
        for name in ("beta1", "beta2"):
            if name in out:
                out[name] = _number(out[name], f"Adam: {name}")
                if not 0.0 <= out[name] < 1.0:
                    raise ValueError(f"Adam: {name} must be in [0, 1), got {out[name]}")
        if "epsilon" in out:
            out["epsilon"] = _number(out["epsilon"], "Adam: epsilon")
            if not out["epsilon"] > 0:
                raise ValueError(f"Adam: epsilon must be > 0, got {out['epsilon']}")
        if "weight_decay" in out:
            out["weight_decay"] = _number(out["weight_decay"], "Adam: weight_decay")
            if out["weight_decay"] < 0:
                raise ValueError(f"Adam: weight_decay must be >= 0, got {out['weight_decay']}")
        return out

    def __init__(
        self,
        model_parameters: Any,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-07,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        hp = self.check_hyperparameters(
            {"beta1": beta1, "beta2": beta2, "epsilon": epsilon, "weight_decay": weight_decay}
        )
        self.beta1, self.beta2, self.epsilon, self.weight_decay = (hp[k] for k in self.hyperparameter_names)
        super().__init__(model_parameters, lr, **kwargs)

    def _update_all(self, items: List[Tuple[str, Tensor, Any, Any]]) -> None:
        """One Adam(W) step of every parameter with a gradient, through the ``adam`` kernel op.

        Parameters are grouped by state dtype (one group unless the model mixes
        dtypes), and each group is one call of :func:`autograd.ops.optim.adam_update`,
        which runs the best registered ``adam`` kernel (core's reference
        updates one parameter at a time, a fused kernel all at once).
        """
        groups: Dict[Any, List[Tuple[str, Tensor, Any]]] = {}
        for name, param, grad, dtype in items:
            groups.setdefault(backend.dtype_name(dtype), []).append((name, param, grad))
        for dtype_name, group in groups.items():
            dtype = backend.dtype(dtype_name)
            values = [self._value(name, param, dtype) for name, param, _ in group]
            ms = [self._slot(name, "m", param, dtype) for name, param, _ in group]
            vs = [self._slot(name, "v", param, dtype) for name, param, _ in group]
            steps = [self._states[name].get("step", 0) + 1 for name, _, _ in group]
            new_p, new_m, new_v = adam_update(
                values,
                [grad for _, _, grad in group],
                ms,
                vs,
                steps,
                lr=self._lr,
                beta1=self.beta1,
                beta2=self.beta2,
                eps=self.epsilon,
                weight_decay=self.weight_decay,
            )
            for (name, param, _), p, m, v, t in zip(group, new_p, new_m, new_v, steps):
                state = self._states[name]
                state["m"], state["v"], state["step"] = m, v, t
                self._assign(name, param, p)
