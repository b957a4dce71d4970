"""The Optimizer base class: parameters, learning rate and schedule, clipping, state and checkpoints."""

from __future__ import annotations

import inspect
import json
import math
import os
from typing import Any, Dict, Iterable, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.files import atomic_write
from autograd.tensor import Tensor

__all__ = ["Optimizer", "OptimizerStateError"]

_LOW_PRECISION = ("float16", "bfloat16")


class OptimizerStateError(ValueError):
    """A loaded optimizer state does not fit this optimizer (names, shapes or hyperparameters)."""


def _check_lr(lr: Any, where: str) -> float:
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: learning rate must be a number, got {lr!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: learning rate must be finite and >= 0, got {value}")
    return value


def _named(model_parameters: Any) -> Dict[str, Tensor]:
    if isinstance(model_parameters, dict):
        items: Iterable[Tuple[str, Any]] = model_parameters.items()
    else:
        items = []
        for i, entry in enumerate(model_parameters):
            items.append(entry if isinstance(entry, tuple) and len(entry) == 2 else (str(i), entry))
    out: Dict[str, Tensor] = {}
    for name, p in items:
        if not isinstance(p, Tensor):
            raise TypeError(f"optimizer parameter {name!r} is a {type(p).__name__}, not a Tensor")
        out[str(name)] = p
    if not out:
        raise ValueError("the optimizer got no parameters")
    return out


def _state_dtype(param: Tensor) -> Any:
    # Low-precision parameters keep float32 optimizer state (and a float32 update).
    name = backend.dtype_name(param.dtype)
    return backend.dtype("float32") if name in _LOW_PRECISION else param.dtype


class Optimizer:
    """Base optimizer over a dict of name -> Tensor.

    Args:
        model_parameters: ``Module.parameters`` (a dict of dotted name ->
            Tensor), any dict of name -> Tensor, an iterable of Tensors (named
            "0", "1", ...) or of (name, Tensor) pairs.
        lr: Learning rate (finite, >= 0).
        lr_scheduler_kwargs: ``{"lr_scheduler_cls": cls, **kwargs}``; the schedule
            is ``cls(**kwargs, lr=lr)`` and sets the learning rate before each step.

    The base class's :meth:`step` is plain gradient descent, so the documented
    usage example trains as written; subclasses override :meth:`_update`.
    Parameters whose ``grad`` is None are skipped. Optimizer state of float16
    and bfloat16 parameters is kept in float32.

    Usage::

        optimizer = Optimizer(model.parameters(), lr=0.01, lr_scheduler_kwargs={
            "lr_scheduler_cls": CosineScheduler, "warmup_steps": 100, "lr_decay_iters": 5000, "min_lr": 1e-4})
        for input, target in dataset:
            optimizer.zero_grad()
            loss = loss_fn(model(input), target)
            loss.backward()
            optimizer.step()
    """

    #: Names of the extra hyperparameters of a subclass (saved in ``state_dict``).
    hyperparameter_names: Tuple[str, ...] = ()

    def __init__(
        self, model_parameters: Dict[str, Tensor], lr: float, lr_scheduler_kwargs: Optional[dict] = None, **kwargs: Any
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        self._params = _named(model_parameters)
        self._base_lr = self._lr = _check_lr(lr, type(self).__name__)
        self._timestep = 0
        self._states: Dict[str, Dict[str, Any]] = {}
        self._scheduler = None
        if lr_scheduler_kwargs:
            opts = dict(lr_scheduler_kwargs)
            cls = opts.pop("lr_scheduler_cls", None)
            if cls is None:
                raise ValueError("lr_scheduler_kwargs needs an 'lr_scheduler_cls' entry")
            sig = inspect.signature(cls)
            takes_lr = "lr" in sig.parameters or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
            )
            if takes_lr and "lr" not in opts:
                opts["lr"] = self._base_lr
            self._scheduler = cls(**opts)

    # -- learning rate and time --

    @property
    def lr(self) -> float:
        """The current learning rate."""
        return self._lr

    @property
    def timestep(self) -> int:
        """The number of steps taken."""
        return self._timestep

    def update_lr(self) -> None:
        """Set the learning rate from the schedule for the current timestep (no-op without one)."""
        if self._scheduler is not None:
            self._lr = _check_lr(self._scheduler(self._timestep), f"{type(self._scheduler).__name__}")

    # -- gradients --

    def _grads(self) -> Dict[str, Any]:
        return {n: p.grad.data for n, p in self._params.items() if p.grad is not None}

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (None counts as zero and is skipped by step)."""
        for p in self._params.values():
            p.grad = None

    def gradient_arrays(self) -> Dict[str, Any]:
        """The current gradient arrays, by parameter name (parameters without a gradient are left out)."""
        return self._grads()

    def _norm(self, norm_type: float) -> float:
        grads = [
            g.astype(backend.dtype("float32")) if backend.dtype_name(g.dtype) in _LOW_PRECISION else g
            for g in self._grads().values()
        ]
        if not grads:
            return 0.0
        if math.isinf(norm_type):
            return float(max(float(backend.to_numpy(_lib.max(_lib.abs(g)))) for g in grads))
        total = sum(float(backend.to_numpy(_lib.sum(_lib.abs(g) ** norm_type))) for g in grads)
        return total ** (1.0 / norm_type)

    def grad_l2_norm(self) -> float:
        """The L2 norm of all current gradients together."""
        return self._norm(2.0)

    def scale_gradients(self, scale: Any) -> None:
        """Multiply every gradient by ``scale`` (gradients keep their dtype)."""
        for p in self._params.values():
            if p.grad is not None:
                p.grad = (p.grad.data * scale).astype(p.grad.dtype)

    def clip_grad_norm(self, max_norm: float, norm_type: float = 2.0) -> Any:
        r"""Scale gradients so their joint ``norm_type`` norm is at most ``max_norm``; return the norm before.

        Gradients are multiplied by :math:`\text{max\_norm} / (\|g\|_n + 10^{-6})` when that is
        below 1 (as PyTorch's ``clip_grad_norm_``). A non-finite norm is returned without scaling.

        Raises:
            ValueError: ``max_norm`` is not positive and finite, or ``norm_type`` is not positive.
        """
        max_norm, norm_type = float(max_norm), float(norm_type)
        if not (max_norm > 0 and math.isfinite(max_norm)):
            raise ValueError(f"clip_grad_norm: max_norm must be > 0 and finite, got {max_norm}")
        if not norm_type > 0:
            raise ValueError(f"clip_grad_norm: norm_type must be > 0 (or inf), got {norm_type}")
        total = self._norm(norm_type)
        coef = max_norm / (total + 1e-6)
        if math.isfinite(total) and coef < 1.0:
            self.scale_gradients(coef)
        return total

    # -- stepping --

    def step(self) -> None:
        """Update the learning rate from the schedule, update every parameter with a gradient, count the step."""
        self.update_lr()
        for name, p in self._params.items():
            if p.grad is None:
                continue
            dt = _state_dtype(p)
            g = p.grad.data
            self._update(name, p, g.astype(dt) if g.dtype != dt else g, dt)
        self._timestep += 1

    def _update(self, name: str, param: Tensor, grad: Any, dtype: Any) -> None:
        """Update one parameter; ``grad`` is already in the state dtype. Base: plain gradient descent."""
        self._assign(param, self._value(param, dtype) - self._lr * grad)

    @staticmethod
    def _value(param: Tensor, dtype: Any) -> Any:
        return param.data.astype(dtype) if param.dtype != dtype else param.data

    @staticmethod
    def _assign(param: Tensor, value: Any) -> None:
        param.data = value.astype(param.dtype) if value.dtype != param.dtype else value

    def _slot(self, name: str, slot: str, param: Tensor, dtype: Any) -> Any:
        state = self._states.setdefault(name, {})
        if slot not in state:
            state[slot] = _lib.zeros(param.shape, dtype=dtype)
        return state[slot]

    # -- state --

    def _hyperparams(self) -> Dict[str, Any]:
        out = {"lr": self._lr, "base_lr": self._base_lr, "timestep": self._timestep}
        out.update({k: getattr(self, k) for k in self.hyperparameter_names})
        return out

    def state_dict(self) -> Dict[str, Any]:
        """``{"hyperparams": {"lr", "base_lr", "timestep", ...}, "states": {name: {slot: array or int}}}`` (copies)."""
        states = {
            name: {k: (backend.copy(v) if backend.is_array(v) else v) for k, v in slots.items()}
            for name, slots in self._states.items()
        }
        return {"hyperparams": self._hyperparams(), "states": states}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state in place.

        Raises:
            OptimizerStateError: unknown parameter names or hyperparameters, or state shapes that do not
                match the parameters (all listed in one message).
        """
        hyper = dict(state_dict.get("hyperparams", {}))
        states = dict(state_dict.get("states", {}))
        known = {"lr", "base_lr", "timestep", *self.hyperparameter_names}
        problems = []
        unknown_h = sorted(set(hyper) - known)
        if unknown_h:
            problems.append(f"unknown hyperparameters for {type(self).__name__}: {unknown_h}")
        unknown_p = sorted(set(states) - set(self._params))
        if unknown_p:
            problems.append(f"state for unknown parameters: {unknown_p}")
        for name, slots in states.items():
            if name in self._params:
                for slot, value in slots.items():
                    shape, want = tuple(np.shape(value)), self._params[name].shape
                    if not isinstance(value, (int, float)) and shape != want:
                        problems.append(f"{name}.{slot}: shape {shape} != parameter shape {want}")
        if problems:
            raise OptimizerStateError("cannot load optimizer state: " + "; ".join(problems))
        if "lr" in hyper:
            self._lr = _check_lr(hyper["lr"], "load_state_dict")
        if "base_lr" in hyper:
            self._base_lr = _check_lr(hyper["base_lr"], "load_state_dict")
        self._timestep = int(hyper.get("timestep", self._timestep))
        for k in self.hyperparameter_names:
            if k in hyper:
                setattr(self, k, type(getattr(self, k))(hyper[k]))
        self._states = {}
        for name, slots in states.items():
            dt = _state_dtype(self._params[name])
            self._states[name] = {
                slot: (int(v) if isinstance(v, (int, np.integer)) else _to_array(v, dt)) for slot, v in slots.items()
            }

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to one safetensors file, atomically.

        Arrays are stored as ``"<parameter>::<slot>"``; hyperparameters and
        integer slots go in the file's metadata as JSON (with the optimizer's
        class name, checked by :meth:`load`).
        """
        from safetensors.numpy import save_file

        sd = self.state_dict()
        arrays, scalars = {}, {}
        for name, slots in sd["states"].items():
            for slot, v in slots.items():
                if backend.is_array(v):
                    arrays[f"{name}::{slot}"] = np.ascontiguousarray(backend.to_numpy(v))
                else:
                    scalars[f"{name}::{slot}"] = v
        metadata = {
            "format": "autograd-optim",
            "optimizer": type(self).__name__,
            "hyperparams": json.dumps(sd["hyperparams"]),
            "scalars": json.dumps(scalars),
        }
        atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata=metadata), suffix=".safetensors")

    def load(self, path: str | os.PathLike) -> None:
        """Load a file written by :meth:`save` into this optimizer.

        Raises:
            OptimizerStateError: the file is not an optimizer state, is for another optimizer class, or does
                not fit (see :meth:`load_state_dict`).
        """
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != "autograd-optim":
            raise OptimizerStateError(f"{os.fspath(path)} is not an autograd optimizer state file")
        if meta.get("optimizer") != type(self).__name__:
            raise OptimizerStateError(
                f"{os.fspath(path)} holds {meta.get('optimizer')} state, not {type(self).__name__} state"
            )
        states: Dict[str, Dict[str, Any]] = {}
        for key, value in list(arrays.items()) + list(json.loads(meta.get("scalars", "{}")).items()):
            name, _, slot = key.rpartition("::")
            states.setdefault(name, {})[slot] = value
        self.load_state_dict({"hyperparams": json.loads(meta["hyperparams"]), "states": states})


def _to_array(value: Any, dtype: Any) -> Any:
    if isinstance(value, Tensor):
        value = value.data
    arr = value if backend.is_array(value) else backend.asarray(np.asarray(value))
    return arr.astype(dtype) if arr.dtype != dtype else backend.copy(arr)
