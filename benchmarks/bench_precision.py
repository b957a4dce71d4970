"""Mixed precision: activation memory and time of the GPT decoder training step, float32 against bfloat16.

The step is benchmarks/models.TinyGPT (vocab 256, hidden 128, 4 layers, 4 heads,
seq 128, batch 8) with AdamW. For each precision:

* activations: the memory the forward pass leaves allocated for the backward
  (allocated after the forward minus allocated before it; NumPy: tracemalloc,
  MLX: ``mx.get_active_memory`` after evaluating the loss, CuPy: the bytes in
  use from its memory pool);
* peak: the most memory allocated during forward + backward + optimizer step,
  above what was allocated before the step;
* time: one training step, the precisions taking turns round by round in
  this one process, best round kept.

The bfloat16 run is ``model.set_precision("bfloat16")``: parameters stored in
bfloat16 with float32 masters in the optimizer, products in bfloat16, the
softmaxes, layer norms, reductions and the loss computed in float32. On NumPy
this needs ml_dtypes, and products are computed in float32 and rounded (no
half-precision BLAS), so only memory is expected to improve. CuPy has no
bfloat16: on it the low precision is float16 (``--precision`` chooses; with
float16 the loss scaler is not needed here, as only one step's memory and time
are measured).

    python benchmarks/bench_precision.py --backend numpy      # or mlx, or cupy (float16)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from typing import Any, Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))


def _cupy_probe() -> Dict[str, Callable[[], Any]]:
    """Bytes in use from CuPy's memory pool now, and their peak since ``reset_peak`` (a memory hook's count)."""
    import cupy as cp
    from cupy_memory import peak_hook

    hook = peak_hook(cp)
    hook.__enter__()  # until "stop": its Python calls slow every allocation, so the timed rounds run without it
    pool = cp.get_default_memory_pool()

    def current() -> int:
        return int(pool.used_bytes())

    def peak() -> int:
        return int(pool.used_bytes()) + hook.peak - hook.now  # the peak above where reset_peak found it

    return {"current": current, "reset_peak": hook.reset, "peak": peak, "stop": lambda: hook.__exit__(None, None, None)}


def _memory_probe(backend_name: str) -> Dict[str, Callable[[], Any]]:
    if backend_name == "cupy":
        return _cupy_probe()
    if backend_name == "mlx":
        import mlx.core as mx

        def current() -> int:
            return int(mx.get_active_memory())

        def reset_peak() -> None:
            mx.reset_peak_memory()

        def peak() -> int:
            return int(mx.get_peak_memory())

        return {"current": current, "reset_peak": reset_peak, "peak": peak, "stop": lambda: None}

    def np_current() -> int:
        return tracemalloc.get_traced_memory()[0]

    def np_peak() -> int:
        return tracemalloc.get_traced_memory()[1]

    # tracemalloc slows every allocation: "stop" ends it before the timed rounds
    return {"current": np_current, "reset_peak": tracemalloc.reset_peak, "peak": np_peak, "stop": tracemalloc.stop}


def main(argv: List[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "mlx", "cupy"], default="numpy")
    parser.add_argument(
        "--precision", choices=["bfloat16", "float16"], default=None, help="bfloat16, or float16 on cupy (default)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    low = args.precision or ("float16" if args.backend == "cupy" else "bfloat16")
    os.environ["AUTOGRAD_BACKEND"] = args.backend
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, HERE)
    import numpy as np
    from models import TinyGPT

    from autograd import backend
    from autograd import functional as F
    from autograd.optim import Adam
    from autograd.tensor import Tensor

    probe = _memory_probe(args.backend)
    if args.backend == "numpy":
        tracemalloc.start()
    rng = np.random.default_rng(0)
    idx = backend.asarray(rng.integers(0, 256, size=(args.batch, 128)).astype(np.int32))
    targets = rng.integers(0, 256, size=(args.batch, 128))

    setups = {}
    for precision in ("float32", low):
        backend.seed(0)
        model = TinyGPT()
        if precision != "float32":
            model.set_precision(precision)
        opt = Adam(model.parameters, lr=1e-3, weight_decay=0.01)
        setups[precision] = (model, opt)

    def step(precision: str, measure: bool = False) -> Dict[str, int]:
        model, opt = setups[precision]
        opt.zero_grad()
        if measure:
            gc.collect()
            before = probe["current"]()
            probe["reset_peak"]()
        loss = F.cross_entropy(model(Tensor(idx, requires_grad=False)), targets)
        backend.materialize(loss.data)
        if measure:
            after_forward = probe["current"]()
        loss.backward()
        opt.step()
        backend.materialize(*(p.data for p in model.parameters.values()))
        if backend.BACKEND == "cupy":
            backend.lib.cuda.get_current_stream().synchronize()  # the step's kernels are timed to their end
        del loss
        return {"activations": after_forward - before, "peak": probe["peak"]() - before} if measure else {}

    memory = {p: step(p, measure=True) for p in setups}  # first steps also create the optimizer state
    memory = {p: step(p, measure=True) for p in setups}
    probe["stop"]()  # the timed rounds run without the memory probe
    times: Dict[str, float] = {p: float("inf") for p in setups}
    for _ in range(args.rounds):
        for precision in setups:  # alternate the precisions round by round
            start = time.perf_counter()
            for _ in range(args.steps):
                step(precision)
            times[precision] = min(times[precision], (time.perf_counter() - start) / args.steps)
    f32, half = memory["float32"], memory[low]
    print(f"GPT decoder step, backend {args.backend}, batch {args.batch}, seq 128, hidden 128, 4 layers")
    print(f"{'precision':<10} {'activations':>12} {'peak':>10} {'step':>10}")
    for p in setups:
        m = memory[p]
        print(f"{p:<10} {m['activations'] / 2**20:>9.1f} MiB {m['peak'] / 2**20:>7.1f} MiB {times[p] * 1e3:>7.1f} ms")
    saving = 1 - half["activations"] / f32["activations"]
    print(
        f"{low} activations are {saving:.0%} smaller (goal: at least 40%); "
        f"time {times[low] / times['float32']:.2f}x float32's"
    )
    return {"memory": memory, "times": times, "activation_saving": saving}


if __name__ == "__main__":
    main()
