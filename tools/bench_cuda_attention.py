"""Attention on a CUDA GPU: the cuda_flash kernels vs the dense CuPy path vs PyTorch's scaled_dot_product_attention.

Causal self-attention, batch 4, 16 heads, head_dim 64, float16 by default; forward and forward+backward; the
best of a few timed runs after one warm-up run. TFLOP/s counts the causal half of the score matrix: a forward
is 4*B*H*T*T*D/2 floating-point operations and a backward 2.5 times that, as FlashAttention-2 reports. Peak
memory is what the case added above its inputs: the most bytes held from CuPy's memory pool at once during
one untimed run (counted by a memory hook) for autograd, and ``torch.cuda.max_memory_allocated`` for
PyTorch.

    python tools/bench_cuda_attention.py [--seqs 1024,2048,4096] [--dtype float16] [--budget 120] [--output FILE]

Cases run from the shortest sequence up; once ``--budget`` seconds are spent the remaining ones are listed as
not run, so the GPU check keeps to its time limit. ``--smoke`` runs tiny shapes on whatever backend autograd
has and PyTorch on the CPU: it tests this script on machines without a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

MODES = ("fwd", "fwd+bwd")


def _flops(b: int, h: int, t: int, d: int, mode: str) -> float:
    fwd = 4.0 * b * h * t * t * d / 2  # causal: half of the score matrix
    return fwd * (3.5 if mode == "fwd+bwd" else 1.0)


def _best(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up: kernel compilation and allocator growth are not timed
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def autograd_case(impl: str, shape: tuple[int, int, int, int], dtype: str, mode: str, repeats: int) -> dict[str, Any]:
    from autograd import backend
    from autograd import functional as F
    from autograd.tensor import Tensor, no_grad

    q, k, v = (Tensor(backend.normal(shape, dt=dtype)) for _ in range(3))
    g = Tensor(backend.normal(shape, dt=dtype), requires_grad=False)

    def sync(*arrays: Any) -> None:
        backend.materialize(*arrays)
        if backend.BACKEND == "cupy":
            backend.lib.cuda.get_current_stream().synchronize()

    def run() -> None:
        if mode == "fwd":
            with no_grad():
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
            sync(out.data)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
            out.backward(g)
            sync(q.grad.data, k.grad.data, v.grad.data)
            q.grad = k.grad = v.grad = None

    seconds = _best(run, repeats)
    peak = _cupy_peak(run, backend.lib) if backend.BACKEND == "cupy" else None
    return {"seconds": seconds, "peak_bytes": peak}


def _cupy_peak(run: Callable[[], None], cp: Any) -> int:
    """The most bytes one untimed run held from CuPy's memory pool at once, above what it held before.

    Counted by a memory hook (benchmarks/cupy_memory.py), whose Python calls would slow the timed runs, so it
    watches a run of its own.
    """
    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    from cupy_memory import peak_hook

    cp.cuda.get_current_stream().synchronize()
    hook = peak_hook(cp)
    with hook:
        run()
    return hook.peak


def torch_case(shape: tuple[int, int, int, int], dtype: str, mode: str, repeats: int, device: str) -> dict[str, Any]:
    import torch

    tdtype = getattr(torch, dtype)
    q, k, v = (torch.randn(shape, dtype=tdtype, device=device, requires_grad=mode == "fwd+bwd") for _ in range(3))
    g = torch.randn(shape, dtype=tdtype, device=device)
    cuda = device.startswith("cuda")

    def run() -> None:
        if mode == "fwd":
            with torch.no_grad():
                torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
            q.grad = k.grad = v.grad = None
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    seconds = _best(run, repeats)
    peak = torch.cuda.max_memory_allocated() - base if cuda else None
    return {"seconds": seconds, "peak_bytes": peak}


def _cell(result: dict[str, Any] | None, flops: float) -> str:
    if result is None:
        return "-"
    if "error" in result:
        return result["error"]
    text = f"{result['seconds'] * 1e3:.2f} ms, {flops / result['seconds'] / 1e12:.2f} TFLOP/s"
    if result["peak_bytes"] is not None:
        text += f", {result['peak_bytes'] / 2**20:.0f} MiB"
    return text


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seqs", default="1024,2048,4096")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=120.0, help="seconds; cases left when it is spent are not run")
    p.add_argument("--output", default=None, help="also write the Markdown table here")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, any backend, PyTorch on the CPU")
    args = p.parse_args(argv)

    from autograd import backend

    impls = ["cuda_flash", "reference"]  # "reference": core's dense path
    torch_device = "cuda"
    if args.smoke:
        args.seqs, args.batch, args.heads, args.head_dim, args.repeats = "16,32", 1, 2, 16, 1
        args.dtype, impls, torch_device = "float32", ["reference"], "cpu"
    try:
        import torch  # noqa: F401
    except ImportError:
        torch_device = ""
    seqs = [int(s) for s in args.seqs.split(",")]
    columns = [*impls, "torch"]
    started = time.perf_counter()
    rows = []
    for seq in seqs:
        shape = (args.batch, args.heads, seq, args.head_dim)
        for mode in MODES:
            flops = _flops(args.batch, args.heads, seq, args.head_dim, mode)
            cells = {}
            for name in columns:
                if time.perf_counter() - started > args.budget:
                    cells[name] = {"error": "not run (time budget spent)"}
                    continue
                if name == "torch" and not torch_device:
                    cells[name] = {"error": "PyTorch not installed"}
                    continue
                try:
                    if name == "torch":
                        cells[name] = torch_case(shape, args.dtype, mode, args.repeats, torch_device)
                    else:
                        cells[name] = autograd_case(name, shape, args.dtype, mode, args.repeats)
                except Exception as exc:  # noqa: BLE001 - one failing case (often out of memory) must not end the table
                    cells[name] = {"error": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"}
            ratio = "-"
            ours, ref = cells.get(impls[0], {}), cells.get("torch", {})
            if "seconds" in ours and "seconds" in ref:
                ratio = f"{ref['seconds'] / ours['seconds']:.2f}"
            rows.append(f"| {seq} | {mode} | " + " | ".join(_cell(cells[c], flops) for c in columns) + f" | {ratio} |")
            print(rows[-1], flush=True)

    header = (
        f"Causal attention, batch {args.batch}, {args.heads} heads, head_dim {args.head_dim}, {args.dtype}, "
        f"autograd backend {backend.BACKEND}; time, TFLOP/s, peak memory above the inputs; best of {args.repeats}.\n\n"
        "| seq | mode | " + " | ".join(columns) + f" | {impls[0]} throughput / torch |\n"
        "| ---: | --- | " + " | ".join("---:" for _ in columns) + " | ---: |\n"
    )
    table = header + "\n".join(rows) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
