"""The GPU check: the project on a CUDA machine that has CuPy and PyTorch but no network, in under 8 minutes.

Two steps, on two machines (docs/gpu_check.rst has the whole recipe):

``prepare`` (on a machine with network, in a clone) builds the wheels of every package, plus the fake
attention plugins core's registry tests need, and downloads the test tools and third-party dependencies
(pytest, hypothesis, safetensors, numpy) into one folder, the wheelhouse::

    python tools/gpu_check.py prepare --wheelhouse gpu-wheelhouse [--python-version 3.12]

``run`` (on the GPU machine, in a copy of the same tree, with the wheelhouse carried along) installs the
project from the wheelhouse into a fresh virtual environment that also sees the calling interpreter's
packages (CuPy and PyTorch are used as installed there), then runs, each in its own time limit:

1. the autograd-core, autograd-nn and autograd-optim test suites on the cupy backend,
2. the autograd-kernels-cuda tests, whose conformance suite runs the CUDA kernels on the GPU,
3. the attention benchmark, cuda_flash vs dense CuPy vs PyTorch's SDPA (tools/bench_cuda_attention.py),

and writes into ``--out``: one log per step, ``results.md`` (environment, a table of the steps, the
benchmark table) and ``results.json``::

    python tools/gpu_check.py run --wheelhouse gpu-wheelhouse --out gpu-results

Exit status of ``run``: 0 when every step passed, 1 when one failed or ran out of time, 2 when there is no
CUDA device (the install step still runs, so the carried wheels are checked; the GPU steps are listed as
skipped with the reason). Only the standard library is needed to start it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the test suites import beyond the project's own packages and what the GPU machine already has.
THIRD_PARTY = ["pytest>=8", "hypothesis>=6.100", "safetensors>=0.4", "numpy>=1.26"]
INSTALL = ["autograd-core", "autograd-nn", "autograd-optim", "autograd-kernels-cuda", "autograd-fake-kernel-plugins"]
INSTALL_EXTRA = ["pytest", "hypothesis"]
# (step, what it runs, its own time limit in seconds); together they stay under the 8-minute goal.
SUITES = [
    ("core", "packages/autograd-core/tests", 140),
    ("nn", "packages/autograd-nn/tests", 70),
    ("optim", "packages/autograd-optim/tests", 35),
    ("kernels-cuda", "packages/autograd-kernels-cuda/tests", 70),
]
BENCH_SECONDS = 90
DEADLINE = 450  # seconds for the whole run; a step never gets more than what is left


def _run(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int | None, float]:
    """Run cmd with its output in log; (exit status or None on timeout, seconds)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pytest's own subprocesses go too
            proc.wait()
            rc = None
            f.write(f"\n*** stopped after {timeout:.0f}s: the step's time limit ***\n")
    return rc, time.perf_counter() - start


def _pytest_counts(log: Path) -> dict[str, int]:
    """Outcomes from pytest's -v lines, so a run stopped by its time limit still reports what it did."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for m in re.finditer(r"::\S+ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", log.read_text(errors="replace")):
        word = m.group(1).lower()
        counts["passed" if word in ("xfail", "xpass") else word] += 1
    return counts


def prepare(wheelhouse: Path, python_version: str | None) -> None:
    wheelhouse.mkdir(parents=True, exist_ok=True)
    # Like uv's dist folders: the wheelhouse ignores itself, so it never shows up in git status.
    (wheelhouse / ".gitignore").write_text("*\n")
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    subprocess.run(
        [uv, "build", "--all-packages", "--no-sources", "--wheel", "-o", str(wheelhouse)], cwd=ROOT, check=True
    )
    fake = ROOT / "packages/autograd-core/tests/fake_plugins"
    subprocess.run([uv, "build", "--wheel", "-o", str(wheelhouse), str(fake)], cwd=ROOT, check=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse), *THIRD_PARTY]
    if python_version:
        # For another interpreter than this one: binary wheels for that version on Linux x86_64.
        cmd += ["--only-binary=:all:", "--python-version", python_version]
        cmd += [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    subprocess.run(cmd, check=True)
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheelhouse.iterdir()) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {wheelhouse}:\n  " + "\n  ".join(wheels))


def _make_venv(venv: Path) -> Path:
    """A venv whose site-packages come first, then the calling interpreter's (CuPy, PyTorch, numpy)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import site as site_module

    parent = [p for p in [*site_module.getsitepackages(), site_module.getusersitepackages()] if os.path.isdir(p)]
    # A .pth file appends the parent's folders after the venv's own, so the carried wheels win.
    Path(site, "gpu_check_parent.pth").write_text("\n".join(parent) + "\n")
    return py


def _gpu_reason(py: Path, env: dict[str, str]) -> str | None:
    """None when CuPy sees a CUDA device from the check's environment, else why not."""
    code = "import cupy; n = cupy.cuda.runtime.getDeviceCount(); print(n); assert n > 0, 'CuPy sees no CUDA device'"
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if res.returncode == 0:
        return None
    last = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"CuPy cannot use a CUDA device here ({last})"


