"""The Optimizer base class: parameters, learning rate and schedule, clipping, state and checkpoints."""

from __future__ import annotations

import inspect
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.backend import lib as _lib
from autograd.files import atomic_write_bytes, check_readable
from autograd.optim.loss_scaler import LossScaler
from autograd.tensor import Tensor

__all__ = ["Optimizer", "OptimizerStateError"]

_LOW_PRECISION = ("float16", "bfloat16")


class OptimizerStateError(ValueError):
    """A loaded optimizer state does not fit this optimizer (names, shapes or hyperparameters)."""


def _number(value: Any, what: str) -> float:
    """``value`` as a finite float, or ValueError naming ``what``."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{what} must be finite, got {out}")
    return out


def _check_lr(lr: Any, where: str) -> float:
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: learning rate must be a number, got {lr!r}") from None
    if isinstance(lr, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: learning rate must be finite and >= 0, got {lr!r}")
    return value


def _count(value: Any, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (integral floats accepted, as JSON may give them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {int(value)}")
    return int(value)


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
    usage example trains as written; subclasses override ``_update``.
    Parameters whose ``grad`` is None are skipped.

    Mixed precision: float16 and bfloat16 parameters are updated through a
    float32 master copy (saved with the state, so a resume is bit-identical),
    and their optimizer state is float32. ``loss_scaler=LossScaler()`` adds
    dynamic loss scaling for float16 (see :class:`LossScaler`); its state is
    part of :meth:`state_dict` and of the saved file.

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
    #: The per-parameter state a subclass keeps: slot name -> ``"array"`` (shaped like the parameter) or
    #: ``"count"`` (an int >= 1). ``load_state_dict`` refuses anything else.
    slots: Dict[str, str] = {}
    #: Array slots that are never negative (Adam's second moment); a negative value is refused on load.
    nonnegative_slots: Tuple[str, ...] = ()

    @classmethod
    def check_hyperparameters(cls, hyperparams: Dict[str, Any]) -> Dict[str, Any]:
        """The given hyperparameters validated and normalised with the constructor's rules.

        Only the keys present are checked; subclasses extend this with
        ``super().check_hyperparameters(...)``. Used by the constructors and by
        :meth:`load_state_dict`, so a loaded state obeys the same rules as a
        freshly built optimizer.

        Raises:
            ValueError: naming the first invalid value.
        """
        out = dict(hyperparams)
        name = cls.__name__
        for key in ("lr", "base_lr"):
            if key in out:
                out[key] = _check_lr(out[key], f"{name} {key}")
        if "timestep" in out:
            out["timestep"] = _count(out["timestep"], f"{name}: timestep", 0)
        return out

    def __init__(
        self, model_parameters: Dict[str, Tensor], lr: float, lr_scheduler_kwargs: Optional[dict] = None, **kwargs: Any
    ) -> None:
        loss_scaler = kwargs.pop("loss_scaler", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        if loss_scaler is not None and not isinstance(loss_scaler, LossScaler):
            raise TypeError(f"loss_scaler must be a LossScaler, got {type(loss_scaler).__name__}")
        self._params = _named(model_parameters)
        self._base_lr = self._lr = _check_lr(lr, type(self).__name__)
        self._timestep = 0
        self._states: Dict[str, Dict[str, Any]] = {}
        #: The parameter arrays this optimizer last wrote from a master copy (a different array means someone else
        #: assigned the parameter, so its master is checked before use).
        self._written: Dict[str, Any] = {}
        self.loss_scaler: Optional[LossScaler] = loss_scaler
        self._unscaled: Optional[Dict[str, Any]] = None
        self._found_inf = False
        #: True when the last ``step()`` was skipped because the loss scaler found an inf or a NaN.
        self.last_step_skipped = False
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
        if self._unscaled is not None:
            return self._unscaled
        return {n: p.grad.data for n, p in self._params.items() if p.grad is not None}

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (None counts as zero and is skipped by step)."""
        for p in self._params.values():
            p.grad = None
        self._unscaled = None

    # -- loss scaling --

    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss`` times the loss scale (``loss`` itself without a scaler): call ``backward`` on the result."""
        if self.loss_scaler is None:
            return loss
        self._unscaled = None
        if backend.is_low_precision(loss.dtype):
            loss = loss.astype("float32")  # the scaled value itself must not overflow float16
        return loss * self.loss_scaler.scale

    def unscale_gradients(self) -> bool:
        """Divide this step's gradients by the loss scale, in float32 (once per step); True when one is not finite.

        ``clip_grad_norm``, ``grad_l2_norm`` and ``step`` call it, so it is
        needed by hand only to look at unscaled gradients. The parameters'
        ``.grad`` keep the scaled values; the optimizer works on float32
        copies. Without a loss scaler it only reports non-finite gradients.
        """
        if self.loss_scaler is None:
            return False
        if self._unscaled is None:
            inv = 1.0 / self.loss_scaler.scale
            f32 = backend.dtype("float32")
            grads = {n: p.grad.data for n, p in self._params.items() if p.grad is not None}
            self._unscaled = {
                n: (g.astype(f32) if backend.is_low_precision(g.dtype) else g) * inv for n, g in grads.items()
            }
            # one host read per step, of all gradients at once (PyTorch's GradScaler also reads once per step)
            finite = [_lib.all(_lib.isfinite(g)) for g in self._unscaled.values()]
            self._found_inf = bool(finite) and not bool(_lib.all(_lib.stack(finite)))
        return self._found_inf

    def gradient_arrays(self) -> Dict[str, Any]:
        """The current gradient arrays, by parameter name (parameters without a gradient are left out)."""
        return self._grads()

    def _norm(self, norm_type: float) -> Any:
        """The joint norm of the gradients as a 0-d backend array: computed on the device, read by nobody here."""
        grads = [
            g.astype(backend.dtype("float32")) if backend.dtype_name(g.dtype) in _LOW_PRECISION else g
            for g in self._grads().values()
            if g.size
        ]
        if not grads:
            return backend.asarray(np.zeros((), np.float32))
        if math.isinf(norm_type):
            return _lib.max(_lib.stack([_lib.max(_lib.abs(g)) for g in grads]))
        total = _lib.sum(_lib.stack([_lib.sum(_lib.abs(g) ** norm_type) for g in grads]))
        return total ** (1.0 / norm_type)

    def grad_l2_norm(self) -> float:
        """The L2 norm of all current gradients together (unscaled, with a loss scaler)."""
        self.unscale_gradients()
        return float(backend.to_numpy(self._norm(2.0)))

    def scale_gradients(self, scale: Any) -> None:
        """Multiply every gradient by ``scale`` (gradients keep their dtype; with a loss scaler, the unscaled ones)."""
        if self._unscaled is not None:
            self._unscaled = {n: g * scale for n, g in self._unscaled.items()}
            return
        for p in self._params.values():
            if p.grad is not None:
                p.grad = (p.grad.data * scale).astype(p.grad.dtype)

    def clip_grad_norm(self, max_norm: float, norm_type: float = 2.0) -> Any:
        r"""Scale gradients so their joint ``norm_type`` norm is at most ``max_norm``; return the norm before.

        Gradients are multiplied by :math:`\text{max\_norm} / (\|g\|_n + 10^{-6})` when that is
        below 1 (as PyTorch's ``clip_grad_norm_``). A non-finite norm is returned without scaling.
        The norm is returned as a 0-d backend array (``float(norm)`` reads it), as PyTorch returns a
        tensor: on CuPy and MLX nothing here waits for the device; the gradients are multiplied by the
        clipping factor computed there (1 when no clipping is needed).

        Raises:
            ValueError: ``max_norm`` is not positive and finite, or ``norm_type`` is not positive.
        """
        max_norm, norm_type = float(max_norm), float(norm_type)
        if not (max_norm > 0 and math.isfinite(max_norm)):
            raise ValueError(f"clip_grad_norm: max_norm must be > 0 and finite, got {max_norm}")
        if not norm_type > 0:
            raise ValueError(f"clip_grad_norm: norm_type must be > 0 (or inf), got {norm_type}")
        self.unscale_gradients()
        total = self._norm(norm_type)
        coef = max_norm / (total + 1e-6)
        if backend.active.host_reads_free:  # NumPy: read it, sparing a pass over the gradients when nothing clips
            if math.isfinite(float(total)) and float(coef) < 1.0:
                self.scale_gradients(coef)
        else:
            self.scale_gradients(_lib.where(_lib.isfinite(total) & (coef < 1.0), coef, 1.0))
        return total

    # -- stepping --

    def step(self) -> None:
        """Update the learning rate from the schedule, update every parameter with a gradient, count the step.

        With a loss scaler, gradients are unscaled first; a step whose
        gradients hold an inf or a NaN changes no parameter, is not counted,
        lowers the scale and sets :attr:`last_step_skipped`.
        """
        if self.loss_scaler is not None and self.unscale_gradients():
            self.loss_scaler.update(found_inf=True)
            self.last_step_skipped, self._unscaled = True, None
            return
        self.update_lr()
        items = []
        for name, g in self._grads().items():
            p = self._params[name]
            dt = _state_dtype(p)
            items.append((name, p, g.astype(dt) if g.dtype != dt else g, dt))
        self._update_all(items)
        self._timestep += 1
        self.last_step_skipped, self._unscaled = False, None
        if self.loss_scaler is not None:
            self.loss_scaler.update(found_inf=False)
        # MLX builds lazy graphs: evaluate the new parameters and state now, as MLX's own optimizers expect,
        # or a loop that never reads a value keeps every step's graph alive.
        backend.materialize(*(p.data for p in self._params.values()), *self._state_arrays())

    def _state_arrays(self) -> List[Any]:
        return [v for slots in self._states.values() for v in slots.values() if backend.is_array(v)]

    def _update_all(self, items: List[Tuple[str, Tensor, Any, Any]]) -> None:
        """Update every ``(name, parameter, grad, state dtype)`` of this step; by default one at a time."""
        for name, param, grad, dtype in items:
            self._update(name, param, grad, dtype)

    def _update(self, name: str, param: Tensor, grad: Any, dtype: Any) -> None:
        """Update one parameter; ``grad`` is already in the state dtype. Base: plain gradient descent."""
        self._assign(name, param, self._value(name, param, dtype) - self._lr * grad)

    def _value(self, name: str, param: Tensor, dtype: Any) -> Any:
        """The value to update, in the state dtype: a float16/bfloat16 parameter's float32 master copy.

        A low-precision parameter cannot hold updates smaller than its
        resolution (bfloat16 keeps 8 bits), so the optimizer updates a float32
        master (state slot ``"master"``) and writes the rounded value back. The
        master is (re)made from the parameter when there is none, or when the
        parameter was assigned from elsewhere (a loaded checkpoint, user code)
        and no longer rounds to it.
        """
        if not backend.is_low_precision(param.dtype):
            return param.data.astype(dtype) if param.dtype != dtype else param.data
        state = self._states.setdefault(name, {})
        master = state.get("master")
        if master is not None and self._written.get(name) is not param.data:
            if not bool(_lib.all(master.astype(param.dtype) == param.data)):
                master = None
        if master is None:
            master = param.data.astype(dtype)
        state["master"] = master
        return master

    def _assign(self, name: str, param: Tensor, value: Any) -> None:
        if backend.is_low_precision(param.dtype):
            self._states.setdefault(name, {})["master"] = value
            param.data = value.astype(param.dtype)
            self._written[name] = param.data
        else:
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
        """This optimizer's state, as copies.

        ``{"hyperparams": {"lr", "base_lr", "timestep", ...}, "parameters": [names],
        "states": {name: {slot: array or int}}}``. ``parameters`` lists every
        parameter the optimizer updates (a parameter that never had a gradient
        has no entry in ``states``).
        """
        states = {
            name: {k: (backend.copy(v) if backend.is_array(v) else v) for k, v in slots.items()}
            for name, slots in self._states.items()
        }
        out = {"hyperparams": self._hyperparams(), "parameters": list(self._params), "states": states}
        if self.loss_scaler is not None:
            out["loss_scaler"] = self.loss_scaler.state_dict()
        return out

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> None:
        """Restore hyperparameters and per-parameter state, all or nothing.

        Everything is validated before anything changes: hyperparameters with
        the constructor's rules (``beta1`` in [0, 1), ``epsilon > 0``, ``lr >= 0``,
        ``timestep >= 0``, ...), state slots by name, shape, dtype (only
        value-preserving casts) and value (finite; counts >= 1). A state that
        fails leaves the optimizer exactly as it was.

        Args:
            state_dict: As returned by :meth:`state_dict`.
            strict: When True (the default) the state must be for exactly this
                optimizer's parameters. ``strict=False`` loads a state that
                covers only some of them (the others keep their current
                state) and ignores state for parameters this optimizer does
                not have.

        Raises:
            OptimizerStateError: every problem found, in one message.
        """
        if not isinstance(state_dict, dict):
            raise OptimizerStateError(f"cannot load optimizer state: expected a dict, got {type(state_dict).__name__}")
        scaler_state = state_dict.get("loss_scaler")
        missing = [k for k in ("hyperparams", "parameters", "states") if k not in state_dict]
        if missing:
            raise OptimizerStateError(
                f"cannot load optimizer state: missing keys {missing} (expected the dict of {type(self).__name__}"
                ".state_dict())"
            )
        hyper, names, states = state_dict["hyperparams"], state_dict["parameters"], state_dict["states"]
        if not isinstance(hyper, dict) or not isinstance(states, dict) or not isinstance(names, (list, tuple)):
            raise OptimizerStateError(
                "cannot load optimizer state: 'hyperparams' and 'states' must be dicts and 'parameters' a list"
            )
        problems = []
        known = {"lr", "base_lr", "timestep", *self.hyperparameter_names}
        unknown_h = sorted(set(hyper) - known)
        if unknown_h:
            problems.append(f"unknown hyperparameters for {type(self).__name__}: {unknown_h}")
        missing_h = sorted(known - set(hyper))
        if missing_h:
            problems.append(f"missing hyperparameters: {missing_h}")
        checked: Dict[str, Any] = {}
        if not unknown_h and not missing_h:
            try:
                checked = type(self).check_hyperparameters(hyper)
            except ValueError as exc:
                problems.append(f"invalid hyperparameter: {exc}")
        names = [str(n) for n in names]
        foreign = sorted((set(names) | set(states)) - set(self._params))
        uncovered = sorted(set(self._params) - set(names))
        if strict and foreign:
            problems.append(f"state for unknown parameters: {foreign}")
        if strict and uncovered:
            problems.append(
                f"the state covers only some parameters; missing {uncovered} (pass strict=False for a partial load)"
            )
        loaded: Dict[str, Dict[str, Any]] = {}
        for name, slots in states.items():
            if name not in self._params:
                continue
            if not isinstance(slots, dict):
                problems.append(f"{name}: expected a dict of slots, got {type(slots).__name__}")
                continue
            loaded[name] = {}
            for slot, value in slots.items():
                try:
                    loaded[name][slot] = self._checked_slot(name, slot, value)
                except (TypeError, ValueError) as exc:
                    problems.append(f"{name}.{slot}: {exc}")
        scaler: Optional[Dict[str, Any]] = None
        if self.loss_scaler is not None and scaler_state is None and strict:
            problems.append("the state has no loss scaler state, but this optimizer has a loss scaler")
        elif self.loss_scaler is None and scaler_state is not None and strict:
            problems.append("the state has a loss scaler state, but this optimizer has no loss scaler")
        elif self.loss_scaler is not None and scaler_state is not None:
            try:
                scaler = LossScaler.check_state(dict(scaler_state))
            except (TypeError, ValueError) as exc:
                problems.append(f"invalid loss scaler state: {exc}")
        if problems:
            raise OptimizerStateError("cannot load optimizer state: " + "; ".join(problems))
        if scaler is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler)
        self._written, self._unscaled = {}, None
        self._lr, self._base_lr, self._timestep = checked["lr"], checked["base_lr"], checked["timestep"]
        for k in self.hyperparameter_names:
            setattr(self, k, checked[k])
        if strict:
            self._states = loaded
        else:
            for name in set(names) & set(self._params):
                self._states.pop(name, None)
            self._states.update(loaded)

    def _checked_slot(self, name: str, slot: str, value: Any) -> Any:
        """One stored state slot, converted for this optimizer; ValueError or TypeError says what is wrong."""
        kind = self.slots.get(slot)
        if kind is None:
            raise ValueError(f"unknown state slot for {type(self).__name__} (known: {sorted(self.slots)})")
        if kind == "count":
            return _count(value, "a step count", 1)
        shape, want = tuple(np.shape(value)), self._params[name].shape
        if shape != want:
            raise ValueError(f"shape {shape} != parameter shape {want}")
        arr = _to_array(value, _state_dtype(self._params[name]))
        if not bool(backend.lib.all(backend.lib.isfinite(arr))):
            raise ValueError("holds non-finite values")
        if slot in self.nonnegative_slots and bool(backend.lib.any(arr < 0)):
            raise ValueError("holds negative values (it is a second moment, never negative)")
        return arr

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to one safetensors file, atomically.

        Arrays are stored as ``"<parameter>::<slot>"``; hyperparameters, the
        parameter names and integer slots go in the file's metadata as JSON
        (with the optimizer's class name, checked by :meth:`load`).
        """
        from safetensors.numpy import save

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
            "parameters": json.dumps(sd["parameters"]),
            "scalars": json.dumps(scalars),
        }
        if "loss_scaler" in sd:
            metadata["loss_scaler"] = json.dumps(sd["loss_scaler"])
        atomic_write_bytes(path, save(arrays, metadata=metadata), suffix=".safetensors")

    def load(self, path: str | os.PathLike, strict: bool = True) -> None:
        """Load a file written by :meth:`save` into this optimizer, all or nothing.

        Raises:
            FileNotFoundError, IsADirectoryError, PermissionError: the path cannot be read (named).
            OptimizerStateError: the file is not an optimizer state, is for another optimizer class, its
                metadata is missing or not JSON, or its state does not fit (see :meth:`load_state_dict`,
                which also explains ``strict``).
        """
        from safetensors import SafetensorError, safe_open

        path = check_readable(path, "optimizer state")
        try:
            with safe_open(path, framework="numpy") as f:
                meta = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except SafetensorError as exc:
            raise OptimizerStateError(f"{path} is not a readable safetensors file ({exc})") from None
        if meta.get("format") != "autograd-optim":
            raise OptimizerStateError(f"{path} is not an autograd optimizer state file")
        if meta.get("optimizer") != type(self).__name__:
            raise OptimizerStateError(f"{path} holds {meta.get('optimizer')} state, not {type(self).__name__} state")
        decoded = {}
        for key in ("hyperparams", "parameters", "scalars"):
            if key not in meta:
                raise OptimizerStateError(f"{path}: the metadata has no {key!r} entry")
            try:
                decoded[key] = json.loads(meta[key])
            except json.JSONDecodeError as exc:
                raise OptimizerStateError(f"{path}: the metadata entry {key!r} is not valid JSON ({exc})") from None
        if not isinstance(decoded["scalars"], dict):
            raise OptimizerStateError(f"{path}: the metadata entry 'scalars' is not a JSON object")
        states: Dict[str, Dict[str, Any]] = {}
        for key, value in list(arrays.items()) + list(decoded["scalars"].items()):
            name, sep, slot = key.rpartition("::")
            if not sep:
                raise OptimizerStateError(f"{path}: entry {key!r} is not named '<parameter>::<slot>'")
            states.setdefault(name, {})[slot] = value
        sd = {"hyperparams": decoded["hyperparams"], "parameters": decoded["parameters"], "states": states}
        if "loss_scaler" in meta:
            try:
                sd["loss_scaler"] = json.loads(meta["loss_scaler"])
            except json.JSONDecodeError as exc:
                raise OptimizerStateError(
                    f"{path}: the metadata entry 'loss_scaler' is not valid JSON ({exc})"
                ) from None
        self.load_state_dict(sd, strict=strict)


def _to_array(value: Any, dtype: Any) -> Any:
    """A fresh backend array of ``dtype``; TypeError when the cast would change a value or the kind of data."""
    if isinstance(value, Tensor):
        value = value.data
    arr = value if backend.is_array(value) else backend.asarray(np.asarray(value))
    return backend.cast_exact(arr, dtype) if arr.dtype != dtype else backend.copy(arr)
