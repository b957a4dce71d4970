"""MLX attention: the mlx_flash plugin vs the dense path vs mx.fast.scaled_dot_product_attention.

Batch 2, 8 heads, head_dim 64, causal, float32, seq 128..4096; each case in a
fresh process; time of one run after a warm-up (none at the largest sizes) and
``mx.get_peak_memory()`` growth during it. Needs the mlx backend and the
autograd-kernels-mlx plugin installed.

    python benchmarks/bench_mlx_attention.py [--seqs 128,256,...] [--output FILE]
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
CASES = ("mlx_flash fwd+bwd", "dense fwd+bwd", "mlx_flash fwd", "mx.fast fwd")


def worker(case: str, seq: int) -> None:
    import mlx.core as mx
    import numpy as np

    from autograd import backend
    from autograd import functional as F
    from autograd.tensor import Tensor, no_grad

    rng = np.random.default_rng(0)
    shape = (2, 8, seq, 64)
    q, k, v = (Tensor(backend.asarray(rng.normal(size=shape).astype(np.float32))) for _ in range(3))
    g = backend.asarray(rng.normal(size=shape).astype(np.float32))
    mx.eval(q.data, k.data, v.data, g)
    impl = case.split()[0]

    def run() -> None:
        if impl == "mx.fast":
            mx.eval(mx.fast.scaled_dot_product_attention(q.data, k.data, v.data, scale=0.125, mask="causal"))
        elif case.endswith("fwd"):
            with no_grad():
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
            mx.eval(out.data)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
            out.backward(g)
            mx.eval(q.grad.data, k.grad.data, v.grad.data)
            q.grad = k.grad = v.grad = None

    if seq < 2048:
        run()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print("RESULT " + json.dumps({"seconds": seconds, "peak_bytes": mx.get_peak_memory() - base}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=2)
    p.add_argument("--seqs", default=",".join(map(str, SEQS)))
    p.add_argument("--output", default=None, help="also write the markdown table here")
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    env = {**os.environ, "AUTOGRAD_BACKEND": "mlx"}
    rows = []
    for seq in (int(s) for s in args.seqs.split(",")):
        cells = {}
        for case in CASES:
            print(f"seq {seq}: {case}...", file=sys.stderr, flush=True)
            res = subprocess.run(
                [sys.executable, __file__, "--worker", case, str(seq)],
                capture_output=True,
                text=True,
                env=env,
                timeout=1800,
            )
            line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
            cells[case] = json.loads(line[7:]) if line else None
            if line is None:
                print(res.stderr[-1500:], file=sys.stderr)
        rows.append((seq, cells))

    def fmt(r):
        return "-" if not r else f"{r['seconds'] * 1e3:.0f} ms / {r['peak_bytes'] / 2**20:.0f} MiB"

    header = ["seq"] + list(CASES) + ["flash/dense time", "flash/dense memory"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---:"] * len(header)) + " |"]
    for seq, c in rows:
        f, d = c["mlx_flash fwd+bwd"], c["dense fwd+bwd"]
        t = f"{f['seconds'] / d['seconds']:.2f}" if f and d else "-"
        m = f"{f['peak_bytes'] / max(d['peak_bytes'], 1):.3f}" if f and d else "-"
        lines.append("| " + " | ".join([str(seq)] + [fmt(c[k]) for k in CASES] + [t, m]) + " |")
    title = (
        f"MLX {platform.machine()} ({os.cpu_count()} cores), {datetime.date.today().isoformat()}, "
        "B=2 H=8 D=64 causal float32; each cell: time / peak memory"
    )
    text = title + "\n\n" + "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
