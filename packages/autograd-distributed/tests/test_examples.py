"""Both examples train under ``mpiexec -n 2`` with ``--distributed`` (tiny settings), as the README shows.

The examples live at the repository root, so these tests run from a clone (``nox -s distributed``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from dist_helpers import run_mpi

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MISSING = [m for m in ("sklearn", "tqdm") if importlib.util.find_spec(m) is None]
if not (EXAMPLES / "char_gpt.py").exists():
    pytestmark = pytest.mark.skip(reason="the examples are in the repository's examples/ folder: run from a clone")
elif MISSING and os.environ.get("AUTOGRAD_REQUIRE_MPI"):
    # The multi-process tests must run (nox's distributed and together sessions): say what is missing here,
    # rather than as an ImportError on one rank of the example.
    pytest.fail(f"the examples need {MISSING}: pip install scikit-learn tqdm", pytrace=False)
elif MISSING:
    pytestmark = pytest.mark.skip(reason=f"the examples need {MISSING}: pip install scikit-learn tqdm")


def test_train_digits_trains_on_two_ranks(tmp_path):
    weights = tmp_path / "digits.safetensors"
    args = ["--distributed", "--epochs", "3", "--limit", "600", "--no-progress", "--weights", str(weights)]
    res = run_mpi(args, script=str(EXAMPLES / "train_digits.py"), timeout=240)
    assert res.rc == 0, res
    assert res.out.count("backend numpy:") == 1, res  # only rank 0 reports
    assert res.out.count("distributed: 2 ranks over mpi, backend numpy") == 1, res
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", res.out).group(1))
    assert accuracy > 0.6, res
    assert weights.stat().st_size > 0


TINY = "--hidden 32 --layers 1 --heads 2 --block 16 --batch-size 4 --eval-every 3 --eval-batches 1".split()
TINY += ["--sample-chars", "20", "--no-progress", "--steps", "6", "--distributed"]


def _last_eval_and_sample(out: str) -> tuple[str, str]:
    evals = re.findall(r"step +6: train loss .*", out)
    return evals[-1], out.split("--- sample")[-1]


def test_char_gpt_on_two_ranks_resumes_exactly(tmp_path):
    script = str(EXAMPLES / "char_gpt.py")
    full = run_mpi(TINY, script=script, timeout=240)
    assert full.rc == 0, full
    ckpt = str(tmp_path / "ckpt")
    part = run_mpi(TINY + ["--stop-at", "3", "--checkpoint", ckpt], script=script, timeout=240)
    assert part.rc == 0 and "checkpoint written" in part.out, part
    resumed = run_mpi(TINY + ["--resume", ckpt], script=script, timeout=240)
    assert resumed.rc == 0 and "resumed from" in resumed.out, resumed
    assert full.out.count("--- sample") == 1, full  # only rank 0 reports
    assert full.out.count("distributed: 2 ranks over mpi, backend numpy") == 1, full
    assert _last_eval_and_sample(resumed.out) == _last_eval_and_sample(full.out)
