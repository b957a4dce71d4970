"""The code blocks of the READMEs and docs pages, and how each one is tested.

A block is a fenced block in Markdown or a ``.. code-block:: LANG`` directive in reStructuredText
(bare ``::`` literal blocks are refused: the test could not tell how to run them). A marker comment on
the line before a block (blank lines between are fine) says how it is tested::

    <!-- snippet: KIND -->          Markdown
    .. snippet: KIND                reStructuredText (a comment, invisible on the page)

KIND is one of:

- no marker: ``python`` blocks run in a fresh interpreter (once per backend the session has), ``bash``
  blocks run in the repository root with the session's environment first on PATH, ``toml`` blocks parse.
  A ``print(...)  # text`` line must print ``text`` (whitespace-insensitive), so shown results stay true.
- ``skip: REASON``: not run here; the test reports the reason (say what runs it instead, if anything).
- ``needs-release``: a ``pip install`` from PyPI, which can work only once the packages are released.
  Every command that installs a distribution of this project by name must carry this marker.
- ``install-clone``, ``install-wheels``, ``uv-venv``, ``main-job``: run by ``tests/test_install.py``
  (fresh virtual environments and a fresh copy of the repository).
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KINDS = ("run", "skip", "needs-release", "install-clone", "install-wheels", "uv-venv", "main-job")
RUNNABLE = ("python", "bash", "toml")


@dataclass(frozen=True)
class Snippet:
    path: str  # relative to the repository root
    line: int  # 1-based line of the opening fence or directive
    lang: str
    code: str
    kind: str
    reason: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    """Every README and docs page (benchmarks/README.md belongs to the benchmark scripts, which it documents)."""
    files = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
    files += sorted(p for p in (ROOT / "docs").rglob("*.rst") if "_build" not in p.parts)
    return files


_MD_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$")
_RST_MARKER = re.compile(r"^\s*\.\.\s+snippet:\s*(.*?)\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(\S*)\s*$")


def _parse_marker(text: str | None) -> tuple[str, str]:
    if text is None:
        return "run", ""
    kind, _, reason = text.partition(":")
    kind, reason = kind.strip(), reason.strip()
    if kind not in KINDS or kind == "run":
        raise ValueError(f"unknown snippet marker {text!r}; known: {', '.join(KINDS[1:])}")
    if kind == "skip" and not reason:
        raise ValueError("a skip marker needs a reason: <!-- snippet: skip: WHY -->")
    if kind == "needs-release":
        reason = "installs from PyPI, which works once the packages are released"
    elif kind != "skip":
        reason = "run by tests/test_install.py (nox -s install) in fresh environments"
    return kind, reason


def _marker_before(lines: list[str], index: int, pattern: re.Pattern[str]) -> str | None:
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and (m := pattern.match(lines[i])):
        return m.group(1)
    return None


def _markdown(path: Path) -> list[Snippet]:
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        kind, reason = _parse_marker(_marker_before(lines, start, _MD_MARKER))
        rel = str(path.relative_to(ROOT))
        out.append(Snippet(rel, start + 1, lang or "text", "\n".join(body) + "\n", kind, reason))
    return out


def _rst(path: Path) -> list[Snippet]:
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line)
        literal = not m and line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if not m and not literal:
            continue
        indent = len(m.group(1)) if m else len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):  # directive options
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        if not any(b.strip() for b in body):
            continue
        kind, reason = _parse_marker(_marker_before(lines, i, _RST_MARKER))
        lang = (m.group(2) or "text") if m else "literal"
        rel = str(path.relative_to(ROOT))
        out.append(Snippet(rel, i + 1, lang, textwrap.dedent("\n".join(body)).strip("\n") + "\n", kind, reason))
    return out


def collect() -> list[Snippet]:
    """Every code block of every README and docs page, in file order."""
    out = []
    for path in doc_files():
        out += _rst(path) if path.suffix == ".rst" else _markdown(path)
    return out


def by_kind(kind: str) -> list[Snippet]:
    return [s for s in collect() if s.kind == kind]


# `print(expr)  # shown output`: the comment is what the line prints.
_PRINT = re.compile(r"^(\s*)print\((.*)\)\s+#\s*(.+?)\s*$")


def checked_python(code: str) -> str:
    """The block's source with every ``print(...)  # shown`` line turned into an assertion on its output."""
    prelude = (
        "def __snippet_print(__shown, *args, **kwargs):\n"
        "    import io\n"
        "    buf = io.StringIO()\n"
        "    print(*args, **kwargs, file=buf)\n"
        "    got = buf.getvalue()\n"
        "    print(got, end='')\n"
        "    if got.split() != __shown.split():\n"
        "        raise AssertionError(f'the page shows {__shown!r}, the code printed {got.strip()!r}')\n"
    )
    body = []
    for line in code.splitlines():
        m = _PRINT.match(line)
        body.append(f"{m.group(1)}__snippet_print({m.group(3)!r}, {m.group(2)})" if m else line)
    return prelude + "\n".join(body) + "\n"


_PIP_INSTALL = re.compile(r"pip install\s+([^#\n]*)")


def installs_by_name(line: str) -> list[str]:
    """The distributions of this project that a ``pip install`` command line names from an index.

    Local paths (``./packages/...``) work from a clone; names next to ``--find-links`` resolve from built
    wheels. Everything else is a PyPI download.
    """
    m = _PIP_INSTALL.search(line)
    if not m or "--find-links" in line:
        return []
    try:
        words = shlex.split(m.group(1))
    except ValueError:
        words = m.group(1).split()
    names = []
    for word in words:
        if word.startswith(("-", ".", "/", "~")):
            continue
        dist = re.split(r"[\[<>=!~;@ ]", word, maxsplit=1)[0]
        if dist.startswith("autograd-"):
            names.append(dist)
    return names
