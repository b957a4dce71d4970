"""Neural-network layers, grouped by family in small modules and re-exported here.

Every layer is a :class:`Module`; parameters are :class:`~autograd.tensor.Tensor`
objects, so gradients come from the tensor ops the layers are made of (or, for
LayerNorm, from one fused Function).
"""

from autograd.nn.attention import MultiHeadAttention, ScaledDotProductAttention
from autograd.nn.conv import Conv2d, MaxPool2d, ResidualBlock, extract_windows
from autograd.nn.dropout import Dropout
from autograd.nn.linear import Embedding, Linear
from autograd.nn.llm import AbstractLLMForwardFn
from autograd.nn.module import Module, ModuleList, StateDictError
from autograd.nn.normalization import BatchNorm, LayerNorm
from autograd.nn.recurrent import LongShortTermMemoryBlock, RecurrentBlock

__all__ = [
    "Module",
    "ModuleList",
    "StateDictError",
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "ResidualBlock",
    "RecurrentBlock",
    "LongShortTermMemoryBlock",
    "Embedding",
    "LayerNorm",
    "BatchNorm",
    "Dropout",
    "ScaledDotProductAttention",
    "MultiHeadAttention",
    "AbstractLLMForwardFn",
    "extract_windows",
]