def _environment(py: Path, env: dict[str, str]) -> dict[str, str]:
    info = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    info["machine"] = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"
    probes = {
        "python": "import sys; print(sys.version.split()[0])",
        "cupy": "import cupy; print(cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())",
        "gpu": "import cupy; d = cupy.cuda.runtime.getDeviceProperties(0); print(d['name'].decode(), "
        "f\"({d['totalGlobalMem'] / 2**30:.0f} GiB)\")",
        "torch": "import torch; print(torch.__version__, '| CUDA', torch.version.cuda, '| available', "
        "torch.cuda.is_available())",
        "autograd": "import importlib.metadata as m; print(', '.join(f'{d} {m.version(d)}' for d in "
        "('autograd-core', 'autograd-nn', 'autograd-optim', 'autograd-kernels-cuda')))",
    }
    for key, code in probes.items():
        res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, timeout=120)
        info[key] = (
            res.stdout.strip()
            if res.returncode == 0
            else "unavailable: " + ((res.stderr.strip().splitlines() or ["?"])[-1])
        )
    if shutil.which("nvidia-smi"):
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        info["nvidia-smi"] = res.stdout.strip() or res.stderr.strip()
    return info


def run(wheelhouse: Path, out: Path, deadline: float) -> int:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    steps: list[dict[str, object]] = []

    def left() -> float:
        return deadline - (time.perf_counter() - started)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # Only the wheelhouse: no index, no machine-wide pip configuration (no network on the GPU machine).
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        py = _make_venv(Path(scratch) / "venv")
        log = out / "install.log"
        cmd = [str(py), "-m", "pip", "install", "--find-links", str(wheelhouse.resolve()), *INSTALL, *INSTALL_EXTRA]
        rc, secs = _run(cmd, log, min(60, left()), env)
        steps.append({"step": "install", "status": "passed" if rc == 0 else "failed", "seconds": secs, "log": log.name})

        test_env = dict(env, AUTOGRAD_BACKEND="cupy")
        reason = "install failed" if rc != 0 else _gpu_reason(py, env)
        info = _environment(py, env)
        for name, path, limit in SUITES:
            log = out / f"{name}.log"
            if reason:
                steps.append({"step": name, "status": f"skipped: {reason}", "seconds": 0.0, "log": ""})
                continue
            cmd = [str(py), "-m", "pytest", path, "-v", "-rfE", "--import-mode=importlib", "-p", "no:cacheprovider"]
            cmd += ["--maxfail=25", f"--junitxml={out / f'{name}.xml'}"]
            timeout = min(limit, left())
            rc, secs = _run(cmd, log, timeout, test_env)
            counts = _pytest_counts(log)
            status = "passed" if rc == 0 else ("timeout" if rc is None else "failed")
            steps.append({"step": name, "status": status, "seconds": secs, "log": log.name, **counts})

        bench_table = ""
        if reason:
            steps.append({"step": "attention-bench", "status": f"skipped: {reason}", "seconds": 0.0, "log": ""})
        else:
            log, table = out / "attention-bench.log", out / "attention.md"
            timeout = min(BENCH_SECONDS, left())
            cmd = [str(py), str(ROOT / "tools/bench_cuda_attention.py"), "--budget", str(max(timeout - 25, 5))]
            cmd += ["--output", str(table)]
            rc, secs = _run(cmd, log, timeout, test_env)
            status = "passed" if rc == 0 else ("timeout" if rc is None else "failed")
            steps.append({"step": "attention-bench", "status": status, "seconds": secs, "log": log.name})
            bench_table = table.read_text() if table.exists() else ""

    total = time.perf_counter() - started
    lines = ["# GPU check", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- total: {total:.0f} s (goal: under 480 s)", ""]
    lines += [
        "| step | status | passed | failed | skipped | seconds | log |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in steps:
        counts = [str(s.get(k, "")) for k in ("passed", "failed", "skipped")]
        lines.append(f"| {s['step']} | {s['status']} | " + " | ".join(counts) + f" | {s['seconds']:.0f} | {s['log']} |")
    if bench_table:
        lines += ["", "## Attention benchmark", "", bench_table]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"environment": info, "steps": steps, "seconds": total}, indent=2))
    print("\n".join(lines))
    if reason and steps[0]["status"] == "passed":
        return 2
    return 0 if all(s["status"] == "passed" for s in steps) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="build and download every wheel the check needs (needs network)")
    pp.add_argument("--wheelhouse", type=Path, required=True)
    pp.add_argument("--python-version", default=None, help="the GPU machine's Python (X.Y) when it differs from this")
    pr = sub.add_parser("run", help="install from the wheelhouse and run the checks (no network needed)")
    pr.add_argument("--wheelhouse", type=Path, required=True)
    pr.add_argument("--out", type=Path, required=True, help="folder for the logs, results.md and results.json")
    pr.add_argument("--deadline", type=float, default=DEADLINE, help="seconds for the whole run")
    args = p.parse_args(argv)
    if args.command == "prepare":
        prepare(args.wheelhouse, args.python_version)
        return 0
    return run(args.wheelhouse, args.out, args.deadline)


if __name__ == "__main__":
    sys.exit(main())
