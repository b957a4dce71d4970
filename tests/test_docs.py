"""What the README and the docs pages say about the packages and backends, checked against the packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _distributions() -> dict[str, Path]:
    out = {}
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        out[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return out


def test_the_install_page_lists_every_distribution_and_what_the_kernel_registry_is():
    page = (ROOT / "docs" / "install.rst").read_text()
    table = re.search(r"^(=+ +=+)\n.*?^\1\n(.*?)^\1$", page, re.M | re.S).group(2)
    missing = [name for name in _distributions() if f"``{name}``" not in table]
    assert not missing, f"docs/install.rst's table lacks {missing}"
    assert "attention registry" not in page  # autograd.kernels registers every hot op, not attention alone
    assert "kernel registry" in table


def test_the_backends_page_says_numpy_has_bfloat16_through_ml_dtypes():
    page = (ROOT / "docs" / "backends.rst").read_text()
    bullet = re.search(r"^\* \*\*NumPy\*\*:(.*?)(?=^\* |\Z)", page, re.M | re.S).group(1)
    assert "no bfloat16" not in bullet and "bfloat16" in bullet and "ml_dtypes" in bullet, bullet
    pytest.importorskip("ml_dtypes")
    from autograd.backend import NumpyBackend

    assert NumpyBackend(np).dtype_name(NumpyBackend(np).dtype("bfloat16")) == "bfloat16"  # what the page says


def test_the_readme_says_which_packages_its_first_snippet_needs():
    readme = (ROOT / "README.md").read_text()
    before, after = readme.split("```python", 1)
    intro = before.rsplit("\n\n", 2)[-2:]  # the paragraph above the block (and a marker, if any)
    snippet = after.split("```", 1)[0]
    modules = set(re.findall(r"^from (autograd\.\w+)", snippet, re.M))
    modules |= {
        f"autograd.{m.strip()}"
        for line in re.findall(r"^from autograd import (.*)$", snippet, re.M)
        for m in line.split(",")
        if " as " not in m
    }
    needs = {"autograd-core"}
    for module in modules:
        for name, folder in _distributions().items():
            path = folder / "src" / Path(*module.split("."))
            if (path.is_dir() or path.with_suffix(".py").exists()) and name != "autograd-core":
                needs.add(name)
    assert needs == {"autograd-core", "autograd-nn", "autograd-optim"}, needs
    missing = [n for n in sorted(needs) if n not in " ".join(intro)]
    assert not missing, f"the README's first snippet needs {missing}; the text above it must say so"
