"""Sphinx configuration: API pages from the packages' docstrings plus hand-written guides and an examples gallery.

``nox -s docs`` builds it, and so does Read the Docs (.readthedocs.yaml runs that session), so the hosted
site is the one CI checks; ``nox -s site`` then opens every page in headless Chromium (tests/test_site.py).
The local extensions are in ``_ext``: ``autograd_api`` (a page per package, module and public object),
``autograd_gallery`` (the examples, from their docstrings) and ``autograd_site`` (MathJax bundled with the
site, the version list).
"""

import os
import subprocess
import sys

os.environ.setdefault("AUTOGRAD_BACKEND", "numpy")
sys.path.insert(0, os.path.abspath("_ext"))  # Sphinx reads this file from inside docs/


def has_release() -> bool:
    """Whether a release (a ``v*`` tag) exists, so that the hosting has a ``stable`` version to point at.

    ``AUTOGRAD_DOCS_RELEASED=1`` (or ``0``) says it instead of asking git.
    """
    forced = os.environ.get("AUTOGRAD_DOCS_RELEASED")
    if forced in ("0", "1"):
        return forced == "1"
    if os.environ.get("READTHEDOCS_VERSION_TYPE") == "tag":
        return True
    commands = [["git", "tag", "--list", "v[0-9]*"]]
    if os.environ.get("READTHEDOCS") == "True":  # Read the Docs clones without the tags
        commands.append(["git", "ls-remote", "--tags", "origin", "v[0-9]*"])
    for cmd in commands:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if res.returncode == 0 and res.stdout.strip():
            return True
    return False


project = "autograd"
author = "the autograd developers"
copyright = "the autograd developers"
release = "0.1.0"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinx_design",
    "autograd_api",
    "autograd_gallery",
    "autograd_site",
]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
# Types in the signature (one parameter per line when it is long) and next to each documented parameter.
autodoc_typehints = "both"
autodoc_typehints_description_target = "documented_params"
python_maximum_signature_line_length = 88
autodoc_default_options = {"show-inheritance": True}
# Optional backends are not needed to document the API.
autodoc_mock_imports = ["cupy", "cupyx"]
autosummary_generate = False  # autograd_api writes the pages
exclude_patterns = ["_build"]

# Every cross-reference must resolve, or the build fails (nox runs sphinx-build -W). What cannot resolve
# offline is listed here: other projects' objects (no intersphinx: the build reaches no documentation site).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|mlx|mx|cupy|cp|mpi4py|safetensors|tokenizers|tiktoken|ml_dtypes|numba|triton)(\..*)?"),
    (r"py:.*", r"(xp|lib)\..*"),  # the backend's array module (numpy, mlx.core or cupy): xp.ndarray, ...
    (r"py:.*", r"(os|abc|logging|pathlib|collections|typing|concurrent|threading|multiprocessing)\..*"),
    (r"py:class", r"PathLike"),  # os.PathLike as written in some annotations
    (r"py:class", r"ArrayLike"),  # autograd.tensor's alias for what Tensor() takes: arrays, nested lists, numbers
    (r"py:class", r"autograd\.kernels\.registry\._Entry"),  # what kernels.entry() returns (its fields are listed)
    # The elementwise Functions of the CPU plugin, made by a factory (not names of the module).
    (r"py:class", r"autograd_kernels_cpu\.plugin\.CPU(Gelu|Relu|Sigmoid|Tanh)Function"),
    # autograd_kernels_cuda.triton_kernels.aot imports triton, which the docs' environment does not install.
    (r"py:mod", r"\.?aot"),
]

# MathJax is copied into the site (autograd_site), so formulas render offline.
mathjax_path = "mathjax/tex-chtml.js"  # in _static

copybutton_exclude = ".linenos, .gp, .go"
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# The PyData theme (as NumPy's, pandas' and xarray's docs): search, a version switcher, dark mode.
autograd_released = has_release()
html_theme = "pydata_sphinx_theme"
html_title = "autograd"
html_static_path = ["_static"]
html_css_files = ["autograd.css"]
html_favicon = "_static/favicon.svg"
html_logo = "_static/logo.svg"
html_sidebars = {"index": [], "search": [], "genindex": [], "py-modindex": []}
html_theme_options = {
    "navbar_end": ["version-switcher", "theme-switcher", "navbar-icon-links"],
    "header_links_before_dropdown": 6,
    "switcher": {
        # Relative, so every hosted version reads the list from its own site; the entries point at Read the
        # Docs' "latest" and "stable" versions, which exist under those names whatever the project's domain.
        # Until a release exists the built list holds "latest" alone (autograd_site).
        "json_url": "_static/switcher.json",
        "version_match": os.environ.get("READTHEDOCS_VERSION", "latest"),
    },
    "show_version_warning_banner": autograd_released,
    "navigation_with_keys": False,
    # The left sidebar of the API reference lists the packages and their modules, not every object.
    "navigation_depth": 2,
    "show_nav_level": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "logo": {"text": "autograd"},
}
