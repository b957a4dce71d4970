"""Module registration, modes, state dicts and safetensors files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from nn_helpers import T, to_np

from autograd import backend, nn
from autograd.backend import xp
from autograd.tensor import Tensor


class Block(nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.fc = nn.Linear(n_in, 4)
        self.bn = nn.BatchNorm(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.bn(self.fc(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(3), Block(4)])
        self.head = nn.Linear(4, 2)
        self.scale = Tensor([1.5])
        self.counter = backend.asarray(np.array([0], dtype=np.int32))

    def forward(self, x):
        h = x
        for b in self.blocks:
            h = b(h)
        return self.head(h) * self.scale


def test_documented_module_examples():
    class MyModule(nn.Module):
        def forward(self, x):
            return x * 2

    assert to_np(MyModule()(Tensor(xp.array([1, 2, 3])))).tolist() == [2, 4, 6]

    class PlusOne(nn.Module):
        def forward(self, x):
            return x + 1

    ml = nn.ModuleList([PlusOne(), PlusOne()])
    assert [to_np(m.forward(Tensor(xp.array([1])))).tolist() for m in ml] == [[2], [2]]
    ml.append(PlusOne())
    assert len(ml) == 3


def test_registration_and_flat_names():
    net = Net()
    params = net.parameters
    assert set(params) == {
        "blocks.0.fc.weight",
        "blocks.0.fc.bias",
        "blocks.0.bn.weight",
        "blocks.0.bn.bias",
        "blocks.1.fc.weight",
        "blocks.1.fc.bias",
        "blocks.1.bn.weight",
        "blocks.1.bn.bias",
        "head.weight",
        "head.bias",
        "scale",
    }
    assert net.parameters() == params  # the PyTorch spelling works too
    assert set(net.states) == {
        "counter",
        "blocks.0.bn.running_mean",
        "blocks.0.bn.running_var",
        "blocks.1.bn.running_mean",
        "blocks.1.bn.running_var",
    }
    assert net.num_parameters() == (3 * 4 + 4 + 8) + (4 * 4 + 4 + 8) + (4 * 2 + 2) + 1
    net.head = nn.Linear(4, 5)  # reassignment replaces
    assert params["head.weight"] is not net.parameters["head.weight"]
    del net.scale
    assert "scale" not in net.parameters


def test_train_eval_propagate_and_apply():
    net = Net()
    assert all(m.is_training for _, m in net.named_modules())
    net.eval()
    assert not any(m.is_training for _, m in net.named_modules())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3
    net.train()
    assert net.blocks[1].drop.training


def test_zero_grad():
    net = Net()
    net.eval()
    net(T(np.ones((2, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters.values())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters.values())


def test_state_dict_round_trip_in_place():
    a, b = Net(), Net()
    a.train()
    a(T(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)))  # moves running stats
    weight_tensor = b.parameters["head.weight"]
    b.load_state_dict(a.state_dict())
    assert b.parameters["head.weight"] is weight_tensor  # same Tensor object
    for name, p in a.parameters.items():
        assert np.array_equal(to_np(p), to_np(b.parameters[name]))
    for name, s in a.states.items():
        assert np.array_equal(to_np(s), to_np(b.states[name]))
    assert set(a.state_dict()) == {"parameters", "states"}
    sd = a.state_dict()
    sd["parameters"]["head.bias"][...] = 7 if backend.BACKEND != "mlx" else 0  # copies: the module is untouched
    assert not np.any(to_np(a.parameters["head.bias"]) == 7)


def test_strict_load_lists_every_problem():
    net = Net()
    sd = net.state_dict()
    del sd["parameters"]["head.bias"]
    sd["parameters"]["extra.weight"] = np.zeros(3)
    sd["parameters"]["head.weight"] = np.zeros((5, 2))
    sd["states"]["bogus"] = np.zeros(1)
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert "missing keys: ['head.bias']" in msg
    assert "'extra.weight'" in msg and "'bogus'" in msg
    assert "head.weight: expected (4, 2), got (5, 2)" in msg
    del sd["parameters"]["head.weight"]
    net.load_state_dict(sd, strict=False)  # missing/unexpected tolerated, the rest loaded
    sd["parameters"]["head.weight"] = np.zeros((5, 2))
    with pytest.raises(nn.StateDictError, match="shape mismatches"):
        net.load_state_dict(sd, strict=False)


def test_safetensors_round_trip_and_interop(tmp_path):
    from safetensors.numpy import load_file, save_file

    a, b = Net(), Net()
    a(T(np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)))
    path = tmp_path / "w.safetensors"
    a.save_weights(path)
    raw = load_file(str(path))
    assert set(raw) == set(a.parameters) | set(a.states)
    assert raw["blocks.0.bn.running_mean"].shape == (4,)
    b.load_weights(path)
    for name, p in a.parameters.items():
        assert np.array_equal(to_np(p), to_np(b.parameters[name]))
    for name, s in a.states.items():
        assert np.array_equal(to_np(s), to_np(b.states[name]))
    # a file written by another framework with the same dotted names loads too
    other = {k: np.full(v.shape, 0.5, dtype=np.float32) for k, v in raw.items() if k != "counter"}
    other["counter"] = np.array([3], dtype=np.int32)
    save_file(other, str(tmp_path / "other.safetensors"))
    b.load_weights(tmp_path / "other.safetensors")
    assert to_np(b.parameters["head.weight"]).tolist() == [[0.5, 0.5]] * 4


def test_load_weights_mismatch_lists_keys(tmp_path):
    path = tmp_path / "w.safetensors"
    nn.Linear(3, 4).save_weights(path)
    with pytest.raises(nn.StateDictError, match=r"weight: expected \(3, 5\), got \(3, 4\)"):
        nn.Linear(3, 5).load_weights(path)
    with pytest.raises(nn.StateDictError, match="missing keys.*'head.bias'"):
        Net().load_weights(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    import safetensors.numpy

    path = tmp_path / "w.safetensors"
    first = nn.Linear(2, 2)
    first.save_weights(path)
    before = path.read_bytes()

    def crash(tensors, metadata=None):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(safetensors.numpy, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        nn.Linear(2, 2).save_weights(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_astype_casts_parameters_and_states():
    net = Net().astype("float64")
    assert all(p.dtype == backend.dtype("float64") for p in net.parameters.values())
    assert net.states["blocks.0.bn.running_mean"].dtype == backend.dtype("float64")
    assert net.states["counter"].dtype == backend.dtype("int32")


# --- loading weights: dtypes, paths, atomicity ------------------------------------------------------------------


def _file_with(tmp_path, name, **arrays):
    from safetensors.numpy import save_file

    path = tmp_path / name
    save_file(arrays, str(path))
    return path


@pytest.mark.parametrize(
    "weight, match",
    [
        (np.ones((3, 2), np.int64), "int64 -> float32 changes the kind"),
        (np.ones((3, 2), np.bool_), "bool -> float32 changes the kind"),
        (np.full((3, 2), 1e300), r"float64 -> float32 changes values \(element 0: 1e\+300 becomes inf\)"),
        (np.full((3, 2), 0.1), "float64 -> float32 changes values"),
    ],
)
def test_load_weights_refuses_casts_that_change_values(tmp_path, weight, match):
    layer = nn.Linear(3, 2)
    before = to_np(layer.weight)
    path = _file_with(tmp_path, "w.safetensors", weight=weight, bias=np.zeros(2, np.float32))
    with pytest.raises(nn.StateDictError, match=r"weight: stored " + match):
        layer.load_weights(path)
    assert np.array_equal(to_np(layer.weight), before)


def test_load_weights_allows_value_preserving_casts(tmp_path):
    exact64 = np.array([[0.5, 0.25], [1.0, -2.0], [3.0, 0.125]])  # float64 holding float32 values
    path = _file_with(tmp_path, "w.safetensors", weight=exact64, bias=np.zeros(2, np.float16))
    layer = nn.Linear(3, 2)
    layer.load_weights(path)
    assert layer.weight.dtype == backend.dtype("float32") and np.array_equal(to_np(layer.weight), exact64)
    wide = nn.Linear(3, 2).astype("float64")
    wide.load_weights(_file_with(tmp_path, "v.safetensors", weight=np.full((3, 2), 0.1, np.float32), bias=np.zeros(2)))
    assert wide.weight.dtype == backend.dtype("float64")
    assert np.array_equal(to_np(wide.weight), np.full((3, 2), np.float32(0.1), np.float64))


def test_a_failed_load_changes_nothing(tmp_path):
    net = Net()
    before = {n: to_np(p) for n, p in net.parameters.items()}
    sd = net.state_dict()
    sd["parameters"] = {n: np.full(v.shape, 7.0, np.float32) for n, v in sd["parameters"].items()}
    sd["parameters"]["head.weight"] = np.ones((4, 2), np.int32)  # the one bad entry
    with pytest.raises(nn.StateDictError, match="head.weight"):
        net.load_state_dict(sd)
    for name, p in net.parameters.items():
        assert np.array_equal(to_np(p), before[name]), name


def test_load_weights_names_the_path_and_the_real_cause(tmp_path):
    layer = nn.Linear(3, 2)
    with pytest.raises(IsADirectoryError, match="cannot load weights") as info:
        layer.load_weights(tmp_path)
    assert info.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        layer.load_weights(tmp_path / "nope.safetensors")
    assert info.value.filename == str(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(nn.StateDictError, match=r"junk.safetensors: not a readable safetensors file"):
        layer.load_weights(junk)


def test_save_weights_through_a_symlink_and_over_a_0644_file(tmp_path):
    import stat

    target = tmp_path / "real.safetensors"
    nn.Linear(3, 2).save_weights(target)
    os.chmod(target, 0o644)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(target)
    layer = nn.Linear(3, 2)
    layer.save_weights(link)
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o644
    fresh = nn.Linear(3, 2)
    fresh.load_weights(target)
    assert np.array_equal(to_np(fresh.weight), to_np(layer.weight))


def test_a_killed_save_leaves_only_temporaries_the_next_save_removes(tmp_path):
    """SIGKILL during saves of a 16 MiB model: whatever is left is named for the cleanup, which the next save runs."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "w.safetensors"
    code = (
        "import sys\n"
        "from autograd import nn\n"
        "model = nn.Linear(2048, 2048)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    model.save_weights(sys.argv[1])\n"
    )
    for delay in (0.3, 0.6, 0.9):
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        foreign = [n for n in os.listdir(tmp_path) if n != path.name and ".w.safetensors.autograd-tmp." not in n]
        assert not foreign, f"temporaries no cleanup can recognise: {foreign}"
    nn.Linear(2, 2).save_weights(path)
    assert os.listdir(tmp_path) == [path.name]
