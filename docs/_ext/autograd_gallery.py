"""The examples gallery: each page shows an example script's own docstring, the command that produced the
recorded output and figure next to it, that output, the figure and the script.

``.. autograd-example:: NAME`` renders ``examples/NAME.py``. The outputs and figures are committed under
``docs/examples/output`` and ``docs/examples/images``; ``docs/examples/regenerate.py`` runs the examples with
the commands listed there (the same ones the pages show) and rewrites them.
"""

from __future__ import annotations

import ast
import importlib.util
import shlex
from pathlib import Path
from typing import Any

from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "docs" / "examples"


def _regenerate() -> Any:
    spec = importlib.util.spec_from_file_location("autograd_docs_regenerate", GALLERY / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def docstring(name: str) -> str:
    return ast.get_docstring(ast.parse((ROOT / "examples" / f"{name}.py").read_text())) or ""


def _indent(text: str, by: str = "   ") -> str:
    return "\n".join(by + line if line.strip() else "" for line in text.splitlines())


class ExampleDirective(SphinxDirective):
    required_arguments = 1
    option_spec = {"alt": directives.unchanged}

    def run(self) -> list[Any]:
        name = self.arguments[0]
        regenerate = _regenerate()
        script = ROOT / "examples" / f"{name}.py"
        output = GALLERY / "output" / f"{name}.txt"
        image = GALLERY / "images" / f"{name}.png"
        for path in (script, output, GALLERY / "regenerate.py"):
            self.env.note_dependency(str(path))
        text = [docstring(name), ""]
        command = regenerate.command(name)
        text += [
            "Run it",
            "------",
            "",
            "The output and the figure on this page come from this command, run from the repository root"
            f" ({regenerate.MACHINE}); ``docs/examples/regenerate.py`` runs it again and rewrites both:",
            "",
            ".. code-block:: bash",
            "",
            _indent(shlex.join(command)),
            "",
        ]
        if image.exists():
            self.env.note_dependency(str(image))
            alt = self.options.get("alt", f"what {name}.py plots")
            text += ["Figure", "------", "", f".. image:: /examples/images/{name}.png", f"   :alt: {alt}", ""]
        text += [
            "Output",
            "------",
            "",
            f".. literalinclude:: /examples/output/{name}.txt",
            "   :language: text",
            "",
            "Source",
            "------",
            "",
            f".. literalinclude:: /../examples/{name}.py",
            "   :language: python",
            "   :linenos:",
            "",
        ]
        return self.parse_text_to_nodes("\n".join(text), allow_section_headings=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("autograd-example", ExampleDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
