"""The package as autograd's kernel plugin: registered for every op, conformant, chosen, and core's suites pass."""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cpu import plugin

from autograd import backend
from autograd import functional as F
from autograd.kernels import REFERENCE, registry
from autograd.ops.activations import GeluKernel, SoftmaxKernel
from autograd.ops.catalog import KERNEL_OPS
from autograd.ops.norm import LayerNormKernel
from autograd.tensor import Tensor
from autograd.testing import check_kernel_implementation

on_numpy = backend.BACKEND == "numpy"
needs_numpy = pytest.mark.skipif(not on_numpy, reason="the plugin runs on the numpy backend")
# A training step through the plugin needs layers and an optimizer, which this package does not depend on:
# its nox session installs them for its tests.
NEEDS_NN_OPTIM = "autograd-nn and autograd-optim are not installed (nox -s 'tests(numpy-kernels-cpu)' installs them)"


def test_every_op_is_registered_by_an_entry_point():
    for contract in KERNEL_OPS:
        entry = registry.entry(contract.op, plugin.NAME)
        assert entry.package == "autograd-kernels-cpu" and entry.impl.priority == plugin.PRIORITY
        assert type(entry.impl).contract() is contract


#: What the plugin declines, by op, beyond float16/bfloat16 (the conformance cases include each).
DECLINED = {
    "softmax": "only the last axis",
    "log_softmax": "only the last axis",
    "conv2d": "only",  # dilation, groups, rectangular kernels, two strides
    "max_pool2d": "only",  # rectangular windows, padding
}


@needs_numpy
@pytest.mark.parametrize("op", [c.op for c in KERNEL_OPS if c.op != "attention"])
def test_conformance(op):
    report = check_kernel_implementation(registry.get(op, plugin.NAME))
    assert report.passed and not report.failures
    # float16 (and what DECLINED lists) are declined with the reason, and honoured
    assert report.declined and all(
        "only one of float32, float64 throughout" in d
        or "core's reference returns the empty result" in d
        or DECLINED.get(op, "-") in d
        for d in report.declined
    )


@needs_numpy
def test_attention_conformance():
    report = check_kernel_implementation(registry.get("attention", plugin.NAME))
    assert report.passed and not report.failures
    # float16 (and bfloat16 where ml_dtypes is installed) are taken, computed in float32: checked, not declined;
    # only the empty batch goes to the reference
    assert all("core's reference returns the empty result" in d for d in report.declined)
    assert any(c.startswith("float16 ") for c in report.passed)


