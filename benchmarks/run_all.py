"""Every benchmark against PyTorch eager CPU, with the frameworks alternating round by round in one process.

Rows (autograd on NumPy, and on MLX's CPU build when installed; PyTorch is the reference):

* per-op overhead: a chain of tiny element-wise ops, forward + backward, per graph node;
* MLP step: 784-256-256-10, batch 128, Adam;
* small CNN step: batch 32 of 1x28x28 (conv-relu-pool twice, linear), Adam;
* GPT decoder step: vocab 256, hidden 128, 4 layers, 4 heads, seq 128, batch 8, AdamW (PyTorch's defaults:
  weight decay 0.01, eps 1e-8, on both sides);
* attention forward + backward: batch 2, 8 heads, head_dim 64, causal, seq 128..2048, the library's
  automatic choice of kernel against ``F.scaled_dot_product_attention(..., is_causal=True)``.

How it keeps the numbers honest:

* it first checks the machine: a 2048 x 2048 float32 matrix product on 1 and on 2 threads. Below a 1.6x
  speed-up the machine has lost a core (a shared host does that), which flatters single-threaded code
  against PyTorch: the run says so and refuses to write ``results.md``;
* one worker process per backend runs autograd and PyTorch side by side, 2 threads each, alternating them
  round by round, so a slow spell of the machine hits both; the best round of each is kept, and each ratio
  is against the PyTorch time measured in that same process;
* peak memory (attention rows) is measured in a fresh process per framework: after a warm-up step, the most
  memory the allocator hands out during one step above what it held before (glibc's mallinfo2, sampled);
* ``results.md`` is rewritten only with ``--write`` (``nox -s bench`` never writes it).

    uv run nox -s bench                        # print the table
    python benchmarks/run_all.py --write       # in the bench environment: also write results.md
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
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ATTENTION_SEQS = (128, 256, 512, 1024, 2048)
MIN_SPEEDUP = 1.6
THREADS = "2"
PAUSE = 0.5  # seconds between rounds


def _cpu_model() -> str:
    # Ratios against PyTorch depend on the CPU vendor (PyTorch's MKL GEMMs lead OpenBLAS on Intel, not on AMD),
    # so the record names the CPU.
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cases(quick: bool) -> List[str]:
    seqs = ATTENTION_SEQS[:2] if quick else ATTENTION_SEQS
    return ["overhead", "mlp", "cnn", "gpt"] + [f"attention-{s}" for s in seqs]


def _thread_env(threads: str) -> Dict[str, str]:
    # Every library's own default wait policy: OMP_WAIT_POLICY=PASSIVE would make OpenMP threads sleep at once,
    # which helps two frameworks in one process but slows PyTorch's small-op steps (measured up to 2x here), so
    # it is removed; the pause between rounds (see worker_times) lets spinning pools go idle instead.
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    env = {**os.environ, **{n: threads for n in names}}
    env.pop("OMP_WAIT_POLICY", None)
    return env


# --- the machine check -----------------------------------------------------------------------------------------

_GEMM = """
import time
import numpy as np
a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
a @ a
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    a @ a
    best = min(best, time.perf_counter() - start)
print(best)
"""


def gemm_speedup() -> Tuple[float, float, float]:
    """(seconds on 1 thread, seconds on 2 threads, speed-up) of a 2048 x 2048 float32 product with NumPy's BLAS."""
    times = []
    for threads in ("1", "2"):
        res = subprocess.run([sys.executable, "-c", _GEMM], capture_output=True, text=True, env=_thread_env(threads))
        times.append(float(res.stdout.strip()))
    return times[0], times[1], times[0] / times[1]


# --- worker side ---------------------------------------------------------------------------------------------


