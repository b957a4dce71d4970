"""Every code block of the READMEs and docs pages runs (or says why not); shown results are what it prints.

Run by ``nox -s snippets``: the session installs every package from its folder, MLX included, and sets
``SNIPPET_BACKENDS`` to the backends each python block runs on. The markers are described in snippets.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from snippets import ROOT, RUNNABLE, Snippet, checked_python, collect, doc_files, installs_by_name  # noqa: E402

SNIPPETS = collect()
BACKENDS = [b for b in os.environ.get("SNIPPET_BACKENDS", "numpy").split(",") if b]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The session's interpreter and scripts first, as an activated environment would have them.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("AUTOGRAD_BACKEND", None)
    env.update(extra)
    return env


def _cases() -> list:
    cases = []
    for s in SNIPPETS:
        backends = BACKENDS if s.lang == "python" and s.kind == "run" else [None]
        for b in backends:
            cases.append(pytest.param(s, b, id=s.id + (f"[{b}]" if b else "")))
    return cases


@pytest.mark.parametrize("snippet,backend", _cases())
def test_snippet(snippet: Snippet, backend: str | None, tmp_path: Path) -> None:
    if snippet.kind != "run":
        pytest.skip(f"{snippet.kind}: {snippet.reason}" if snippet.kind == "skip" else snippet.reason)
    if snippet.lang == "toml":
        tomllib.loads(snippet.code)
        return
    if snippet.lang == "python":
        script = tmp_path / "snippet.py"
        script.write_text(checked_python(snippet.code))
        # A scratch working directory: blocks that write files (weights, checkpoints) leave the tree clean.
        res = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=_env(AUTOGRAD_BACKEND=backend or "numpy"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    elif snippet.lang == "bash":
        res = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", snippet.code],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    else:
        pytest.fail(f"{snippet.id}: a {snippet.lang!r} block cannot run; use one of {RUNNABLE} or a skip marker")
    assert res.returncode == 0, (
        f"{snippet.id} failed:\n{snippet.code}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    )


def test_every_block_says_how_it_is_tested() -> None:
    problems = []
    for s in SNIPPETS:
        if s.lang == "literal":
            problems.append(f"{s.id}: a bare '::' literal block; write '.. code-block:: LANG'")
        elif s.kind == "run" and s.lang not in RUNNABLE:
            problems.append(f"{s.id}: {s.lang!r} blocks cannot run; mark it '<!-- snippet: skip: WHY -->'")
    assert not problems, "\n".join(problems)
    assert len(SNIPPETS) > 20, "the extractor found too few blocks: is it still parsing the pages?"


def test_install_commands_by_name_are_marked_as_needing_the_release() -> None:
    problems = []
    for s in SNIPPETS:
        for line in s.code.splitlines():
            if installs_by_name(line) and s.kind not in ("needs-release", "skip"):
                problems.append(f"{s.id}: {line.strip()!r} installs from PyPI; mark the block needs-release")
    assert not problems, "\n".join(problems)


def test_install_commands_in_prose_say_they_need_the_release() -> None:
    """Inline commands (outside code blocks) name the release in the same paragraph, or install from paths."""
    problems = []
    for path in doc_files():
        text = path.read_text()
        # Code blocks are checked above; look at paragraphs of prose and tables only.
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        text = re.sub(r"\.\. code-block::.*?(?=\n\S)", "", text, flags=re.S)
        for para in re.split(r"\n\s*\n", text):
            names = [n for line in para.splitlines() for n in installs_by_name(line)]
            if names and "release" not in para.lower():
                problems.append(f"{path.relative_to(ROOT)}: {' '.join(para.split())[:120]!r}")
    assert not problems, "\n".join(problems)


def test_backend_install_hints_work_today_or_name_the_release() -> None:
    from autograd import backend

    for name in backend.BACKENDS:
        hint = backend.install_hint(name)
        assert "release" in hint, hint
        today = hint.split("release", 1)[1]
        assert "pip install" in today, f"{name}: the hint gives no command that works before the release: {hint}"
        for line in today.split(";"):
            assert not installs_by_name(line), f"{name}: {line!r} needs the release too"


def test_python_blocks_build_float32_inputs() -> None:
    """xp.random draws float64 on NumPy: blocks build inputs with backend.normal or cast to float32."""
    problems = [
        f"{s.id}: {line.strip()}"
        for s in SNIPPETS
        if s.lang == "python"
        for line in s.code.splitlines()
        if re.search(r"xp\.random\.(randn|rand|normal|uniform)\(", line) and "float32" not in line
    ]
    assert not problems, "\n".join(problems)
