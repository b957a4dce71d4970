"""Every layer: documented shapes, gradients against finite differences, modes and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from nn_helpers import T, check_module_gradients, to_np

from autograd import backend, nn
from autograd.backend import xp
from autograd.tensor import Tensor


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def test_documented_shapes():
    assert nn.Linear(4, 2)(Tensor(xp.random.randn(3, 4))).shape == (3, 2)
    assert nn.Linear(5, 3)(Tensor(xp.random.randn(10, 5))).shape == (10, 3)
    conv = nn.Conv2d(in_channels=3, out_channels=8, kernel_size=3, stride=1, padding_mode="same")
    assert conv(Tensor(xp.random.randn(2, 3, 32, 32))).shape == (2, 8, 32, 32)
    assert nn.MaxPool2d(kernel_size=2, stride=2, padding_mode="valid")(Tensor(xp.random.randn(1, 3, 32, 32))).shape == (
        1,
        3,
        16,
        16,
    )
    assert nn.MaxPool2d(kernel_size=2, stride=2)(Tensor(xp.random.randn(1, 3, 32, 32))).shape == (1, 3, 16, 16)
    assert nn.ResidualBlock(16, 16, stride=1)(Tensor(xp.random.randn(1, 16, 32, 32))).shape == (1, 16, 32, 32)
    assert nn.RecurrentBlock(input_size=4, hidden_size=8, output_size=2)(Tensor(xp.random.randn(3, 5, 4))).shape == (
        3,
        2,
    )
    assert nn.RecurrentBlock(4, 8, output_size=3)(Tensor(xp.random.randn(3, 5, 4))).shape == (3, 3)
    out, cell = nn.LongShortTermMemoryBlock(input_size=4, hidden_size=8, output_size=3)(
        Tensor(xp.random.randn(3, 5, 4))
    )
    assert out.data.shape == (3, 3) and cell.data.shape == (3, 8)
    assert nn.Embedding(input_size=100, embedding_size=16)(Tensor(xp.array([[1, 5, 20], [2, 10, 30]]))).shape == (
        2,
        3,
        16,
    )
    assert nn.Embedding(50, 8)(Tensor(xp.array([[0, 1, 2], [3, 4, 5]]))).shape == (2, 3, 8)
    assert nn.LayerNorm(input_size=10)(Tensor(xp.random.randn(4, 10))).shape == (4, 10)
    assert nn.BatchNorm(input_size=10)(Tensor(xp.random.randn(4, 10))).shape == (4, 10)
    q = Tensor(xp.random.randn(2, 2, 4, 8))
    assert nn.ScaledDotProductAttention(dropout_prob=0.1)(q, q, q).shape == (2, 2, 4, 8)
    x = Tensor(xp.random.randn(2, 5, 16))
    assert nn.MultiHeadAttention(num_heads=2, hidden_size=16, dropout_prob=0.1)(x, x, x).shape == (2, 5, 16)
    windows, hw = nn.extract_windows(
        Tensor(xp.random.randn(2, 3, 32, 32)), kernel_size=3, stride=1, padding_mode="same"
    )
    assert windows.data.shape == (32, 32, 2, 3, 3, 3) and hw == (32, 32)


def test_linear_values():
    lin = nn.Linear(3, 2)
    x = rnd(4, 3)
    ref = x @ to_np(lin.weight) + to_np(lin.bias)
    np.testing.assert_allclose(to_np(lin(T(x.astype(np.float32)))), ref, rtol=1e-5, atol=1e-6)
    assert nn.Linear(3, 2, bias=False).bias is None


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: nn.Linear(3, 2), (4, 3)),
        (lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
        (lambda: nn.Conv2d(2, 3, 3, stride=2, padding_mode="same"), (1, 2, 5, 6)),
        (lambda: nn.Conv2d(2, 2, 2, stride=2, bias=False), (1, 2, 4, 4)),
        (lambda: nn.MaxPool2d(2), (2, 2, 4, 4)),
        (lambda: nn.MaxPool2d(3, stride=2, padding_mode="same"), (1, 2, 5, 5)),
        (lambda: nn.LayerNorm(5), (2, 3, 5)),
        (lambda: nn.BatchNorm(3), (4, 3)),
        (lambda: nn.BatchNorm(2), (3, 2, 2, 2)),
        (lambda: nn.RecurrentBlock(3, 4, output_size=2), (2, 3, 3)),
        (lambda: nn.LongShortTermMemoryBlock(3, 4, output_size=2), (2, 3, 3)),
        (lambda: nn.ResidualBlock(2, 3, stride=2), (1, 2, 4, 4)),
    ],
    ids=[
        "linear",
        "conv-valid",
        "conv-same-s2",
        "conv-nobias",
        "pool",
        "pool-same",
        "layernorm",
        "batchnorm",
        "batchnorm-4d",
        "rnn",
        "lstm",
        "residual",
    ],
)
def test_layer_gradients(make, shape):
    check_module_gradients(make(), rnd(*shape))


def test_lstm_gradients_through_initial_states():
    lstm = nn.LongShortTermMemoryBlock(3, 4)
    h0, c0 = rnd(2, 4, seed=1), rnd(2, 4, seed=2)
    check_module_gradients(lstm, rnd(2, 3, 3), h0, c0)


def test_embedding_gradients_accumulate_for_repeats():
    emb = nn.Embedding(5, 3)
    out = emb(backend.asarray(np.array([[1, 1, 4]])))
    out.sum().backward()
    g = to_np(emb.weight.grad)
    assert g[1].tolist() == [2, 2, 2] and g[4].tolist() == [1, 1, 1] and g[0].tolist() == [0, 0, 0]
    with pytest.raises(IndexError, match="out of range"):
        emb([[5]])


def test_mha_gradients_causal_and_masked():
    mha = nn.MultiHeadAttention(num_heads=2, hidden_size=4, dropout_prob=0.0)
    check_module_gradients(mha, rnd(1, 3, 4), rnd(1, 3, 4, seed=1), rnd(1, 3, 4, seed=2))
    causal = nn.MultiHeadAttention(2, 4, dropout_prob=0.0)
    causal.astype("float64")
    x = T(rnd(1, 4, 4))
    full = to_np(causal(x, x, x, is_causal=True))
    part = to_np(causal(x[:, :2], x[:, :2], x[:, :2], is_causal=True))
    np.testing.assert_allclose(full[:, :2], part, rtol=1e-6)  # the future does not leak
    forbid = backend.asarray(np.triu(np.ones((4, 4), dtype=bool), 1))
    np.testing.assert_allclose(to_np(causal(x, x, x, mask=forbid)), full, rtol=1e-6)


def test_batchnorm_running_statistics_and_eval():
    bn = nn.BatchNorm(2, momentum=0.1)
    x = rnd(16, 2) * 3 + 5
    y = to_np(bn(T(x)))
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(to_np(bn.running_mean), 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(to_np(bn.running_var), 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    bn.eval()
    y_eval = to_np(bn(T(x)))
    ref = (x - to_np(bn.running_mean)) / np.sqrt(to_np(bn.running_var) + 1e-5)
    np.testing.assert_allclose(y_eval, ref, rtol=1e-4)
    assert "running_mean" in bn.states and "running_var" in bn.states


def test_dropout_train_and_eval():
    d = nn.Dropout(p=0.5)
    d.train()
    y = to_np(d(Tensor(xp.ones((100, 100)))))
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.45 < (y == 0).mean() < 0.55
    d.eval()
    x = Tensor(xp.ones((4, 4)))
    assert d(x) is x
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            nn.Dropout(bad)


def test_dropout_p_one_drops_everything_in_training():
    d = nn.Dropout(p=1.0)
    x = Tensor(xp.ones((3, 4)))
    y = d(x)
    assert np.array_equal(to_np(y), np.zeros((3, 4)))
    y.sum().backward()
    assert np.array_equal(to_np(x.grad), np.zeros((3, 4)))
    d.eval()
    assert d(x) is x


@pytest.mark.parametrize("indices", [[[0, -1]], [[5]], [[0, 1], [2, 100]]])
def test_embedding_refuses_out_of_range_indices(indices):
    from autograd.tensor import TensorIndexError

    emb = nn.Embedding(5, 3)
    with pytest.raises(TensorIndexError, match=r"out of range for 5 embeddings"):
        emb(Tensor(xp.array(indices)))
    with pytest.raises(IndexError):
        emb(np.array(indices))


def test_embedding_refuses_non_integer_indices():
    emb = nn.Embedding(5, 3)
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5, 1.0]))


def test_attention_layer_uses_dropout_only_in_training():
    attn = nn.ScaledDotProductAttention(dropout_prob=0.5)
    q = T(rnd(1, 1, 6, 4).astype(np.float32))
    attn.eval()
    a, b = to_np(attn(q, q, q)), to_np(attn(q, q, q))
    assert np.array_equal(a, b)
    attn.train()
    assert not np.allclose(to_np(attn(q, q, q)), a)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: nn.Linear(3, 2)(Tensor(xp.ones((4, 5)))), r"Linear: expected input \(\.\.\., 3\), got shape \(4, 5\)"),
        (
            lambda: nn.Conv2d(3, 4, 3)(Tensor(xp.ones((1, 2, 8, 8)))),
            r"Conv2d: expected input \(N, 3, H, W\), got shape \(1, 2, 8, 8\)",
        ),
        (lambda: nn.Conv2d(3, 4, 3)(Tensor(xp.ones((3, 8, 8)))), r"Conv2d: .*got shape \(3, 8, 8\)"),
        (lambda: nn.Conv2d(1, 1, 5)(Tensor(xp.ones((1, 1, 3, 3)))), r"Conv2d: expected input at least 5 x 5"),
        (
            lambda: nn.LayerNorm(4)(Tensor(xp.ones((2, 3)))),
            r"LayerNorm: expected input \(\.\.\., 4\), got shape \(2, 3\)",
        ),
        (
            lambda: nn.BatchNorm(4)(Tensor(xp.ones((2, 3)))),
            r"BatchNorm: expected input \(N, 4, \.\.\.\), got shape \(2, 3\)",
        ),
        (
            lambda: nn.MultiHeadAttention(2, 8)(*[Tensor(xp.ones((2, 3, 6)))] * 3),
            r"MultiHeadAttention: expected input \(batch, seq, 8\), got shape \(2, 3, 6\)",
        ),
        (
            lambda: nn.ScaledDotProductAttention()(*[Tensor(xp.ones((2, 3, 6)))] * 3),
            r"ScaledDotProductAttention: expected query .*\(2, 3, 6\)",
        ),
        (lambda: nn.RecurrentBlock(3, 4)(Tensor(xp.ones((2, 3)))), r"RecurrentBlock: expected input \(batch, seq, 3\)"),
        (lambda: nn.MaxPool2d(2)(Tensor(xp.ones((2, 3)))), r"MaxPool2d: expected input \(N, C, H, W\)"),
    ],
)
def test_bad_input_names_layer_and_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_configuration():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        nn.MultiHeadAttention(3, 8)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="full")


def test_llm_forward_fn_interface():
    class Dummy(nn.AbstractLLMForwardFn):
        def sample(self, model, batch_data):
            return ("sample", batch_data)

        def train(self, model, batch_data):
            return ("train", batch_data)

    fn = Dummy()
    assert fn(None, 1, mode="train") == ("train", 1) and fn(None, 2, mode="sample") == ("sample", 2)
    with pytest.raises(ValueError, match="mode"):
        fn(None, 1, mode="eval")
    with pytest.raises(TypeError):
        nn.AbstractLLMForwardFn()


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7), (7,)])
def test_linear_as_one_node_equals_matmul_plus_bias_bit_for_bit(shape):
    from autograd.nn.linear import LinearFunction

    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (shape, (7, 6), (6,)))
    g = rng.standard_normal(shape[:-1] + (6,)).astype(np.float32)
    composed = [T(a) for a in (x, w, b)]
    (composed[0] @ composed[1] + composed[2]).backward(g)
    fused = [T(a) for a in (x, w, b)]
    out = LinearFunction.apply(*fused)
    out.backward(g)
    assert np.array_equal(to_np(out), to_np(composed[0] @ composed[1] + composed[2]))
    for a, c in zip(composed, fused):
        assert np.array_equal(to_np(a.grad), to_np(c.grad))