def _best_of(step: Callable[[], None], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        step()
    return (time.perf_counter() - start) / number


def _ours(case: str) -> Tuple[Callable[[], None], int]:
    """autograd's step for ``case`` and how many calls one timed round makes."""
    import numpy as np

    sys.path.insert(0, HERE)
    from models import SmallCNN, TinyGPT

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.optim import Adam
    from autograd.tensor import Tensor

    rng = np.random.default_rng(0)
    backend.seed(0)

    def train_step(model: Any, x: Any, y: Any, **adam: Any) -> Callable[[], None]:
        opt = Adam(model.parameters, lr=1e-3, epsilon=1e-8, **adam)  # PyTorch's Adam/AdamW defaults

        def step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

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

        return chain, 10
    if case == "mlp":

        class MLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.l1, self.l2, self.l3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)

            def forward(self, x: Tensor) -> Tensor:
                return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))

        x = Tensor(backend.asarray(rng.normal(size=(128, 784)).astype(np.float32)), requires_grad=False)
        return train_step(MLP(), x, rng.integers(0, 10, 128)), 10
    if case == "cnn":
        x = Tensor(backend.asarray(rng.normal(size=(32, 1, 28, 28)).astype(np.float32)), requires_grad=False)
        return train_step(SmallCNN(), x, rng.integers(0, 10, 32)), 5
    if case == "gpt":
        tokens = rng.integers(0, 256, size=(8, 129))
        return train_step(TinyGPT(), backend.asarray(tokens[:, :-1]), tokens[:, 1:], weight_decay=0.01), 2
    seq = int(case.split("-")[1])
    shape = (2, 8, seq, 64)
    q, k, v = (Tensor(backend.asarray(rng.normal(size=shape).astype(np.float32))) for _ in range(3))
    g = backend.asarray(rng.normal(size=shape).astype(np.float32))

    def attention() -> None:
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)  # the automatic choice
        backend.materialize(q.grad.data, k.grad.data, v.grad.data)
        q.grad = k.grad = v.grad = None

    return attention, 1 if seq >= 1024 else 3


def _torch(case: str) -> Tuple[Callable[[], None], int]:
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from models import torch_models

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    TorchCNN, TorchGPT = torch_models()

    def train_step(model: Any, x: Any, y: Any, opt_cls: Any = torch.optim.Adam) -> Callable[[], None]:
        opt = opt_cls(model.parameters(), lr=1e-3)  # defaults: what a PyTorch user writes

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

        return chain, 10
    if case == "mlp":
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )
        x = torch.tensor(rng.normal(size=(128, 784)).astype(np.float32))
        return train_step(model, x, torch.tensor(rng.integers(0, 10, 128))), 10
    if case == "cnn":
        x = torch.tensor(rng.normal(size=(32, 1, 28, 28)).astype(np.float32))
        return train_step(TorchCNN(), x, torch.tensor(rng.integers(0, 10, 32))), 5
    if case == "gpt":
        tokens = torch.tensor(rng.integers(0, 256, size=(8, 129)))
        return train_step(TorchGPT(), tokens[:, :-1], tokens[:, 1:], opt_cls=torch.optim.AdamW), 2
    seq = int(case.split("-")[1])
    shape = (2, 8, seq, 64)
    q, k, v = (torch.tensor(rng.normal(size=shape).astype(np.float32), requires_grad=True) for _ in range(3))
    g = torch.tensor(rng.normal(size=shape).astype(np.float32))

    def attention() -> None:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        q.grad = k.grad = v.grad = None

    return attention, 1 if seq >= 1024 else 3


