"""Compile every Triton kernel ahead of time for a CUDA architecture, without a GPU.

Each kernel module lists, in ``aot_variants()``, the instances its launch
functions use: the kernel, the element type of each pointer argument, the
constexpr values, and launch options. :func:`compile_variant` builds Triton's
``ASTSource`` for one of them and compiles it with ``triton.compile`` for
``GPUTarget("cuda", arch, 32)``, down to a cubin with the ptxas Triton ships.
Pointer arguments carry the 16-byte alignment attribute a real launch on
CuPy's allocations gets (CuPy aligns every allocation to at least 256 bytes).

Run as a script (TRITON_INTERPRET must be unset: interpreted kernels cannot be compiled)::

    python -m autograd_kernels_cuda.triton_kernels.aot --arch 80 90 [--json results.json] [--only attention]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

from autograd_kernels_cuda.triton_kernels import MODULES

__all__ = ["variants", "signature_of", "compile_variant", "compile_all", "main"]

#: Arguments that are not pointers default to int32; these names are float32 scalars.
FLOAT_ARGS = frozenset(
    {
        "eps",
        "scale",
        "p_drop",
        "lr",
        "beta1",
        "beta2",
        "weight_decay",
        "step_size",
        "inv_bias2_sqrt",
        "smoothing",
        "neg",
    }
)
#: Arguments that are 64-bit integers.
INT64_ARGS = frozenset({"n64"})


def variants(modules: Iterable[str] = MODULES) -> List[Dict[str, Any]]:
    """All variants of the given kernel modules, each with ``module`` and ``label`` set."""
    out = []
    for name in modules:
        module = importlib.import_module(f"autograd_kernels_cuda.triton_kernels.{name}")
        for v in module.aot_variants():
            out.append({**v, "module": name})
    return out


def signature_of(variant: Dict[str, Any]) -> Dict[str, str]:
    """Triton's signature dict: pointers as ``*dtype``, constexprs, float32 and int scalars."""
    kernel = variant["kernel"]
    pointers: Dict[str, str] = variant["pointers"]
    constexprs: Dict[str, Any] = variant["constexprs"]
    types: Dict[str, str] = variant.get("scalars", {})
    sig = {}
    for name in kernel.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in pointers:
            sig[name] = "*" + pointers[name]
        elif name in types:
            sig[name] = types[name]
        elif name in FLOAT_ARGS:
            sig[name] = "fp32"
        elif name in INT64_ARGS:
            sig[name] = "i64"
        else:
            sig[name] = "i32"
    return sig


def compile_variant(variant: Dict[str, Any], arch: int) -> Any:
    """``triton.compile`` of one variant for ``sm_<arch>``; returns the CompiledKernel (``asm['cubin']``...)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = variant["kernel"]
    if not isinstance(kernel, triton.runtime.jit.JITFunction):
        raise TypeError(
            f"{variant['label']}: {type(kernel).__name__} is not a JITFunction (is TRITON_INTERPRET set? "
            "interpreted kernels cannot be compiled)"
        )
    sig = signature_of(variant)
    attrs = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(kernel.arg_names) if sig[name].startswith("*")}
    src = ASTSource(kernel, signature=sig, constexprs=variant["constexprs"], attrs=attrs)
    options = {"num_warps": 4, "num_stages": 3, "enable_fp_fusion": True, **variant.get("options", {})}
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)


def compile_all(archs: Iterable[int], only: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
    """Compile every variant for every arch; one record each (never raises for a kernel that fails)."""
    records = []
    for variant in variants(only or MODULES):
        for arch in archs:
            start = time.perf_counter()
            record: Dict[str, Any] = {"module": variant["module"], "label": variant["label"], "arch": arch}
            try:
                compiled = compile_variant(variant, arch)
                ptx = compiled.asm["ptx"]
                record.update(
                    ok=True,
                    cubin_bytes=len(compiled.asm["cubin"]),
                    shared_bytes=int(compiled.metadata.shared),
                    num_warps=int(compiled.metadata.num_warps),
                    mma="mma.sync" in ptx or "wgmma" in ptx,
                    wgmma="wgmma" in ptx,
                )
            except Exception as exc:  # noqa: BLE001 - every failure is reported, with its message
                record.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
            record["seconds"] = round(time.perf_counter() - start, 3)
            records.append(record)
    return records


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    parser.add_argument("--only", nargs="*", help="kernel modules (default: all)")
    parser.add_argument("--json", help="write the records here")
    args = parser.parse_args(argv)
    records = compile_all(args.arch, args.only)
    for r in records:
        status = "ok" if r["ok"] else "FAILED " + r["error"].splitlines()[0]
        print(f"sm_{r['arch']} {r['module']}.{r['label']}: {status} ({r['seconds']} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    failed = sum(not r["ok"] for r in records)
    print(f"{len(records) - failed} compiled, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
