"""The interface between a language-model training loop and a model family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["AbstractLLMForwardFn"]


class AbstractLLMForwardFn(ABC):
    """How a model consumes a batch, for training and for sampling.

    The trainer treats ``batch_data`` as opaque; subclasses interpret it, so
    one loop serves decoder-only and encoder-decoder models. Calling the
    object dispatches on ``mode``: ``forward_fn(model, data, mode="train")``.

    Examples:
        >>> class DummyLLMForward(AbstractLLMForwardFn):
        ...     def sample(self, model, batch_data):
        ...         return model(batch_data)
        ...     def train(self, model, batch_data):
        ...         return model(batch_data.input_ids)
    """

    @abstractmethod
    def sample(self, model: Any, batch_data: Any) -> Any:
        """Model outputs for sampling mode."""

    @abstractmethod
    def train(self, model: Any, batch_data: Any) -> Any:
        """Training-mode model outputs, typically logits."""

    def __call__(self, model: Any, batch_data: Any, mode: str = "train") -> Any:
        if mode == "train":
            return self.train(model, batch_data)
        if mode == "sample":
            return self.sample(model, batch_data)
        raise ValueError(f"mode must be 'train' or 'sample', got {mode!r}")
