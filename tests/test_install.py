"""The README's install routes and main job, run as a new user would: fresh venvs, a fresh copy of the repository.

Run by ``nox -s install`` (needs PyPI for the third-party packages and the build backend). The commands come
from the pages themselves (the blocks marked install-clone, install-wheels, uv-venv and main-job), so a page
that changes its commands changes what is tested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from snippets import ROOT, Snippet, by_kind  # noqa: E402

UV = os.environ.get("UV") or shutil.which("uv") or "uv"
# What the main job must not install: other workspace packages, other backends, the dev tools.
NOT_IN_MAIN_JOB = {
    "autograd-kernels-mlx",
    "autograd-kernels-cuda",
    "autograd-distributed",
    "mlx",
    "cupy-cuda12x",
    "torch",
    "nox",
    "ruff",
    "pytest",
    "hypothesis",
}


def _one_command(kind: str) -> Snippet:
    """The block of that kind; every page that shows one shows the same commands."""
    blocks = by_kind(kind)
    assert blocks, f"no page has a block marked {kind}"
    assert len({b.code for b in blocks}) == 1, f"the {kind} blocks differ: {[b.id for b in blocks]}"
    return blocks[0]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a clone would have: tracked ones plus new ones not yet committed, none of the ignored ones."""
    dest = tmp_path_factory.mktemp("clone") / "autograd"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def _venv(path: Path) -> dict[str, str]:
    """A new venv with pip, and the environment of a shell that activated it."""
    venv.create(path, with_pip=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUTOGRAD_BACKEND")}
    env["VIRTUAL_ENV"] = str(path)
    env["PATH"] = os.pathsep.join([str(path / "bin"), *_uv_dir(), env["PATH"]])
    return env


def _uv_dir() -> list[str]:
    """The folder of the uv that runs the tests, so the pages' `uv` commands find it."""
    return [str(Path(UV).parent)] if os.sep in UV else []


def _bash(code: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"{code}\n--- stdout\n{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-4000:]}"
    return res


def _check_installed(env: dict[str, str], cwd: Path) -> None:
    """nn and optim import and train on NumPy, and the mlx extra made the MLX backend loadable."""
    code = (
        "from autograd import backend, nn; from autograd.optim import SGD; from autograd.tensor import Tensor; "
        "m = nn.Linear(2, 1); o = SGD(m.parameters, lr=0.1); m(Tensor(backend.normal((4, 2)))).sum().backward(); "
        "o.step(); print(backend.BACKEND)"
    )
    for backend in ("numpy", "mlx"):
        res = subprocess.run(
            ["python", "-c", code], cwd=cwd, env=dict(env, AUTOGRAD_BACKEND=backend), capture_output=True, text=True
        )
        assert res.returncode == 0 and res.stdout.strip() == backend, res.stderr


def _installed(env: dict[str, str]) -> dict[str, str]:
    """distribution -> where pip installed it from (its direct_url, or 'index')."""
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    url = d.read_text('direct_url.json')\n"
        "    out[d.metadata['Name'].lower()] = json.loads(url)['url'] if url else 'index'\n"
        "print(json.dumps(out))"
    )
    import json

    res = subprocess.run(["python", "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def test_from_a_clone(fresh_clone: Path, tmp_path: Path) -> None:
    env = _venv(tmp_path / "venv")
    _bash(_one_command("install-clone").code, fresh_clone, env)
    installed = _installed(env)
    for dist in ("autograd-core", "autograd-nn", "autograd-optim", "mlx"):
        assert dist in installed, f"{dist} not installed: {sorted(installed)}"
    assert "packages/autograd-nn" in installed["autograd-nn"]  # from the folder, not from an index
    _check_installed(env, tmp_path)


def test_from_wheels(fresh_clone: Path, tmp_path: Path) -> None:
    env = _venv(tmp_path / "venv")
    block = _one_command("install-wheels")
    _bash(block.code, fresh_clone, env)
    installed = _installed(env)
    for dist in ("autograd-core", "autograd-nn", "autograd-optim", "mlx"):
        assert dist in installed, f"{dist} not installed: {sorted(installed)}"
    _check_installed(env, tmp_path)
    # Without --find-links the exact pin cannot be met (nothing is on PyPI yet): the reason the page gives.
    bare = _venv(tmp_path / "bare")
    wheel = next((fresh_clone / "dist").glob("autograd_nn-*.whl"))
    res = subprocess.run(["pip", "install", str(wheel)], env=bare, capture_output=True, text=True, timeout=600)
    if res.returncode == 0:
        pytest.fail("autograd-nn's wheel installed without --find-links: is autograd-core on PyPI now?")
    assert "autograd-core" in res.stderr


def test_uv_in_its_own_venv(tmp_path: Path) -> None:
    """The Debian/Ubuntu route: uv in a venv of its own, under a throwaway HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["HOME"] = str(tmp_path)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    res = _bash(_one_command("uv-venv").code, tmp_path, env)
    assert res.stdout.strip().splitlines()[-1].startswith("uv "), res.stdout


def test_main_job_installs_only_what_it_needs(fresh_clone: Path, tmp_path: Path) -> None:
    block = _one_command("main-job")
    command = block.code.strip()
    assert command.count("\n") == 0, block.code
    project_env = tmp_path / "project-venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "AUTOGRAD_BACKEND")}
    env["PATH"] = os.pathsep.join([*_uv_dir(), env["PATH"]])
    env["UV_PROJECT_ENVIRONMENT"] = str(project_env)  # a fresh environment, as in a fresh clone
    # The README's command, shortened to a few epochs on a few images.
    res = _bash(f"{command} --epochs 2 --limit 300 --no-progress", fresh_clone, env)
    assert "reloaded model test accuracy" in res.stdout, res.stdout
    listed = subprocess.run(
        [UV, "pip", "list", "--format", "json", "-p", str(project_env / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import json

    names = {p["name"].lower() for p in json.loads(listed)}
    print(f"the main job installed {len(names)} packages: {' '.join(sorted(names))}")
    assert {"autograd-core", "autograd-nn", "autograd-optim", "scikit-learn", "tqdm", "matplotlib"} <= names
    if (ROOT / "packages" / "autograd-kernels-cpu").is_dir():
        assert "autograd-kernels-cpu" in names, "the main job runs on NumPy: it should use the CPU kernels"
    assert not names & NOT_IN_MAIN_JOB, f"the main job installed {sorted(names & NOT_IN_MAIN_JOB)}"
    # The README states the count; keep it true.
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"example's\s+own\s+dependencies\s+\([^)]*\),\s+(\d+)\s+packages", readme)
    assert stated, "README.md no longer states how many packages the main job installs"
    assert int(stated.group(1)) == len(names), (
        f"README.md says {stated.group(1)} packages, the job installs {len(names)}"
    )
    # Run from inside another activated venv, uv says it ignores it: the warning the README explains.
    other = tmp_path / "other"
    venv.create(other, with_pip=False)
    res = _bash(f"{command} --help", fresh_clone, dict(env, VIRTUAL_ENV=str(other)))
    assert f"VIRTUAL_ENV={other}` does not match the project environment path" in res.stderr, res.stderr
