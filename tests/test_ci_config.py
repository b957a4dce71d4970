"""The CI workflows, the release workflow and the docs hosting call nox sessions that exist, and nothing else.

Run by ``nox -s lint`` after actionlint, which checks the workflow files' syntax, expressions and runner labels.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _nox_list() -> list[tuple[str, list[str], bool]]:
    """nox's own list of every session: (name, tags, selected by default). ``--json`` lists only the selected."""
    res = subprocess.run([sys.executable, "-m", "nox", "--list"], cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.findall(r"^([*-]) (\S+?)(?: \[([^\]]*)\])? -> ", res.stdout, flags=re.M)
    assert found, res.stdout
    return [(name, tags.split(",") if tags else [], mark == "*") for mark, name, tags in found]


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    """session name -> tags."""
    return {name: tags for name, tags, _ in _nox_list()}


def _run_steps(path: Path) -> list[tuple[str, dict]]:
    """(job name, step) for every step with a ``run:``."""
    workflow = yaml.safe_load(path.read_text())
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec.get("steps", []) if "run" in step]


def _nox_args(command: str, matrix: list[dict]) -> list[list[str]]:
    """The nox arguments of a run step, with ${{ matrix.x }} expanded for every matrix entry."""
    if "${{ matrix." not in command:
        return [shlex.split(command)]
    out = []
    for entry in matrix:
        text = command
        for key, value in entry.items():
            text = text.replace(f"${{{{ matrix.{key} }}}}", str(value))
        out.append(shlex.split(text))
    return out


def _selected(args: list[str], sessions: dict[str, list[str]]) -> list[str]:
    """The sessions `uv run nox ARGS` runs (for the -s, -k and -t forms the workflows use)."""
    assert args[:3] == ["uv", "run", "nox"], args
    rest = args[3:]
    if "--" in rest:
        rest = rest[: rest.index("--")]
    if rest[0] == "-s":
        names = [a for a in rest[1:] if not a.startswith("-")]
        return [n for n in sessions if n in names or n.split("(")[0] in names]
    if rest[0] == "-t":
        return [n for n, tags in sessions.items() if rest[1] in tags]
    if rest[0] == "-k":
        words = [w for w in rest[1].split() if w != "and"]
        return [n for n in sessions if all(w in n for w in words)]
    raise AssertionError(f"unexpected nox arguments {rest}")


def test_every_ci_step_calls_existing_nox_sessions(sessions: dict[str, list[str]]) -> None:
    workflow = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    covered: set[str] = set()
    for job, step in _run_steps(WORKFLOWS / "ci.yml"):
        matrix = workflow["jobs"][job].get("strategy", {}).get("matrix", {}).get("include", [])
        for args in _nox_args(step["run"].strip(), matrix):
            picked = _selected(args, sessions)
            assert picked, f"job {job}: {' '.join(args)} selects no nox session"
            covered.update(picked)
    # Every session of the default run has a CI job, and so has the GPU check.
    default = [name for name, _, selected in _nox_list() if selected]
    missing = [n for n in default + ["gpu_check"] if n not in covered]
    assert not missing, f"sessions no CI job runs: {missing}"


def test_gpu_job_waits_for_a_runner_only_where_one_exists() -> None:
    job = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]["gpu"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert "vars.GPU_RUNNER" in job["if"]


def test_release_checks_builds_and_publishes_each_package(sessions: dict[str, list[str]]) -> None:
    workflow = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert workflow[True]["push"]["tags"] == ["v*"]
    steps = [s["run"] for _, s in _run_steps(WORKFLOWS / "release.yml")]
    assert steps == ['uv run nox -s release -- "$GITHUB_REF_NAME"'] and "release" in sessions
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"]["name"] == "pypi"
    uses = [s.get("uses", "") for s in publish["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)
    assert "matrix.package" in str(publish["steps"][-1]["with"]["packages-dir"])


def test_read_the_docs_builds_with_the_docs_session() -> None:
    config = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text())
    assert config["version"] == 2 and config["sphinx"]["configuration"] == "docs/conf.py"
    commands = config["build"]["jobs"]["build"]["html"]
    assert any('nox -s docs -- "$READTHEDOCS_OUTPUT/html"' in c for c in commands), commands


def test_docs_theme_has_search_and_a_version_switcher() -> None:
    conf: dict = {}
    exec((ROOT / "docs" / "conf.py").read_text(), conf)
    assert conf["html_theme"] in ("pydata_sphinx_theme", "furo")
    assert "version-switcher" in conf["html_theme_options"]["navbar_end"]
    switcher = json.loads((ROOT / "docs" / conf["html_theme_options"]["switcher"]["json_url"]).read_text())
    assert {v["version"] for v in switcher} >= {"latest", "stable"}


def test_a_python_that_cannot_be_had_gives_a_reason_to_skip() -> None:
    """Where uv can neither find nor download the newest Python, its session skips with this reason."""
    sys.path.insert(0, str(ROOT))
    try:
        import noxfile
    finally:
        sys.path.remove(str(ROOT))
    reason = noxfile._unavailable_python("3.99")
    assert reason and reason.startswith("Python 3.99 is not installed and uv cannot download it here"), reason
    assert noxfile._unavailable_python(noxfile.PYTHON) is None
