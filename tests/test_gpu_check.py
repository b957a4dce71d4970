"""The GPU check's no-GPU path: the wheelhouse is complete (install works offline), GPU steps skip with the reason.

Run by ``nox -s install``. ``prepare`` needs the network; ``run`` is started from a bare interpreter with
pip told to use nothing but the wheelhouse, so every package the check installs must have been carried.
The report's parts (goals, sync counts) are checked on made-up results, and the benchmark script runs its
tiny ``--smoke`` shapes on the CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.py"
STEPS = [
    "install",
    "install-cudnn-frontend",
    "core",
    "nn",
    "optim",
    "kernels-cuda",
    "kernels-cuda-gpu-attention",
    "kernels-cuda-gpu-ops",
    "sync-simulated",
    "sync-device",
    "bench-attention",
    "bench-gpt",
    "bench-resnet",
    "bench-overhead",
]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "wheelhouse"
    subprocess.run([sys.executable, str(SCRIPT), "prepare", "--wheelhouse", str(out)], check=True, timeout=900)
    return out


def test_prepare_carries_every_wheel(wheelhouse: Path) -> None:
    names = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    needed = {"autograd_core", "autograd_nn", "autograd_optim", "autograd_kernels_cuda"}
    needed |= {"autograd_fake_kernel_plugins", "pytest", "hypothesis", "safetensors", "numpy"}
    needed |= {"nvidia_cudnn_frontend", "cuda_bindings", "cuda_pathfinder"}
    assert needed <= names, sorted(needed - names)
    assert not {"nvidia_cutlass_dsl", "triton"} & names  # 470 MB and 250 MB the GPU machine does without
    assert (wheelhouse / ".gitignore").read_text() == "*\n"


def test_run_without_a_gpu(wheelhouse: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=True)  # nothing installed: the check may use only what it carried
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "AUTOGRAD_BACKEND")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU even where the machine has one
    res = subprocess.run(
        [str(bare / "bin" / "python"), str(SCRIPT), "run", "--wheelhouse", str(wheelhouse), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    install_log = (out / "install.log").read_text() if (out / "install.log").exists() else ""
    assert res.returncode == 2, f"{res.stdout}\n{res.stderr}\n{install_log}"
    results = json.loads((out / "results.json").read_text())
    steps = {s["step"]: s for s in results["steps"]}
    assert list(steps) == STEPS
    assert steps["install"]["status"] == "passed", install_log
    assert steps["install-cudnn-frontend"]["status"] == "passed", (out / "install-cudnn-frontend.log").read_text()
    assert "Successfully installed" in install_log
    for name in STEPS[2:]:
        assert steps[name]["status"].startswith("skipped: CuPy cannot use a CUDA device here"), steps[name]
    table = (out / "results.md").read_text()
    assert "| install | passed |" in table and "| bench-attention | skipped: " in table
    assert table.count(": not measured: no measurement") == 4  # every goal of the issue, unmeasured here
    assert results["environment"]["autograd"].startswith("autograd-core 0.1.0")
    assert results["environment"]["cudnn"].startswith(("frontend 1.", "unavailable"))


def test_benchmark_script_runs_tiny_cases_on_the_cpu(wheelhouse: Path, tmp_path: Path) -> None:
    """Every section of benchmarks/bench_cuda.py, tiny shapes on NumPy (and no PyTorch column here)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    packages = ["autograd-core", "autograd-nn", "autograd-optim", "autograd-kernels-cuda"]
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheelhouse), *packages],
        check=True,
        timeout=300,
    )
    env = dict(os.environ, AUTOGRAD_BACKEND="numpy")
    expect = {
        "attention": "| 16 | 32 | declined: the active backend is numpy; triton_fused runs on cupy |",
        "gpt": "GPT step: d 32, 2 layers",
        "resnet": "ResNet step: 3x8x8, batch 4",
        "overhead": "| layer_norm |",
    }
    for section, fragment in expect.items():
        out = tmp_path / f"{section}.json"
        cmd = [py, str(ROOT / "benchmarks" / "bench_cuda.py"), section, "--smoke", "--json", str(out)]
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert fragment in res.stdout, res.stdout
        data = json.loads(out.read_text())
        if section in ("gpt", "resnet"):
            assert data["autograd"]["seconds"] > 0 and data["torch"] == {"error": "PyTorch (cpu) not available"}


# --- the report's parts, on made-up results ------------------------------------------------------------------------


def _cell(ms: float, mib: float) -> dict:
    return {"seconds": ms / 1e3, "peak_bytes": int(mib * 2**20)}


def test_goals_are_judged_from_the_numbers() -> None:
    check = _gpu_check()
    rows = [
        {"seq": 1024, "cells": {"cudnn_sdpa": _cell(1.0, 10), "triton_fused": _cell(1.5, 10), "torch": _cell(0.5, 10)}},
        {
            "seq": 2048,
            "cells": {"cudnn_sdpa": _cell(1.0, 11), "triton_fused": _cell(1.8, 10), "torch": _cell(0.95, 10)},
        },
    ]
    bench = {
        "attention": {"rows": rows},
        "gpt": {"autograd": _cell(130, 1300), "torch": _cell(100, 1000)},
        "resnet": {"autograd": {"error": "failed: RuntimeError: x"}, "torch": _cell(10, 100)},
    }
    lines = "\n".join(check._goal_lines(bench))
    assert "from T=2048, peak memory at most 1.2x: met: 0.95x / 1.10x mem" in lines  # T=1024 is not judged
    assert "(triton_fused) at least 0.5x SDPA's throughput: not met: 0.33x, 0.53x" in lines
    assert "peak memory at most 1.2x: not met: 1.30x time, 1.30x memory" in lines
    assert "ResNet step at most 1.5x PyTorch's time: not measured: no measurement" in lines


def test_sync_section_lists_each_site() -> None:
    check = _gpu_check()
    event = {"what": "bool()", "file": "autograd/optim/optimizer.py", "line": 1, "function": "unscale_gradients"}
    simulated = {"syncs": [event, event]}
    device = {"spin_ms": 1000.0, "host_ms": 1003.2, "returned_before_the_device_finished": False}
    lines = check._sync_section(simulated, device)
    assert "  - 2 x bool() in unscale_gradients (autograd/optim/optimizer.py)" in lines
    assert any("waited for the device" in line for line in lines)
    assert check._sync_section(None, None)[-1] == "- on the device: no result (see sync-device.log)"


def test_json_of_reads_the_last_object(tmp_path: Path) -> None:
    check = _gpu_check()
    log = tmp_path / "step.log"
    log.write_text('$ python x\nwarning: something\n{\n "a": 1\n}\n')
    assert check._json_of(log) == {"a": 1}
    log.write_text("$ python x\nTraceback (most recent call last):\n")
    assert check._json_of(log) is None
