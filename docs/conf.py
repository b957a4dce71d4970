"""Sphinx configuration: API pages from the packages' docstrings plus hand-written guides.

``nox -s docs`` builds it, and so does Read the Docs (.readthedocs.yaml runs that session), so the hosted
site is the one CI checks.
"""

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
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]

# The PyData theme (as NumPy's and most of the scientific Python stack's docs): search and a version switcher.
html_theme = "pydata_sphinx_theme"
html_title = "autograd"
html_static_path = ["_static"]
html_theme_options = {
    "navbar_end": ["version-switcher", "theme-switcher", "navbar-icon-links"],
    "switcher": {
        # Relative, so every hosted version reads the list from its own site; the entries point at Read the
        # Docs' "latest" and "stable" versions, which exist under those names whatever the project's domain.
        "json_url": "_static/switcher.json",
        "version_match": os.environ.get("READTHEDOCS_VERSION", "latest"),
    },
    "show_version_warning_banner": True,
    "navigation_with_keys": False,
}
