"""Smoke tests of the examples with tiny settings (the full runs are the README's main job)."""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import char_gpt  # noqa: E402
import train_digits  # noqa: E402


def test_train_digits_tiny(tmp_path, capsys):
    weights, plot = tmp_path / "w.safetensors", tmp_path / "curves.png"
    acc = train_digits.main(
        ["--epochs", "3", "--limit", "600", "--no-progress", "--weights", str(weights), "--plot", str(plot)]
    )
    out = capsys.readouterr().out
    assert acc > 0.6, out
    assert "reloaded model test accuracy" in out and "test accuracy:" in out
    assert weights.stat().st_size > 0 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


TINY = [
    "--hidden",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--block",
    "16",
    "--batch-size",
    "4",
    "--eval-every",
    "3",
    "--eval-batches",
    "1",
    "--sample-chars",
    "20",
    "--no-progress",
    "--steps",
    "6",
]


def test_char_gpt_tiny_resume_is_exact(tmp_path, capsys):
    full = char_gpt.main(TINY)
    ckpt = str(tmp_path / "ckpt")
    char_gpt.main(TINY + ["--stop-at", "3", "--checkpoint", ckpt])
    resumed = char_gpt.main(TINY + ["--resume", ckpt])
    out = capsys.readouterr().out
    assert "resumed from" in out and "unigram baseline" in out and "--- sample" in out
    assert full["loss_is_finite"] and resumed["history"][-1]["step"] == 6
    for name, value in full["params"].items():
        assert np.array_equal(value, resumed["params"][name]), name
    assert resumed["sample"] == full["sample"] and resumed["sample"].startswith("The ")
