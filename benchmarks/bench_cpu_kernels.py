"""autograd-kernels-cpu against core's NumPy references: per-op time, attention at T=2048, compile and import.

Each op is timed forward+backward (Adam: one update) at the shapes of the
benchmark models: the GPT step (rows 8*128 = 1024, hidden 128, MLP hidden
512, vocab 256, 4 heads, seq 128), the MLP step and the small CNN, plus
causal attention B2 H8 T2048 D64 float32 (time and peak memory, each in a
fresh process). The reference is the code core runs without the plugin
(the Functions of ``autograd.ops`` and ``autograd.kernels.tiled``). Then the cold compile time of each kernel (a
fresh process with an empty Numba cache), its warm-cache load time, and the
time to import the package and Numba.

    OMP_NUM_THREADS=2 flock /tmp/autograd-bench.lock python benchmarks/bench_cpu_kernels.py [--only NAME]

On a shared machine the numbers are indicative: each is the best of several runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
THREADS = "2"


def _best(step: Callable[[], Any], repeat: int = 7, number: int = 3) -> float:
    step()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            step()
        best = min(best, (time.perf_counter() - start) / number)
    return best


# --- per-op cases: (name, reference step, kernel step) ----------------------------------------------------


def _cases() -> List[Tuple[str, Callable[[], Any], Callable[[], Any]]]:
    import autograd_kernels_cpu as K
    import numpy as np

    from autograd import functional as F
    from autograd.ops.conv import conv2d_reference
    from autograd.ops.norm import LayerNormFunction
    from autograd.ops.optim import AdamKernel
    from autograd.ops.pool import MaxPool2dFunction
    from autograd.tensor import Tensor

    rng = np.random.default_rng(0)
    f32 = np.float32

    def arr(*shape: int, scale: float = 1.0) -> Any:
        return (rng.standard_normal(shape) * scale).astype(f32)

    def graph(fn: Callable[..., Any], arrays: List[Any], g: Any, **kw: Any) -> Callable[[], None]:
        def step() -> None:
            tensors = [Tensor(a) for a in arrays]
            fn(*tensors, **kw).backward(g)

        return step

    cases = []
    # LayerNorm (GPT: 9 per step)
    x, w, b, g = arr(1024, 128), arr(128), arr(128), arr(1024, 128)

    def ln(x=x, w=w, b=b, g=g) -> None:
        y, mean, rstd = K.layer_norm_forward(x, w, b, 1e-5)
        K.layer_norm_backward(g, x, w, mean, rstd, True, True, True)

    cases.append(("layer_norm (1024, 128)", graph(LayerNormFunction.apply, [x, w, b], g, eps=1e-5), ln))
    # GELU (GPT: 4 per step)
    x, g = arr(1024, 512), arr(1024, 512)
    cases.append(
        (
            "gelu (1024, 512)",
            graph(F.Gelu.apply, [x], g),
            lambda x=x, g=g: K.gelu_backward(g, (K.gelu_forward(x), x)[1]),
        )
    )
    # softmax over the dense causal attention scores at seq 128 (GPT: 4 per step)
    x = arr(8 * 4 * 128, 128, scale=3.0)
    x[:, 64:] = -1e9
    g = arr(8 * 4 * 128, 128)
    cases.append(
        (
            "softmax (4096, 128)",
            graph(F.Softmax.apply, [x], g, dim=-1),
            lambda x=x, g=g: K.softmax_backward(g, K.softmax_forward(x)),
        )
    )
    # the GPT's causal attention at seq 128 (B8 H4 D32): the reference is the dense path
    from autograd.ops.attention import dense_attention

    q, k, v, g = arr(8, 4, 128, 32), arr(8, 4, 128, 32), arr(8, 4, 128, 32), arr(8, 4, 128, 32)
    scale = 1 / math.sqrt(32)

    def attn(q=q, k=k, v=v, g=g) -> None:
        out, lse = K.attention_forward(q, k, v, scale, True)
        K.attention_backward(q, k, v, out, lse, g, scale, True)

    def attn_ref(q=q, k=k, v=v, g=g) -> None:
        dense_attention(Tensor(q), Tensor(k), Tensor(v), is_causal=True, scale=scale).backward(g)

    cases.append(("attention causal (8, 4, 128, 32)", attn_ref, attn))
    # cross entropy on the GPT head
    logits, targets = arr(1024, 256, scale=2.0), rng.integers(0, 256, 1024)

    def ce(logits=logits, targets=targets) -> None:
        _, count, lse = K.cross_entropy_forward(logits, targets, -100, 0.0)
        K.cross_entropy_backward(logits, lse, targets, -100, 0.0, 1.0 / count)

    def ce_ref(logits=logits, targets=targets) -> None:
        t = Tensor(logits)
        F.CrossEntropy.apply(t, Tensor(targets, requires_grad=False)).backward()

    cases.append(("cross_entropy (1024, 256)", ce_ref, ce))
    # token embedding backward
    g, idx = arr(1024, 128), rng.integers(0, 256, 1024)
    table = Tensor(arr(256, 128))

    def emb_ref(g=g, idx=idx) -> None:
        table.grad = None
        table.gather(idx).backward(g)

    cases.append(
        ("embedding_backward (1024 -> 256x128)", emb_ref, lambda g=g, idx=idx: K.embedding_backward(g, idx, 256))
    )
    # Adam(W) over the GPT's and the MLP's parameters
    sys.path.insert(0, HERE)
    from models import TinyGPT

    for label, shapes, wd in (
        ("adamw GPT params", [tuple(p.shape) for p in TinyGPT().parameters.values()], 0.1),
        ("adam MLP params", [(784, 256), (256,), (256, 256), (256,), (256, 10), (10,)], 0.0),
    ):
        params = [arr(*s) for s in shapes]
        grads = [arr(*s) for s in shapes]
        moments = [[np.zeros(s, f32) for s in shapes] for _ in range(2)]
        hyper = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "weight_decay": wd}
        n = sum(int(np.prod(s)) for s in shapes)
        cases.append(
            (
                f"{label} ({len(shapes)} tensors, {n} floats)",
                lambda p=params, gr=grads, mo=moments, h=hyper: AdamKernel.reference().apply(
                    p, gr, mo[0], mo[1], [3] * len(p), **h
                ),
                lambda p=params, gr=grads, mo=moments, h=hyper: K.adam_update(p, gr, mo[0], mo[1], [3] * len(p), **h),
            )
        )
    # ReLU: the MLP's hidden layer and the CNN's first feature map
    for shape in ((128, 256), (32, 16, 28, 28)):
        x, g = arr(*shape), arr(*shape)
        cases.append(
            (
                f"relu {shape}",
                graph(F.Relu.apply, [x], g),
                lambda x=x, g=g: K.relu_backward(g, (K.relu_forward(x), x)[1]),
            )
        )
    # the CNN's convolutions ("same" padding) and pools
    geometry = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    for n, c, h, o, need_dx in ((32, 1, 28, 16, False), (32, 16, 14, 32, True)):
        x, w, b, g = arr(n, c, h, h), arr(o, c, 3, 3), arr(o), arr(n, o, h, h)

        def conv_ref(x=x, w=w, b=b, g=g, need_dx=need_dx) -> None:
            tx = Tensor(x, requires_grad=need_dx)
            conv2d_reference(tx, Tensor(w), Tensor(b), **geometry).backward(g)

        def conv(x=x, w=w, b=b, g=g, need_dx=need_dx) -> None:
            K.conv2d_forward(x, w, b, 1, (1, 1, 1, 1))
            K.conv2d_backward(g, x, w, 1, (1, 1, 1, 1), need_dx, True, True)

        cases.append((f"conv2d 3x3 {(n, c, h, h)} -> {o}", conv_ref, conv))
    for shape in ((32, 16, 28, 28), (32, 32, 14, 14)):
        x = np.maximum(arr(*shape), 0)
        g = arr(shape[0], shape[1], shape[2] // 2, shape[3] // 2)

        def pool(x=x, g=g) -> None:
            y = K.max_pool2d_forward(x, 2, 2)
            K.max_pool2d_backward(g, x, y, 2, 2)

        cases.append(
            (f"max_pool2d 2x2 {shape}", graph(MaxPool2dFunction.apply, [x], g, kernel_size=(2, 2), stride=(2, 2)), pool)
        )
    # cross entropy on the CNN/MLP head
    logits, targets = arr(128, 10), rng.integers(0, 10, 128)

    def ce_small() -> None:
        _, count, lse = K.cross_entropy_forward(logits, targets, -100, 0.0)
        K.cross_entropy_backward(logits, lse, targets, -100, 0.0, 1.0 / count)

    def ce_small_ref() -> None:
        F.CrossEntropy.apply(Tensor(logits), Tensor(targets, requires_grad=False)).backward()

    cases.append(("cross_entropy (128, 10)", ce_small_ref, ce_small))
    return cases


def run_ops(only: str) -> List[Tuple[str, float, float]]:
    rows = []
    for name, ref, kernel in _cases():
        if only and only not in name:
            continue
        kernel()  # compile (or load from the cache) outside the timing
        rows.append((name, _best(ref), _best(kernel)))
        print(f"  {name}: {rows[-1][1] * 1e3:.3f} ms -> {rows[-1][2] * 1e3:.3f} ms", file=sys.stderr, flush=True)
    return rows


# --- attention at T=2048, one implementation per fresh process ----------------------------------------------


def attention_worker(impl: str) -> Dict[str, float]:
    import resource

    import numpy as np

    rng = np.random.default_rng(0)
    shape = (2, 8, 2048, 64)
    # Drawn in float32 directly: float64 temporaries would raise the peak before the measurement starts.
    q, k, v, g = (rng.standard_normal(shape, dtype=np.float32) for _ in range(4))
    scale = 1 / math.sqrt(64)
    if impl == "kernel":
        import autograd_kernels_cpu as K

        small = np.ascontiguousarray(q[:, :, :300])
        out, lse = K.attention_forward(small, small, small, scale, True)
        K.attention_backward(small, small, small, out, lse, small, scale, True)

        def step() -> None:
            out, lse = K.attention_forward(q, k, v, scale, True)
            K.attention_backward(q, k, v, out, lse, g, scale, True)

    elif impl == "numpy_tiled":
        from autograd.kernels.tiled import TiledAttentionFunction
        from autograd.tensor import Tensor

        tq, tk, tv = Tensor(q), Tensor(k), Tensor(v)

        def step() -> None:
            TiledAttentionFunction.apply(tq, tk, tv, is_causal=True, scale=scale).backward(g)
            tq.grad = tk.grad = tv.grad = None

    else:
        import torch

        torch.set_num_threads(int(THREADS))
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        tg = torch.tensor(g)

        def step() -> None:
            torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tg)
            tq.grad = tk.grad = tv.grad = None

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = _best(step, repeat=3, number=1)
    if impl == "torch":
        # PyTorch's allocator is invisible to tracemalloc: the growth of the process's peak resident set.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    else:
        # NumPy reports its allocations to tracemalloc: the peak of one more step, above what was allocated
        # before it (the resident set would hide it under the peak of Numba's compiler or earlier temporaries).
        import tracemalloc

        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        step()
        peak = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
    return {"seconds": seconds, "peak_bytes": max(peak, 0)}


# --- compile and import times, in fresh processes ---------------------------------------------------------

# kernel -> a call that compiles it at float32 shapes of the main job (examples/train_digits.py: batch 64 of
# 8x8 digits, conv 1->32 and 32->64): small enough for the serial kernels, as there; the parallel variants
# compile only when an input is large)
COMPILE_CALLS = {
    "relu": "x = a(64, 32, 8, 8); K.relu_backward(x, K.relu_forward(x))",
    "gelu": "x = a(64, 32); K.gelu_backward(x, K.gelu_forward(x))",
    "sigmoid+tanh": "x = a(64, 32); K.sigmoid_backward(x, K.sigmoid_forward(x)); K.tanh_backward(x, K.tanh_forward(x))",
    "layer_norm": (
        "x = a(64, 32); w = a(32); y, m, r = K.layer_norm_forward(x, w, w, 1e-5); "
        "K.layer_norm_backward(x, x, w, m, r, 1, 1, 1)"
    ),
    "softmax+log_softmax": (
        "x = a(64, 32); K.softmax_backward(x, K.softmax_forward(x)); "
        "K.log_softmax_backward(x, K.log_softmax_forward(x))"
    ),
    "cross_entropy": (
        "x = a(64, 10); t = np.arange(64) % 10; s, c, l = K.cross_entropy_forward(x, t, -100, 0.0); "
        "K.cross_entropy_backward(x, l, t, -100, 0.0, 1.0)"
    ),
    "adam": (
        "p = [a(32, 1, 3, 3), a(32), a(64, 32, 3, 3), a(64), a(256, 10), a(10)]; z = lambda: [x * 0 for x in p]; "
        "K.adam_update(p, z(), z(), z(), [1] * 6, 1e-3, 0.9, 0.999, 1e-7, 0.0)"
    ),
    "conv2d": (
        "x = a(64, 32, 4, 4); w = a(64, 32, 3, 3); y = K.conv2d_forward(x, w, a(64), 1, (1, 1, 1, 1)); "
        "K.conv2d_backward(y, x, w, 1, (1, 1, 1, 1), 1, 1, 1)"
    ),
    "max_pool2d": "x = a(64, 32, 8, 8); y = K.max_pool2d_forward(x, 2, 2); K.max_pool2d_backward(y, x, y, 2, 2)",
    "embedding": "K.embedding_backward(a(100, 16), np.arange(100) % 7, 7)",
    "attention": (
        "q = a(1, 2, 64, 16); o, l = K.attention_forward(q, q, q, 0.25, True); "
        "K.attention_backward(q, q, q, o, l, q, 0.25, True)"
    ),
}
# what examples/train_digits.py (the main job) runs through the plugin on the NumPy backend, in one process
MAIN_JOB = ("relu", "cross_entropy", "adam", "conv2d", "max_pool2d")
COMPILE_CALLS["main job: " + ", ".join(MAIN_JOB)] = "; ".join(COMPILE_CALLS[name] for name in MAIN_JOB)


def compile_worker(name: str) -> Dict[str, float]:
    import numpy as np

    start = time.perf_counter()
    import autograd_kernels_cpu as K

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    import numba  # noqa: F401

    numba_s = time.perf_counter() - start
    rng = np.random.default_rng(0)

    def a(*shape: int) -> Any:
        return rng.standard_normal(shape).astype(np.float32)

    start = time.perf_counter()
    exec(COMPILE_CALLS[name], {"K": K, "np": np, "a": a})
    return {"import": import_s, "numba_import": numba_s, "first_call": time.perf_counter() - start}


def _subprocess(args: List[str], env: Dict[str, str]) -> Dict[str, float]:
    res = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True, env=env)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{args} failed:\n{res.stderr[-2000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=2, metavar=("KIND", "NAME"))
    p.add_argument("--only", default="", help="run only the op cases whose name contains this")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: ops, attention, compile")
    args = p.parse_args()
    if args.worker:
        kind, name = args.worker
        result = attention_worker(name) if kind == "attention" else compile_worker(name)
        print("RESULT " + json.dumps(result))
        return
    env = {**os.environ, "AUTOGRAD_BACKEND": "numpy"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = THREADS
    os.environ.update(env)
    skip = set(filter(None, args.skip.split(",")))
    lines = []
    if "ops" not in skip:
        rows = run_ops(args.only)
        lines += [
            "| op (forward + backward, float32) | reference | kernel | reference / kernel |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [f"| {n} | {r * 1e3:.3f} ms | {k * 1e3:.3f} ms | {r / k:.2f}x |" for n, r, k in rows]
    if "attention" not in skip:
        has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
        lines += [
            "",
            "| causal attention B2 H8 T2048 D64 fwd+bwd | time | peak memory (NumPy: traced; torch: RSS growth) |",
            "| --- | ---: | ---: |",
        ]
        for impl in ("numpy_tiled", "kernel") + (("torch",) if has_torch else ()):
            print(f"  attention {impl}...", file=sys.stderr, flush=True)
            r = _subprocess(["--worker", "attention", impl], env)
            lines.append(f"| {impl} | {r['seconds'] * 1e3:.1f} ms | {r['peak_bytes'] / 2**20:.0f} MiB |")
    if "compile" not in skip:
        lines += [
            "",
            "| kernel (float32, small shapes) | cold: first call, empty cache | warm: first call, cache filled |",
            "| --- | ---: | ---: |",
        ]
        imports = []
        for name in COMPILE_CALLS:
            print(f"  compile {name}...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as cache:  # each row starts from an empty cache
                cenv = {**env, "NUMBA_CACHE_DIR": cache}
                cold = _subprocess(["--worker", "compile", name], cenv)
                warm = _subprocess(["--worker", "compile", name], cenv)
            imports.append(warm)
            lines.append(f"| {name} | {cold['first_call']:.2f} s | {warm['first_call']:.3f} s |")
        best_import = min(r["import"] for r in imports)
        best_numba = min(r["numba_import"] for r in imports)
        lines += [
            "",
            f"`import autograd_kernels_cpu`: {best_import * 1e3:.1f} ms (Numba loads on the first kernel call: "
            f"`import numba` {best_numba:.2f} s; each first call above includes Numba's compiler start-up)",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
