"""The benchmark models, written twice: with autograd.nn and with torch.nn (as a PyTorch user writes them).

Same architectures and shapes: the GPT's attention has separate query, key, value and output projections on
both sides, and PyTorch's uses ``F.scaled_dot_product_attention(..., is_causal=True)``, no float mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autograd import backend, nn
from autograd import functional as F
from autograd.tensor import Tensor


class SmallCNN(nn.Module):
    """conv3x3(1->16) relu pool2 conv3x3(16->32) relu pool2 linear(32*7*7 -> 10), for 1x28x28 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding_mode="same")
        self.conv2 = nn.Conv2d(16, 32, 3, padding_mode="same")
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(F.relu(self.conv1(x)))
        h = self.pool(F.relu(self.conv2(h)))
        return self.fc(h.reshape(h.shape[0], -1))


class DecoderBlock(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = nn.MultiHeadAttention(heads, hidden, dropout_prob=0.0)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, is_causal=True)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyGPT(nn.Module):
    """Token + position embeddings, pre-LN decoder blocks, final LayerNorm, linear head."""

    def __init__(self, vocab: int = 256, hidden: int = 128, layers: int = 4, heads: int = 4, seq: int = 128) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(seq, hidden)
        self.tok.weight.data = self.tok.weight.data * 0.02
        self.pos.weight.data = self.pos.weight.data * 0.02
        self.blocks = nn.ModuleList([DecoderBlock(hidden, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx: Any) -> Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(backend.asarray(np.arange(t)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def torch_models() -> Any:
    """The same two models in torch.nn (imported lazily: torch is optional)."""
    import torch

    class TorchCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 16, 3, padding="same")
            self.conv2 = torch.nn.Conv2d(16, 32, 3, padding="same")
            self.fc = torch.nn.Linear(32 * 7 * 7, 10)

        def forward(self, x: Any) -> Any:
            h = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
            h = torch.nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
            return self.fc(h.flatten(1))

    class TorchAttention(torch.nn.Module):
        """Causal self-attention as a PyTorch user writes it: projections and F.scaled_dot_product_attention."""

        def __init__(self, hidden: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.q_proj, self.k_proj = torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, hidden)
            self.v_proj, self.out_proj = torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, hidden)

        def forward(self, x: Any) -> Any:
            b, t, c = x.shape

            def split(y: Any) -> Any:
                return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)

            q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out_proj(out.transpose(1, 2).reshape(b, t, c))

    class TorchBlock(torch.nn.Module):
        def __init__(self, hidden: int, heads: int) -> None:
            super().__init__()
            self.ln1 = torch.nn.LayerNorm(hidden)
            self.attn = TorchAttention(hidden, heads)
            self.ln2 = torch.nn.LayerNorm(hidden)
            self.fc1 = torch.nn.Linear(hidden, 4 * hidden)
            self.fc2 = torch.nn.Linear(4 * hidden, hidden)

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln1(x))
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    class TorchGPT(torch.nn.Module):
        def __init__(self, vocab: int = 256, hidden: int = 128, layers: int = 4, heads: int = 4, seq: int = 128):
            super().__init__()
            self.tok = torch.nn.Embedding(vocab, hidden)
            self.pos = torch.nn.Embedding(seq, hidden)
            self.blocks = torch.nn.ModuleList([TorchBlock(hidden, heads) for _ in range(layers)])
            self.ln = torch.nn.LayerNorm(hidden)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, idx: Any) -> Any:
            t = idx.shape[1]
            x = self.tok(idx) + self.pos(torch.arange(t))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return TorchCNN, TorchGPT
