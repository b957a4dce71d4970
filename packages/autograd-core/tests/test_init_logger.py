"""autograd.init and autograd.logger."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest
from core_helpers import to_np

from autograd import backend
from autograd.backend import xp
from autograd.init import compute_in_out_tensor_count, xavier_uniform
from autograd.logger import ColorFormatter, setup_logger
from autograd.tensor import Tensor


def test_compute_in_out_documented_examples():
    assert compute_in_out_tensor_count(Tensor(xp.empty((5, 10))).data) == (5, 10)
    assert compute_in_out_tensor_count(Tensor(xp.empty((16, 3, 3, 3))).data) == (144, 27)
    assert compute_in_out_tensor_count(Tensor(xp.empty((16, 3, 3, 3)))) == (144, 27)
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(4,\)"):
        compute_in_out_tensor_count(Tensor(xp.empty((4,))))


def test_xavier_uniform_in_place_bounds_and_spread():
    t = Tensor(xp.empty((3, 4)))
    same = xavier_uniform(t)
    assert same is t and t.shape == (3, 4)
    big = xavier_uniform(Tensor(xp.zeros((200, 300), dtype=backend.dtype("float32"))))
    limit = math.sqrt(6 / 500)
    vals = to_np(big)
    assert big.dtype == backend.dtype("float32")
    assert vals.min() >= -limit and vals.max() <= limit
    # U(-l, l) has variance l^2 / 3
    assert abs(vals.var() - limit**2 / 3) < 0.05 * limit**2 / 3


def test_xavier_uniform_reproducible_with_seed():
    backend.seed(7)
    a = to_np(xavier_uniform(Tensor(xp.zeros((4, 5)))))
    backend.seed(7)
    b = to_np(xavier_uniform(Tensor(xp.zeros((4, 5)))))
    backend.seed(8)
    c = to_np(xavier_uniform(Tensor(xp.zeros((4, 5)))))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def _record(level):
    return logging.LogRecord("t", level, __file__, 1, "hello", None, None)


def test_color_formatter_levels(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    f = ColorFormatter("%(message)s")
    assert ColorFormatter.FORMATS == {
        10: "\x1b[36;20m",
        20: "\x1b[32;20m",
        30: "\x1b[33;20m",
        40: "\x1b[31;20m",
        50: "\x1b[31;1m",
    }
    for level, color in ColorFormatter.FORMATS.items():
        assert f.format(_record(level)) == f"{color}hello\x1b[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert f.format(_record(logging.INFO)) == "hello"


def test_setup_logger_levels_and_no_duplicate_handlers(monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    log = setup_logger("autograd-test-a")
    assert log.level == logging.INFO
    monkeypatch.setenv("DEBUG", "1")
    again = setup_logger("autograd-test-a")
    assert again is log and log.level == logging.DEBUG
    assert len(log.handlers) == 1


def test_setup_logger_no_color_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    log = setup_logger("autograd-test-b")
    log.propagate = False
    log.warning("plain")
    assert stream.getvalue().endswith("plain\n") and "\x1b[" not in stream.getvalue()


def test_force_color_colours_a_redirected_stream_and_no_color_wins(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    log = setup_logger("autograd-test-force")
    log.propagate = False
    log.warning("loud")
    assert stream.getvalue().startswith("\x1b[33;20m")
    assert stream.getvalue().rstrip("\n").endswith("loud\x1b[0m")
    monkeypatch.setenv("NO_COLOR", "1")
    log.warning("quiet")
    assert stream.getvalue().splitlines()[-1].endswith("quiet") and "\x1b[" not in stream.getvalue().splitlines()[-1]


def test_empty_color_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "")
    monkeypatch.setenv("FORCE_COLOR", "")
    f = ColorFormatter("%(message)s")
    assert f.format(_record(logging.INFO)) == "\x1b[32;20mhello\x1b[0m"
    f.use_color = False
    assert f.format(_record(logging.INFO)) == "hello"
