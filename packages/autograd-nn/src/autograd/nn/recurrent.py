"""Recurrent blocks: they loop over time only (inputs are projected for every step at once)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from autograd import backend
from autograd.functional import sigmoid, tanh
from autograd.init import xavier_uniform
from autograd.nn._checks import as_input, check
from autograd.nn.dropout import Dropout
from autograd.nn.linear import Linear
from autograd.nn.module import Module
from autograd.tensor import Tensor

__all__ = ["RecurrentBlock", "LongShortTermMemoryBlock"]


def _weight(rows: int, cols: int) -> Tensor:
    return xavier_uniform(Tensor(backend.asarray(np.zeros((rows, cols), np.float32))))


def _zeros(*shape: int) -> Tensor:
    return Tensor(backend.asarray(np.zeros(shape, np.float32)))


class RecurrentBlock(Module):
    r"""Elman RNN :math:`h_t = \tanh(x_t W_{xh} + h_{t-1} W_{hh} + b_h)`.

    Shapes: input (batch, seq, input_size) -> the final hidden state (batch,
    hidden_size), or, with ``output_size``, ``Linear(hidden, output)`` of it
    (batch, output_size). ``dropout_prob`` applies dropout to the final hidden
    state before the output layer (training only).

    Args:
        input_size: Features of each time step.
        hidden_size: Size of the hidden state.
        output_size: If given, a ``Linear(hidden_size, output_size)`` maps the final hidden state.
        dropout_prob: If given, dropout on the final hidden state in training.

    Examples:
        >>> RecurrentBlock(4, 8, output_size=2)(Tensor(xp.random.randn(3, 5, 4))).shape
        (3, 2)
    """

    def __init__(
        self, input_size: int, hidden_size: int, output_size: Optional[int] = None, dropout_prob: Optional[float] = None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.W_xh = _weight(input_size, hidden_size)
        self.W_hh = _weight(hidden_size, hidden_size)
        self.b_h = _zeros(hidden_size)
        self.dropout = Dropout(dropout_prob) if dropout_prob else None
        self.output = Linear(hidden_size, output_size) if output_size is not None else None

    def forward(self, x: Union[Tensor, Any, Sequence[Any], int, float, bool]) -> Tensor:
        """(batch, seq, input_size) -> (batch, hidden_size) or (batch, output_size)."""
        x = as_input(x)
        check(x.ndim == 3 and x.shape[-1] == self.input_size, self, f"(batch, seq, {self.input_size})", x)
        projected = x @ self.W_xh + self.b_h  # every step at once
        h = None
        for t in range(x.shape[1]):
            pre = projected[:, t]
            h = tanh(pre if h is None else pre + h @ self.W_hh)
        if h is None:
            h = Tensor(backend.asarray(np.zeros((x.shape[0], self.hidden_size), np.float32)), requires_grad=False)
        if self.dropout is not None:
            h = self.dropout(h)
        return self.output(h) if self.output is not None else h


class LongShortTermMemoryBlock(Module):
    r"""LSTM with input, forget, candidate and output gates.

    :math:`[i, f, g, o] = x_t W_x + h_{t-1} W_h + b`;
    :math:`c_t = \sigma(f) c_{t-1} + \sigma(i) \tanh(g)`; :math:`h_t = \sigma(o) \tanh(c_t)`.
    The forget-gate bias starts at 1.

    Shapes: input (batch, seq, input_size); optional initial ``hidden_state``
    and ``C_t`` (batch, hidden_size), zeros by default. Returns ``(output,
    cell_state)``: output is the final hidden state (batch, hidden_size), or
    ``Linear(hidden, output)`` of it with ``output_size``; cell_state is the
    final cell state (batch, hidden_size).

    Args:
        input_size: Features of each time step.
        hidden_size: Size of the hidden and cell states.
        output_size: If given, a ``Linear(hidden_size, output_size)`` maps the final hidden state.
        dropout_prob: If given, dropout on the final hidden state in training.

    Examples:
        >>> out, c = LongShortTermMemoryBlock(4, 8, output_size=3)(Tensor(xp.random.randn(3, 5, 4)))
        >>> out.shape, c.shape
        ((3, 3), (3, 8))
    """

    def __init__(
        self, input_size: int, hidden_size: int, output_size: Optional[int] = None, dropout_prob: Optional[float] = None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.W_x = _weight(input_size, 4 * hidden_size)
        self.W_h = _weight(hidden_size, 4 * hidden_size)
        bias = np.zeros(4 * hidden_size, np.float32)
        bias[hidden_size : 2 * hidden_size] = 1.0
        self.b = Tensor(backend.asarray(bias))
        self.dropout = Dropout(dropout_prob) if dropout_prob else None
        self.output = Linear(hidden_size, output_size) if output_size is not None else None

    def forward(
        self,
        x: Union[Tensor, Any, Sequence[Any], int, float, bool],
        hidden_state: Optional[Tensor] = None,
        C_t: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """(batch, seq, input_size) -> (output, final cell state)."""
        x = as_input(x)
        check(x.ndim == 3 and x.shape[-1] == self.input_size, self, f"(batch, seq, {self.input_size})", x)
        b, hs = x.shape[0], self.hidden_size
        zeros = Tensor(backend.asarray(np.zeros((b, hs), np.float32)), requires_grad=False)
        h = as_input(hidden_state) if hidden_state is not None else zeros
        c = as_input(C_t) if C_t is not None else zeros
        for name, state in (("hidden_state", h), ("C_t", c)):
            if state.shape != (b, hs):
                raise ValueError(f"{type(self).__name__}: {name} must have shape {(b, hs)}, got {state.shape}")
        projected = x @ self.W_x + self.b
        for t in range(x.shape[1]):
            gates = projected[:, t] + h @ self.W_h
            i = sigmoid(gates[:, :hs])
            f = sigmoid(gates[:, hs : 2 * hs])
            g = tanh(gates[:, 2 * hs : 3 * hs])
            o = sigmoid(gates[:, 3 * hs :])
            c = f * c + i * g
            h = o * tanh(c)
        if self.dropout is not None:
            h = self.dropout(h)
        return (self.output(h) if self.output is not None else h), c