@needs_numpy
def test_low_precision_attention_keeps_no_score_block():
    rng = np.random.default_rng(0)
    q, k, v = (Tensor(rng.standard_normal((1, 2, 64, 16)).astype(np.float16)) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # the automatic choice
    fn = out.creator
    assert isinstance(fn, plugin.CPUAttentionFunction) and out.dtype == np.float16
    held = [a for a in vars(fn).values() if isinstance(a, np.ndarray)]
    assert not any(a.shape[-2:] == (64, 64) for a in held)  # no (Tq, Tk) block
    assert fn.lse.dtype == np.float32
    out.backward(np.ones(out.shape, np.float16))
    assert q.grad.dtype == k.grad.dtype == v.grad.dtype == np.float16


@needs_numpy
def test_it_is_the_automatic_choice_for_float32_and_declines_the_rest():
    x = Tensor(np.ones((4, 6), np.float32))
    assert registry.explain(GeluKernel.describe(x)).chosen == plugin.NAME
    assert registry.explain(SoftmaxKernel.describe(x, dim=1)).chosen == plugin.NAME
    verdict = registry.explain(SoftmaxKernel.describe(x, dim=0))
    assert verdict.chosen == REFERENCE
    assert any("only the last axis" in r for c in verdict.candidates for r in c.reasons)
    half = Tensor(np.ones((4, 6), np.float16))
    assert registry.explain(GeluKernel.describe(half)).chosen == plugin.NAME  # widened to float32
    assert registry.explain(SoftmaxKernel.describe(half, dim=1)).chosen == REFERENCE
    ones = Tensor(np.ones(6, np.float32))
    mixed = LayerNormKernel.describe(half, ones, ones, eps=1e-5)
    assert registry.explain(mixed).chosen == REFERENCE


@needs_numpy
@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["gelu", "relu", "sigmoid", "tanh"])
def test_half_precision_activations_run_in_float32_and_round_once(op, low):
    """NumPy's half-precision loops are scalar: the plugin widens, runs its float32 kernel and rounds back."""
    if low == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = backend.dtype(low)
    rng = np.random.default_rng(0)
    x32 = (rng.standard_normal((6, 50)) * 3).astype(np.float32)
    g32 = rng.standard_normal((6, 50)).astype(np.float32)
    x, g = Tensor(x32.astype(dt)), Tensor(g32.astype(dt), requires_grad=False)
    kernel = {c.op: c for c in (plugin.CPUGelu, plugin.CPURelu, plugin.CPUSigmoid, plugin.CPUTanh)}[op]
    assert registry.explain(kernel.describe(x)).chosen == plugin.NAME
    y = getattr(F, op)(x)
    y.backward(g)
    wide = Tensor(x.numpy().astype(np.float32))
    with registry.isolated():  # core's float32 reference
        want = getattr(F, op)(wide)
        want.backward(Tensor(g.numpy().astype(np.float32), requires_grad=False))
    assert y.dtype == dt and x.grad.dtype == dt
    ulp = 2.0**-7 if low == "bfloat16" else 2.0**-10
    # 1e-6: in GELU's far negative tail the plugin's x * sigmoid(2u) and the reference's 0.5x(1 + tanh u)
    # differ by about 1e-7 in float32 already (the reference cancels there)
    assert np.all(np.abs(y.numpy() - want.numpy()) <= ulp * np.abs(want.numpy()) + 1e-6)
    grad = wide.grad.numpy()
    assert np.all(np.abs(x.grad.numpy() - grad) <= 4 * ulp * np.abs(grad).max())


@needs_numpy
def test_a_training_step_runs_through_it_and_matches_the_reference(monkeypatch):
    nn = pytest.importorskip("autograd.nn", reason=NEEDS_NN_OPTIM)
    Adam = pytest.importorskip("autograd.optim", reason=NEEDS_NN_OPTIM).Adam

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding_mode="same")
            self.pool = nn.MaxPool2d(2)
            self.ln = nn.LayerNorm(16)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            h = self.pool(F.relu(self.conv(x)))  # (N, 4, 2, 2)
            return self.fc(F.gelu(self.ln(h.reshape(h.shape[0], -1))))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 5)

    def run():
        backend.seed(0)
        net = Net()
        opt = Adam(net.parameters, lr=1e-2, weight_decay=0.01)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(net(Tensor(x, requires_grad=False)), y, label_smoothing=0.1).backward()
            opt.step()
        return {k: v.numpy() for k, v in net.parameters.items()}

    fused = run()
    monkeypatch.setenv("AUTOGRAD_KERNELS", "reference")
    reference = run()
    for name in fused:
        np.testing.assert_allclose(fused[name], reference[name], rtol=2e-4, atol=2e-5, err_msg=name)


GEOMETRY = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)


