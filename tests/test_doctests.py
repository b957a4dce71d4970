"""The ``Examples:`` of every docstring of the installed packages run as doctests, on the NumPy backend.

Run by ``nox -s doctests``, which installs every package from its folder. Each module of ``autograd`` and of the
kernel plugins that imports here is searched; every docstring example is one test, named after its object. The
examples see their module's names (as in the API reference, ``Tensor`` inside ``autograd.tensor``) plus ``xp``,
the backend's array module. An example that needs a backend other than NumPy, or a process group, says so in
its docstring and marks its lines ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

os.environ.setdefault("AUTOGRAD_BACKEND", "numpy")

PACKAGES = ["autograd", "autograd_kernels_cpu", "autograd_kernels_mlx", "autograd_kernels_cuda"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        try:
            root = importlib.import_module(package)
        except ImportError:
            continue
        if getattr(root, "__file__", None):  # a regular package (autograd is a namespace)
            names.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            # Private modules too (``autograd.data._worker`` defines the public get_worker_info); not a
            # package's ``__main__``, which runs a command line when imported.
            if not info.name.endswith(".__main__"):
                names.append(info.name)
    return sorted(set(names))


def _examples() -> list:
    from autograd import backend

    finder = doctest.DocTestFinder(exclude_empty=True)
    out = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional parts (triton, cuDNN, MLX) that this environment lacks
            continue
        for test in finder.find(module, name, globs={**vars(module), "xp": backend.xp}):
            if test.examples:
                out.append(pytest.param(test, id=test.name))
    return out


EXAMPLES = _examples()


def test_there_are_examples() -> None:
    assert len(EXAMPLES) > 50, "the doctest finder found too few examples: is it still searching the packages?"


@pytest.mark.parametrize("test", EXAMPLES)
def test_docstring_example(test: doctest.DocTest) -> None:
    from autograd import backend

    backend.seed(0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out: list[str] = []
    result = runner.run(test, out=out.append, clear_globs=True)
    assert result.failed == 0, "".join(out)
