"""cuDNN SDPA graphs built and validated on the CPU; the reasons cuDNN declines; the bounded plan cache.

Building a graph needs ``nvidia-cudnn-frontend`` (1.29+, with cuda-bindings)
but neither libcudnn nor a GPU: the frontend validates SDPA graphs with its own
Python rules there. Executing them needs both; the GPU check runs that.
"""

from __future__ import annotations

import numpy as np
import pytest
from autograd_kernels_cuda import cudnn_sdpa
from autograd_kernels_cuda.cudnn_sdpa import CudnnSdpa, SdpaKey, _Plans, bias_from_mask, key_for, reasons

needs_frontend = pytest.mark.skipif(
    cudnn_sdpa.frontend_missing() is not None, reason=str(cudnn_sdpa.frontend_missing())
)


def _arrays(b=2, h=4, tq=64, tk=96, d=64, dv=None, dtype=np.float16):
    dv = d if dv is None else dv
    return (np.zeros((b, h, tq, d), dtype), np.zeros((b, h, tk, d), dtype), np.zeros((b, h, tk, dv), dtype))


# --- graphs ------------------------------------------------------------------------------------------------------

GRAPH_CASES = {
    "plain": dict(),
    "causal_top_left": dict(causal="top_left"),
    "causal_bottom_right": dict(causal="bottom_right"),
    "bias": dict(bias=np.zeros((1, 4, 64, 96), np.float16)),
    "bias_per_batch": dict(bias=np.zeros((2, 1, 64, 96), np.float16)),
    "padding": dict(padding=True),
    "dropout": dict(dropout=0.1),
    "dropout_rng_dump": dict(dropout=0.25, rng_dump=True),
    "causal_dropout_bias": dict(causal="top_left", dropout=0.1, bias=np.zeros((1, 1, 64, 96), np.float16)),
}


@needs_frontend
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_graph_builds_and_validates_on_cpu(case, head_dim, backward):
    import cudnn

    q, k, v = _arrays(d=head_dim)
    key = key_for(q, k, v, backward=backward, **GRAPH_CASES[case])
    graph = cudnn_sdpa.build_graph(key)
    (node,) = graph.nodes
    assert node.name == ("sdpa_backward" if backward else "sdpa")
    assert node.params["attn_scale"] == pytest.approx(1 / np.sqrt(head_dim))
    if key.causal != "none":
        want = cudnn.diagonal_alignment.TOP_LEFT if key.causal == "top_left" else cudnn.diagonal_alignment.BOTTOM_RIGHT
        assert node.params["diagonal_alignment"] == want and node.params["diagonal_band_right_bound"] == 0
    else:
        assert "diagonal_alignment" not in node.params
    # Every buffer the variant pack names has the uid, shape and strides of the array it will point at.
    inputs = {name: t for name, t in node.inputs.items() if t is not None and hasattr(t, "uid")}
    for name, array in (("q", q), ("k", k), ("v", v)):
        t = inputs[name]
        assert t.uid == cudnn_sdpa.UID[name]
        assert list(t.dim) == list(array.shape) and list(t.stride) == [s // array.itemsize for s in array.strides]
    outputs = {name: t for name, t in node.outputs.items() if t is not None}
    if backward:
        assert {outputs[n].uid for n in ("dQ", "dK", "dV")} == {cudnn_sdpa.UID[n] for n in ("dQ", "dK", "dV")}
        assert list(outputs["dK"].dim) == list(k.shape)
    else:
        assert outputs["O"].uid == cudnn_sdpa.UID["o"] and list(outputs["O"].dim) == [2, 4, 64, head_dim]
        assert outputs["Stats"].uid == cudnn_sdpa.UID["stats"] and list(outputs["Stats"].dim) == [2, 4, 64, 1]
        assert outputs["Stats"].data_type == cudnn.data_type.FLOAT
    if key.bias_shape is not None:
        assert inputs["bias"].uid == cudnn_sdpa.UID["bias"] and tuple(inputs["bias"].dim) == key.bias_shape
    if key.dropout:
        prob = node.params.get("dropout", node.params.get("_dropout_probability"))
        assert prob is None or prob == pytest.approx(key.dropout) or prob[0] == pytest.approx(key.dropout)


@needs_frontend
def test_bf16_and_bshd_strides_build():
    # A (B, T, H, D) buffer seen as (B, H, T, D): the graph takes the strides as they are.
    base = np.zeros((2, 64, 4, 64), np.uint16)
    q = base.transpose(0, 2, 1, 3)
    key = key_for(q, q, q, dtype="bfloat16", causal="top_left")
    assert key.q_stride == (64 * 4 * 64, 64, 4 * 64, 1)
    (node,) = cudnn_sdpa.build_graph(key).nodes
    assert list(node.inputs["q"].stride) == list(key.q_stride)


@needs_frontend
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(head_dim=60), "multiple of 8"),
        (dict(causal="bottom_right", dropout=0.1), "Bottom right causal"),
        (dict(causal="bottom_right", tq=128, tk=64), "s_q"),
    ],
)
def test_graphs_cudnn_cannot_run_are_rejected(kwargs, message):
    import cudnn

    d = kwargs.pop("head_dim", 64)
    tq, tk = kwargs.pop("tq", 64), kwargs.pop("tk", 96)
    q, k, v = _arrays(tq=tq, tk=tk, d=d)
    with pytest.raises((cudnn.cudnnGraphNotSupportedError, ValueError), match=message):
        cudnn_sdpa.build_graph(key_for(q, k, v, **kwargs))


