"""float32 master weights for low-precision parameters, and dynamic loss scaling."""

from __future__ import annotations

import numpy as np
import pytest

from autograd import backend
from autograd.optim import SGD, Adam, LossScaler, OptimizerStateError
from autograd.tensor import Tensor


def to_np(x):
    # Only a Tensor is unwrapped: a raw CuPy array's .data is its MemoryPointer.
    data = x.data if isinstance(x, Tensor) else x
    return np.asarray(backend.to_numpy(data), dtype=np.float64)


def _low():
    for name in ("bfloat16", "float16"):
        try:
            backend.dtype(name)
            return name
        except TypeError:
            continue
    pytest.skip("no low-precision dtype on this backend")


def _param(values, dtype):
    return Tensor(backend.asarray(np.asarray(values, np.float32)).astype(backend.dtype(dtype)))


def _set_grad(p, values):
    p.grad = backend.asarray(np.asarray(values, np.float32)).astype(p.dtype)


def test_tiny_updates_accumulate_in_the_master_and_track_a_float32_run():
    low = _low()
    start = np.array([1.0, -2.0, 3.0, 0.5], np.float32)
    # lr * grad = 1e-4 of each parameter's magnitude: far below bfloat16's resolution (2**-8 relative).
    # The gradient values are themselves low-precision numbers, so both runs see exactly the same ones.
    grad = to_np(_param(1e-4 * start / 1e-2, low)).astype(np.float32)
    p_low, p32 = _param(start, low), _param(start, "float32")
    opt_low, opt32 = SGD({"w": p_low}, lr=1e-2), SGD({"w": p32}, lr=1e-2)
    for _ in range(300):
        for p, opt in ((p_low, opt_low), (p32, opt32)):
            _set_grad(p, grad)
            opt.step()
    moved = to_np(p_low)
    assert np.all(np.abs(moved) < np.abs(start))  # each update alone rounds away; the master keeps them
    rounded32 = to_np(_param(to_np(p32), low))
    assert np.array_equal(moved, rounded32)  # the float32 run, rounded once: bfloat16 resolution
    master = opt_low.state_dict()["states"]["w"]["master"]
    assert master.dtype == backend.dtype("float32")
    assert np.array_equal(to_np(master), to_np(p32))  # the same float32 arithmetic


def test_without_a_master_the_same_updates_would_be_lost():
    low = _low()
    assert to_np(_param([1.0 - 1e-4], low))[0] == 1.0  # what writing each update into the parameter would do


def test_adam_masters_are_saved_and_resume_bit_identically(tmp_path):
    low = _low()
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 2)).astype(np.float32) * 0.1 for _ in range(12)]

    def run(opt, p, steps):
        for g in steps:
            _set_grad(p, g)
            opt.step()

    ref_p = _param(np.ones((3, 2)), low)
    ref = Adam({"w": ref_p}, lr=1e-3)
    run(ref, ref_p, grads)
    p = _param(np.ones((3, 2)), low)
    opt = Adam({"w": p}, lr=1e-3)
    run(opt, p, grads[:5])
    opt.save(tmp_path / "opt.safetensors")
    saved = backend.copy(p.data)
    for how in ("file", "state_dict"):
        p2 = Tensor(backend.copy(saved))
        opt2 = Adam({"w": p2}, lr=1e-3)
        if how == "file":
            opt2.load(tmp_path / "opt.safetensors")
        else:
            opt2.load_state_dict(opt.state_dict())
        run(opt2, p2, grads[5:])
        assert np.array_equal(to_np(p2), to_np(ref_p)), how
        assert np.array_equal(
            to_np(opt2.state_dict()["states"]["w"]["master"]), to_np(ref.state_dict()["states"]["w"]["master"])
        )


def test_a_parameter_assigned_from_elsewhere_gets_a_new_master():
    low = _low()
    p = _param([1.0, 2.0], low)
    opt = SGD({"w": p}, lr=0.1)
    _set_grad(p, [1.0, 1.0])
    opt.step()
    p.data = backend.asarray(np.array([5.0, 6.0], np.float32)).astype(backend.dtype(low))  # e.g. loaded weights
    _set_grad(p, [0.0, 0.0])
    opt.step()
    assert to_np(p).tolist() == [5.0, 6.0]


# --- loss scaling ---------------------------------------------------------------------------------------------


def _scaled_setup(**kw):
    p = _param([1.0, 2.0], "float32")
    scaler = LossScaler(init_scale=1024.0, growth_interval=3, **kw)
    return p, scaler, SGD({"w": p}, lr=0.5, loss_scaler=scaler)


