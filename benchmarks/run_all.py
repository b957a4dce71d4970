"""Every benchmark, for every framework installed, each case in a fresh process; a table and results.md.

Frameworks: autograd on NumPy, autograd on MLX (MLX's CPU build here), and
PyTorch eager CPU (the reference; each row's ratio is against it). Every
process uses 2 threads. Rows:

* per-op overhead: a chain of tiny element-wise ops, forward + backward, per graph node;
* MLP step: 784-256-256-10, batch 128, Adam;
* small CNN step: batch 32 of 1x28x28 (conv-relu-pool twice, linear), Adam;
* GPT decoder step: vocab 256, hidden 128, 4 layers, 4 heads, seq 128, batch 8, AdamW;
* dense attention forward + backward: batch 2, 8 heads, head_dim 64, causal, seq 128..2048,
  with the peak memory the step added to the process (resident set size).

    uv run nox -s bench                      # or: python benchmarks/run_all.py [--quick] [--only NAME]
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
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMEWORKS = ("numpy", "mlx", "torch")
ATTENTION_SEQS = (128, 256, 512, 1024, 2048)


def cases(quick: bool) -> List[str]:
    seqs = ATTENTION_SEQS[:2] if quick else ATTENTION_SEQS
    return ["overhead", "mlp", "cnn", "gpt"] + [f"attention-{s}" for s in seqs]


# --- worker side: one case, one framework, in this process ---------------------------------------


def _timed(step: Callable[[], None], repeat: int, number: int) -> float:
    step()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            step()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _ours(case: str) -> Dict[str, Any]:
    import numpy as np

    sys.path.insert(0, HERE)
    from models import SmallCNN, TinyGPT

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.optim import Adam
    from autograd.tensor import Tensor

    rng = np.random.default_rng(0)
    backend.seed(0)

    def train_step(model, x, y, **adam):
        opt = Adam(model.parameters, lr=1e-3, **adam)
        params = list(model.parameters.values())

        def step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            backend.materialize(*[p.data for p in params])

        return step

    if case == "overhead":
        x = Tensor([0.5, 0.25, 0.125, 1.0])

        def chain() -> None:
            y = x
            for _ in range(200):
                y = y * 1.0001 + 0.0001
            y.sum().backward()
            backend.materialize(x.grad.data)
            x.grad = None

        return {"seconds": _timed(chain, 5, 10) / 401}
    if case == "mlp":

        class MLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.l1, self.l2, self.l3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)

            def forward(self, x: Tensor) -> Tensor:
                return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))

        x = Tensor(backend.asarray(rng.normal(size=(128, 784)).astype(np.float32)), requires_grad=False)
        return {"seconds": _timed(train_step(MLP(), x, rng.integers(0, 10, 128)), 5, 10)}
    if case == "cnn":
        x = Tensor(backend.asarray(rng.normal(size=(32, 1, 28, 28)).astype(np.float32)), requires_grad=False)
        return {"seconds": _timed(train_step(SmallCNN(), x, rng.integers(0, 10, 32)), 5, 3)}
    if case == "gpt":
        tokens = rng.integers(0, 256, size=(8, 129))
        step = train_step(TinyGPT(), backend.asarray(tokens[:, :-1]), tokens[:, 1:], weight_decay=0.1)
        return {"seconds": _timed(step, 3, 2)}
    seq = int(case.split("-")[1])
    shape = (2, 8, seq, 64)
    q, k, v = (Tensor(backend.asarray(rng.normal(size=shape).astype(np.float32))) for _ in range(3))
    g = backend.asarray(rng.normal(size=shape).astype(np.float32))

    def attention() -> None:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation="dense")
        out.backward(g)
        backend.materialize(q.grad.data, k.grad.data, v.grad.data)
        q.grad = k.grad = v.grad = None

    before = _peak_rss_bytes()
    seconds = _timed(attention, 2 if seq >= 1024 else 3, 1 if seq >= 1024 else 3)
    return {"seconds": seconds, "peak_bytes": max(_peak_rss_bytes() - before, 0)}


def _torch(case: str) -> Dict[str, Any]:
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from models import torch_models

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    TorchCNN, TorchGPT = torch_models()

    def train_step(model, x, y, opt_cls=torch.optim.Adam, **kw):
        opt = opt_cls(model.parameters(), lr=1e-3, **kw)

        def step() -> None:
            opt.zero_grad()
            logits = model(x)
            torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
            opt.step()

        return step

    if case == "overhead":
        x = torch.tensor([0.5, 0.25, 0.125, 1.0], requires_grad=True)

        def chain() -> None:
            y = x
            for _ in range(200):
                y = y * 1.0001 + 0.0001
            y.sum().backward()
            x.grad = None

        return {"seconds": _timed(chain, 5, 10) / 401}
    if case == "mlp":
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )
        x = torch.tensor(rng.normal(size=(128, 784)).astype(np.float32))
        return {"seconds": _timed(train_step(model, x, torch.tensor(rng.integers(0, 10, 128))), 5, 10)}
    if case == "cnn":
        x = torch.tensor(rng.normal(size=(32, 1, 28, 28)).astype(np.float32))
        return {"seconds": _timed(train_step(TorchCNN(), x, torch.tensor(rng.integers(0, 10, 32))), 5, 3)}
    if case == "gpt":
        tokens = torch.tensor(rng.integers(0, 256, size=(8, 129)))
        step = train_step(TorchGPT(), tokens[:, :-1], tokens[:, 1:], opt_cls=torch.optim.AdamW, weight_decay=0.1)
        return {"seconds": _timed(step, 3, 2)}
    seq = int(case.split("-")[1])
    shape = (2, 8, seq, 64)
    q, k, v = (torch.tensor(rng.normal(size=shape).astype(np.float32), requires_grad=True) for _ in range(3))
    g = torch.tensor(rng.normal(size=shape).astype(np.float32))

    def attention() -> None:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        q.grad = k.grad = v.grad = None

    before = _peak_rss_bytes()
    seconds = _timed(attention, 2 if seq >= 1024 else 3, 1 if seq >= 1024 else 3)
    return {"seconds": seconds, "peak_bytes": max(_peak_rss_bytes() - before, 0)}


def worker(case: str, framework: str) -> None:
    if framework == "torch":
        import torch

        torch.set_num_threads(2)
        result = _torch(case)
    else:
        result = _ours(case)
    print("RESULT " + json.dumps(result))


# --- driver side ----------------------------------------------------------------------------------


def _available(framework: str) -> Optional[str]:
    module = {"numpy": "numpy", "mlx": "mlx.core", "torch": "torch"}[framework]
    code = f"import {module} as m; print(getattr(m, '__version__', ''))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        return None
    return res.stdout.strip() or "installed"


def run_case(case: str, framework: str) -> Optional[Dict[str, Any]]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    if framework != "torch":
        env["AUTOGRAD_BACKEND"] = framework
    res = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", case, framework],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  {case} on {framework} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
    return None


LABELS = {
    "overhead": ("per-op overhead (fwd+bwd per node, 4 elements)", 1e6, "us"),
    "mlp": ("MLP step 784-256-256-10, batch 128, Adam", 1e3, "ms"),
    "cnn": ("small CNN step, batch 32, 1x28x28, Adam", 1e3, "ms"),
    "gpt": ("GPT decoder step 256/128/4L/4H, seq 128, batch 8, AdamW", 1e3, "ms"),
}


def _label(case: str) -> tuple:
    if case.startswith("attention-"):
        return (f"dense attention fwd+bwd, causal, B2 H8 D64, seq {case.split('-')[1]}", 1e3, "ms")
    return LABELS[case]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=2, metavar=("CASE", "FRAMEWORK"))
    p.add_argument("--quick", action="store_true", help="fewer attention sizes")
    p.add_argument("--repeat", type=int, default=3, help="fresh-process runs per case and framework (best kept)")
    p.add_argument("--only", default=None, help="run only cases whose name starts with this")
    p.add_argument("--output", default=os.path.join(HERE, "results.md"))
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    versions = {f: _available(f) for f in FRAMEWORKS}
    frameworks = [f for f in FRAMEWORKS if versions[f]]
    todo = [c for c in cases(args.quick) if not args.only or c.startswith(args.only)]
    results: Dict[str, Dict[str, Any]] = {}
    for case in todo:
        # The frameworks take turns, `--repeat` times (once for the slow large attention cases), and each keeps
        # its best run: on a shared machine a slow spell then hits every column alike instead of one.
        rounds = 1 if case in ("attention-1024", "attention-2048") else args.repeat
        for r in range(rounds):
            for fw in frameworks:
                print(f"running {case} on {fw} ({r + 1}/{rounds})...", file=sys.stderr, flush=True)
                res = run_case(case, fw)
                best = results.setdefault(case, {}).get(fw)
                if res is not None and (best is None or res["seconds"] < best["seconds"]):
                    results[case][fw] = res
                elif fw not in results[case]:
                    results[case][fw] = best

    def cell(r: Optional[Dict[str, Any]], scale: float, unit: str) -> str:
        return "-" if not r else f"{r['seconds'] * scale:.1f} {unit}"

    def ratio(r: Optional[Dict[str, Any]], ref: Optional[Dict[str, Any]]) -> str:
        return "-" if not r or not ref else f"{r['seconds'] / ref['seconds']:.2f}x"

    def mem(r: Optional[Dict[str, Any]]) -> str:
        return "-" if not r or "peak_bytes" not in r else f"{r['peak_bytes'] / 2**20:.0f} MiB"

    header = [
        "benchmark",
        "autograd NumPy",
        "vs torch",
        "autograd MLX (CPU)",
        "vs torch",
        "PyTorch eager CPU",
        "peak mem NumPy",
        "peak mem MLX",
        "peak mem torch",
    ]
    rows = []
    for case in todo:
        name, scale, unit = _label(case)
        r = results[case]
        ref = r.get("torch")
        rows.append(
            [
                name,
                cell(r.get("numpy"), scale, unit),
                ratio(r.get("numpy"), ref),
                cell(r.get("mlx"), scale, unit),
                ratio(r.get("mlx"), ref),
                cell(ref, scale, unit),
                mem(r.get("numpy")),
                mem(r.get("mlx")),
                mem(ref),
            ]
        )
    widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header))]
    print()
    for line in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    stamp = datetime.date.today().isoformat()
    md = [
        "# Benchmark results",
        "",
        f"Measured {stamp} by `benchmarks/run_all.py` (`uv run nox -s bench`) on {machine}; Python "
        f"{platform.python_version()}; " + ", ".join(f"{f} {v}" for f, v in versions.items() if v) + ".",
        "Each case ran in fresh processes with 2 threads, the frameworks taking turns three times (once for "
        "attention at 1024 and 2048); times are the best of all rounds; ratios are against PyTorch eager CPU; "
        "peak memory is the growth of the process's peak resident set during the timed runs.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    with open(args.output, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
