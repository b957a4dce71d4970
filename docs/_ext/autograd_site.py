"""What makes the site work offline and tell the truth about its versions.

* MathJax ships with the site: the files come from the ``sphinx-mathjax-offline`` distribution (MathJax 3.2.2,
  docs/requirements.txt), of which only what a page loads is copied into ``_static/mathjax``: the TeX-to-HTML
  bundle, the TeX extensions it loads on demand, its web fonts and the menu and accessibility components.
* The version switcher lists ``stable`` only once a release exists (``autograd_released``, which conf.py
  sets from the ``v*`` tags): before that the list written to the built site holds ``latest`` alone, and
  conf.py turns off the "switch to stable" banner.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

# What tex-chtml.js loads, relative to the MathJax folder.
MATHJAX_PARTS = ["tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "a11y", "ui"]


def mathjax_source() -> Path:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "MathJax is bundled from the sphinx-mathjax-offline distribution, which is not installed: "
            "pip install -r docs/requirements.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


def copy_mathjax(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def versions(switcher: Path, released: bool) -> list[dict[str, Any]]:
    """The switcher's entries: every one with a release, ``latest`` alone before it (and then preferred)."""
    entries = json.loads(switcher.read_text())
    if released:
        return entries
    latest = [dict(e, preferred=True) for e in entries if e["version"] == "latest"]
    return latest


def write_switcher(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    options = app.config.html_theme_options
    json_url = options["switcher"]["json_url"]
    entries = versions(Path(app.srcdir) / json_url, app.config.autograd_released)
    (Path(app.outdir) / json_url).write_text(json.dumps(entries, indent=2) + "\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("autograd_released", False, "html")
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", write_switcher)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
