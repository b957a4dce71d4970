"""Every .cu file compiles with nvcc for sm_80 and sm_90 with no error and no warning."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest
from autograd_kernels_cuda import kernel_sources, tiling_model

NVCC = shutil.which("nvcc")
# Like the Triton AOT compiles, these run in the package's own session (nox -s "tests(numpy-kernels-cuda)" sets
# AUTOGRAD_COMPILE_KERNELS=1): compiling does not depend on which other packages are installed.
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
compile_checks = pytest.mark.skipif(
    os.environ.get("AUTOGRAD_COMPILE_KERNELS") != "1",
    reason="nvcc compiles run with AUTOGRAD_COMPILE_KERNELS=1 (nox -s 'tests(numpy-kernels-cuda)' sets it)",
)
KERNEL_DIR = os.fspath(resources.files("autograd_kernels_cuda") / "kernels")
CU_FILES = sorted(n for n in kernel_sources() if n.endswith(".cu"))


def test_sources_ship_with_the_package():
    assert CU_FILES == ["flash_bwd.cu", "flash_fwd.cu"]
    assert "common.cuh" in kernel_sources()


@needs_nvcc
@compile_checks
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", CU_FILES)
def test_nvcc_compiles_without_warnings(name, arch, tmp_path):
    cmd = [
        NVCC,
        "-c",
        os.path.join(KERNEL_DIR, name),
        "-o",
        str(tmp_path / "out.o"),
        f"-arch={arch}",
        "-std=c++17",
        f"-I{KERNEL_DIR}",
        "--Werror",
        "all-warnings",
        "-Xcompiler",
        "-Wall,-Wextra,-Werror",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


HARNESS = r"""
#include <cstdio>
#include "common.cuh"
int main() {
    const unsigned long long seeds[3] = {0ull, 12345ull, 0xfedcba9876543210ull};
    for (int s = 0; s < 3; ++s)
        for (unsigned int bh = 0; bh < 3; ++bh)
            for (unsigned int i = 0; i < 5; ++i)
                for (unsigned int j = 0; j < 7; ++j)
                    std::printf("%u %.9g\n", philox4x32_10(seeds[s], i, j, bh, 0u),
                                dropout_scale(seeds[s], bh, i, j, 0.3f));
    return 0;
}
"""


@needs_nvcc
def test_host_build_of_the_cuda_rng_matches_the_model(tmp_path):
    # The generator in common.cuh is __host__ __device__: build it for the CPU and compare bit for bit.
    src = tmp_path / "harness.cu"
    src.write_text(HARNESS)
    exe = tmp_path / "harness"
    res = subprocess.run(
        [NVCC, str(src), "-o", str(exe), "-std=c++17", f"-I{KERNEL_DIR}"], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    expected = []
    for seed in (0, 12345, 0xFEDCBA9876543210):
        for bh in range(3):
            for i in range(5):
                for j in range(7):
                    bits = int(tiling_model.philox4x32_10(seed, i, j, bh, 0))
                    keep = float(tiling_model.dropout_scale(seed, bh, i, j, 0.3))
                    expected.append((bits, keep))
    got = [(int(a), float(b)) for a, b in (line.split() for line in lines if line)]
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-6)
