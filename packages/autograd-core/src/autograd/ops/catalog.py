"""Every kernel op, in the order reports list them: importing this module defines them all.

The registry learns an op when its module is imported; the CLI and the docs
import this module to see every op at once.
"""

from __future__ import annotations

from typing import Tuple

from autograd.ops.activations import (
    GeluKernel,
    LogSoftmaxKernel,
    ReluKernel,
    SigmoidKernel,
    SoftmaxKernel,
    TanhKernel,
)
from autograd.ops.attention import AttentionKernel
from autograd.ops.conv import Conv2dKernel
from autograd.ops.embedding import EmbeddingKernel
from autograd.ops.losses import CrossEntropyKernel
from autograd.ops.norm import LayerNormKernel
from autograd.ops.optim import AdamKernel
from autograd.ops.pool import MaxPool2dKernel

__all__ = ["KERNEL_OPS"]

#: The contract class of every kernel op.
KERNEL_OPS: Tuple[type, ...] = (
    AttentionKernel,
    LayerNormKernel,
    SoftmaxKernel,
    LogSoftmaxKernel,
    GeluKernel,
    ReluKernel,
    SigmoidKernel,
    TanhKernel,
    CrossEntropyKernel,
    Conv2dKernel,
    MaxPool2dKernel,
    EmbeddingKernel,
    AdamKernel,
)
