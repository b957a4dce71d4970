"""Test matrix over backend x package, plus parity, wheels and lint.

``nox -l`` lists the sessions; ``nox -t mlx`` runs every MLX session, ``nox -t core``
every session of autograd-core. Each test session builds a fresh venv with uv,
installs only the package under test (and what it declares), forces a rebuild
of the workspace packages so a stale build is never tested, checks that the
library reports the backend it was asked for, then runs that package's tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
# `nox` alone runs everything but the benchmarks.
nox.options.sessions = ["tests", "parity", "examples", "wheels", "docs", "lint"]

ROOT = Path(__file__).parent
RUFF = "ruff==0.17.6"  # the same pin as the dev dependency group
UV = os.environ.get("UV", "uv")  # `uv run` exports its own path; uv may not be on PATH
PYTHON = "3.11"
NEWEST_PYTHON = "3.13"

# distribution name and folder of each package
PACKAGES = {
    "core": "autograd-core",
    "nn": "autograd-nn",
    "optim": "autograd-optim",
    "kernels-mlx": "autograd-kernels-mlx",
    "kernels-cuda": "autograd-kernels-cuda",
}
# what each backend adds to the install of autograd-core
BACKEND_EXTRA = {"numpy": "", "mlx": "[mlx]", "cupy": "[cuda12]"}

# The valid (python, backend, package) combinations, listed explicitly.
MATRIX = [
    (PYTHON, "numpy", "core"),
    (NEWEST_PYTHON, "numpy", "core"),
    (PYTHON, "mlx", "core"),
    (PYTHON, "cupy", "core"),
    (PYTHON, "numpy", "nn"),
    (PYTHON, "mlx", "nn"),
    (PYTHON, "cupy", "nn"),
    (PYTHON, "numpy", "optim"),
    (PYTHON, "mlx", "optim"),
    (PYTHON, "cupy", "optim"),
    (PYTHON, "mlx", "kernels-mlx"),
    (PYTHON, "numpy", "kernels-mlx"),  # installed but declining with its reason
    (PYTHON, "numpy", "kernels-cuda"),  # nvcc compile checks, the NumPy tiling model, declining without a GPU
    (PYTHON, "cupy", "kernels-cuda"),
]


def _pyenv_versions() -> None:
    # pyenv's shims only answer for the selected versions (the `uv` shim pins
    # PYENV_VERSION to one); add the other Pythons the matrix needs so uv finds them.
    if not shutil.which("pyenv"):
        return
    try:
        current = subprocess.run(["pyenv", "version-name"], capture_output=True, text=True, check=True).stdout
        known = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    wanted = [v for v in current.strip().split(":") if v]
    for v in known.split():
        if any(v.startswith(p + ".") for p in (PYTHON, "3.12", NEWEST_PYTHON)) and v not in wanted:
            wanted.append(v)
    os.environ["PYENV_VERSION"] = ":".join(wanted)


_pyenv_versions()


def _has_cuda_device() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(os.environ.get("AUTOGRAD_ASSUME_CUDA"))


def _install(session: nox.Session, backend: str, packages: list[str], *extra: str) -> None:
    """Install packages from their folders, always rebuilding workspace packages."""
    specs = []
    for pkg in packages:
        dist = PACKAGES[pkg]
        suffix = BACKEND_EXTRA[backend] if pkg == "core" else ""
        specs.append(f"./packages/{dist}{suffix}")
    if "core" not in packages:  # every package depends on the local core, never on an index's
        specs.append(f"./packages/autograd-core{BACKEND_EXTRA[backend]}")
    local = list(PACKAGES.values()) + ["autograd-fake-attention-plugins"]
    reinstall = [arg for d in local for arg in ("--reinstall-package", d)]
    session.install(*specs, *extra, *reinstall)


def _assert_backend(session: nox.Session, backend: str, env: dict[str, str]) -> None:
    session.run(
        "python",
        "-c",
        "import autograd.backend as b, sys; "
        f"print('autograd backend:', b.BACKEND); sys.exit(0 if b.BACKEND == {backend!r} else 1)",
        env=env,
    )


@nox.session
@nox.parametrize(
    "python,backend,package",
    [
        nox.param(py, be, pkg, id=f"{be}-{pkg}" + ("" if py == PYTHON else f"-py{py}"), tags=[be, pkg])
        for py, be, pkg in MATRIX
    ],
)
def tests(session: nox.Session, backend: str, package: str) -> None:
    """Run one package's tests on one backend."""
    if backend == "cupy" and not _has_cuda_device():
        session.skip("no CUDA device on this machine: the cupy backend cannot run here")
    dist = PACKAGES[package]
    extra = ["./packages/autograd-core/tests/fake_plugins"] if package == "core" else []
    _install(session, backend, [package], "pytest", "hypothesis", *extra)
    env = {"AUTOGRAD_BACKEND": backend}
    _assert_backend(session, backend, env)
    session.run(
        "pytest",
        f"packages/{dist}/tests",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHON, tags=["examples", "numpy"])
def examples(session: nox.Session) -> None:
    """Smoke-test both examples (tiny settings) with every package installed from its folder."""
    _install(session, "numpy", ["core", "nn", "optim"], "pytest", "scikit-learn", "tqdm", "matplotlib")
    session.run(
        "pytest",
        "examples/tests",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AUTOGRAD_BACKEND": "numpy"},
    )


