"""File helpers shared by the packages that write checkpoints (nn weights, optimizer state).

Saving is atomic: the data goes to a temporary file beside the destination,
which is flushed to disk and then renamed over it, so a crash at any point
leaves either the old file or the new one, never a truncated one. Around that:

* a symlink is followed: the link's target is replaced and the link stays a
  link (as editors and ``safetensors`` users expect);
* an existing file keeps its permission bits; a new file gets the usual
  ``0o666`` minus the umask (not the ``0o600`` of a bare temporary file);
* the temporary file is removed on any exception; a save killed outright
  (``SIGKILL``, power loss) cannot clean up, so the next save to the same path
  removes the temporaries of earlier interrupted saves of that path. Only
  files named by this module for that same destination, written by a process
  on this host that no longer runs, are removed; nothing else is touched.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import tempfile
from typing import Callable

__all__ = ["atomic_write", "atomic_write_bytes", "check_readable"]

_TAG = ".autograd-tmp."


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"


def _prefix(name: str) -> str:
    # .<name>.autograd-tmp.<host>.<pid>.<random><suffix>: hidden, and naming what it belongs to and who wrote it.
    return f".{name}{_TAG}{_host()}.{os.getpid()}."


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Delete temporaries of interrupted saves of ``folder/name`` left by dead processes of this host."""
    head = f".{name}{_TAG}{_host()}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(head):
            continue
        pid_text = entry[len(head) :].split(".", 1)[0]
        if not pid_text.isdigit() or _running(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(folder, entry))
        except OSError:
            pass  # already gone, or not ours to remove


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    ``path`` may be a symlink (its target is written). An exception at any
    point leaves the previous file (if any) untouched and no temporary file
    behind; see the module docstring for saves that are killed.
    """
    target = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(target)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "cannot save: the destination is a directory", os.fspath(path))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    _remove_stale_temporaries(folder, name)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(name), suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, suffix: str = "") -> None:
    """:func:`atomic_write` of ``data``.

    Serialise in memory and hand the bytes here rather than letting a library
    write the file itself: a library's own temporary (safetensors' ``save_file``
    writes ``.tmpXXXXXX`` files) would outlive a killed save, unnamed for the
    cleanup above.
    """

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write, suffix=suffix)


def check_readable(path: str | os.PathLike, what: str) -> str:
    """Return ``path`` as a string after checking it names a readable file.

    Raises the ``OSError`` subclass of the real cause (``FileNotFoundError``,
    ``IsADirectoryError``, ``PermissionError``...) with ``what`` (e.g. "weights")
    and the path in the message, before a file-format library reports it as
    something else.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot load {what}: the path is a directory, not a file", path)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot load {what}: {exc.strerror}", path) from None
    return path
