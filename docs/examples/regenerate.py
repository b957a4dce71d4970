"""Run the examples of the gallery and record what they print and plot (docs/examples/output, docs/examples/images).

    uv run --only-group examples python docs/examples/regenerate.py            # every example
    uv run --only-group examples python docs/examples/regenerate.py char_gpt   # one of them

The gallery pages show the commands below, so a page's output is the one its command prints. On the
2-core x86_64 machine of MACHINE: train_digits about 12 s, char_gpt about 50 s, fit_regression a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MACHINE = "recorded on a 2-core x86_64 machine, NumPy backend"

# name -> the example's arguments (after ``python examples/NAME.py``)
EXAMPLES = {
    "train_digits": ["--no-progress", "--plot", "docs/examples/images/train_digits.png"],
    "char_gpt": ["--no-progress", "--plot", "docs/examples/images/char_gpt.png"],
    "fit_regression": [],
}


def command(name: str) -> list[str]:
    """The command a gallery page shows, run from the repository root."""
    return ["uv", "run", "--only-group", "examples", "python", f"examples/{name}.py", *EXAMPLES[name]]


def main(argv: list[str]) -> int:
    names = argv or list(EXAMPLES)
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        print(f"unknown examples {unknown}; choose from {list(EXAMPLES)}", file=sys.stderr)
        return 2
    (HERE / "output").mkdir(exist_ok=True)
    (HERE / "images").mkdir(exist_ok=True)
    env = {**os.environ, "AUTOGRAD_BACKEND": "numpy"}
    for name in names:
        # The examples' own interpreter (this one, inside `uv run --only-group examples`), so that running this
        # script never re-resolves the environment; the page shows the `uv run` form a reader types.
        cmd = [sys.executable, f"examples/{name}.py", *EXAMPLES[name]]
        print(f"$ {' '.join(command(name))}", flush=True)
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stdout, res.stderr, sep="\n", file=sys.stderr)
            return res.returncode
        (HERE / "output" / f"{name}.txt").write_text(res.stdout)
        print(res.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