def _local_torch_wheel() -> str | None:
    for folder in os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split():
        hits = sorted(glob.glob(os.path.join(folder, "torch-*+cpu-cp311-*.whl")))
        if hits:
            return hits[-1]
    return None


@nox.session(python=PYTHON, venv_backend="venv", tags=["parity", "numpy"])
def parity(session: nox.Session) -> None:
    """Every package's tests with PyTorch (CPU build, from this machine's disk) installed."""
    wheel = _local_torch_wheel()
    if wheel is None:
        session.skip("no PyTorch CPU wheel on this machine's disk (PIP_FIND_LINKS); parity tests need one")
    session.run("python", "-m", "pip", "install", "-q", wheel)
    dists = [f"./packages/{d}" for d in PACKAGES.values()]
    session.run("python", "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *dists)
    session.run("python", "-m", "pip", "install", "-q", *dists, "pytest", "hypothesis")
    session.run("python", "-c", "import torch; print('torch', torch.__version__)")
    env = {"AUTOGRAD_BACKEND": "numpy", "AUTOGRAD_REQUIRE_TORCH": "1"}
    session.run(
        "pytest",
        *[f"packages/{d}/tests" for d in PACKAGES.values()],
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        "-k",
        "torch",
        *session.posargs,
        env=env,
    )


def _check_versions_and_imports(session: nox.Session) -> None:
    """One version for every package, exact pins between members, and no undeclared imports."""
    import re
    import tomllib

    meta = {}
    for folder in sorted((ROOT / "packages").iterdir()):
        if (folder / "pyproject.toml").exists():
            project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
            meta[project["name"]] = project
    versions = {name: p["version"] for name, p in meta.items()}
    if len(set(versions.values())) != 1:
        session.error(f"packages disagree on the version: {versions}")
    version = next(iter(versions.values()))
    for name, project in meta.items():
        for dep in project.get("dependencies", []):
            dist = re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0]
            if dist in meta and not dep.replace(" ", "").startswith(f"{dist}==") and f"=={version}" not in dep:
                session.error(f"{name} must pin {dist}=={version}, has {dep!r}")
    # nn and optim never import each other; core imports neither.
    rules = {
        "autograd-core": ("autograd.nn", "autograd.optim"),
        "autograd-nn": ("autograd.optim",),
        "autograd-optim": ("autograd.nn",),
    }
    for dist, banned in rules.items():
        for path in (ROOT / "packages" / dist / "src").rglob("*.py"):
            text = path.read_text()
            for mod in banned:
                if re.search(rf"^\s*(from|import) {re.escape(mod)}\b", text, re.M):
                    session.error(f"{path} imports {mod}, which {dist} does not depend on")
    session.log(f"all {len(meta)} packages at {version}, pinned exactly; imports respect the dependencies")


@nox.session(python=PYTHON, tags=["wheels"])
def wheels(session: nox.Session) -> None:
    """Build every wheel, then install and import each alone in a fresh venv outside the workspace."""
    _check_versions_and_imports(session)
    out = Path(tempfile.mkdtemp(prefix="autograd-wheels-"))
    try:
        session.run(UV, "build", "--all-packages", "--no-sources", "-o", str(out), external=True)
        built = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
        missing = set(PACKAGES.values()) - set(built)
        if missing:
            session.error(f"no wheel built for {sorted(missing)}")
        for dist, wheel in sorted(built.items()):
            venv = out / f"{dist}-venv"
            session.run(UV, "venv", "-q", "-p", PYTHON, str(venv), external=True)
            py = str(venv / "bin" / "python")
            session.run(UV, "pip", "install", "-q", "-p", py, str(wheel), "--find-links", str(out), external=True)
            module = {
                "autograd-core": "autograd.tensor",
                "autograd-kernels-mlx": "autograd_kernels_mlx",
                "autograd-kernels-cuda": "autograd_kernels_cuda",
            }.get(dist, "autograd." + dist.split("-", 1)[1])
            session.run(
                py,
                "-c",
                f"import {module}; print('{dist}: imported {module}')",
                external=True,
                env={"AUTOGRAD_BACKEND": "numpy"},
            )
            names = zipfile.ZipFile(wheel).namelist()
            if not any(n.endswith("py.typed") for n in names) or "autograd/__init__.py" in names:
                session.error(f"{wheel.name}: needs py.typed and no autograd/__init__.py")
    finally:
        shutil.rmtree(out, ignore_errors=True)


@nox.session(python=PYTHON, venv_backend="venv", tags=["bench"])
def bench(session: nox.Session) -> None:
    """All benchmarks (benchmarks/run_all.py): autograd on NumPy and MLX against PyTorch eager CPU."""
    wheel = _local_torch_wheel()
    if wheel is not None:
        session.run("python", "-m", "pip", "install", "-q", wheel)
    dists = [f"./packages/{d}" for d in PACKAGES.values()]
    session.run("python", "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *dists)
    session.run("python", "-m", "pip", "install", "-q", "./packages/autograd-core[mlx]", *dists)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON, tags=["docs"])
def docs(session: nox.Session) -> None:
    """HTML documentation with Sphinx from every package's docstrings; warnings are errors."""
    _install(session, "numpy", list(PACKAGES), "sphinx>=7")  # kernels-mlx brings mlx, which autodoc imports
    out = ROOT / "docs" / "_build" / "html"  # ignored by git
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out))
    session.log(f"documentation built in {out}")


@nox.session(python=PYTHON, tags=["lint"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
