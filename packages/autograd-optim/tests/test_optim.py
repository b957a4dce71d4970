"""Optimizers, schedules, clipping and resumable state (core and optim only: no autograd.nn)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from autograd import backend
from autograd.backend import xp
from autograd.optim import SGD, Adam, CosineScheduler, LRScheduler, Optimizer, OptimizerStateError
from autograd.tensor import Tensor


def to_np(x):
    # Only a Tensor is unwrapped: a raw CuPy array's .data is its MemoryPointer.
    data = x.data if isinstance(x, Tensor) else x
    return np.asarray(backend.to_numpy(data), dtype=np.float64)


def make_params(dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layer.weight": Tensor(backend.asarray(rng.normal(size=(3, 2))).astype(backend.dtype(dtype))),
        "layer.bias": Tensor(backend.asarray(rng.normal(size=(2,))).astype(backend.dtype(dtype))),
    }


def loss_of(params, step):
    # A fixed, step-dependent quadratic so every trajectory sees the same gradients.
    target = np.sin(np.arange(6).reshape(3, 2) + step)
    w, b = params["layer.weight"], params["layer.bias"]
    t = Tensor(backend.asarray(target).astype(w.dtype), requires_grad=False)
    return ((w - t) ** 2).sum() + (b * b).sum() * 0.5 + (w * w * w).sum() * 0.1


def run(opt, params, steps, start=0, clip=None):
    for s in range(start, start + steps):
        opt.zero_grad()
        loss_of(params, s).backward()
        if clip:
            opt.clip_grad_norm(clip)
        opt.step()


class FakeModel:
    """What the optimizer needs from a model: a parameters() call returning a dict."""

    def __init__(self, params):
        self._p = params

    def parameters(self):
        return self._p


def test_documented_usage_example_trains():
    params = make_params()
    model = FakeModel(params)
    optimizer = Optimizer(
        model.parameters(),
        lr=0.01,
        lr_scheduler_kwargs={
            "lr_scheduler_cls": CosineScheduler,
            "warmup_steps": 100,
            "lr_decay_iters": 5000,
            "min_lr": 1e-4,
        },
    )
    first = None
    for _ in range(150):
        optimizer.zero_grad()
        loss = loss_of(params, 0)
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    assert loss.item() < first and optimizer.timestep == 150
    assert math.isclose(optimizer.lr, CosineScheduler(100, 5000, 1e-4, lr=0.01)(149))


def test_accepts_iterables_and_skips_params_without_grad():
    a, b = Tensor([1.0, 2.0]), Tensor([3.0])
    opt = SGD([a, b], lr=0.5)
    (a * a).sum().backward()
    opt.step()
    assert to_np(a).tolist() == [0.0, 0.0] and to_np(b).tolist() == [3.0]
    opt2 = SGD([("x", a)], lr=0.1)
    assert set(opt2.gradient_arrays()) == {"x"}


def test_cosine_schedule_values():
    s = CosineScheduler(warmup_steps=10, lr_decay_iters=110, min_lr=0.1, lr=1.0)
    assert isinstance(s, LRScheduler)
    assert math.isclose(s(0), 0.1) and math.isclose(s(4), 0.5) and math.isclose(s(9), 1.0)
    assert math.isclose(s(10), 1.0)
    assert math.isclose(s(60), 0.1 + 0.9 * 0.5)  # half way through the decay
    assert math.isclose(s(110), 0.1) and s(111) == 0.1 and s(10_000) == 0.1
    with pytest.raises(ValueError, match="warmup_steps < lr_decay_iters"):
        CosineScheduler(warmup_steps=10, lr_decay_iters=10)
    with pytest.raises(ValueError, match="min_lr <= lr"):
        CosineScheduler(min_lr=2.0, lr=1.0)


def test_bad_learning_rates_and_arguments():
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate must be finite and >= 0"):
            SGD(make_params(), lr=bad)
    with pytest.raises(TypeError, match="unexpected arguments \\['momentun'\\]"):
        SGD(make_params(), lr=0.1, momentun=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(make_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta1"):
        Adam(make_params(), lr=0.1, beta1=1.0)

    class Negative(LRScheduler):
        def __call__(self, step):
            return -1.0

    opt = SGD(make_params(), lr=0.1, lr_scheduler_kwargs={"lr_scheduler_cls": Negative})
    with pytest.raises(ValueError, match="Negative: learning rate must be finite and >= 0, got -1.0"):
        opt.step()


def test_clip_grad_norm_and_helpers():
    params = make_params("float64")
    opt = SGD(params, lr=0.1)
    loss_of(params, 0).backward()
    grads = {k: to_np(v) for k, v in opt.gradient_arrays().items()}
    l2 = math.sqrt(sum((g**2).sum() for g in grads.values()))
    assert math.isclose(opt.grad_l2_norm(), l2, rel_tol=1e-12)
    before = opt.clip_grad_norm(l2 / 4)
    assert math.isclose(before, l2, rel_tol=1e-12)
    assert math.isclose(opt.grad_l2_norm(), l2 / 4, rel_tol=1e-5)
    assert math.isclose(opt.clip_grad_norm(1e9), l2 / 4, rel_tol=1e-5)  # no-op above the norm
    opt.scale_gradients(2.0)
    assert math.isclose(opt.grad_l2_norm(), l2 / 2, rel_tol=1e-5)
    inf_norm = opt.clip_grad_norm(1e9, norm_type=float("inf"))
    assert math.isclose(inf_norm, max(np.abs(g).max() for g in grads.values()) / 2, rel_tol=1e-5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm must be > 0"):
            opt.clip_grad_norm(bad)
    opt.zero_grad()
    assert opt.gradient_arrays() == {} and opt.grad_l2_norm() == 0.0


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p: Adam(
            p,
            lr=0.01,
            weight_decay=0.1,
            lr_scheduler_kwargs={
                "lr_scheduler_cls": CosineScheduler,
                "warmup_steps": 3,
                "lr_decay_iters": 30,
                "min_lr": 1e-3,
            },
        ),
    ],
    ids=["sgd", "adamw"],
)
def test_resume_is_bit_identical(make, tmp_path):
    ref_params = make_params()
    ref = make(ref_params)
    run(ref, ref_params, 25, clip=1.0)

    params = make_params()
    opt = make(params)
    run(opt, params, 10, clip=1.0)
    saved_sd = opt.state_dict()
    opt.save(tmp_path / "opt.safetensors")
    weights = {k: backend.copy(v.data) for k, v in params.items()}

    for how in ("state_dict", "file"):
        resumed_params = {k: Tensor(backend.copy(w)) for k, w in weights.items()}
        resumed = make(resumed_params)
        if how == "state_dict":
            resumed.load_state_dict(saved_sd)
        else:
            resumed.load(tmp_path / "opt.safetensors")
        assert resumed.timestep == 10
        run(resumed, resumed_params, 15, start=10, clip=1.0)
        for k in ref_params:
            assert np.array_equal(to_np(resumed_params[k]), to_np(ref_params[k])), (how, k)


def test_state_dict_shape_and_errors(tmp_path):
    params = make_params()
    opt = Adam(params, lr=0.01)
    run(opt, params, 2)
    sd = opt.state_dict()
    assert set(sd) == {"hyperparams", "parameters", "states"}
    assert sd["parameters"] == list(params)
    assert (
        sd["hyperparams"]["lr"] == 0.01 and sd["hyperparams"]["beta1"] == 0.9 and sd["hyperparams"]["epsilon"] == 1e-7
    )
    assert set(sd["states"]["layer.weight"]) == {"m", "v", "step"} and sd["states"]["layer.weight"]["step"] == 2
    bad = opt.state_dict()
    bad["states"]["other.weight"] = bad["states"].pop("layer.weight")
    with pytest.raises(OptimizerStateError, match="unknown parameters: \\['other.weight'\\]"):
        Adam(make_params(), lr=0.01).load_state_dict(bad)
    bad = opt.state_dict()
    bad["states"]["layer.bias"]["m"] = np.zeros(5)
    with pytest.raises(OptimizerStateError, match=r"layer.bias.m: shape \(5,\) != parameter shape \(2,\)"):
        Adam(make_params(), lr=0.01).load_state_dict(bad)
    with pytest.raises(OptimizerStateError, match="unknown hyperparameters for SGD"):
        SGD(make_params(), lr=0.01).load_state_dict(opt.state_dict())
    opt.save(tmp_path / "adam.safetensors")
    with pytest.raises(OptimizerStateError, match="holds Adam state, not SGD state"):
        SGD(make_params(), lr=0.01).load(tmp_path / "adam.safetensors")


def test_low_precision_parameters_keep_float32_state():
    dt = "bfloat16" if backend.BACKEND == "mlx" else "float16"
    params = make_params(dt)
    opt = Adam(params, lr=0.01)
    run(opt, params, 3)
    st = opt.state_dict()["states"]["layer.weight"]
    assert st["m"].dtype == backend.dtype("float32") and st["v"].dtype == backend.dtype("float32")
    assert params["layer.weight"].dtype == backend.dtype(dt)
    sgd_params = make_params(dt)
    sgd = SGD(sgd_params, lr=0.01, momentum=0.9)
    run(sgd, sgd_params, 2)
    assert sgd.state_dict()["states"]["layer.bias"]["momentum_buffer"].dtype == backend.dtype("float32")


# --- loading validates everything first, then applies --------------------------------------------------------


def _trained_adam(tmp_path=None):
    params = make_params()
    opt = Adam(params, lr=0.01, weight_decay=0.01)
    run(opt, params, 2)
    return params, opt


def _snapshot(opt):
    sd = opt.state_dict()
    return sd["hyperparams"], {
        n: {k: to_np(v) if backend.is_array(v) else v for k, v in s.items()} for n, s in sd["states"].items()
    }


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda sd: sd["hyperparams"].update(beta1=1.0), r"beta1 must be in \[0, 1\), got 1.0"),
        (lambda sd: sd["hyperparams"].update(beta2=-0.5), r"beta2 must be in \[0, 1\)"),
        (lambda sd: sd["hyperparams"].update(epsilon=-1e-8), "epsilon must be > 0"),
        (lambda sd: sd["hyperparams"].update(lr=-0.1), "learning rate must be finite and >= 0"),
        (lambda sd: sd["hyperparams"].update(lr=float("nan")), "learning rate must be finite and >= 0"),
        (lambda sd: sd["hyperparams"].update(timestep=-3), "timestep must be >= 0"),
        (lambda sd: sd["hyperparams"].update(weight_decay="big"), "weight_decay must be a number"),
        (lambda sd: sd["hyperparams"].pop("beta2"), r"missing hyperparameters: \['beta2'\]"),
        (lambda sd: sd["states"]["layer.weight"].update(step=-1), r"layer.weight.step: a step count must be >= 1"),
        (lambda sd: sd["states"]["layer.weight"].update(v=-np.ones((3, 2))), "negative values"),
        (lambda sd: sd["states"]["layer.weight"].update(m=np.full((3, 2), np.inf)), "non-finite"),
        (lambda sd: sd["states"]["layer.weight"].update(m=np.ones((3, 2), np.int32)), "changes the kind"),
        (lambda sd: sd["states"]["layer.weight"].update(velocity=np.ones((3, 2))), "unknown state slot"),
    ],
)
def test_an_invalid_state_is_refused_and_changes_nothing(edit, match):
    _, source = _trained_adam()
    sd = source.state_dict()
    edit(sd)
    params, target = _trained_adam()
    target.zero_grad()
    before = _snapshot(target)
    with pytest.raises(OptimizerStateError, match=match):
        target.load_state_dict(sd)
    after = _snapshot(target)
    assert before[0] == after[0]
    for name in before[1]:
        for slot, value in before[1][name].items():
            assert np.array_equal(value, after[1][name][slot]), (name, slot)


def test_missing_keys_get_the_library_error():
    _, opt = _trained_adam()
    for key in ("hyperparams", "parameters", "states"):
        sd = opt.state_dict()
        del sd[key]
        with pytest.raises(OptimizerStateError, match=f"missing keys \\['{key}'\\]"):
            opt.load_state_dict(sd)
    with pytest.raises(OptimizerStateError, match="expected a dict"):
        opt.load_state_dict([1, 2])


def test_partial_state_needs_strict_false():
    params, opt = _trained_adam()
    sd = opt.state_dict()
    sd["parameters"].remove("layer.bias")
    del sd["states"]["layer.bias"]
    fresh_params = make_params()
    fresh = Adam(fresh_params, lr=0.5)
    with pytest.raises(
        OptimizerStateError, match=r"covers only some parameters; missing \['layer.bias'\].*strict=False"
    ):
        fresh.load_state_dict(sd)
    assert fresh.lr == 0.5 and fresh.state_dict()["states"] == {}
    fresh.load_state_dict(sd, strict=False)
    assert fresh.lr == 0.01 and set(fresh.state_dict()["states"]) == {"layer.weight"}


def test_a_parameter_that_never_had_a_gradient_is_still_covered(tmp_path):
    params = make_params()
    frozen = {"layer.weight": params["layer.weight"], "extra": Tensor(xp.ones(3))}
    opt = Adam(frozen, lr=0.01)
    loss_of(params, 0).backward()
    opt.step()  # "extra" has no gradient: no state, but the saved state still covers it
    opt.save(tmp_path / "o.safetensors")
    again = Adam({"layer.weight": Tensor(xp.ones((3, 2))), "extra": Tensor(xp.ones(3))}, lr=0.01)
    again.load(tmp_path / "o.safetensors")
    assert again.timestep == 1


def test_load_reports_bad_files_with_the_path(tmp_path):
    import json

    from safetensors.numpy import save_file

    _, opt = _trained_adam()
    with pytest.raises(IsADirectoryError) as info:
        opt.load(tmp_path)
    assert info.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError):
        opt.load(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(OptimizerStateError, match="junk.safetensors is not a readable safetensors file"):
        opt.load(junk)
    meta = {
        "format": "autograd-optim",
        "optimizer": "Adam",
        "hyperparams": "{not json",
        "parameters": "[]",
        "scalars": "{}",
    }
    save_file({"x::m": np.zeros(1, np.float32)}, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(OptimizerStateError, match="'hyperparams' is not valid JSON"):
        opt.load(tmp_path / "bad.safetensors")
    del meta["parameters"]
    meta["hyperparams"] = json.dumps(opt.state_dict()["hyperparams"])
    save_file({"x::m": np.zeros(1, np.float32)}, str(tmp_path / "bad2.safetensors"), metadata=meta)
    with pytest.raises(OptimizerStateError, match="no 'parameters' entry"):
        opt.load(tmp_path / "bad2.safetensors")


def test_mlx_step_evaluates_parameters_and_state(monkeypatch):
    params = make_params()
    opt = Adam(params, lr=0.01)
    evaluated = []
    monkeypatch.setattr(backend, "materialize", lambda *arrays: evaluated.append(len(arrays)))
    loss_of(params, 0).backward()
    opt.step()
    # every parameter and each of its array slots (m and v) is handed to the evaluation, once per step
    assert evaluated == [len(params) * 3]


@pytest.mark.skipif(backend.BACKEND != "mlx", reason="MLX's lazy graphs only")
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set size from /proc")
def test_mlx_memory_stays_flat_when_nothing_is_read():
    import gc

    def rss() -> int:
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    params = {"w": Tensor(backend.normal((64, 64)))}
    opt = Adam(params, lr=1e-3)
    x = backend.normal((16, 64))

    def step():
        opt.zero_grad()
        ((Tensor(x, requires_grad=False) @ params["w"]) ** 2).sum().backward()
        opt.step()

    for _ in range(50):
        step()
    start = rss()
    for _ in range(500):  # never reads a value: only the optimizer's evaluation bounds the lazy graph
        step()
    grown = rss() - start
    assert grown < 2 * 2**20, f"500 steps grew the process by {grown / 2**20:.1f} MiB"
