"""Host synchronisations inside a training step on the cupy backend, counted without a GPU.

``sync_step.py --simulate`` runs a mixed-precision GPT training step (engine,
``Adam`` with weight decay and a ``LossScaler``, ``clip_grad_norm``) on
:mod:`simulated_cupy`, a CuPy stand-in on the host that records every
device-to-host transfer (``float()``, ``bool()``, ``.item()``, ``asnumpy``,
implicit ``numpy.asarray``...) with the line that asked. The ``triton_fused``
implementations run every op of the step, their kernels in Triton's
interpreter on the simulated device's buffers.

The goal is no transfer at all. Without a loss scaler the step makes none
(``test_the_step_without_a_loss_scaler_has_no_sync``): range checks of token
ids and targets run on the device (``autograd.backend.check_range``) and
``clip_grad_norm``'s norm stays there. With a ``LossScaler`` one transfer is
left, listed in :data:`KNOWN` with the reason; a transfer anywhere else (the
engine, this package's Functions, a new one in core or optim) fails the test.
``test_the_step_has_no_sync`` states the goal for the scaled step: it is
expected to fail (strictly) until :data:`KNOWN` is empty.

The subprocess needs autograd-nn and autograd-optim (the package's nox session
installs them for its tests, as do the ``together`` sessions) and triton.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import simulated_cupy  # noqa: E402

#: (file, function) -> why it reads a device value on the host. Every one is in core or optim.
KNOWN = {
    ("autograd/optim/optimizer.py", "unscale_gradients"): (
        "optim: the loss scaler's inf/NaN check reads one flag per step, for all gradients at once, to decide on "
        "the host whether step() is skipped (PyTorch's GradScaler reads once per step too)"
    ),
}

_MISSING = [m for m in ("autograd.optim", "autograd.nn", "triton") if importlib.util.find_spec(m) is None]
needs_step = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the training step needs {', '.join(_MISSING)} (nox -s 'tests(numpy-kernels-cuda)' installs them)",
)


def _record(*flags: str) -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOGRAD_BACKEND", "AUTOGRAD_KERNELS")}
    env["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, str(HERE / "sync_step.py"), "--simulate", "--kernels", "triton", *flags]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def step() -> Dict[str, Any]:
    """The recorded step (float16 autocast, LossScaler) with triton_fused kernels, interpreted, on the simulated
    device."""
    return _record()


def _unknown(events: List[Dict[str, Any]]) -> List[str]:
    return [f"{e['what']} at {e['file']}:{e['line']} in {e['function']}" for e in events if _key(e) not in KNOWN]


def _key(event: Dict[str, Any]) -> tuple:
    return (event["file"], event["function"])


@needs_step
def test_the_step_runs_every_op_through_triton_fused(step):
    for op in ("embedding", "layer_norm", "attention", "gelu", "cross_entropy", "adam"):
        assert step["chosen"].get(op) == ["triton_fused"], step["chosen"]
    assert step["skipped_step"] is False  # the recorded step updated the parameters


@needs_step
def test_no_sync_beyond_the_known_ones(step):
    unknown = _unknown(step["syncs"])
    assert not unknown, "host synchronisations inside the training step:\n" + "\n".join(unknown)


@needs_step
def test_neither_the_engine_nor_the_plugin_syncs(step):
    ours = [e for e in step["syncs"] if e["file"].startswith(("autograd_kernels_cuda/", "autograd/engine.py"))]
    assert not ours and not [e for e in step["syncs"] if e["file"] == "autograd/tensor.py"], ours


@needs_step
def test_the_step_without_a_loss_scaler_has_no_sync():
    unscaled = _record("--no-loss-scaler")
    assert unscaled["loss_scaler"] is False and unscaled["chosen"].get("adam") == ["triton_fused"], unscaled
    where = [f"{e['what']} at {e['file']}:{e['line']} in {e['function']}" for e in unscaled["syncs"]]
    assert not where, "host synchronisations in a training step without a loss scaler:\n" + "\n".join(where)


@needs_step
def test_the_scaled_step_reads_the_device_once(step):
    assert [_key(e) for e in step["syncs"]] == list(KNOWN), step["syncs"]


@needs_step
@pytest.mark.xfail(
    strict=True,
    reason="the scaled step still reads the device: " + "; ".join(sorted(KNOWN.values())),
)
def test_the_step_has_no_sync(step):
    assert step["syncs"] == []


# --- the simulator itself: it sees what it claims to see ----------------------------------------------------------


def test_the_simulator_records_each_kind_of_transfer():
    cp = simulated_cupy.module()
    x = cp.asarray(np.arange(6.0).reshape(2, 3))
    assert isinstance(x, simulated_cupy.ndarray) and type(x).__module__ == "cupy"
    with simulated_cupy.LOG.recording() as log:
        total = x.sum()  # a 0-d device array, as CuPy returns: no transfer
        assert isinstance(total, simulated_cupy.ndarray) and total.ndim == 0
        assert isinstance(x[0, 1], simulated_cupy.ndarray) and isinstance(cp.where(x > 1, x, 0), simulated_cupy.ndarray)
        assert log.events == []
        float(total), bool(x[0, 0]), int(x[1, 1]), x.max().item(), x.tolist(), cp.asnumpy(x), repr(total)
    kinds = [e["what"] for e in log.events]
    assert kinds == ["float()", "bool()", "int()", ".item()", ".tolist()", "cupy.asnumpy()", "repr()"]
    assert all(e["file"] == "test_sync.py" and e["function"].startswith("test_") for e in log.events), log.events


def test_the_simulator_counts_implicit_numpy_conversions_outside_numpy():
    cp = simulated_cupy.module()
    counted = simulated_cupy._counted(np.asarray, "numpy.asarray()")
    x = cp.ones((3,))
    with simulated_cupy.LOG.recording() as log:
        counted(x)
        counted(np.ones(3))  # a host array: nothing to transfer
    assert [e["what"] for e in log.events] == ["numpy.asarray()"]
