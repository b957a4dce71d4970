"""The GPU check: every GPU test and the CUDA benchmarks, on a machine with CuPy and PyTorch but no network.

Two steps, on two machines (docs/gpu_check.rst has the whole recipe):

``prepare`` (on a machine with network, in a clone) builds the wheels of every package, plus the fake
attention plugins core's registry tests need, and downloads the test tools and third-party dependencies
(pytest, hypothesis, safetensors, numpy) and cuDNN's Python frontend (``nvidia-cudnn-frontend`` without its
kernel-DSL dependencies, ``cuda-bindings``) into one folder, the wheelhouse::

    python tools/gpu_check.py prepare --wheelhouse gpu-wheelhouse [--python-version 3.12] [--with-triton]

``run`` (on the GPU machine, in a copy of the same tree, with the wheelhouse carried along) installs the
project from the wheelhouse into a fresh virtual environment that also sees the calling interpreter's
packages (CuPy, PyTorch and, through PyTorch, Triton and libcudnn are used as installed there), then:

1. runs the test suites on the cupy backend side by side, each in its own process and time limit: core, nn,
   optim, autograd-kernels-cuda, and that package's GPU tests (tests/test_gpu.py: the conformance of
   ``cudnn_sdpa``, ``triton_fused`` and ``cuda_flash`` on the device) in two processes;
2. measures host synchronisations in a mixed-precision training step: counted one by one on the simulated
   CuPy (tests/sync_step.py --simulate, with a loss scaler), and on the device without one (a queued kernel
   the step must not wait for);
3. runs the benchmarks one after the other (benchmarks/bench_cuda.py): attention (the three CUDA paths
   against PyTorch's SDPA), a GPT-2-small step and a small ResNet step against PyTorch eager CUDA, per-op
   overhead;

and writes into ``--out``: one log per step, ``results.md`` (environment and versions, the steps, the
sync counts, every benchmark table, the issue's goals met or not) and ``results.json``::

    python tools/gpu_check.py run --wheelhouse gpu-wheelhouse --out gpu-results

Exit status of ``run``: 0 when every step passed, 1 when one failed or ran out of time, 2 when there is no
CUDA device (the install steps still run, so the carried wheels are checked; the GPU steps are listed as
skipped with the reason). Only the standard library is needed to start it.
"""

from __future__ import annotations

import argparse
import datetime
import glob
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
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
# What the test suites import beyond the project's own packages and what the GPU machine already has.
THIRD_PARTY = ["pytest>=8", "hypothesis>=6.100", "safetensors>=0.4", "numpy>=1.26"]
# cuDNN's frontend without its dependencies (its kernel-DSL packages, ~470 MB, serve only head dim 512 on
# Hopper): it needs cuda-bindings (and cuda-pathfinder) to import. libcudnn comes with PyTorch's CUDA build.
CUDNN_FRONTEND = ["nvidia-cudnn-frontend>=1.29", "cuda-bindings>=12", "cuda-pathfinder"]
INSTALL = ["autograd-core", "autograd-nn", "autograd-optim", "autograd-kernels-cuda", "autograd-fake-kernel-plugins"]
INSTALL_EXTRA = ["pytest", "hypothesis"]
KERNELS = "packages/autograd-kernels-cuda/tests"
# (step, pytest arguments, its own time limit in seconds); they run side by side.
SUITES: List[Tuple[str, List[str], int]] = [
    ("core", ["packages/autograd-core/tests"], 170),
    ("nn", ["packages/autograd-nn/tests"], 90),
    ("optim", ["packages/autograd-optim/tests"], 60),
    ("kernels-cuda", [KERNELS, f"--ignore={KERNELS}/test_gpu.py"], 120),
    ("kernels-cuda-gpu-attention", [f"{KERNELS}/test_gpu.py", "-k", "attention"], 170),
    ("kernels-cuda-gpu-ops", [f"{KERNELS}/test_gpu.py", "-k", "not attention"], 170),
]
# (step, benchmark section, its time limit in seconds); they run one after the other, after the tests.
BENCHMARKS: List[Tuple[str, str, int]] = [
    ("bench-attention", "attention", 90),
    ("bench-gpt", "gpt", 60),
    ("bench-resnet", "resnet", 35),
    ("bench-overhead", "overhead", 15),
]
SYNC_SECONDS = 60
DEADLINE = 360  # seconds for the whole run (the 6 minutes); a step never gets more than what is left
GOALS = [
    "attention fwd+bwd (cudnn_sdpa) at least 0.9x SDPA's throughput from T=2048, peak memory at most 1.2x",
    "attention fwd+bwd (triton_fused) at least 0.5x SDPA's throughput",
    "GPT-2-small step at most 1.2x PyTorch eager CUDA's time, peak memory at most 1.2x",
    "ResNet step at most 1.5x PyTorch's time",
]