def worker_times(todo: List[str], rounds: int, with_torch: bool) -> Dict[str, Dict[str, float]]:
    """Both frameworks in this process, alternating round by round; the best round of each, per case."""
    frameworks: Dict[str, Callable[[str], Tuple[Callable[[], None], int]]] = {"ours": _ours}
    if with_torch:
        import torch

        torch.set_num_threads(int(THREADS))
        frameworks["torch"] = _torch
    out: Dict[str, Dict[str, float]] = {}
    for case in todo:
        steps = {name: make(case) for name, make in frameworks.items()}
        for step, _ in steps.values():
            step()  # warm up (and, for the Numba kernels, load or compile them)
        best = {name: float("inf") for name in steps}
        n_rounds = min(rounds, 2) if case in ("attention-1024", "attention-2048") else rounds
        for _ in range(max(n_rounds, 1)):
            for name, (step, number) in steps.items():
                # The other framework's thread pools (OpenBLAS, OpenMP) spin for a while after their last call,
                # on the cores this round needs: let them go idle first, so neither side runs in the other's wake.
                time.sleep(PAUSE)
                best[name] = min(best[name], _best_of(step, number))
        scale = 401 if case == "overhead" else 1  # seconds per graph node for the overhead chain
        out[case] = {name: t / scale for name, t in best.items()}
        print(f"  {case}: " + ", ".join(f"{n} {t * 1e3:.2f} ms" for n, t in out[case].items()), file=sys.stderr)
    return out


