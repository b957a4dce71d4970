"""The GPU check's no-GPU path: the wheelhouse is complete (install works offline), GPU steps skip with the reason.

Run by ``nox -s install``. ``prepare`` needs the network; ``run`` is started from a bare interpreter with
pip told to use nothing but the wheelhouse, so every package the check installs must have been carried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "wheelhouse"
    subprocess.run([sys.executable, str(SCRIPT), "prepare", "--wheelhouse", str(out)], check=True, timeout=900)
    return out


def test_prepare_carries_every_wheel(wheelhouse: Path) -> None:
    names = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    needed = {"autograd_core", "autograd_nn", "autograd_optim", "autograd_kernels_cuda"}
    needed |= {"autograd_fake_kernel_plugins", "pytest", "hypothesis", "safetensors", "numpy"}
    assert needed <= names, sorted(needed - names)
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
    assert list(steps) == ["install", "core", "nn", "optim", "kernels-cuda", "attention-bench"]
    assert steps["install"]["status"] == "passed", install_log
    assert "Successfully installed" in install_log
    for name in ("core", "nn", "optim", "kernels-cuda", "attention-bench"):
        assert steps[name]["status"].startswith("skipped: CuPy cannot use a CUDA device here"), steps[name]
    table = (out / "results.md").read_text()
    assert "| install | passed |" in table and "| attention-bench | skipped: " in table
    assert results["environment"]["autograd"].startswith("autograd-core 0.1.0")


def test_benchmark_script_runs_tiny_cases_on_the_cpu(wheelhouse: Path, tmp_path: Path) -> None:
    """The benchmark's harness and table, with tiny shapes on NumPy (and no PyTorch column here)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheelhouse), "autograd-core"],
        check=True,
        timeout=300,
    )
    env = dict(os.environ, AUTOGRAD_BACKEND="numpy")
    cmd = [py, str(ROOT / "tools" / "bench_cuda_attention.py"), "--smoke"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| 32 | fwd+bwd | " in res.stdout and "ms, " in res.stdout
