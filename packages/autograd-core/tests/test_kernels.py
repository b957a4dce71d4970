"""The kernel registry for every op: contracts, containment of broken plugins, selection, CLI and conformance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.kernels import (
    OPS,
    GeluImplementation,
    KernelNotSupportedError,
    KernelOutputError,
    ReluImplementation,
    dispatch,
    registry,
)
from autograd.kernels.reference import builtin_implementations
from autograd.tensor import Function, Tensor
from autograd.testing import check_attention_implementation, check_kernel_implementation


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a)), **kw)


def _run(code: str, *flags: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def qkv(d, seq=4, seed=0):
    rng = np.random.default_rng(seed)
    return [T(rng.standard_normal((1, 2, seq, d)).astype(np.float32)) for _ in range(3)]


# --- every op has a contract and a reference ----------------------------------------------------------------------


def test_every_op_has_a_registered_reference():
    refs = {impl.op: impl for impl in builtin_implementations()}
    assert set(refs) == set(OPS)
    for op in OPS:
        names = [impl.name for impl in registry.implementations(op)]
        assert ("dense" if op == "attention" else "reference") in names


@pytest.mark.parametrize("impl", [i for i in builtin_implementations() if i.op != "attention"], ids=lambda i: i.op)
def test_references_pass_the_conformance_suite(impl):
    report = check_kernel_implementation(impl)
    assert report.passed and not report.failures and report.op == impl.op


def test_no_plugin_means_the_reference_runs_unchanged():
    x = T(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    a = F.gelu(x)
    b = F.Gelu.apply(x)
    assert np.array_equal(to_np(a), to_np(b)) and type(a.creator) is F.Gelu


# --- plugins of other ops: entry points, selection, environment -------------------------------------------------


def test_a_generic_op_plugin_is_discovered_and_selected(fake_plugins):
    x = T(np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32))
    assert "fake_gelu" in [i.name for i in registry.implementations("gelu")]
    assert registry.entry("fake_gelu", "gelu").package == "autograd-fake-attention-plugins"
    y = F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 1
    np.testing.assert_allclose(to_np(y), to_np(F.Gelu.apply(x)), rtol=1e-6)
    y.sum().backward()
    assert x.grad is not None
    # declines float64 ("can't"): the reference runs; a single row is advised against ("shouldn't")
    F.gelu(T(np.ones((3, 5))))
    single = T(np.ones((1, 5), np.float32))
    F.gelu(single)
    assert fake_plugins.calls["fake_gelu"] == 1
    report = registry.explain(registry_inputs("gelu", single))
    assert report.chosen == "reference" and "passed over: a single row" in str(report)
    dispatch("gelu", single, implementation="fake_gelu")  # named: used despite the advice
    assert fake_plugins.calls["fake_gelu"] == 2


def registry_inputs(op, *args, **params):
    from autograd.kernels.contracts import describe

    return describe(op, *args, **params)


def test_environment_variable_for_every_op(fake_plugins, monkeypatch):
    x = T(np.ones((3, 5), np.float32))
    monkeypatch.setenv("AUTOGRAD_KERNELS", "gelu=reference")
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 0
    monkeypatch.setenv("AUTOGRAD_KERNELS", "reference")  # a bare name: every op that has it
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 0
    monkeypatch.setenv("AUTOGRAD_KERNELS", "relu=reference, gelu=fake_gelu")
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 1
    with pytest.raises(KernelNotSupportedError, match=r"AUTOGRAD_KERNELS=gelu='fake_gelu'.*float32 only"):
        F.gelu(T(np.ones((3, 5))))
    monkeypatch.setenv("AUTOGRAD_KERNELS", "gelu=auto")
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 2
    with pytest.raises(registry.UnknownKernelError, match="no gelu implementation named 'nope'.*reference"):
        dispatch("gelu", x, implementation="nope")


def test_a_plugin_output_of_the_wrong_shape_or_dtype_names_the_plugin():
    class Transposing(Function):
        def forward(self, x):
            return x.T

        def backward(self, grad):
            return grad.data.T

    class BadRelu(ReluImplementation):
        name = "bad_relu"
        backends = ("numpy", "mlx", "cupy")
        priority = 10_000
        function = Transposing

    class Widening(Function):
        def forward(self, x):
            return x.astype(backend.dtype("float64"))

        def backward(self, grad):
            return grad.data

    class BadGelu(GeluImplementation):
        name = "bad_gelu"
        backends = ("numpy", "mlx", "cupy")
        priority = 10_000
        function = Widening

    registry.register(BadRelu)
    registry.register(BadGelu)
    try:
        with pytest.raises(
            KernelOutputError, match=r"relu implementation 'bad_relu' returned shape \(3, 2\).*\(2, 3\)"
        ):
            F.relu(T(np.ones((2, 3), np.float32)))
        with pytest.raises(KernelOutputError, match=r"'bad_gelu' returned shape \(2, 3\) float64, expected \(2, 3\) f"):
            F.gelu(T(np.ones((2, 3), np.float32)))
        report = check_kernel_implementation(BadGelu(), raise_on_failure=False)
        assert any("output dtype float64" in f for f in report.failures)
    finally:
        registry.unregister("bad_relu", "relu")
        registry.unregister("bad_gelu", "gelu")


def test_generic_conformance_catches_a_wrong_backward():
    class WrongGrad(Function):
        def forward(self, x):
            self.x = x
            return backend.lib.maximum(x, 0)

        def backward(self, grad):
            return grad.data * (self.x >= 0)  # the kink: the reference gives 0 at x == 0

    class Kinky(ReluImplementation):
        name = "kinky"
        backends = ("numpy", "mlx", "cupy")
        function = WrongGrad

    report = check_kernel_implementation(Kinky(), dtypes=("float32",), raise_on_failure=False)
    assert report.failures and all("dx:" in f for f in report.failures)
    assert "np.int64" not in str(report) and "np.float" not in str(report)
    with pytest.raises(AssertionError, match="relu conformance of 'kinky'"):
        check_kernel_implementation(Kinky(), dtypes=("float32",))


def test_fake_gelu_conformance_reports_its_declines(fake_plugins):
    report = check_kernel_implementation(registry.get("fake_gelu", "gelu"))
    assert report.passed and not report.failures
    assert report.declined and all("float32 only" in d for d in report.declined)
    assert all(p.startswith("float32") for p in report.passed)


# --- broken attention plugins are contained ----------------------------------------------------------------------


def test_a_check_that_raises_is_a_decline_and_warns_once(fake_plugins):
    q, k, v = qkv(64)
    with pytest.warns(RuntimeWarning, match=r"fake_raising.check\(\) raised ZeroDivisionError") as record:
        report = F.explain_attention(q, k, v)
        F.scaled_dot_product_attention(q, k, v)
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert len([w for w in record if "fake_raising" in str(w.message)]) == 1
    verdict = {c.name: c for c in report.candidates}["fake_raising"]
    assert verdict.reasons == ["fake_raising.check() raised ZeroDivisionError: bug in fake_raising.check"]
    assert report.chosen not in (None, "fake_raising")  # fell back (dense, or an installed plugin)
    # other plugins' conformance runs are unaffected
    assert not check_attention_implementation(registry.get("fake_fast"), dtypes=("float32",)).failures


def test_a_wrong_shape_or_dtype_from_an_attention_plugin_names_it(fake_plugins):
    with pytest.raises(KernelOutputError, match=r"'fake_wrong_shape' returned shape \(1, 2, 24, 4\).*\(1, 2, 4, 24\)"):
        F.scaled_dot_product_attention(*qkv(24))
    with pytest.raises(KernelOutputError, match=r"'fake_wrong_dtype' returned shape \(1, 2, 4, 20\) float64"):
        F.scaled_dot_product_attention(*qkv(20))


def test_cli_lists_failed_plugins_with_their_reason(fake_plugins):
    res = _run("from autograd.kernels.__main__ import main; main()", AUTOGRAD_FAKE_PLUGINS="1")
    assert res.returncode == 0, res.stderr
    assert "plugins that failed to load" in res.stdout
    for name in ("fake_import_error", "fake_missing_attr", "fake_not_an_impl", "fake_gelu_in_attention_group"):
        assert name in res.stdout
    assert "broken on purpose" in res.stdout and "takes attention only, got 'gelu'" in res.stdout
    assert "declined" in res.stdout and "fake_raising.check() raised ZeroDivisionError" in res.stdout
    res = _run("from autograd.kernels.__main__ import main; main(['--json'])", AUTOGRAD_FAKE_PLUGINS="1")
    data = json.loads(res.stdout)
    failed = {f["name"]: f for f in data["failures"]}
    assert "ImportError: this fake plugin is broken on purpose" in failed["fake_import_error"]["error"]
    assert failed["fake_import_error"]["package"] == "autograd-fake-attention-plugins"
    assert {"op", "name", "package", "version", "backends", "priority", "usable", "reasons"} <= set(
        data["implementations"][0]
    )
    verdicts = {c["name"]: c["verdict"] for c in data["choices"]["attention"]["candidates"]}
    assert verdicts["fake_raising"] == "declined" and verdicts[data["chosen"]] == "chosen"


def test_warnings_as_errors_do_not_break_calls_with_broken_plugins(fake_plugins):
    code = (
        "import numpy as np\n"
        "from autograd.tensor import Tensor\n"
        "from autograd import functional as F\n"
        "q = Tensor(np.ones((1, 1, 4, 8), np.float32))\n"
        "for _ in range(2):\n"
        "    F.scaled_dot_product_attention(q, q, q)\n"
        "    F.gelu(q)\n"
        "print('ok')\n"
    )
    res = _run(code, "-W", "error", AUTOGRAD_FAKE_PLUGINS="1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert "skipping autograd.attention entry point 'fake_import_error'" in res.stderr  # logged instead


def test_cli_options_have_help_and_drive_the_probe():
    res = _run("from autograd.kernels.__main__ import main; main(['--help'])")
    for option in ("--mask", "--dropout", "--no-causal", "--op", "--json", "--seq", "--head-dim", "--dtype"):
        assert option in res.stdout
    assert "turns causal off" in res.stdout
    args = ["--json", "--op", "attention", "--mask", "bool", "--dropout", "0.1"]
    code = f"from autograd.kernels.__main__ import main; main({args!r})"
    data = json.loads(_run(code).stdout)
    case = data["choices"]["attention"]["case"]
    assert "mask=bool (128, 128)" in case and "is_causal=False" in case and "dropout_prob=0.1" in case
    assert set(data["choices"]) == {"attention"}
    res = _run("from autograd.kernels.__main__ import main; main(['--dropout', '1.5'])")
    assert res.returncode != 0 and "--dropout must be in [0, 1)" in res.stderr


def test_unregister_before_discovery_sticks():
    registry.reset()
    registry.unregister("numpy_tiled")  # discovers first, so the entry point does not come back
    try:
        assert "numpy_tiled" not in [i.name for i in registry.implementations()]
    finally:
        registry.reset()
    assert "numpy_tiled" in [i.name for i in registry.implementations()]


# --- the attention conformance suite ----------------------------------------------------------------------------


def test_attention_conformance_covers_float64_and_lists_what_it_skips():
    from autograd.kernels.dense import DenseAttention

    shapes = [(1, 1, 5, 3, 16), (1, 2, 6, 6, 16)]
    report = check_attention_implementation(DenseAttention(), shapes=shapes, dtypes=("float64", "float32"))
    assert any(p.startswith("float64") for p in report.passed)
    assert any("Tq=5 Tk=3" in s and "the first 2 rows see no key" in s for s in report.skipped)
    assert "skipped" in str(report) and "SKIP" in str(report)


def test_attention_conformance_messages_print_plain_numbers():
    from autograd.kernels.dense import DenseAttention, dense_attention

    class Off(DenseAttention):
        name = "off_by_a_bit"

        def attention(self, query, key, value, **kw):
            return dense_attention(query, key, value, **kw) * 1.01

    report = check_attention_implementation(
        Off(), shapes=[(1, 1, 3, 3, 16)], dtypes=("float32",), raise_on_failure=False
    )
    text = str(report)
    assert report.failures and "at (0, 0," in text
    assert "np.int64" not in text and "np.float" not in text


# --- the dropout decision ----------------------------------------------------------------------------------------


def _lowbias32(x: int) -> int:
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    return x ^ (x >> 16)


def test_keep_mask_is_the_documented_formula():
    from autograd.kernels.dropout import keep_mask

    seed, heads, p = 987654321, 3, 0.3
    got = to_np(keep_mask(seed, 2, heads, range(5, 9), range(30, 36), p))
    m = 0xFFFFFFFF
    for b in range(2):
        for h in range(heads):
            stream = _lowbias32((seed + 0x9E3779B9 * (b * heads + h + 1)) & m)
            for r, i in enumerate(range(5, 9)):
                for c, j in enumerate(range(30, 36)):
                    x = _lowbias32((_lowbias32(stream ^ _lowbias32(i + 1)) + j * 0x85EBCA6B) & m)
                    assert bool(got[b, h, r, c]) == ((x >> 8) / 2**24 >= p), (b, h, i, j)


@pytest.mark.skipif(backend.BACKEND != "numpy", reason="numpy_tiled runs on the numpy backend")
def test_dense_and_tiled_drop_the_same_elements():
    q, k, v = qkv(16, seq=40, seed=3)
    kw = dict(is_causal=True, dropout_prob=0.3, seed=11)
    dense = F.scaled_dot_product_attention(q, k, v, implementation="dense", **kw)
    tiled = F.scaled_dot_product_attention(q, k, v, implementation="numpy_tiled", **kw)
    np.testing.assert_allclose(to_np(tiled), to_np(dense), rtol=1e-5, atol=1e-6)