def _allocated() -> Optional[Callable[[], int]]:
    """Bytes glibc's malloc has handed out and not taken back (NumPy's and PyTorch's CPU buffers), or None."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
            + ("fordblks", "keepcost")
        ]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = MallInfo2

    def allocated() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return allocated


def worker_memory(case: str, framework: str) -> int:
    """Peak memory one step of ``case`` allocates above what was allocated before it, in bytes.

    One warm-up step first (imports, compiled kernels and optimizer state are not the step's memory), then the
    allocator's in-use bytes are sampled every half millisecond during a second step. Where glibc's mallinfo2 is
    missing, the growth of the peak resident set over the first step is reported instead.
    """
    import resource
    import threading

    step, _ = (_torch if framework == "torch" else _ours)(case)
    if framework == "torch":
        import torch

        torch.set_num_threads(int(THREADS))
    allocated = _allocated()
    if allocated is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, 0) * 1024
    step()
    import gc

    gc.collect()
    base = peak = allocated()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, allocated())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    step()
    done.set()
    sampler.join()
    return max(peak - base, 0)


# --- driver side ------------------------------------------------------------------------------------------------


def _has(module: str) -> Optional[str]:
    code = f"import {module} as m; print(getattr(m, '__version__', 'installed'))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else None


def _worker(args: List[str], backend_name: str) -> Any:
    env = _thread_env(THREADS)
    env["AUTOGRAD_BACKEND"] = backend_name
    res = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True, env=env, timeout=3600
    )
    sys.stderr.write(res.stderr[-4000:] if res.returncode else res.stderr)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return None


def _kernels_in_use(backend_name: str) -> str:
    code = (
        "from autograd.kernels.__main__ import report; "
        "r = report(seq=2048); print(', '.join(f'{op}: {c[\"chosen\"]}' for op, c in r['choices'].items()))"
    )
    env = _thread_env(THREADS)
    env["AUTOGRAD_BACKEND"] = backend_name
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env)
    return res.stdout.strip()


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only attention at 128 and 256")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per framework (best kept)")
    p.add_argument("--only", default=None, help="run only cases whose name starts with this")
    p.add_argument("--write", action="store_true", help="also write results.md (refused when a core is missing)")
    p.add_argument("--output", default=os.path.join(HERE, "results.md"))
    p.add_argument("--worker-times", nargs="+", metavar="CASE", help=argparse.SUPPRESS)
    p.add_argument("--worker-memory", nargs=2, metavar=("CASE", "FRAMEWORK"), help=argparse.SUPPRESS)
    p.add_argument("--torch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker_times:
        print("RESULT " + json.dumps(worker_times(args.worker_times, args.rounds, args.torch)))
        return
    if args.worker_memory:
        print("RESULT " + json.dumps(worker_memory(*args.worker_memory)))
        return

    t1, t2, speedup = gemm_speedup()
    print(
        f"machine check: 2048x2048 float32 GEMM {t1 * 1e3:.0f} ms on 1 thread, {t2 * 1e3:.0f} ms on 2: {speedup:.2f}x"
    )
    lost_core = speedup < MIN_SPEEDUP
    if lost_core:
        print(
            f"WARNING: the 2-thread speed-up is below {MIN_SPEEDUP}: this machine has lost a core, which flatters "
            "single-threaded code against PyTorch. The numbers below are not recorded."
        )
    torch_version = _has("torch")
    backends = ["numpy"] + (["mlx"] if _has("mlx.core") else [])
    todo = [c for c in cases(args.quick) if not args.only or c.startswith(args.only)]
    times: Dict[str, Dict[str, Dict[str, float]]] = {}
    for b in backends:
        print(f"timing autograd on {b}" + (" and PyTorch, alternating" if torch_version else ""), file=sys.stderr)
        worker = ["--worker-times", *todo, "--rounds", str(args.rounds)] + (["--torch"] if torch_version else [])
        times[b] = _worker(worker, b) or {}
    memory: Dict[str, Dict[str, int]] = {}
    for case in [c for c in todo if c.startswith("attention-")]:
        for fw in ["numpy", "torch"] if torch_version else ["numpy"]:
            memory.setdefault(case, {})[fw] = _worker(["--worker-memory", case, fw], "numpy")

    def ms(t: Optional[float], case: str) -> str:
        if t is None:
            return "-"
        return f"{t * 1e6:.1f} us" if case == "overhead" else f"{t * 1e3:.1f} ms"

    def label(case: str) -> str:
        names = {
            "overhead": "per-op overhead (fwd+bwd per node, 4 elements)",
            "mlp": "MLP step 784-256-256-10, batch 128, Adam",
            "cnn": "small CNN step, batch 32, 1x28x28, Adam",
            "gpt": "GPT decoder step 256/128/4L/4H, seq 128, batch 8, AdamW",
        }
        if case in names:
            return names[case]
        return f"attention fwd+bwd, causal, B2 H8 D64, seq {case.split('-')[1]}"

    header = ["benchmark", "autograd NumPy", "PyTorch", "ratio"]
    if "mlx" in times:
        header += ["autograd MLX (CPU)", "PyTorch", "ratio"]
    header += ["peak mem NumPy", "peak mem torch"]
    rows = []
    for case in todo:
        row = [label(case)]
        for b in backends:
            r = times.get(b, {}).get(case, {})
            ours, ref = r.get("ours"), r.get("torch")
            row += [ms(ours, case), ms(ref, case), f"{ours / ref:.2f}x" if ours and ref else "-"]
        m = memory.get(case, {})
        row += [f"{m[fw] / 2**20:.0f} MiB" if m.get(fw) is not None else "-" for fw in ("numpy", "torch")]
        rows.append(row)
    widths = [max(len(str(x[i])) for x in [header] + rows) for i in range(len(header))]
    print()
    for line in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
    kernels = {b: _kernels_in_use(b) for b in backends}
    for b, k in kernels.items():
        print(f"\nkernels chosen on {b}: {k}")
    if not args.write:
        print("\n(not written: pass --write to record results.md)")
        return
    if lost_core:
        print("\nresults.md NOT written: the machine check failed (see above)")
        return
    import numpy

    versions = f"numpy {numpy.__version__}" + (f", torch {torch_version}" if torch_version else "")
    mlx_version = _has("mlx.core")
    versions += f", mlx {mlx_version}" if mlx_version else ""
    machine = f"{_cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    md = [
        "# Benchmark results",
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/run_all.py --write` on {machine}; Python "
        f"{platform.python_version()}; {versions}. Machine check: 2048x2048 float32 GEMM {speedup:.2f}x faster "
        f"on 2 threads than on 1 (at least {MIN_SPEEDUP} required).",
        f"autograd and PyTorch ran in one process per backend, 2 threads each, alternating round by round "
        f"({args.rounds} rounds, 2 for attention at 1024 and 2048; best kept). Ratios are against the PyTorch time "
        "measured in the same process. Peak memory: the most memory malloc held during one step (after a warm-up step) "
        "above what it held before, sampled in a fresh process per framework.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [f"Kernels chosen on {b}: {k}." for b, k in kernels.items()]
    with open(args.output, "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