def _start(cmd: List[str], log: Path, env: Optional[Dict[str, str]] = None) -> Tuple[subprocess.Popen, Any, float]:
    f = open(log, "w")  # noqa: SIM115 - closed by _finish
    f.write("$ " + " ".join(cmd) + "\n")
    f.flush()
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
    return proc, f, time.perf_counter()


def _finish(proc: subprocess.Popen, f: Any, started: float, timeout: float) -> Tuple[Optional[int], float]:
    """Wait for a started step (at most ``timeout`` seconds from its start); (exit status or None, seconds)."""
    try:
        rc: Optional[int] = proc.wait(timeout=max(timeout - (time.perf_counter() - started), 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest's own subprocesses go too
        proc.wait()
        rc = None
        f.write(f"\n*** stopped after {timeout:.0f}s: the step's time limit ***\n")
    f.close()
    return rc, time.perf_counter() - started


def _run(
    cmd: List[str], log: Path, timeout: float, env: Optional[Dict[str, str]] = None
) -> Tuple[Optional[int], float]:
    """Run cmd with its output in log; (exit status or None on timeout, seconds)."""
    return _finish(*_start(cmd, log, env), timeout=timeout)


def _pytest_counts(log: Path) -> Dict[str, int]:
    """Outcomes from pytest's -v lines, so a run stopped by its time limit still reports what it did."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for m in re.finditer(r"::\S+ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", log.read_text(errors="replace")):
        word = m.group(1).lower()
        counts["passed" if word in ("xfail", "xpass") else word] += 1
    return counts


def _status(rc: Optional[int]) -> str:
    return "passed" if rc == 0 else ("timeout" if rc is None else "failed")


def prepare(wheelhouse: Path, python_version: Optional[str], with_triton: bool = False) -> None:
    wheelhouse.mkdir(parents=True, exist_ok=True)
    # Like uv's dist folders: the wheelhouse ignores itself, so it never shows up in git status.
    (wheelhouse / ".gitignore").write_text("*\n")
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    subprocess.run(
        [uv, "build", "--all-packages", "--no-sources", "--wheel", "-o", str(wheelhouse)], cwd=ROOT, check=True
    )
    fake = ROOT / "packages/autograd-core/tests/fake_plugins"
    subprocess.run([uv, "build", "--wheel", "-o", str(wheelhouse), str(fake)], cwd=ROOT, check=True)
    target: List[str] = []
    if python_version:
        # For another interpreter than this one: binary wheels for that version on Linux x86_64.
        target += ["--only-binary=:all:", "--python-version", python_version]
        target += [
            f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        ]
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse)]
    subprocess.run([*pip, *target, *THIRD_PARTY], check=True)
    subprocess.run([*pip, *target, "--no-deps", *CUDNN_FRONTEND], check=True)
    if with_triton:  # about 250 MB: only for a GPU machine whose PyTorch brings no Triton
        subprocess.run([*pip, *target, "--no-deps", "triton>=3.9"], check=True)
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheelhouse.iterdir()) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {wheelhouse}:\n  " + "\n  ".join(wheels))


def _parent_site_dirs() -> List[str]:
    import site as site_module

    return [p for p in [*site_module.getsitepackages(), site_module.getusersitepackages()] if os.path.isdir(p)]


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
    # A .pth file appends the parent's folders after the venv's own, so the carried wheels win.
    Path(site, "gpu_check_parent.pth").write_text("\n".join(_parent_site_dirs()) + "\n")
    return py


def _cudnn_library_dirs() -> List[str]:
    """Folders holding libcudnn.so.9 among the parent's packages (PyTorch's nvidia-cudnn-cu12/cu13 wheel).

    The frontend looks for libcudnn in its own environment's site-packages and on LD_LIBRARY_PATH; the check's
    venv has only the parent's folders on sys.path, so they go on LD_LIBRARY_PATH.
    """
    found = []
    for site in _parent_site_dirs():
        for lib in glob.glob(os.path.join(site, "nvidia", "cudnn*", "lib", "libcudnn.so.*")):
            folder = os.path.dirname(lib)
            if folder not in found:
                found.append(folder)
    return found


def _gpu_reason(py: Path, env: Dict[str, str]) -> Optional[str]:
    """None when CuPy sees a CUDA device from the check's environment, else why not."""
    code = "import cupy; n = cupy.cuda.runtime.getDeviceCount(); print(n); assert n > 0, 'CuPy sees no CUDA device'"
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if res.returncode == 0:
        return None
    last = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"CuPy cannot use a CUDA device here ({last})"


_PROBES = {
    "python": "import sys; print(sys.version.split()[0])",
    "cupy": "import cupy; print(cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())",
    "gpu": "import cupy; d = cupy.cuda.runtime.getDeviceProperties(0); print(d['name'].decode(), "
    "f\"({d['totalGlobalMem'] / 2**30:.0f} GiB, sm_{d['major']}{d['minor']})\")",
    "torch": "import torch; print(torch.__version__, '| CUDA', torch.version.cuda, '| available', "
    "torch.cuda.is_available())",
    "triton": "import triton; print(triton.__version__)",
    "cudnn": "import cudnn; print('frontend', cudnn.__version__, '| libcudnn', cudnn.backend_version())",
    "autograd": "import importlib.metadata as m; print(', '.join(f'{d} {m.version(d)}' for d in "
    "('autograd-core', 'autograd-nn', 'autograd-optim', 'autograd-kernels-cuda')))",
    "kernels": "import json, subprocess, sys; r = json.loads(subprocess.run([sys.executable, '-m', "
    "'autograd.kernels', '--json'], capture_output=True, text=True).stdout); print('; '.join(f\"{i['op']} "
    "{i['name']}: {'usable' if i['usable'] else i['reasons'][0]}\" for i in r['implementations'] if i['package'] "
    "== 'autograd-kernels-cuda' and i['op'] in ('attention', 'layer_norm')))",
}


def _environment(py: Path, env: Dict[str, str]) -> Dict[str, str]:
    info = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    info["machine"] = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"
    for key, code in _PROBES.items():
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


def _json_of(log: Path) -> Optional[Dict[str, Any]]:
    """The JSON object a script printed last in its log (None when there is none)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    start = text.rfind("\n{")
    try:
        return json.loads(text[start + 1 :]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


def _sync_section(simulated: Optional[Dict[str, Any]], device: Optional[Dict[str, Any]]) -> List[str]:
    lines = ["## Host synchronisations in a training step", ""]
    if simulated is None:
        lines.append("- simulated CuPy: no result (see sync-simulated.log)")
    else:
        sites: Dict[str, int] = {}
        for e in simulated["syncs"]:
            key = f"{e['what']} in {e['function']} ({e['file']})"
            sites[key] = sites.get(key, 0) + 1
        lines.append(f"- simulated CuPy, every op on triton_fused: {len(simulated['syncs'])} device-to-host transfers")
        lines += [f"  - {n} x {site}" for site, n in sorted(sites.items(), key=lambda kv: -kv[1])]
    if device is None:
        lines.append("- on the device: no result (see sync-device.log)")
    else:
        waited = not device["returned_before_the_device_finished"]
        lines.append(
            f"- on the device: a {device['spin_ms']:.0f} ms kernel queued first; the step "
            f"({'with' if device.get('loss_scaler', True) else 'without'} a loss scaler)'s host time was "
            f"{device['host_ms']:.1f} ms and it {'waited for the device' if waited else 'never waited for the device'}"
        )
    return lines


def _goal_lines(bench: Dict[str, Dict[str, Any]]) -> List[str]:
    """Each goal of the issue: met, not met, or not measured (with the numbers)."""
    out = ["## Goals (H200)", ""]
    att = bench.get("attention") or {}
    rows = att.get("rows", [])

    def ratios(impl: str, min_seq: int) -> List[Tuple[float, Optional[float]]]:
        got = []
        for row in rows:
            ours, ref = row["cells"].get(impl, {}), row["cells"].get("torch", {})
            if row["seq"] >= min_seq and "seconds" in ours and "seconds" in ref:
                mem = None
                if ours.get("peak_bytes") and ref.get("peak_bytes"):
                    mem = ours["peak_bytes"] / ref["peak_bytes"]
                got.append((ref["seconds"] / ours["seconds"], mem))
        return got

    def verdict(ok: Optional[bool], detail: str) -> str:
        return f"{'met' if ok else 'not met' if ok is False else 'not measured'}: {detail}"

    cud = ratios("cudnn_sdpa", 2048)
    ok = None if not cud else all(r >= 0.9 and (m is None or m <= 1.2) for r, m in cud)
    detail = ", ".join(f"{r:.2f}x" + (f" / {m:.2f}x mem" if m else "") for r, m in cud) or "no measurement"
    out.append(f"- {GOALS[0]}: {verdict(ok, detail)}")
    tri = ratios("triton_fused", 0)
    ok = None if not tri else all(r >= 0.5 for r, _ in tri)
    out.append(f"- {GOALS[1]}: {verdict(ok, ', '.join(f'{r:.2f}x' for r, _ in tri) or 'no measurement')}")
    for goal, name, limit, mem_limit in ((GOALS[2], "gpt", 1.2, 1.2), (GOALS[3], "resnet", 1.5, None)):
        res = bench.get(name) or {}
        ours, ref = res.get("autograd", {}), res.get("torch", {})
        if "seconds" in ours and "seconds" in ref:
            t = ours["seconds"] / ref["seconds"]
            m = ours["peak_bytes"] / ref["peak_bytes"] if ours.get("peak_bytes") and ref.get("peak_bytes") else None
            ok = t <= limit and (mem_limit is None or m is None or m <= mem_limit)
            out.append(f"- {goal}: {verdict(ok, f'{t:.2f}x time' + (f', {m:.2f}x memory' if m else ''))}")
        else:
            out.append(f"- {goal}: {verdict(None, 'no measurement')}")
    return out


def run(wheelhouse: Path, out: Path, deadline: float) -> int:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    steps: List[Dict[str, Any]] = []

    def left() -> float:
        return deadline - (time.perf_counter() - started)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "TRITON_INTERPRET"}
    # Only the wheelhouse: no index, no machine-wide pip configuration (no network on the GPU machine).
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    libdirs = _cudnn_library_dirs()
    if libdirs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libdirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    wheels = str(wheelhouse.resolve())
    bench_results: Dict[str, Dict[str, Any]] = {}
    simulated = device_sync = None
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        py = _make_venv(Path(scratch) / "venv")
        log = out / "install.log"
        cmd = [str(py), "-m", "pip", "install", "--find-links", wheels, *INSTALL, *INSTALL_EXTRA]
        rc, secs = _run(cmd, log, min(60, left()), env)
        steps.append({"step": "install", "status": _status(rc), "seconds": secs, "log": log.name})
        installed = rc == 0

        log = out / "install-cudnn-frontend.log"
        if not any(wheelhouse.glob("nvidia_cudnn_frontend-*.whl")):
            steps.append({"step": "install-cudnn-frontend", "status": "skipped: not in the wheelhouse", "seconds": 0.0})
        else:
            cmd = [str(py), "-m", "pip", "install", "--find-links", wheels, "--no-deps", *CUDNN_FRONTEND]
            rc, secs = _run(cmd, log, min(60, left()), env)
            steps.append({"step": "install-cudnn-frontend", "status": _status(rc), "seconds": secs, "log": log.name})

        test_env = dict(env, AUTOGRAD_BACKEND="cupy")
        reason = "install failed" if not installed else _gpu_reason(py, env)
        info = _environment(py, test_env if not reason else env)

        # 1. the test suites, side by side
        running = []
        for name, args, limit in SUITES:
            log = out / f"{name}.log"
            if reason:
                steps.append({"step": name, "status": f"skipped: {reason}", "seconds": 0.0, "log": ""})
                continue
            cmd = [str(py), "-m", "pytest", *args, "-v", "-rfE", "--import-mode=importlib", "-p", "no:cacheprovider"]
            cmd += ["--maxfail=25", f"--junitxml={out / f'{name}.xml'}"]
            running.append((name, log, min(limit, left()), _start(cmd, log, test_env)))
        for name, log, limit, handle in running:
            rc, secs = _finish(*handle, timeout=limit)
            steps.append({"step": name, "status": _status(rc), "seconds": secs, "log": log.name, **_pytest_counts(log)})

        # 2. host synchronisations: counted on the simulated CuPy, detected on the device
        sync_script = str(ROOT / KERNELS / "sync_step.py")
        for name, cmd, extra in (
            ("sync-simulated", [str(py), sync_script, "--simulate", "--kernels", "triton"], {"TRITON_INTERPRET": "1"}),
            ("sync-device", [str(py), sync_script, "--spin-ms", "1000", "--no-loss-scaler"], {}),
        ):
            log = out / f"{name}.log"
            if reason:  # the simulated count needs no GPU, but Triton comes with the GPU machine's PyTorch
                steps.append({"step": name, "status": f"skipped: {reason}", "seconds": 0.0, "log": ""})
                continue
            rc, secs = _run(cmd, log, min(SYNC_SECONDS, left()), dict(test_env, **extra))
            steps.append({"step": name, "status": _status(rc), "seconds": secs, "log": log.name})
            if name == "sync-simulated":
                simulated = _json_of(log)
            else:
                device_sync = _json_of(log)

        # 3. the benchmarks, one after the other (each alone on the GPU)
        for name, section, limit in BENCHMARKS:
            log = out / f"{name}.log"
            if reason:
                steps.append({"step": name, "status": f"skipped: {reason}", "seconds": 0.0, "log": ""})
                continue
            timeout = min(limit, left())
            if timeout < 5:
                steps.append({"step": name, "status": "skipped: the run's deadline is spent", "seconds": 0.0})
                continue
            data = out / f"{section}.json"
            cmd = [str(py), str(ROOT / "benchmarks/bench_cuda.py"), section, "--budget", str(max(timeout - 20, 5))]
            cmd += ["--output", str(out / f"{section}.md"), "--json", str(data)]
            rc, secs = _run(cmd, log, timeout, test_env)
            steps.append({"step": name, "status": _status(rc), "seconds": secs, "log": log.name})
            if data.exists():
                bench_results[section] = json.loads(data.read_text())

    total = time.perf_counter() - started
    lines = ["# GPU check", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- total: {total:.0f} s (goal: under {DEADLINE} s)", ""]
    lines += [
        "| step | status | passed | failed | skipped | seconds | log |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in steps:
        counts = [str(s.get(k, "")) for k in ("passed", "failed", "skipped")]
        lines.append(
            f"| {s['step']} | {s['status']} | " + " | ".join(counts) + f" | {s['seconds']:.0f} | {s.get('log', '')} |"
        )
    lines += ["", *_sync_section(simulated, device_sync)]
    for _, section, _ in BENCHMARKS:
        table = out / f"{section}.md"
        if table.exists():
            lines += ["", f"## Benchmark: {section}", "", table.read_text().rstrip()]
    lines += ["", *_goal_lines(bench_results)]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    summary = {"environment": info, "steps": steps, "seconds": total, "sync": {"simulated": simulated}}
    summary["sync"]["device"] = device_sync
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(lines))
    if reason and installed:
        return 2
    return 0 if all(s["status"] == "passed" or s["status"].startswith("skipped: not in") for s in steps) else 1


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="build and download every wheel the check needs (needs network)")
    pp.add_argument("--wheelhouse", type=Path, required=True)
    pp.add_argument("--python-version", default=None, help="the GPU machine's Python (X.Y) when it differs from this")
    pp.add_argument("--with-triton", action="store_true", help="also carry Triton (for a machine without it)")
    pr = sub.add_parser("run", help="install from the wheelhouse and run the checks (no network needed)")
    pr.add_argument("--wheelhouse", type=Path, required=True)
    pr.add_argument("--out", type=Path, required=True, help="folder for the logs, results.md and results.json")
    pr.add_argument("--deadline", type=float, default=DEADLINE, help="seconds for the whole run")
    args = p.parse_args(argv)
    if args.command == "prepare":
        prepare(args.wheelhouse, args.python_version, args.with_triton)
        return 0
    return run(args.wheelhouse, args.out, args.deadline)


if __name__ == "__main__":
    sys.exit(main())
