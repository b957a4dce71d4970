"""autograd.files: atomic saves that follow symlinks, keep modes and clean up after interrupted saves."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from autograd import files
from autograd.files import atomic_write, check_readable


def _write(data: bytes):
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, _write(b"one"))
    atomic_write(path, _write(b"two"))
    assert path.read_bytes() == b"two" and os.listdir(tmp_path) == ["a.bin"]


def test_saving_through_a_symlink_writes_the_target(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    atomic_write(link, _write(b"new"))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["link.bin", "real.bin"]


def test_existing_mode_is_kept_and_new_files_follow_the_umask(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    atomic_write(path, _write(b"y"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o640)
    atomic_write(path, _write(b"z"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.bin"
        atomic_write(fresh, _write(b"f"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644


def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, _write(b"good"))

    def crash(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["a.bin"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_saves_are_removed_by_the_next_save_of_that_path(tmp_path):
    host = files._host()
    dead = _dead_pid()
    stale = tmp_path / f".a.bin.autograd-tmp.{host}.{dead}.abc123.safetensors"
    stale.write_bytes(b"\0" * 1000)
    live = tmp_path / f".a.bin.autograd-tmp.{host}.{os.getpid()}.def456"  # a save still running
    live.write_bytes(b"x")
    other_path = tmp_path / f".b.bin.autograd-tmp.{host}.{dead}.ghi789"  # belongs to another destination
    other_path.write_bytes(b"x")
    other_host = tmp_path / f".a.bin.autograd-tmp.{host}x.{dead}.jkl000"  # another machine on a shared folder
    other_host.write_bytes(b"x")
    unrelated = tmp_path / ".a.bin.tmp-user-file"
    unrelated.write_bytes(b"x")
    atomic_write(tmp_path / "a.bin", _write(b"data"))
    assert not stale.exists()
    assert live.exists() and other_path.exists() and other_host.exists() and unrelated.exists()


def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    path = tmp_path / "w.bin"
    script = (
        "import os, signal, sys\n"
        "from autograd.files import atomic_write\n"
        "def write(tmp):\n"
        "    open(tmp, 'wb').write(b'x' * 100000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        f"atomic_write({str(path)!r}, write)\n"
    )
    for _ in range(3):
        subprocess.run([sys.executable, "-c", script], check=False)
    # Each killed save removed its predecessor's temporary: one is left, not three.
    leftovers = [n for n in os.listdir(tmp_path) if n != "w.bin"]
    assert len(leftovers) == 1 and not path.exists()
    assert os.path.getsize(tmp_path / leftovers[0]) == 100000
    atomic_write(path, _write(b"ok"))
    assert os.listdir(tmp_path) == ["w.bin"]


def test_check_readable_names_the_real_cause(tmp_path, monkeypatch):
    with pytest.raises(IsADirectoryError, match=r"cannot load weights.*directory") as info:
        check_readable(tmp_path, "weights")
    assert info.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="cannot load weights") as info:
        check_readable(tmp_path / "missing.safetensors", "weights")
    assert info.value.filename == str(tmp_path / "missing.safetensors")
    path = tmp_path / "locked.bin"
    path.write_bytes(b"x")
    os.chmod(path, 0)

    def denied(*args, **kwargs):  # root reads mode-0 files, so the denial is simulated there
        raise PermissionError(13, "Permission denied")

    if os.geteuid() == 0:
        monkeypatch.setattr(files, "open", denied, raising=False)
    with pytest.raises(PermissionError, match="cannot load optimizer state: Permission denied") as info:
        check_readable(path, "optimizer state")
    assert info.value.filename == str(path)


def test_saving_onto_a_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path, _write(b"x"))
