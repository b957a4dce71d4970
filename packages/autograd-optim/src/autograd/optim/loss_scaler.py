"""Dynamic loss scaling for float16 training."""

from __future__ import annotations

import math
from typing import Any, Dict

__all__ = ["LossScaler"]


class LossScaler:
    """Dynamic loss scaling: keep float16 gradients out of underflow without overflowing.

    float16 holds nothing below about 6e-8, so small gradients of a float16
    backward vanish. The loss is multiplied by ``scale`` before the backward,
    the gradients are divided by it before they are used (clipping included),
    and the scale adapts: a step whose gradients hold an inf or a NaN is
    skipped and the scale is multiplied by ``backoff_factor``; after
    ``growth_interval`` clean steps in a row it is multiplied by
    ``growth_factor``. bfloat16 has float32's range and needs none of this.

    Give it to an optimizer, which then does the bookkeeping and saves its
    state with its own (``state_dict``, ``save``)::

        opt = Adam(model.parameters, lr=1e-3, loss_scaler=LossScaler())
        opt.zero_grad()
        opt.scale_loss(loss).backward()
        opt.clip_grad_norm(1.0)   # on the unscaled gradients
        opt.step()                # skipped (and the scale lowered) on inf/NaN

    Args:
        init_scale: The first scale (default 2**16), > 0.
        growth_factor: Multiplier after ``growth_interval`` clean steps (> 1, default 2).
        backoff_factor: Multiplier after an overflow (in (0, 1), default 0.5).
        growth_interval: Clean steps before growing (>= 1, default 2000).

    Examples:
        >>> scaler = LossScaler(init_scale=1024.0, growth_interval=2)
        >>> scaler.update(found_inf=True)  # an overflow: the step is skipped, the scale halves
        >>> scaler.scale
        512.0
        >>> scaler.update(found_inf=False); scaler.update(found_inf=False)  # two clean steps: it doubles
        >>> scaler.scale
        1024.0
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        config = self.check_state(
            {
                "scale": init_scale,
                "growth_factor": growth_factor,
                "backoff_factor": backoff_factor,
                "growth_interval": growth_interval,
                "growth_tracker": 0,
            }
        )
        self._apply(config)

    @staticmethod
    def check_state(state: Dict[str, Any]) -> Dict[str, Any]:
        """A scaler state validated and normalised; ValueError names the first invalid entry."""
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "growth_tracker")
        missing = [k for k in keys if k not in state]
        unknown = sorted(set(state) - set(keys))
        if missing or unknown:
            raise ValueError(f"LossScaler state: missing {missing}, unknown {unknown}")
        out: Dict[str, Any] = {}
        for k in ("scale", "growth_factor", "backoff_factor"):
            value = state[k]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
                raise ValueError(f"LossScaler: {k} must be a finite number, got {value!r}")
            out[k] = float(value)
        for k in ("growth_interval", "growth_tracker"):
            value = state[k]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ValueError(f"LossScaler: {k} must be an integer, got {value!r}")
            out[k] = int(value)
        if out["scale"] <= 0:
            raise ValueError(f"LossScaler: scale must be > 0, got {out['scale']}")
        if out["growth_factor"] <= 1:
            raise ValueError(f"LossScaler: growth_factor must be > 1, got {out['growth_factor']}")
        if not 0 < out["backoff_factor"] < 1:
            raise ValueError(f"LossScaler: backoff_factor must be in (0, 1), got {out['backoff_factor']}")
        if out["growth_interval"] < 1 or not 0 <= out["growth_tracker"] < out["growth_interval"]:
            raise ValueError(
                f"LossScaler: growth_interval must be >= 1 and 0 <= growth_tracker < growth_interval, got "
                f"{out['growth_interval']} and {out['growth_tracker']}"
            )
        return out

    def _apply(self, state: Dict[str, Any]) -> None:
        self.scale = state["scale"]
        self.growth_factor = state["growth_factor"]
        self.backoff_factor = state["backoff_factor"]
        self.growth_interval = state["growth_interval"]
        self.growth_tracker = state["growth_tracker"]

    def update(self, found_inf: bool) -> None:
        """After a step: back off on an overflow, grow after ``growth_interval`` clean steps."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.growth_tracker = 0

    def state_dict(self) -> Dict[str, Any]:
        """The scale, the clean-step count and the configuration (plain numbers)."""
        return {
            "scale": self.scale,
            "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor,
            "growth_interval": self.growth_interval,
            "growth_tracker": self.growth_tracker,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; validated first (ValueError), so a bad state changes nothing."""
        self._apply(self.check_state(dict(state)))

    def __repr__(self) -> str:
        return f"LossScaler(scale={self.scale}, growth_tracker={self.growth_tracker}/{self.growth_interval})"
