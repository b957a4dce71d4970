"""Conv2d and MaxPool2d take PyTorch's padding, dilation and groups; every layer refuses a keyword it does not take."""

from __future__ import annotations

import numpy as np
import pytest
from nn_helpers import T, to_np

from autograd import nn


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "kwargs, weight, out",
    [
        (dict(dilation=2), (4, 4, 3, 3), (1, 4, 5, 5)),
        (dict(groups=2), (4, 2, 3, 3), (1, 4, 7, 7)),
        (dict(groups=4, padding=1), (4, 1, 3, 3), (1, 4, 9, 9)),  # depthwise
        (dict(padding=(1, 2)), (4, 4, 3, 3), (1, 4, 9, 11)),
        (dict(padding=(0, 1, 2, 0), stride=2), (4, 4, 3, 3), (1, 4, 4, 5)),
        (dict(dilation=(2, 1), kernel_size=(3, 2)), (4, 4, 3, 2), (1, 4, 5, 8)),
    ],
)
def test_conv2d_options_change_the_output(kwargs, weight, out):
    kwargs = dict(kwargs)
    k = kwargs.pop("kernel_size", 3)
    conv = nn.Conv2d(4, 4, k, **kwargs)
    assert conv.weight.shape == weight
    y = conv(T(rnd(1, 4, 9, 9)))
    assert y.shape == out
    y.sum().backward()
    assert conv.weight.grad.shape == weight


def test_maxpool_padding():
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    x = T(rnd(1, 2, 8, 8))
    y = pool(x)
    assert y.shape == (1, 2, 4, 4)
    xs = to_np(x)
    padded = np.pad(xs, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    assert to_np(y)[0, 1, 0, 0] == padded[0, 1, 0:3, 0:3].max()


@pytest.mark.parametrize(
    "make, bad",
    [
        (lambda: nn.Conv2d(4, 4, 3, dilaton=2), "dilaton"),
        (lambda: nn.MaxPool2d(2, dilation=2), "dilation"),
        (lambda: nn.Linear(2, 3, baias=False), "baias"),
        (lambda: nn.LayerNorm(3, eps=1e-6), "eps"),
        (lambda: nn.BatchNorm(3, affine=False), "affine"),
        (lambda: nn.Dropout(0.1, inplace=True), "inplace"),
    ],
)
def test_every_layer_refuses_a_keyword_it_does_not_take(make, bad):
    with pytest.raises(TypeError, match=rf"unexpected keyword arguments \['{bad}'\]"):
        make()


def test_conv2d_refuses_groups_that_do_not_divide_the_channels_and_padding_twice():
    with pytest.raises(ValueError, match="groups=3 must divide in_channels"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="not both"):
        nn.Conv2d(4, 4, 3, padding_mode="same", padding=1)


def _torch_conv(torch, x, w, b, **kw):
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    return tx, tw, tb, torch.nn.functional.conv2d(tx, tw, tb, **kw)


@pytest.mark.parametrize(
    "options",
    [dict(dilation=2), dict(groups=2, padding=1), dict(groups=4, padding=(1, 2), stride=2), dict(dilation=(1, 2))],
)
def test_conv2d_options_match_torch(torch, options):
    conv = nn.Conv2d(4, 4, 3, **options).astype("float64")
    x = np.random.default_rng(1).standard_normal((2, 4, 9, 10))
    tx, tw, tb, ref = _torch_conv(torch, x, to_np(conv.weight), to_np(conv.bias), **options)
    ours_x = T(x)
    y = conv(ours_x)
    np.testing.assert_allclose(to_np(y), ref.detach().numpy(), rtol=1e-9, atol=1e-10)
    g = np.random.default_rng(2).standard_normal(ref.shape)
    y.backward(T(g))
    ref.backward(torch.tensor(g))
    for ours, theirs in ((ours_x.grad, tx.grad), (conv.weight.grad, tw.grad), (conv.bias.grad, tb.grad)):
        np.testing.assert_allclose(to_np(ours), theirs.numpy(), rtol=1e-9, atol=1e-10)


def test_maxpool_padding_matches_torch(torch):
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 8))  # no ties: one maximum per window, as torch assumes
    ours_x = T(x)
    y = nn.MaxPool2d(3, stride=2, padding=1)(ours_x)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(tx, 3, stride=2, padding=1)
    np.testing.assert_allclose(to_np(y), ref.detach().numpy())
    g = np.random.default_rng(5).standard_normal(ref.shape)
    y.backward(T(g))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(to_np(ours_x.grad), tx.grad.numpy(), rtol=1e-12)
