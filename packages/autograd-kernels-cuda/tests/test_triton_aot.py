"""Every Triton kernel variant compiles ahead of time for sm_80 and sm_90, here, without a GPU.

The compiler runs in subprocesses (one per architecture, side by side):
kernels imported while ``TRITON_INTERPRET`` is set (the interpreter tests set
it) are interpreted functions, which cannot be compiled. Each runs
``python -m autograd_kernels_cuda.triton_kernels.aot`` with an empty Triton
cache, so nothing is taken from an earlier build.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from autograd_kernels_cuda.triton_kernels import MODULES  # the list only: this imports no triton

# Not importorskip: importing triton here, before the interpreter tests set TRITON_INTERPRET, would break them
# (triton.language's own @jit functions are decorated when triton is first imported).
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("triton") is None,
        reason="triton is not installed (pip install 'autograd-kernels-cuda[triton]')",
    ),
    # Compiling every variant for two architectures takes minutes on two cores: the package's own session
    # (nox -s "tests(numpy-kernels-cuda)") sets AUTOGRAD_COMPILE_KERNELS=1; the sessions that run every suite do not.
    pytest.mark.skipif(
        os.environ.get("AUTOGRAD_COMPILE_KERNELS") != "1",
        reason="AOT compilation runs with AUTOGRAD_COMPILE_KERNELS=1 (nox -s 'tests(numpy-kernels-cuda)' sets it)",
    ),
]

ARCHS = (80, 90)
# Largest shared memory one block may use (opt-in): A100 (sm_80) 163 KiB, H100/H200 (sm_90) 227 KiB.
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
# Modules whose kernels multiply tiles with tl.dot: they must land on the tensor cores.
DOT_MODULES = {"attention": ("fwd_", "bwd_dkdv_", "bwd_dq_"), "conv": ("fwd_", "dgrad_", "wgrad_")}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """{arch: [record, ...]} from the AOT compiler, run once per architecture, concurrently."""
    folder = tmp_path_factory.mktemp("aot")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = {}
    for arch in ARCHS:
        out = folder / f"sm_{arch}.json"
        cmd = [
            sys.executable,
            "-m",
            "autograd_kernels_cuda.triton_kernels.aot",
            "--arch",
            str(arch),
            "--json",
            str(out),
        ]
        run_env = {**env, "TRITON_CACHE_DIR": str(folder / f"cache_{arch}")}
        procs[arch] = (
            subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
            out,
        )
    records = {}
    for arch, (proc, out) in procs.items():
        log, _ = proc.communicate(timeout=900)
        assert out.exists(), f"the AOT compiler for sm_{arch} wrote nothing:\n{log[-4000:]}"
        records[arch] = json.loads(out.read_text())
    return records


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("module", MODULES)
def test_every_variant_compiles(compiled, module, arch):
    records = [r for r in compiled[arch] if r["module"] == module]
    assert records, f"{module} lists no AOT variant"
    failed = {r["label"]: r["error"] for r in records if not r["ok"]}
    assert not failed, f"{module} on sm_{arch}: {json.dumps(failed, indent=1)[:4000]}"
    for r in records:
        assert r["cubin_bytes"] > 0
        assert r["shared_bytes"] <= SHARED_LIMIT[arch], (
            f"{module}.{r['label']} needs {r['shared_bytes']} bytes of shared memory, over sm_{arch}'s "
            f"{SHARED_LIMIT[arch]}: it would fail to launch"
        )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("module", sorted(DOT_MODULES))
def test_matrix_products_use_the_tensor_cores(compiled, module, arch):
    prefixes = DOT_MODULES[module]
    records = [r for r in compiled[arch] if r["module"] == module and r["ok"] and r["label"].startswith(prefixes)]
    assert records
    slow = [r["label"] for r in records if not r["mma"]]
    assert not slow, f"no mma instruction in {slow} on sm_{arch}"
    if arch == 90:
        # Hopper's warpgroup MMA, for the half-precision attention tiles (64-row multiples; the float32
        # backward's 32-row tiles, sized for sm_80's shared memory, stay on mma.sync).
        if module == "attention":
            half = [r for r in records if "fp32" not in r["label"]]
            assert half and all(r["wgmma"] for r in half), [r["label"] for r in half if not r["wgmma"]]
