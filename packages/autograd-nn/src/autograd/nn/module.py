"""Module and ModuleList: parameter, submodule and state registration."""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np

from autograd import backend
from autograd.files import atomic_write_bytes, check_readable
from autograd.tensor import Tensor

__all__ = ["Module", "ModuleList", "ParameterDict", "StateDictError"]


class StateDictError(ValueError):
    """Keys or shapes of a state dict (or weights file) do not match the module."""


class ParameterDict(dict):
    """A plain dict of dotted name -> Tensor that may also be called.

    ``Module.parameters`` is a property (as documented), and ``model.parameters()``
    (the PyTorch spelling, used in the optimizer's documented example) returns
    the same dict.
    """

    def __call__(self) -> "ParameterDict":
        return self


class Module:
    """Base class for all neural-network modules.

    Assigning a :class:`~autograd.tensor.Tensor` to an attribute registers a
    parameter, a Module registers a submodule, and a raw backend array
    registers a state (a buffer such as a running mean). ``parameters`` and
    ``states`` flatten them with dotted names (``"block.0.weight"``).

    Modules start in training mode. Subclasses implement ``forward``; calling
    the module calls it.

    Examples:
        >>> from autograd.nn import Linear
        >>> class TwoLayers(Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.hidden = Linear(3, 4)
        ...         self.out = Linear(4, 1)
        ...         self.register_state("calls", [0.0])
        ...     def forward(self, x):
        ...         return self.out(self.hidden(x).maximum(0.0))
        >>> model = TwoLayers()
        >>> model(Tensor(xp.ones((2, 3)))).shape
        (2, 1)
        >>> list(model.parameters)
        ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
        >>> list(model.states), model.num_parameters()
        (['calls'], 21)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_states", {})
        object.__setattr__(self, "_is_training", True)

    # -- registration --

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            Module.__init__(self)
        for registry in (self._parameters, self._modules, self._states):
            registry.pop(name, None)
        if isinstance(value, Tensor):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif backend.is_array(value):
            self._states[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._modules, self._states):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_state(self, name: str, value: Any) -> None:
        """Register ``value`` (converted to a backend array) as a state named ``name``."""
        setattr(self, name, backend.asarray(value))

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """This module and every submodule, depth first, with dotted names."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    # -- views --

    @property
    def parameters(self) -> Dict[str, Any]:
        """Every trainable parameter of this module and its submodules, by dotted name."""
        out = ParameterDict()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                out[f"{prefix}.{name}" if prefix else name] = p
        return out

    @property
    def states(self) -> Dict[str, Any]:
        """Every non-trainable state (buffer) of this module and its submodules, by dotted name."""
        out: Dict[str, Any] = {}
        for prefix, module in self.named_modules():
            for name, s in module._states.items():
                out[f"{prefix}.{name}" if prefix else name] = s
        return out

    @property
    def is_training(self) -> bool:
        """True in training mode (the default), False after ``eval()``."""
        return bool(self._is_training)

    training = is_training

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.size for p in self.parameters.values())

    # -- behaviour --

    def zero_grad(self) -> None:
        """Clear the gradient of every parameter (set to None, which counts as zero)."""
        for p in self.parameters.values():
            p.grad = None

    def apply(self, func: Callable[["Module"], Any]) -> None:
        """Call ``func`` on every submodule (depth first) and then on this module."""
        for child in self._modules.values():
            child.apply(func)
        func(self)

    def train(self) -> None:
        """Training mode for this module and every submodule."""
        self.apply(lambda m: object.__setattr__(m, "_is_training", True))

    def eval(self) -> None:
        """Evaluation mode for this module and every submodule."""
        self.apply(lambda m: object.__setattr__(m, "_is_training", False))

    def astype(self, dtype: Any) -> "Module":
        """Cast every floating parameter and state to ``dtype`` in place; returns self."""
        for p in self.parameters.values():
            p.data = p.data.astype(backend.dtype(dtype))
        for _, module in self.named_modules():
            for name, s in list(module._states.items()):
                if backend.is_floating(s.dtype):
                    setattr(module, name, s.astype(backend.dtype(dtype)))
        return self

    @abstractmethod
    def forward(self, x: Any) -> Tensor:
        """The forward pass; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def set_precision(self, compute: Optional[str] = "bfloat16", params: Optional[str] = "compute") -> "Module":
        """Mixed precision for this module: its forward runs under ``autograd.precision.autocast(compute)``.

        Matrix products, convolutions and attention then run in ``compute``
        (``"bfloat16"`` or ``"float16"``); sums, softmaxes, layer norms and
        losses in float32 (see :mod:`autograd.precision`). Set it once on a
        model, or on one block: autocast nests, so ``block.set_precision(None)``
        keeps one block of a low-precision model in full precision.

        Args:
            compute: The low dtype, or None (or ``"float32"``) for full precision.
            params: How to store this module's floating parameters (and its
                submodules'): ``"compute"`` (the default, as MLX's
                ``set_dtype``: half the memory; ``autograd.optim`` then keeps
                float32 master copies), ``"float32"`` (as ``torch.autocast``:
                each product casts them), or None to leave them as they are.
                States such as running statistics stay as they are.

        Returns:
            self.

        Raises:
            TypeError: the backend has no such dtype (named with the backend).

        Examples:
            >>> from autograd.nn import Linear
            >>> model = Linear(4, 2).set_precision("float16")
            >>> model.precision, backend.dtype_name(model.weight.dtype)
            ('float16', 'float16')
            >>> y = model(Tensor(xp.ones((3, 4), dtype="float32")))
            >>> backend.dtype_name(y.dtype)
            'float16'
        """
        from autograd.precision import autocast

        policy = autocast(compute)  # validates the name and the backend's support before anything changes
        store = (policy.name or "float32") if params == "compute" else params
        if store is not None:
            dt = backend.dtype(store)
            for p in self.parameters.values():
                if backend.is_floating(p.dtype) and p.dtype != dt:
                    p.data = p.data.astype(dt)
        object.__setattr__(self, "_precision", policy.name or "float32")
        return self

    @property
    def precision(self) -> Optional[str]:
        """The compute dtype set by :meth:`set_precision` on this module (``"float32"`` when turned off), or None."""
        return self.__dict__.get("_precision")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        policy = self.__dict__.get("_precision")
        if policy is None:
            return self.forward(*args, **kwargs)
        from autograd.precision import autocast

        with autocast(policy):
            return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        children = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({children}\n)" if children else f"{type(self).__name__}()"

    # -- state dicts --

    def state_dict(self) -> Dict[str, Dict[str, Any]]:
        """``{"parameters": {name: array}, "states": {name: array}}`` with copies of the arrays.

        Examples:
            >>> from autograd.nn import BatchNorm
            >>> sd = BatchNorm(3).state_dict()
            >>> sorted(sd["parameters"]), sorted(sd["states"])
            (['bias', 'weight'], ['running_mean', 'running_var'])
            >>> fresh = BatchNorm(3)
            >>> fresh.load_state_dict(sd)
        """
        return {
            "parameters": {n: backend.copy(p.data) for n, p in self.parameters.items()},
            "states": {n: backend.copy(s) for n, s in self.states.items()},
        }

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> None:
        """Load parameters and states, updating parameter Tensors in place (optimizers keep working).

        Args:
            state_dict: ``{"parameters": {...}, "states": {...}}`` of arrays (any array-likes).
            strict: Reject missing and unexpected keys. Shape mismatches are always rejected.

        Raises:
            StateDictError: one error listing every missing key, unexpected key and shape mismatch.
        """
        if not isinstance(state_dict, dict) or set(state_dict) - {"parameters", "states"}:
            raise StateDictError(
                "load_state_dict expects {'parameters': {...}, 'states': {...}}, got keys "
                f"{sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}"
            )
        params, states = self.parameters, self.states
        given_p = dict(state_dict.get("parameters", {}))
        given_s = dict(state_dict.get("states", {}))
        missing = sorted(set(params) - set(given_p)) + sorted(set(states) - set(given_s))
        unexpected = sorted(set(given_p) - set(params)) + sorted(set(given_s) - set(states))
        mismatched, bad_dtypes = [], []
        converted: Dict[str, Any] = {}
        for name, value in list(given_p.items()) + list(given_s.items()):
            target = params.get(name) if name in given_p else states.get(name)
            if target is None:
                continue
            if tuple(np.shape(value)) != tuple(target.shape):
                mismatched.append(f"{name}: expected {tuple(target.shape)}, got {tuple(np.shape(value))}")
                continue
            try:
                converted[name] = _to_backend(value, target.dtype)
            except TypeError as exc:
                bad_dtypes.append(f"{name}: stored {exc}")
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if mismatched:
            problems.append(f"shape mismatches: {mismatched}")
        if bad_dtypes:
            problems.append(
                f"dtypes that cannot be loaded without changing values: {bad_dtypes} "
                "(cast the arrays or the model explicitly if that is what you want)"
            )
        if problems:
            raise StateDictError(f"cannot load state into {type(self).__name__}: " + "; ".join(problems))
        # Everything was checked and converted above, so a failed load changes nothing.
        for name in given_p:
            if name in converted:
                params[name].data = converted[name]
        owners = dict(self.named_modules())
        for name in given_s:
            if name in converted:
                prefix, _, attr = name.rpartition(".")
                setattr(owners[prefix], attr, converted[name])

    # -- safetensors --

    def save_weights(self, path: str | os.PathLike) -> None:
        """Write parameters and states to a safetensors file, atomically.

        Keys are the dotted names; the file opens in any safetensors reader.
        bfloat16 arrays are stored as float32 (NumPy has no bfloat16). The
        file is written to a temporary name in the same folder, flushed, and
        renamed over ``path``, so a crash never leaves a truncated file.

        Args:
            path: The file to write (conventionally ``*.safetensors``).

        Examples:
            >>> import os, tempfile
            >>> from autograd.nn import Linear
            >>> model, path = Linear(3, 2), os.path.join(tempfile.mkdtemp(), "model.safetensors")
            >>> model.save_weights(path)
            >>> fresh = Linear(3, 2)
            >>> fresh.load_weights(path)
            >>> bool((fresh.weight.numpy() == model.weight.numpy()).all())
            True
        """
        from safetensors.numpy import save

        sd = self.state_dict()
        tensors = {n: np.ascontiguousarray(backend.to_numpy(a)) for n, a in sd["parameters"].items()}
        tensors.update({n: np.ascontiguousarray(backend.to_numpy(a)) for n, a in sd["states"].items()})
        kinds = {n: "parameter" for n in sd["parameters"]} | {n: "state" for n in sd["states"]}
        metadata = {"format": "autograd", "kinds": json.dumps(kinds)}
        atomic_write_bytes(path, save(tensors, metadata=metadata), suffix=".safetensors")

    def load_weights(self, path: str | os.PathLike, strict: bool = True) -> None:
        """Load a safetensors file written by :meth:`save_weights` (or any file with the same dotted keys).

        Stored arrays must have the parameter's dtype or one that converts
        without changing any value (float32 data into a float64 model, float64
        data that came from float32); anything else is refused rather than
        silently cast (int or bool data into float parameters, ``1e300`` into
        float32). A failed load leaves the module unchanged.

        Raises:
            FileNotFoundError, IsADirectoryError, PermissionError: the path cannot be read (named).
            StateDictError: the file is not safetensors, or keys, shapes or dtypes do not match (one error
                listing them all).
        """
        arrays = _read_safetensors(path)
        state_names = set(self.states)
        self.load_state_dict(
            {
                "parameters": {k: v for k, v in arrays.items() if k not in state_names},
                "states": {k: v for k, v in arrays.items() if k in state_names},
            },
            strict=strict,
        )


def _to_backend(value: Any, dtype: Any) -> Any:
    """A fresh backend array of ``dtype`` holding ``value``; TypeError when the cast would change values."""
    if isinstance(value, Tensor):
        value = value.data
    arr = value if backend.is_array(value) else backend.asarray(np.asarray(value))
    return backend.cast_exact(arr, dtype) if arr.dtype != dtype else backend.copy(arr)


def _read_safetensors(path: str | os.PathLike) -> Dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    path = check_readable(path, "weights")
    try:
        with safe_open(path, framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as exc:
        raise StateDictError(f"cannot load weights from {path}: not a readable safetensors file ({exc})") from None


class ModuleList(Module):
    """A list of submodules, registered as ``"0"``, ``"1"``... so their parameters are found.

    Args:
        modules: The submodules, in order.

    Examples:
        >>> from autograd.nn import Linear
        >>> layers = ModuleList([Linear(4, 4), Linear(4, 2)])
        >>> len(layers), list(layers.parameters)
        (2, ['0.weight', '0.bias', '1.weight', '1.bias'])
        >>> layers(Tensor(xp.ones((1, 4)))).shape  # the modules in order
        (1, 2)
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        object.__setattr__(self, "_list", [])
        for m in modules or []:
            self.append(m)

    def append(self, module: Module) -> None:
        """Append a module."""
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append expects a Module, got {type(module).__name__}")
        setattr(self, str(len(self._list)), module)
        self._list.append(module)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __getitem__(self, index: int) -> Module:
        return self._list[index]

    def forward(self, x: Any) -> Any:
        """Run the modules in order."""
        for m in self._list:
            x = m(x)
        return x