# --- reasons -----------------------------------------------------------------------------------------------------


def _reasons(**kw):
    args = dict(dtype="float16", head_dim=64, seq_q=128, seq_k=128, compute_capability=90, check_library=False)
    args.update(kw)
    return reasons(**args)


def test_a_supported_call_has_no_reason():
    assert _reasons() == []
    assert _reasons(dtype="bfloat16", head_dim=128, causal="bottom_right", compute_capability=80) == []
    assert _reasons(head_dim=256, backward=False, compute_capability=80) == []


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(dtype="float32"), "float32 inputs"),
        (dict(head_dim=72, value_dim=36), "head dim 36 is not a multiple of 8"),
        (dict(head_dim=264), "over 256"),
        (dict(head_dim=192, compute_capability=86), "backward with head dim 192 on sm_86"),
        (dict(compute_capability=75), "GPU too old: sm_75"),
        (dict(compute_capability=None), "no CUDA GPU"),
        (dict(causal="bottom_right", dropout=0.1), "bottom-right causal masking together with"),
        (dict(causal="bottom_right", mask_shape=(1, 1, 128, 128)), "bottom-right causal masking together with"),
        (dict(causal="bottom_right", seq_q=256), "Tq <= Tk"),
        (dict(mask_shape=(128, 128)), "4 dims"),
        (dict(last_stride_one=False), "last stride 1"),
        (dict(seq_q=1, seq_k=1), "Tq = Tk = 1"),
        (dict(causal="diagonal"), "unknown causal kind"),
    ],
)
def test_reasons_name_the_problem(kwargs, fragment):
    got = _reasons(**kwargs)
    assert any(fragment in r for r in got), got


def test_hopper_backward_takes_head_dim_256():
    assert _reasons(head_dim=256, compute_capability=90) == []


def test_a_missing_library_is_a_reason(monkeypatch):
    monkeypatch.setattr(cudnn_sdpa, "library_missing", lambda: "no cuDNN library found (test)")
    assert "no cuDNN library found (test)" in reasons(dtype="float16", head_dim=64, compute_capability=90)


@needs_frontend
def test_library_check_answers_here():
    # On a CPU machine without nvidia-cudnn-cu12/cu13 this names the missing library; with it, None.
    answer = cudnn_sdpa.library_missing()
    assert answer is None or "no cuDNN library found" in answer


# --- masks and the plan cache ------------------------------------------------------------------------------------


def test_bias_from_mask_matches_the_contract():
    rng = np.random.default_rng(0)
    forbid = rng.random((2, 1, 1, 5)) < 0.5  # a key-padding mask: broadcast over Tq, expanded
    bias = bias_from_mask(forbid, np.float16, (2, 3, 4, 5), -3.0e4)
    assert bias.shape == (2, 1, 4, 5) and bias.dtype == np.float16 and bias.flags.c_contiguous
    np.testing.assert_array_equal(bias, np.broadcast_to(np.where(forbid, -3.0e4, 0.0), (2, 1, 4, 5)).astype(np.float16))
    additive = rng.random((4, 5)).astype(np.float32)
    bias = bias_from_mask(additive, np.float32, (2, 3, 4, 5), -1.0e9)
    assert bias.shape == (1, 1, 4, 5)
    np.testing.assert_allclose(bias[0, 0], additive * -1.0e9, rtol=1e-6)


def test_plan_cache_is_bounded_lru():
    built = []
    plans = _Plans(3, lambda key: built.append(key) or f"plan-{key.seq_q}")
    keys = [key_for(*_arrays(tq=t)) for t in (8, 16, 24, 32)]
    for key in keys[:3]:
        assert plans.get(key) == f"plan-{key.seq_q}"
    assert plans.get(keys[0]) == "plan-8" and plans.builds == 3  # a hit builds nothing
    plans.get(keys[3])  # evicts the least recently used: 16
    assert plans.builds == 4 and list(plans.items) == [keys[2], keys[0], keys[3]]
    plans.get(keys[1])
    assert plans.builds == 5 and len(plans.items) == 3


def test_keys_tell_apart_what_changes_a_plan():
    q, k, v = _arrays()
    base = key_for(q, k, v)
    assert key_for(q, k, v) == base
    variants = [
        key_for(q, k, v, causal="top_left"),
        key_for(q, k, v, dropout=0.1),
        key_for(q, k, v, backward=True),
        key_for(q, k, v, dtype="bfloat16"),
        key_for(q, k, v, scale=0.5),
        key_for(q, k, v, padding=True),
        key_for(q, k, v, bias=np.zeros((1, 1, 64, 96), np.float16)),
        key_for(q.transpose(0, 2, 1, 3).copy().transpose(0, 2, 1, 3), k, v),  # same shape, BSHD strides
    ]
    assert all(isinstance(x, SdpaKey) and x != base for x in variants)
    assert len(set(variants)) == len(variants)


def test_cudnn_sdpa_cache_size_is_configurable():
    assert CudnnSdpa(cache_size=5).plans.capacity == 5
