"""The ``cudnn_sdpa`` implementation without a GPU: its declines, the exact graphs it requests, its plan cache.

For every configuration the implementation accepts, the forward and backward
graphs a call would request (:func:`autograd_kernels_cuda.cudnn_attention.plan_keys`,
the same code the Function runs, here on NumPy arrays) are built and validated
by the cuDNN frontend on the CPU. Running them needs libcudnn and a GPU
(test_gpu.py, through tools/gpu_check.py).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from autograd_kernels_cuda import cudnn_attention, cudnn_sdpa
from autograd_kernels_cuda.cudnn_attention import CudnnAttention, plan_keys

from autograd import backend
from autograd.kernels import registry
from autograd.kernels.contract import make_inputs
from autograd.ops.attention import AttentionKernel

needs_frontend = pytest.mark.skipif(
    cudnn_sdpa.frontend_missing() is not None, reason=str(cudnn_sdpa.frontend_missing())
)


def _call(b=2, h=4, tq=64, tk=64, d=64, dv=None, dtype=np.float16, mask=None, causal=False, p=0.0, bshd=False):
    """NumPy arrays and contract parameters of one call (``bshd``: q, k, v are (B, T, H, D) buffers seen as BHTD)."""
    dv = d if dv is None else dv
    rng = np.random.default_rng(0)

    def array(t, width):
        if bshd:
            return rng.standard_normal((b, t, h, width)).astype(dtype).transpose(0, 2, 1, 3)
        return rng.standard_normal((b, h, t, width)).astype(dtype)

    q, k, v = array(tq, d), array(tk, d), array(tk, dv)
    params = dict(mask=mask, is_causal=causal and mask is None, dropout_prob=p, scale=None, seed=5 if p else None)
    return (q, k, v), params


def _inputs(arrays, params, requires_grad=True):
    q, k, v = arrays
    shapes = {"query": q.shape, "key": k.shape, "value": v.shape}
    dtypes = {}
    mask = params["mask"]
    if mask is not None:
        shapes["mask"], dtypes["mask"] = mask.shape, "bool" if mask.dtype == np.bool_ else str(q.dtype)
    rest = {k: v for k, v in params.items() if k not in ("mask", "dropout_mask")}
    return make_inputs(AttentionKernel, str(q.dtype), shapes, rest, dtypes, requires_grad=requires_grad)


PADDING = np.zeros((2, 1, 1, 96), bool)
PADDING[1, ..., 80:] = True
#: What cudnn_sdpa takes, as calls of the contract.
SUPPORTED = {
    "causal": _call(causal=True),
    "causal_d128": _call(d=128, causal=True),
    "causal_kv_cache": _call(tq=32, tk=96, causal=True),  # bottom-right
    "plain_d80": _call(d=80),
    "value_dim_differs": _call(d=128, dv=64),
    "key_padding_bool": _call(tk=96, mask=PADDING),
    "additive_2d": _call(mask=np.triu(np.ones((64, 64), np.float16), 1)),
    "per_batch_head_bool": _call(mask=np.random.default_rng(1).random((2, 4, 64, 64)) < 0.3),
    "dropout": _call(p=0.1),
    "causal_dropout": _call(causal=True, p=0.2),
    "bshd_strides": _call(causal=True, bshd=True),
}
#: What it declines (the reason's fragment); triton_fused takes these.
DECLINED = {
    "float32": (_call(dtype=np.float32), "float32 inputs"),
    "head_dim_60": (_call(d=60), "not a multiple of 8"),
    "head_dim_512": (_call(d=512), "over 256"),
    "causal_tq_over_tk": (_call(tq=96, tk=32, causal=True), "Tq <= Tk"),
    "bottom_right_dropout": (_call(tq=32, tk=96, causal=True, p=0.1), "bottom-right causal masking together with"),
    "single_position_backward": (_call(tq=1, tk=1), "Tq = Tk = 1"),
    "empty": (_call(b=0), "empty inputs"),
}


def test_registered_above_triton_and_cuda_flash():
    entry = registry.entry("attention", "cudnn_sdpa")
    assert isinstance(entry.impl, CudnnAttention) and entry.package == "autograd-kernels-cuda"
    priorities = {n: registry.entry("attention", n).impl.priority for n in ("cudnn_sdpa", "triton_fused", "cuda_flash")}
    assert priorities["cudnn_sdpa"] > priorities["triton_fused"] > priorities["cuda_flash"]


@pytest.mark.skipif(backend.BACKEND == "cupy", reason="checks the decline off the cupy backend")
def test_declines_off_cupy_with_the_reason():
    reasons = CudnnAttention().check(_inputs(*SUPPORTED["causal"]))
    assert reasons == [f"the active backend is {backend.BACKEND}; cudnn_sdpa runs on cupy"]


@pytest.mark.parametrize("cc", [80, 90])
@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_accepts(name, cc):
    assert CudnnAttention().input_reasons(_inputs(*SUPPORTED[name]), cc) == []


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declines_with_the_reason(name):
    (arrays, params), fragment = DECLINED[name]
    reasons = CudnnAttention().input_reasons(_inputs(arrays, params), 90)
    assert any(fragment in r for r in reasons), reasons


def test_declines_what_depends_on_the_gpu():
    impl = CudnnAttention()
    wide = _inputs(*_call(d=192))
    assert impl.input_reasons(wide, 90) == []
    assert any("backward with head dim 192 on sm_86" in r for r in impl.input_reasons(wide, 86))
    assert impl.input_reasons(_inputs(*_call(d=192), requires_grad=False), 86) == []  # inference only
    assert any("sm_75" in r for r in impl.input_reasons(_inputs(*SUPPORTED["causal"]), 75))
    shapes = {n: (1, 2, 8, 64) for n in ("query", "key", "value")} | {"dropout_mask": (1, 2, 8, 8)}
    explicit = make_inputs(AttentionKernel, "float16", shapes, {"dropout_prob": 0.1})
    assert any("dropout_mask" in r for r in impl.input_reasons(explicit, 90))


def _fake_cupy(compute_capability: str) -> types.SimpleNamespace:
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0)
    device = types.SimpleNamespace(compute_capability=compute_capability)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=lambda i: device))


@pytest.mark.parametrize(
    "cupy,library,fragment",
    [
        (None, None, "CuPy is not installed"),
        ("90", "no cuDNN library found (test)", "no cuDNN library found (test)"),
        ("75", None, "GPU too old: sm_75"),
        ("90", None, ""),
    ],
)
def test_environment_reasons(monkeypatch, cupy, library, fragment):
    """What the device, the frontend and libcudnn contribute (CuPy and the library stood in for)."""
    monkeypatch.setitem(sys.modules, "cupy", None if cupy is None else _fake_cupy(cupy))
    monkeypatch.setattr(cudnn_sdpa, "library_missing", lambda: library)
    cudnn_attention._environment.cache_clear()
    try:
        reasons, cc = cudnn_attention._device()
    finally:
        cudnn_attention._environment.cache_clear()
    if fragment:
        assert any(fragment in r for r in reasons), reasons
    else:
        assert reasons == [] and cc == 90


@needs_frontend
@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_requested_graphs_build_and_validate(name):
    """The forward and backward graphs a call requests, built from the Function's own arguments."""
    (q, k, v), params = SUPPORTED[name]
    forward, backward = plan_keys(q, k, v, **params)
    assert not forward.backward and backward.backward
    assert forward.causal == backward.causal == cudnn_attention.causal_kind(params["is_causal"], q.shape[2], k.shape[2])
    assert forward.dropout == backward.dropout == params["dropout_prob"]
    if params["mask"] is not None:
        b, h = q.shape[:2]
        m = (1,) * (4 - params["mask"].ndim) + params["mask"].shape
        assert forward.bias_shape == (b if m[0] > 1 else 1, h if m[1] > 1 else 1, q.shape[2], k.shape[2])
    assert forward.q_stride == tuple(s // q.itemsize for s in q.strides)  # BSHD views are not copied
    for key in (forward, backward):
        graph = cudnn_sdpa.build_graph(key)
        (node,) = graph.nodes
        assert node.name == ("sdpa_backward" if key.backward else "sdpa")


def test_bias_follows_the_contract():
    (q, k, v), params = SUPPORTED["key_padding_bool"]
    _, _, _, options, rng = cudnn_attention.prepare(q, k, v, **params)
    bias = options["bias"]
    assert bias.shape == (2, 1, 64, 96) and bias.dtype == np.float16
    assert np.all(bias[1, :, :, 80:] == np.float16(-3.0e4)) and np.all(bias[0] == 0)
    assert rng == {"seed": 0, "offset": 0}


def test_plan_cache_is_bounded():
    impl = CudnnAttention(plan_cache_size=3)
    plans = impl.runner.plans
    assert plans.capacity == 3
    plans.build = lambda key: ("plan", key)  # building needs a GPU: count the requests instead
    keys = [
        k for name in ("causal", "dropout", "plain_d80") for k in plan_keys(*SUPPORTED[name][0], **SUPPORTED[name][1])
    ]
    assert len(set(keys)) == 6
    for key in keys:
        plans.get(key)
    assert plans.builds == 6 and len(plans.items) == 3 and list(plans.items) == keys[3:]
    plans.get(keys[5])
    assert plans.builds == 6  # a hit builds nothing
    plans.get(keys[0])
    assert plans.builds == 7 and len(plans.items) == 3


def test_plan_cache_size_is_checked():
    with pytest.raises(ValueError, match="plan_cache_size"):
        CudnnAttention(plan_cache_size=0)


def test_advises_against_expanding_a_large_padding_mask():
    impl = CudnnAttention()
    shapes = {n: (8, 12, 4096, 64) for n in ("query", "key", "value")} | {"mask": (8, 1, 1, 4096)}
    big = make_inputs(AttentionKernel, "float16", shapes, {"is_causal": False, "dropout_prob": 0.0}, {"mask": "bool"})
    assert any("would be expanded" in r for r in impl.advise(big))
    assert impl.advise(_inputs(*SUPPORTED["key_padding_bool"])) == []  # small: expanding is cheap
