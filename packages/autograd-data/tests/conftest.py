"""Test modules import the data sets of data_helpers.py beside this file (spawned workers import it too)."""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

#: No test here takes more than a few seconds: one that hangs (a worker that never answers, a wait that never
#: ends) is stopped after this long with every thread's traceback, and fails the run instead of stalling it.
HANG_LIMIT_S = float(os.environ.get("AUTOGRAD_DATA_TEST_HANG_LIMIT", "120"))


@pytest.fixture(autouse=True)
def _fail_instead_of_hanging():
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
