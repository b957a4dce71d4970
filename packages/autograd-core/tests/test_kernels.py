"""The kernel registry for every op: contracts, signatures, selection, output and gradient checks, CLI, conformance."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd import functional as F
from autograd.kernels import (
    OPS,
    REFERENCE,
    Kernel,
    KernelNotSupportedError,
    KernelOutputError,
    UnknownKernelError,
    registry,
)
from autograd.ops.activations import GeluKernel, ReluKernel
from autograd.ops.catalog import KERNEL_OPS
from autograd.ops.norm import LayerNormKernel
from autograd.tensor import Function, Tensor
from autograd.testing import check_kernel_implementation, isolated_kernels


def T(a, **kw):
    return Tensor(backend.asarray(np.asarray(a)), **kw)


def _run(code: str, *flags: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def qkv(d, seq=4, seed=0):
    rng = np.random.default_rng(seed)
    return [T(rng.standard_normal((1, 2, seq, d)).astype(np.float32)) for _ in range(3)]


# --- every op is defined once, with a public function, a contract and a reference -------------------------------

PUBLIC = {
    "attention": F.scaled_dot_product_attention,
    "layer_norm": F.layer_norm,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "gelu": F.gelu,
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "cross_entropy": F.cross_entropy,
    "conv2d": F.conv2d,
    "max_pool2d": F.max_pool2d,
    "embedding": F.embedding,
}


def test_every_op_has_a_contract_a_reference_and_a_typed_public_function(core_kernels):
    assert {c.op for c in KERNEL_OPS} == set(OPS)
    for contract in KERNEL_OPS:
        module = sys.modules[contract.__module__]
        ref = contract.reference()
        assert ref.name == REFERENCE and type(ref).contract() is contract
        assert type(ref).__module__ == contract.__module__  # forward, backward, reference and rules: one file
        assert [i.name for i in registry.implementations(contract.op)][-1] == REFERENCE
        assert contract.positional and contract.__doc__ and contract.apply.__doc__
        public = PUBLIC.get(contract.op)
        if public is not None:  # adam's public function is autograd.ops.optim.adam_update
            assert sys.modules[public.__module__] is module
            hints = inspect.signature(public).return_annotation
            assert hints in ("Tensor", Tensor), (contract.op, hints)
    from autograd.ops.optim import AdamKernel, adam_update

    assert sys.modules[adam_update.__module__] is sys.modules[AdamKernel.__module__]


@pytest.mark.parametrize("contract", [c for c in KERNEL_OPS if c.op != "attention"], ids=lambda c: c.op)
def test_references_pass_the_conformance_suite(contract, core_kernels):
    report = check_kernel_implementation(contract.reference())
    assert report.passed and not report.failures and report.op == contract.op


def test_no_plugin_means_the_reference_runs_unchanged(core_kernels):
    x = T(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    a = F.gelu(x)
    b = F.Gelu.apply(x)
    assert np.array_equal(to_np(a), to_np(b)) and type(a.creator) is F.Gelu


# --- the contract: signatures are checked when a kernel registers --------------------------------------------------


def test_a_wrong_signature_is_refused_at_registration():
    class Swapped(Function):
        def forward(self, weight, x, bias, eps=1e-5):
            return x

    class SwappedNorm(LayerNormKernel):
        name = "swapped"
        backends = ("numpy", "mlx", "cupy")
        function = Swapped

    class Extra(GeluKernel):
        name = "extra"
        backends = ("numpy",)

        def apply(self, x, approximate):
            return x

    class Hidden(GeluKernel):
        name = "hidden"
        backends = ("numpy",)

        def apply(self, *args, **kwargs):
            return args[0]

    class Nothing(ReluKernel):
        name = "nothing"
        backends = ("numpy",)

    with isolated_kernels():
        with pytest.raises(TypeError, match=r"Swapped.forward\(weight, x, bias, eps\) must take the arrays x, weight"):
            registry.register(SwappedNorm)
        with pytest.raises(TypeError, match=r"apply has extra parameters without defaults: \['approximate'\]"):
            registry.register(Extra)
        with pytest.raises(TypeError, match=r"not \*args/\*\*kwargs: \(x\)"):
            registry.register(Hidden)
        with pytest.raises(TypeError, match=r"set `function` to a Function or override `apply\(x\)`"):
            registry.register(Nothing)
        with pytest.raises(TypeError, match="not a kernel"):
            registry.register(lambda: 3)
        assert [i.name for i in registry.implementations("gelu")] == [REFERENCE]


def test_only_a_contract_sets_op():
    with pytest.raises(TypeError, match="only a contract sets op"):

        class Renamed(GeluKernel):
            op = "gelu2"


def test_unknown_op_and_unknown_name():
    with pytest.raises(UnknownKernelError, match="no op named 'nope'"):
        registry.implementations("nope")
    with pytest.raises(UnknownKernelError, match="no gelu implementation named 'nope'.*reference"):
        registry.dispatch(GeluKernel, T([1.0]), implementation="nope")


# --- plugins: entry points, selection, environment ---------------------------------------------------------------


def test_a_plugin_is_discovered_and_selected(fake_plugins):
    x = T(np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32))
    assert "fake_gelu" in [i.name for i in registry.implementations("gelu")]
    assert registry.entry("gelu", "fake_gelu").package == "autograd-fake-kernel-plugins"
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
    report = registry.explain(GeluKernel.describe(single))
    assert report.chosen == REFERENCE and "passed over: a single row" in str(report)
    registry.dispatch(GeluKernel, single, implementation="fake_gelu")  # named: used despite the advice
    assert fake_plugins.calls["fake_gelu"] == 2


def test_one_environment_variable_for_every_op(fake_plugins, monkeypatch):
    x = T(np.ones((3, 5), np.float32))
    q, k, v = qkv(16)
    monkeypatch.setenv("AUTOGRAD_KERNELS", "gelu=reference")
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 0
    monkeypatch.setenv("AUTOGRAD_KERNELS", "reference")  # a bare name: every op, attention included
    F.gelu(x)
    F.scaled_dot_product_attention(q, k, v)
    assert F.explain_attention(q, k, v).chosen == REFERENCE
    assert not fake_plugins.calls
    monkeypatch.setenv("AUTOGRAD_KERNELS", "relu=reference, gelu=fake_gelu, attention=fake_fast")
    F.gelu(x)
    F.scaled_dot_product_attention(q, k, v)
    assert fake_plugins.calls == {"fake_gelu": 1, "fake_fast": 1}
    with pytest.raises(KernelNotSupportedError, match=r"AUTOGRAD_KERNELS=gelu='fake_gelu'.*float32 only"):
        F.gelu(T(np.ones((3, 5))))
    with pytest.raises(KernelNotSupportedError, match=r"AUTOGRAD_KERNELS=attention='fake_fast'.*dropout"):
        F.scaled_dot_product_attention(q, k, v, dropout_prob=0.1)
    monkeypatch.setenv("AUTOGRAD_KERNELS", "gelu=auto")
    F.gelu(x)
    assert fake_plugins.calls["fake_gelu"] == 2
    # the argument wins over the environment
    monkeypatch.setenv("AUTOGRAD_KERNELS", "attention=fake_fast")
    assert F.explain_attention(q, k, v, implementation=REFERENCE).chosen == REFERENCE


def test_ties_are_reported_and_broken_by_name(fake_plugins):
    registry.reset()
    with pytest.warns(RuntimeWarning, match="'fake_alpha'.*'fake_fast'.*share priority 50.*the name breaks the tie"):
        registry.implementations("attention")
    q, k, v = qkv(16)
    bool_mask = backend.asarray(np.zeros((4, 4), dtype=bool))
    assert F.explain_attention(q, k, v, mask=bool_mask).chosen == "fake_alpha"
    assert F.explain_attention(q, k, v).chosen == "fake_fast"


def test_a_plugin_output_of_the_wrong_shape_or_dtype_names_the_plugin():
    class Transposing(Function):
        def forward(self, x):
            return x.T

        def backward(self, grad):
            return grad.data.T

    class BadRelu(ReluKernel):
        name = "bad_relu"
        backends = ("numpy", "mlx", "cupy")
        priority = 10_000
        function = Transposing

    class Widening(Function):
        def forward(self, x):
            return x.astype(backend.dtype("float64"))

        def backward(self, grad):
            return grad.data

    class BadGelu(GeluKernel):
        name = "bad_gelu"
        backends = ("numpy", "mlx", "cupy")
        priority = 10_000
        function = Widening

    with isolated_kernels(BadRelu, BadGelu):
        with pytest.raises(
            KernelOutputError, match=r"relu implementation 'bad_relu' returned shape \(3, 2\).*\(2, 3\)"
        ):
            F.relu(T(np.ones((2, 3), np.float32)))
        with pytest.raises(KernelOutputError, match=r"'bad_gelu' returned shape \(2, 3\) float64, expected \(2, 3\) f"):
            F.gelu(T(np.ones((2, 3), np.float32)))
        report = check_kernel_implementation(BadGelu(), raise_on_failure=False)
        assert any("float64" in f for f in report.failures)


def _relu_with_backward(backward):
    class Node(Function):
        def forward(self, x):
            self.x = x
            return backend.lib.maximum(x, 0)

    Node.backward = backward

    class Plugin(ReluKernel):
        name = "odd_backward"
        backends = ("numpy", "mlx", "cupy")
        priority = 10_000
        function = Node

    return Plugin


def test_a_plugin_backward_is_checked_against_the_gradient_rule():
    x = T(np.array([-1.0, 2.0, 3.0], np.float32))
    lib = backend.lib
    missing = _relu_with_backward(lambda self, grad: None)
    doubled = _relu_with_backward(lambda self, grad: lib.stack([grad.data, grad.data]))  # unbroadcast would sum
    short = _relu_with_backward(lambda self, grad: grad.data[:2])
    widened = _relu_with_backward(lambda self, grad: grad.data.astype(backend.dtype("float64")))
    for plugin, message in [
        (missing, r"relu implementation 'odd_backward': its backward returned no gradient for 'x'"),
        (
            doubled,
            r"'odd_backward': its backward returned a gradient of shape \(2, 3\) float32 for 'x', expected \(3,\)",
        ),
        (short, r"gradient of shape \(2,\) float32 for 'x', expected \(3,\) float32"),
        (widened, r"gradient of shape \(3,\) float64 for 'x', expected \(3,\) float32"),
    ]:
        leaf = T(np.array([-1.0, 2.0, 3.0], np.float32))
        with isolated_kernels(plugin):
            y = F.relu(leaf)
        with pytest.raises(KernelOutputError, match=message):
            y.sum().backward()
        assert leaf.grad is None
    # no gradient asked for: None is fine
    with isolated_kernels(missing):
        frozen = F.relu(T(np.ones(3, np.float32), requires_grad=False)) * x
    frozen.sum().backward()
    assert x.grad is not None


def test_conformance_tolerances_come_from_the_contract_not_the_plugin():
    class Loose(Function):
        def forward(self, x):
            return backend.lib.maximum(x, 0) * 1.001

        def backward(self, grad):
            return grad.data

    class Lenient(ReluKernel):
        name = "lenient"
        backends = ("numpy", "mlx", "cupy")
        function = Loose
        tolerances = {"float32": (1.0, 1.0), "float64": (1.0, 1.0)}  # ignored: the contract's tolerances apply

    report = check_kernel_implementation(Lenient(), dtypes=("float32",), raise_on_failure=False)
    assert report.failures and all("output" in f or "dx" in f for f in report.failures)


def test_generic_conformance_catches_a_wrong_backward():
    class WrongGrad(Function):
        def forward(self, x):
            self.x = x
            return backend.lib.maximum(x, 0)

        def backward(self, grad):
            return grad.data * (self.x >= 0)  # the kink: the reference gives 0 at x == 0

    class Kinky(ReluKernel):
        name = "kinky"
        backends = ("numpy", "mlx", "cupy")
        function = WrongGrad

    report = check_kernel_implementation(Kinky(), dtypes=("float32",), raise_on_failure=False)
    assert report.failures and all("dx:" in f for f in report.failures)
    assert "np.int64" not in str(report) and "np.float" not in str(report)
    with pytest.raises(AssertionError, match="relu conformance of 'kinky'"):
        check_kernel_implementation(Kinky(), dtypes=("float32",))


def test_fake_gelu_conformance_reports_its_declines(fake_plugins):
    report = check_kernel_implementation(registry.get("gelu", "fake_gelu"))
    assert report.passed and not report.failures
    assert report.declined and all("float32 only" in d for d in report.declined)
    assert all(p.startswith("float32") for p in report.passed)


# --- broken plugins are contained ---------------------------------------------------------------------------------


def test_broken_plugins_warn_once_and_are_skipped(fake_plugins):
    registry.reset()
    with pytest.warns(RuntimeWarning) as record:
        names = [i.name for i in registry.implementations("attention")]
    messages = " ".join(str(w.message) for w in record)
    for bad in ("fake_import_error", "fake_missing_attr", "fake_not_an_impl", "fake_bad_signature"):
        assert bad in messages
    assert "broken on purpose" in messages and "extra parameters without defaults: ['approximate']" in messages
    assert {"fake_fast", "fake_alpha", REFERENCE} <= set(names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.implementations("attention")  # no second report


def test_a_check_that_raises_is_a_decline_and_warns_once(fake_plugins):
    q, k, v = qkv(64)
    with pytest.warns(RuntimeWarning, match=r"fake_raising.check\(\) raised ZeroDivisionError") as record:
        report = F.explain_attention(q, k, v)
        F.scaled_dot_product_attention(q, k, v)
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert len([w for w in record if "fake_raising" in str(w.message)]) == 1
    verdict = {c.name: c for c in report.candidates}["fake_raising"]
    assert verdict.reasons == ["fake_raising.check() raised ZeroDivisionError: bug in fake_raising.check"]
    assert report.chosen == REFERENCE
    assert not check_kernel_implementation(registry.get("attention", "fake_fast"), dtypes=("float32",)).failures


def test_a_wrong_shape_or_dtype_from_an_attention_plugin_names_it(fake_plugins):
    with pytest.raises(KernelOutputError, match=r"'fake_wrong_shape' returned shape \(1, 2, 24, 4\).*\(1, 2, 4, 24\)"):
        F.scaled_dot_product_attention(*qkv(24))
    with pytest.raises(KernelOutputError, match=r"'fake_wrong_dtype' returned shape \(1, 2, 4, 20\) float64"):
        F.scaled_dot_product_attention(*qkv(20))


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
    assert "skipping autograd.kernels entry point 'fake_import_error'" in res.stderr  # logged instead


def test_isolated_registry_pins_and_restores():
    before = [i.name for i in registry.implementations("relu")]

    class Mine(ReluKernel):
        name = "mine"
        backends = ("numpy", "mlx", "cupy")
        priority = 7
        function = F.Relu

    with isolated_kernels(Mine):
        assert [i.name for i in registry.implementations("relu")] == ["mine", REFERENCE]
        with pytest.raises(ValueError, match="already registered"):
            registry.register(Mine())
    assert [i.name for i in registry.implementations("relu")] == before


def test_unregister_before_discovery_sticks(core_kernels):
    registry.reset()
    registry.unregister("attention", "numpy_tiled")  # discovers first, so the entry point does not come back
    assert "numpy_tiled" not in [i.name for i in registry.implementations("attention")]
    registry.reset()
    assert "numpy_tiled" in [i.name for i in registry.implementations("attention")]


def test_installed_first_party_plugins_never_tie():
    """With every package installed (the all-packages session) no two kernels of an op share a priority on a backend."""
    with isolated_kernels(plugins=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            registry.load_failures()
        for op in OPS:
            seen = {}
            for impl in registry.implementations(op):
                if impl.name.startswith("fake_"):
                    continue
                for b in impl.backends:
                    other = seen.setdefault((b, impl.priority), impl.name)
                    assert other == impl.name, f"{op}: {other} and {impl.name} tie at {impl.priority} on {b}"


# --- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_lists_failed_plugins_with_their_reason(fake_plugins):
    res = _run("from autograd.kernels.__main__ import main; main()", AUTOGRAD_FAKE_PLUGINS="1")
    assert res.returncode == 0, res.stderr
    assert "plugins that failed to load" in res.stdout
    for name in ("fake_import_error", "fake_missing_attr", "fake_not_an_impl", "fake_bad_signature"):
        assert name in res.stdout
    assert "broken on purpose" in res.stdout
    assert "declined" in res.stdout and "fake_raising.check() raised ZeroDivisionError" in res.stdout
    res = _run("from autograd.kernels.__main__ import main; main(['--json'])", AUTOGRAD_FAKE_PLUGINS="1")
    data = json.loads(res.stdout)
    failed = {f["name"]: f for f in data["failures"]}
    assert "ImportError: this fake plugin is broken on purpose" in failed["fake_import_error"]["error"]
    assert failed["fake_import_error"]["package"] == "autograd-fake-kernel-plugins"
    assert {"op", "name", "package", "version", "backends", "priority", "usable", "reasons"} <= set(
        data["implementations"][0]
    )
    assert set(data["choices"]) == {c.op for c in KERNEL_OPS}
    verdicts = {c["name"]: c["verdict"] for c in data["choices"]["attention"]["candidates"]}
    assert verdicts["fake_raising"] == "declined" and "chosen" in verdicts.values()


def test_cli_options_come_from_the_probes_and_drive_them():
    res = _run("from autograd.kernels.__main__ import main; main(['--help'])")
    for option in ("--mask", "--dropout", "--no-causal", "--op", "--json", "--seq", "--head-dim", "--dtype"):
        assert option in res.stdout
    args = ["--json", "--op", "attention", "--mask", "bool", "--dropout", "0.1", "--seq", "64"]
    data = json.loads(_run(f"from autograd.kernels.__main__ import main; main({args!r})").stdout)
    case = data["choices"]["attention"]["case"]
    assert "mask=(64, 64) bool" in case and "is_causal=False" in case and "dropout_prob=0.1" in case
    assert set(data["choices"]) == {"attention"}
    res = _run("from autograd.kernels.__main__ import main; main(['--op', 'nope'])")
    assert res.returncode != 0 and "invalid choice: 'nope'" in res.stderr


def test_cli_says_declined_for_an_implementation_that_cannot_run_here():
    class Elsewhere(ReluKernel):
        name = "elsewhere"
        backends = tuple(b for b in backend.BACKENDS if b != backend.BACKEND)
        priority = -5
        function = F.Relu

    from autograd.kernels.__main__ import report

    with isolated_kernels(Elsewhere):
        verdicts = {c["name"]: c for c in report(op="relu")["choices"]["relu"]["candidates"]}
    assert verdicts[REFERENCE]["verdict"] == "chosen"
    assert verdicts["elsewhere"]["verdict"] == "declined" and "active backend" in verdicts["elsewhere"]["why"][0]


def test_console_script_installed():
    import importlib.metadata

    scripts = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "autograd-kernels"]
    assert scripts and scripts[0].value == "autograd.kernels.__main__:main"


def test_importing_tensor_and_functional_loads_no_plugin():
    res = _run(
        "import sys, autograd.tensor, autograd.functional; "
        "print(any(m.startswith('fake_kernel_plugins') or m.startswith('autograd_kernels') for m in sys.modules))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_kernel_base_is_the_contract_root():
    assert all(issubclass(c, Kernel) and "op" in c.__dict__ for c in KERNEL_OPS)
