"""NumPy attention: the dense path vs the tiled numpy_tiled kernel vs PyTorch's scaled_dot_product_attention.

Batch 2, 8 heads, head_dim 64, causal, float32, T = 128..4096; forward and
forward+backward; each case in a fresh process; best time of a few runs and the
growth of the process's peak resident memory during them.

    python benchmarks/bench_attention.py [--seqs 128,256,...] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

SEQS = (128, 256, 512, 1024, 2048, 4096)
IMPLS = ("reference", "numpy_tiled", "torch")  # "reference": core's dense path


def _peak() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(impl: str, seq: int, mode: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (2, 8, seq, 64)
    arrays = [rng.normal(size=shape).astype(np.float32) for _ in range(4)]
    if impl == "torch":
        import torch

        torch.set_num_threads(2)
        q, k, v = (torch.tensor(a, requires_grad=mode == "fwd+bwd") for a in arrays[:3])
        g = torch.tensor(arrays[3])

        def run() -> None:
            if mode == "fwd":
                with torch.no_grad():
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
                q.grad = k.grad = v.grad = None

    else:
        from autograd import functional as F
        from autograd.tensor import Tensor, no_grad

        q, k, v = (Tensor(a) for a in arrays[:3])

        def run() -> None:
            if mode == "fwd":
                with no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
            else:
                F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl).backward(arrays[3])
                q.grad = k.grad = v.grad = None

    rounds = 2 if seq >= 2048 else 4
    before = _peak()
    run()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    print("RESULT " + json.dumps({"seconds": best, "peak_bytes": max(_peak() - before, 0)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=3)
    p.add_argument("--seqs", default=",".join(map(str, SEQS)))
    p.add_argument("--output", default=None)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.worker[2])
        return
    env = {**os.environ, "AUTOGRAD_BACKEND": "numpy", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    impls = [i for i in IMPLS if i != "torch" or has_torch]
    results = {}
    for seq in (int(s) for s in args.seqs.split(",")):
        for mode in ("fwd", "fwd+bwd"):
            for impl in impls:
                print(f"seq {seq} {mode} {impl}...", file=sys.stderr, flush=True)
                res = subprocess.run(
                    [sys.executable, __file__, "--worker", impl, str(seq), mode],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=1800,
                )
                line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
                results[(seq, mode, impl)] = json.loads(line[7:]) if line else None
                if line is None:
                    print(res.stderr[-1500:], file=sys.stderr)

    def cell(r):
        return "-" if not r else f"{r['seconds'] * 1e3:.1f} ms / {r['peak_bytes'] / 2**20:.0f} MiB"

    header = ["seq", "mode"] + [f"{i} (time / peak)" for i in impls]
    if has_torch:
        header += ["tiled / torch time", "tiled / torch memory"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---:"] * len(header)) + " |"]
    for seq in (int(s) for s in args.seqs.split(",")):
        for mode in ("fwd", "fwd+bwd"):
            row = [str(seq), mode] + [cell(results[(seq, mode, i)]) for i in impls]
            t, r = results[(seq, mode, "numpy_tiled")], results.get((seq, mode, "torch"))
            if has_torch:
                row.append(f"{t['seconds'] / r['seconds']:.2f}" if t and r else "-")
                row.append(f"{t['peak_bytes'] / max(r['peak_bytes'], 1):.2f}" if t and r else "-")
            lines.append("| " + " | ".join(row) + " |")
    title = (
        f"{platform.machine()} ({os.cpu_count()} cores), {datetime.date.today().isoformat()}, B=2 H=8 D=64 "
        "causal float32, 2 threads; each cell: best time / peak memory growth"
    )
    text = title + "\n\n" + "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
