"""The shape of autograd-core's source: no import cycles (imports inside functions included), small modules."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

SRC = Path(__file__).resolve().parents[1] / "src"
#: A module a newcomer reads in one sitting.
MAX_LINES = 800


def modules(src: Path) -> Dict[str, Path]:
    """Every module of the ``autograd`` namespace under ``src``, by dotted name (a package by its own name)."""
    out = {}
    for path in sorted((src / "autograd").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: Set[str]) -> Set[str]:
    """Every module of ``known`` that ``name`` imports, anywhere in the file (inside functions too).

    ``import x.y`` also imports the package ``x``, so both count, except ``name``'s own parent packages: Python
    has started them before ``name`` runs, so they add no edge.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in known and candidate != name and not name.startswith(candidate + "."):
                    found.add(candidate)
    return found


def find_cycle(src: Path) -> Optional[List[str]]:
    """An import cycle among the modules under ``src`` (as a path that returns to its start), or None."""
    mods = modules(src)
    graph = {name: imports(path, name, set(mods)) for name, path in mods.items()}
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def test_core_has_no_import_cycle():
    mods = modules(SRC)
    assert "autograd.ops.activations" in imports(mods["autograd.functional"], "autograd.functional", set(mods))
    cycle = find_cycle(SRC)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_check_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    pkg = tmp_path / "autograd"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("def f():\n    from autograd.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    assert find_cycle(tmp_path) == ["autograd.a", "autograd.sub.b", "autograd.a"]


def test_no_core_module_is_too_long_to_read_in_one_sitting():
    long = {name: n for name, path in modules(SRC).items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
