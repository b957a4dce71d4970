"""Smoke tests of the examples with tiny settings (the full runs are the README's main job)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

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


def test_train_digits_leaves_no_temporary_weights(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    train_digits.main(["--epochs", "1", "--limit", "200", "--no-progress"])
    assert "--weights PATH keeps them" in capsys.readouterr().out
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("example", [train_digits, char_gpt])
def test_bfloat16_without_ml_dtypes_is_one_line_with_the_command_that_works(example, monkeypatch):
    from autograd import backend

    if backend.BACKEND != "numpy":
        pytest.skip("ml_dtypes is NumPy's bfloat16")
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes now raises ImportError
    monkeypatch.setattr(backend.active, "_bfloat16", None)  # forget a bfloat16 met earlier in this process
    with pytest.raises(SystemExit) as e:
        example.main(["--precision", "bfloat16", "--no-progress"])
    message = str(e.value.code)
    assert "\n" not in message and "needs ml_dtypes" in message, message
    name = os.path.basename(example.__file__)
    command = f"uv run --only-group examples --with ml_dtypes python examples/{name} --precision bfloat16 --no-progress"
    assert message.endswith(command), message


def test_fit_regression_runs():
    script = os.path.join(os.path.dirname(__file__), "..", "fit_regression.py")
    res = subprocess.run(
        [sys.executable, script, "--steps", "200"],
        capture_output=True,
        text=True,
        env=dict(os.environ, AUTOGRAD_BACKEND="numpy"),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    final = float(res.stdout.split("final mse")[1].split()[0])
    assert final < 0.5, res.stdout


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


def test_char_gpt_explains_its_losses_and_warns_about_mlx_on_a_cpu():
    script = os.path.join(os.path.dirname(__file__), "..", "char_gpt.py")
    res = subprocess.run(
        [sys.executable, script, *TINY, "--steps", "2", "--backend", "mlx"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "the bar's batch_loss: the latest training batch, with dropout and label smoothing" in res.stdout
    import mlx.core as mx

    on_cpu = mx.default_device().type != mx.DeviceType.gpu
    assert ("warning: the mlx backend is running on the CPU" in res.stderr) == on_cpu, res.stderr
    assert char_gpt.mlx_cpu_warning("numpy") is None


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


def test_train_digits_in_mixed_precision(capsys):
    for precision in ("float16", "bfloat16"):
        acc = train_digits.main(["--epochs", "3", "--limit", "600", "--no-progress", "--precision", precision])
        out = capsys.readouterr().out
        assert acc > 0.6 and f"parameters, {precision}" in out, out
        assert "reloaded model test accuracy" in out


def _char_gpt_val_loss(precision: str) -> float:
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import char_gpt; "
        "r = char_gpt.main(sys.argv[2:]); print('RESULT', json.dumps(r['history'][-1]))"
    )
    args = ["--hidden", "32", "--layers", "1", "--heads", "2", "--block", "32", "--batch-size", "8"]
    args += ["--eval-every", "100", "--eval-batches", "4", "--sample-chars", "5", "--no-progress", "--steps", "100"]
    res = subprocess.run(
        [sys.executable, "-c", code, os.path.join(os.path.dirname(__file__), ".."), *args, "--precision", precision],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AUTOGRAD_BACKEND": "mlx"},
    )
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT"))
    import json

    return json.loads(line.split(" ", 1)[1])["val"]


def test_char_gpt_on_mlx_in_bfloat16_matches_float32():
    f32, bf16 = _char_gpt_val_loss("float32"), _char_gpt_val_loss("bfloat16")
    assert abs(bf16 - f32) <= 0.05 * f32, (f32, bf16)
    assert f32 < 3.0  # it learned something (the unigram baseline is 3.24)