def test_scaled_losses_unscale_before_the_update_and_clipping():
    p, scaler, opt = _scaled_setup()
    loss = (p * p).sum()
    scaled = opt.scale_loss(loss)
    assert to_np(scaled).item() == pytest.approx(1024.0 * 5.0)
    scaled.backward()
    assert to_np(p.grad).tolist() == [2048.0, 4096.0]
    norm = opt.clip_grad_norm(100.0)
    assert float(norm) == pytest.approx(np.hypot(2.0, 4.0))  # the unscaled norm: nothing was clipped
    opt.step()
    assert to_np(p).tolist() == [0.0, 0.0] and not opt.last_step_skipped and opt.timestep == 1


def test_an_overflowing_step_is_skipped_and_the_scale_halves():
    p, scaler, opt = _scaled_setup()
    _set_grad(p, [np.inf, 1.0])
    opt.step()
    assert opt.last_step_skipped and opt.timestep == 0 and to_np(p).tolist() == [1.0, 2.0]
    assert scaler.scale == 512.0 and scaler.growth_tracker == 0
    _set_grad(p, [np.nan, 0.0])
    opt.step()
    assert opt.last_step_skipped and scaler.scale == 256.0


def test_the_scale_grows_after_the_interval_of_clean_steps():
    p, scaler, opt = _scaled_setup()
    for i in range(1, 7):
        _set_grad(p, [0.0, 0.0])
        opt.step()
        assert scaler.scale == (1024.0 if i < 3 else 2048.0 if i < 6 else 4096.0)
    assert scaler.growth_tracker == 0


def test_scaler_state_survives_save_and_resume(tmp_path):
    p, scaler, opt = _scaled_setup()
    _set_grad(p, [np.inf, 0.0])
    opt.step()
    _set_grad(p, [0.0, 0.0])
    opt.step()
    opt.save(tmp_path / "o.safetensors")
    for how in ("file", "state_dict"):
        p2 = _param([1.0, 2.0], "float32")
        fresh = SGD({"w": p2}, lr=0.5, loss_scaler=LossScaler())
        fresh.load(tmp_path / "o.safetensors") if how == "file" else fresh.load_state_dict(opt.state_dict())
        assert fresh.loss_scaler.state_dict() == scaler.state_dict(), how
    with pytest.raises(OptimizerStateError, match="has no loss scaler"):
        SGD({"w": _param([1.0, 2.0], "float32")}, lr=0.5).load_state_dict(opt.state_dict())
    bad = opt.state_dict()
    bad["loss_scaler"]["scale"] = -1.0
    with pytest.raises(OptimizerStateError, match="scale must be > 0"):
        SGD({"w": _param([1.0, 2.0], "float32")}, lr=0.5, loss_scaler=LossScaler()).load_state_dict(bad)


def test_scaler_arguments_are_checked():
    for kw, match in [
        ({"init_scale": 0.0}, "scale must be > 0"),
        ({"growth_factor": 1.0}, "growth_factor must be > 1"),
        ({"backoff_factor": 1.5}, r"backoff_factor must be in \(0, 1\)"),
        ({"growth_interval": 0}, "growth_interval must be >= 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            LossScaler(**kw)
    with pytest.raises(TypeError, match="loss_scaler must be a LossScaler"):
        SGD({"w": _param([1.0], "float32")}, lr=0.1, loss_scaler=2.0)


def test_float16_gradients_that_underflow_without_scaling_survive_with_it():
    try:
        f16 = backend.dtype("float16")
    except TypeError:
        pytest.skip("no float16 on this backend")
    a = Tensor(backend.asarray(np.array([1e-4], np.float32)).astype(f16), requires_grad=False)

    def loss_of(p):
        # d loss / d p = 1e-8, below float16's smallest subnormal (6e-8); the loss itself in float32, as losses are
        return ((p * a) * a).astype("float32").sum()

    plain = _param([1.0], "float16")
    loss_of(plain).backward()
    assert to_np(plain.grad)[0] == 0.0  # lost without scaling
    p = _param([2.0**-10], "float16")  # small enough that float32 can hold the master minus 1e-8
    opt = SGD({"w": p}, lr=1.0, loss_scaler=LossScaler(init_scale=2.0**10))
    opt.scale_loss(loss_of(p)).backward()
    assert to_np(p.grad)[0] != 0.0
    assert opt.grad_l2_norm() == pytest.approx(to_np(a)[0] ** 2, rel=1e-2)  # unscaled, in float32
    opt.step()
    master = to_np(opt.state_dict()["states"]["w"]["master"])[0]
    assert master == pytest.approx(2.0**-10 - to_np(a)[0] ** 2, abs=2e-10) and master != 2.0**-10
