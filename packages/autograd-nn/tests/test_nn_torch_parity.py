"""Layers against PyTorch with copied weights (skipped without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest
from nn_helpers import T, to_np

from autograd import nn


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _compare(torch, ours_out, theirs_out, pairs, rtol=1e-9, atol=1e-10):
    np.testing.assert_allclose(to_np(ours_out), theirs_out.detach().numpy(), rtol=rtol, atol=atol)
    g = rnd(*theirs_out.shape, seed=9)
    ours_out.backward(T(g))
    theirs_out.backward(torch.tensor(g))
    for ours, theirs in pairs:
        np.testing.assert_allclose(to_np(ours.grad), theirs.grad.numpy(), rtol=rtol, atol=atol)


def test_linear(torch):
    lin = nn.Linear(4, 3).astype("float64")
    ref = torch.nn.Linear(4, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(to_np(lin.weight).T))
        ref.bias.copy_(torch.tensor(to_np(lin.bias)))
    x = rnd(5, 4)
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    _compare(torch, lin(xo), ref(xt), [(xo, xt), (lin.bias, ref.bias)])
    np.testing.assert_allclose(to_np(lin.weight.grad), ref.weight.grad.numpy().T, rtol=1e-9)


@pytest.mark.parametrize(
    "k,stride,mode", [(3, 1, "valid"), (3, 1, "same"), (3, 2, "same"), (2, 2, "valid"), (4, 3, "same")]
)
def test_conv2d(torch, k, stride, mode):
    import torch.nn.functional as F

    conv = nn.Conv2d(3, 4, k, stride=stride, padding_mode=mode).astype("float64")
    x = rnd(2, 3, 9, 8)
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    w = torch.tensor(to_np(conv.weight), requires_grad=True)
    b = torch.tensor(to_np(conv.bias), requires_grad=True)
    xin = xt
    if mode == "same":  # TensorFlow-style: ceil(size / stride) outputs, extra pad after
        pads = []
        for size in (8, 9):  # width then height, as F.pad wants
            out = -(-size // stride)
            total = max((out - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        xin = F.pad(xt, pads)
    _compare(torch, conv(xo), F.conv2d(xin, w, b, stride=stride), [(xo, xt), (conv.bias, b), (conv.weight, w)])


def test_maxpool(torch):
    x = rnd(2, 3, 8, 7)
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    _compare(torch, nn.MaxPool2d(2)(xo), torch.nn.functional.max_pool2d(xt, 2), [(xo, xt)])
    xo2, xt2 = T(x), torch.tensor(x, requires_grad=True)
    _compare(torch, nn.MaxPool2d(3, stride=2)(xo2), torch.nn.functional.max_pool2d(xt2, 3, 2), [(xo2, xt2)])


def test_layernorm(torch):
    ln = nn.LayerNorm(6).astype("float64")
    ref = torch.nn.LayerNorm(6)
    with torch.no_grad():
        w, b = rnd(6, seed=1), rnd(6, seed=2)
        ref.weight.copy_(torch.tensor(w))
        ref.bias.copy_(torch.tensor(b))
    ln.weight.data, ln.bias.data = T(w).data, T(b).data
    x = rnd(2, 3, 6) * 4 + 1
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    _compare(torch, ln(xo), ref(xt), [(xo, xt), (ln.weight, ref.weight), (ln.bias, ref.bias)])


@pytest.mark.parametrize("shape", [(8, 4), (4, 4, 3, 3)])
def test_batchnorm_train_then_eval(torch, shape):
    bn = nn.BatchNorm(4, momentum=0.2).astype("float64")
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4, momentum=0.2)
    for step in range(3):
        x = rnd(*shape, seed=step) * 2 + 3
        xo, xt = T(x), torch.tensor(x, requires_grad=True)
        _compare(torch, bn(xo), ref(xt), [(xo, xt), (bn.weight, ref.weight), (bn.bias, ref.bias)], rtol=1e-8)
        bn.zero_grad()
        ref.zero_grad()
    np.testing.assert_allclose(to_np(bn.running_mean), ref.running_mean.numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_np(bn.running_var), ref.running_var.numpy(), rtol=1e-10)
    bn.eval()
    ref.eval()
    x = rnd(*shape, seed=7)
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    _compare(torch, bn(xo), ref(xt), [(xo, xt)], rtol=1e-8)


def test_embedding(torch):
    emb = nn.Embedding(10, 4).astype("float64")
    ref = torch.nn.Embedding(10, 4)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(to_np(emb.weight)))
    idx = np.array([[1, 3, 3], [9, 0, 1]])
    _compare(torch, emb(idx), ref(torch.tensor(idx)), [(emb.weight, ref.weight)])


def test_multihead_attention_causal(torch):
    mha = nn.MultiHeadAttention(num_heads=2, hidden_size=8, dropout_prob=0.0).astype("float64")
    ref = torch.nn.MultiheadAttention(8, 2, dropout=0.0, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(
            torch.tensor(np.concatenate([to_np(p.weight).T for p in (mha.q_proj, mha.k_proj, mha.v_proj)]))
        )
        ref.in_proj_bias.copy_(
            torch.tensor(np.concatenate([to_np(p.bias) for p in (mha.q_proj, mha.k_proj, mha.v_proj)]))
        )
        ref.out_proj.weight.copy_(torch.tensor(to_np(mha.out_proj.weight).T))
        ref.out_proj.bias.copy_(torch.tensor(to_np(mha.out_proj.bias)))
    x = rnd(2, 5, 8)
    xo, xt = T(x), torch.tensor(x, requires_grad=True)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)  # True = not allowed
    out_t, _ = ref(xt, xt, xt, attn_mask=causal, need_weights=False)
    _compare(torch, mha(xo, xo, xo, is_causal=True), out_t, [(xo, xt), (mha.out_proj.bias, ref.out_proj.bias)])
    np.testing.assert_allclose(to_np(mha.q_proj.weight.grad), ref.in_proj_weight.grad.numpy()[:8].T, rtol=1e-8)