@needs_numpy
def test_conv2d_keeps_its_columns_only_for_a_weight_gradient_and_below_the_cap(monkeypatch):
    import autograd_kernels_cpu as K

    from autograd.tensor import no_grad

    impl = registry.get("conv2d", plugin.NAME)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=False)
    asked = []
    real = K.conv2d_forward

    def spy(*args, return_columns=False, **kwargs):
        asked.append(return_columns)
        return real(*args, return_columns=return_columns, **kwargs)

    monkeypatch.setattr(K, "conv2d_forward", spy)

    def conv(weight_grad=True):
        asked.clear()
        w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=weight_grad)
        y = impl.apply(x, w, Tensor(np.zeros(4, np.float32)), **GEOMETRY)
        return y, w, asked[0]

    y, w, kept = conv()
    assert kept and y.creator.cols is not None
    y.sum().backward()
    assert y.creator.cols is None  # let go once the backward used them
    with_columns = w.grad.numpy()
    # Exactly at the cap they are kept; one byte below it they are rebuilt, to the same gradient (dw reads x only).
    size = K.columns_nbytes(x.data, w.data, 1, (1, 1, 1, 1), True)
    monkeypatch.setattr(plugin, "KEEP_COLUMNS_BYTES", size)
    assert conv()[2]
    monkeypatch.setattr(plugin, "KEEP_COLUMNS_BYTES", size - 1)
    y2, w2, kept = conv()
    assert not kept and y2.creator.cols is None
    impl.apply(x, w2, Tensor(np.zeros(4, np.float32)), **GEOMETRY).sum().backward()
    np.testing.assert_array_equal(w2.grad.numpy(), with_columns)
    monkeypatch.setattr(plugin, "KEEP_COLUMNS_BYTES", 16 << 20)
    assert not conv(weight_grad=False)[2]  # only the weight gradient reads them
    with no_grad():
        assert not conv()[2]


def test_a_missing_numba_is_reported_and_looked_up_only_once(monkeypatch):
    import importlib.util

    impl = registry.get("relu", plugin.NAME)
    calls = []
    real = importlib.util.find_spec

    def counting(name, *args):
        calls.append(name)
        return real(name, *args)

    plugin._has_numba.cache_clear()
    try:
        monkeypatch.setattr(importlib.util, "find_spec", counting)
        for _ in range(3):  # check() runs on every dispatch: the file-system search must not
            impl.check_environment()
        assert calls == ["numba"]
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
        plugin._has_numba.cache_clear()
        assert "numba is not installed (pip install numba)" in impl.check_environment()
    finally:
        plugin._has_numba.cache_clear()  # found again, for real, by the next check


@pytest.mark.skipif(on_numpy, reason="checks the decline on other backends")
def test_declines_on_other_backends():
    impl = registry.get("gelu", plugin.NAME)
    assert impl.check_environment() and "runs on numpy" in impl.check_environment()[0]


@needs_numpy
def test_adam_updates_a_0d_parameter_whose_gradient_was_set_as_a_python_float():
    Adam = pytest.importorskip("autograd.optim", reason=NEEDS_NN_OPTIM).Adam

    def run():
        p = Tensor(1.0)
        p.grad = 0.7
        Adam({"p": p}, lr=0.1).step()
        return p

    fused = run()
    assert fused.shape == () and fused.grad.dtype == np.float32
    with registry.isolated():  # core's reference only
        ref = run()
    assert fused.item() == ref.item() and abs(fused.item() - 0.9) < 1e-6


@needs_numpy
def test_autograd_kernels_reference_turns_attention_off_too(monkeypatch):
    q = Tensor(np.random.default_rng(0).standard_normal((1, 2, 16, 8)).astype(np.float32))
    assert F.explain_attention(q, q, q, is_causal=True).chosen == plugin.NAME
    monkeypatch.setenv("AUTOGRAD_KERNELS", "reference")
    assert F.explain_attention(q, q, q, is_causal=True).chosen == REFERENCE
    out = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert not isinstance(out.creator, plugin.CPUAttentionFunction)


@needs_numpy
def test_empty_attention_on_the_automatic_path():
    q = Tensor(np.zeros((0, 2, 5, 8), np.float32))
    out = F.scaled_dot_product_attention(q, q, q, is_causal=True)  # cpu_fused declines it: the reference runs
    assert out.shape == (0, 2, 5, 8)
    out.sum().backward()
    assert q.grad.shape == q.shape
