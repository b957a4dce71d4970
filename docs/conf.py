"""Sphinx configuration: API pages from the packages' docstrings plus hand-written guides."""

import os

os.environ.setdefault("AUTOGRAD_BACKEND", "numpy")

project = "autograd"
author = "the autograd developers"
release = "0.1.0"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Optional backends are not needed to document the API.
autodoc_mock_imports = ["cupy", "cupyx"]
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]
