"""Module.set_precision: a policy set once per model or block, parameters stored low or kept in float32."""

from __future__ import annotations

import numpy as np
import pytest
from nn_helpers import to_np

from autograd import backend, nn
from autograd import functional as F
from autograd.tensor import Tensor


def _low():
    for name in ("bfloat16", "float16"):
        try:
            backend.dtype(name)
            return name
        except TypeError:
            continue
    pytest.skip("no low-precision dtype on this backend")


def _x(*shape):
    return Tensor(backend.asarray(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.ln = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.gelu(self.ln(self.fc1(x))))


def test_set_precision_stores_parameters_low_and_runs_the_forward_under_the_policy():
    low = _low()
    model = Tiny()
    weight = model.fc1.weight
    assert model.set_precision(low) is model and model.precision == low
    assert weight is model.fc1.weight and weight.dtype == backend.dtype(low)  # the same Tensor, cast in place
    x = _x(4, 6)
    out = model(x)
    assert out.dtype == backend.dtype(low)
    loss = F.cross_entropy(out, np.array([0, 1, 2, 0]))
    assert loss.dtype == backend.dtype("float32")
    loss.backward()
    assert weight.grad.dtype == backend.dtype(low) and x.grad.dtype == backend.dtype("float32")
    # Called outside the model's forward, the block has no policy: a float32 input promotes the product.
    assert model.fc1(x).dtype == backend.dtype("float32")


def test_float32_parameters_with_a_low_compute_policy():
    low = _low()
    model = Tiny().set_precision(low, params="float32")
    assert all(p.dtype == backend.dtype("float32") for p in model.parameters.values())
    out = model(_x(4, 6))
    assert out.dtype == backend.dtype(low)
    out.astype("float32").sum().backward()
    assert model.fc2.weight.grad.dtype == backend.dtype("float32")
    assert model.fc1(_x(4, 6)).dtype == backend.dtype("float32")  # outside the model's call: no policy


def test_one_block_can_stay_in_full_precision():
    low = _low()
    model = Tiny().set_precision(low, params="float32")
    model.fc2.set_precision(None)
    assert model.fc2.precision == "float32"
    out = model(_x(4, 6))
    assert out.dtype == backend.dtype("float32")  # fc2 ran without the policy, on float32 parameters


def test_low_precision_weights_round_trip_through_safetensors(tmp_path):
    low = _low()
    model = Tiny().set_precision(low)
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    fresh = Tiny().set_precision(low)
    fresh.load_weights(path)
    for name, p in model.parameters.items():
        assert fresh.parameters[name].dtype == p.dtype
        assert np.array_equal(to_np(fresh.parameters[name]), to_np(p)), name


def test_a_dtype_the_backend_lacks_is_refused_before_anything_changes():
    model = Tiny()
    with pytest.raises(ValueError, match="autocast: dtype must be one of"):
        model.set_precision("int8")
    assert model.precision is None and model.fc1.weight.dtype == backend.dtype("float32")


@pytest.mark.parametrize("low", ["bfloat16", "float16"])
def test_a_float32_bias_gets_its_gradient_summed_in_float32(low):
    try:
        backend.dtype(low)
    except TypeError:
        pytest.skip(f"no {low} on this backend")
    layer = nn.Linear(2, 3).set_precision(low, params="float32")
    x = Tensor(backend.asarray(np.ones((4096, 2), np.float32)), requires_grad=False)
    layer(x).astype("float32").sum().backward()
    # Summed in the low dtype, 1 + 1 + ... stalls at 256 (bfloat16) or 2048 (float16).
    assert layer.bias.grad.dtype == backend.dtype("float32")
    assert to_np(layer.bias.grad).tolist() == [4096.0] * 3


def test_a_low_precision_convolution_bias_gradient_matches_float32():
    low = _low()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    g = rng.standard_normal((8, 4, 12, 12)).astype(np.float32)

    def bias_grad(precision):
        backend.seed(0)
        conv = nn.Conv2d(3, 4, 3, padding_mode="same")
        if precision:
            conv.set_precision(precision, params="float32")
        out = conv(Tensor(backend.asarray(x), requires_grad=False))
        (out.astype("float32") * Tensor(backend.asarray(g), requires_grad=False)).sum().backward()
        return to_np(conv.bias.grad)

    want, got = bias_grad(None), bias_grad(low)
    # Each element of the upstream gradient is rounded to the low dtype once; the sum itself is float32's.
    assert np.abs(got - want).max() <= 2e-3 * np.abs(g).sum(axis=(0, 2, 3)).max()
