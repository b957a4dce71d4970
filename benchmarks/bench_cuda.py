"""The CUDA plugins against PyTorch CUDA: one section per run, for the GPU check (tools/gpu_check.py).

Sections (``python benchmarks/bench_cuda.py SECTION [--budget S] [--output FILE.md] [--json FILE]``):

``attention``
    Causal attention forward+backward, float16, batch 4, 16 heads, head dims
    64 and 128, T 1024 to 16384: ``cudnn_sdpa``, ``triton_fused`` and
    ``cuda_flash`` side by side against ``torch.nn.functional.scaled_dot_product_attention``.
    Time (best of ``--repeats`` after a warm-up), TFLOP/s (the causal half:
    3.5 x 2 B H T^2 D, as FlashAttention-2 counts a forward and backward), and
    peak memory above the inputs (CuPy: a memory hook on an untimed run;
    PyTorch: ``max_memory_allocated``). An implementation that declines the
    shape shows its reason; one that fails shows the error.
``gpt``
    A GPT-2-small-shaped training step (d 768, 12 layers, 12 heads, T 1024,
    batch 8, vocab 50257): float16 autocast with loss scaling, AdamW (weight
    decay 0.1). PyTorch as its users write it: ``torch.autocast`` +
    ``GradScaler``, ``torch.optim.AdamW``, ``is_causal=True`` SDPA. Median step
    time and peak memory (everything allocated, parameters and optimizer state
    included).
``resnet``
    A small ResNet (stem, three stages of two basic blocks with batch norm,
    64-128-256 channels, global average pooling, 10 classes) on 3x32x32,
    batch 128, float32, Adam: autograd (full float32 products, and with
    ``AUTOGRAD_CUDA_TF32=1``) against PyTorch (whose cuDNN convolutions use
    TF32 by default).
``overhead``
    Host time per op on tiny tensors (forward, and forward+backward of a small
    chain), autograd against PyTorch: what dispatch costs when the GPU is idle.

``--smoke`` runs tiny shapes on whatever backend autograd has (NumPy here) and
PyTorch on the CPU: it tests the script on machines without a GPU.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTIONS = ("attention", "gpt", "resnet", "overhead")
ATTENTION_IMPLS = ("cudnn_sdpa", "triton_fused", "cuda_flash")


class Budget:
    """Seconds left for a section; cases after it is spent are listed as not run."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def spent(self) -> bool:
        return time.perf_counter() > self.end


def _on_cupy() -> bool:
    from autograd import backend

    return backend.BACKEND == "cupy"


def sync_autograd() -> None:
    from autograd import backend

    if backend.BACKEND == "cupy":
        backend.lib.cuda.get_current_stream().synchronize()


def _best(run: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    run()  # warm-up: compilation, plans and allocator growth are not timed
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _median(run: Callable[[], None], repeats: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cupy_peak(run: Callable[[], None]) -> Optional[int]:
    """Bytes one untimed run held from CuPy's pool at once above what was held before (None off CuPy)."""
    if not _on_cupy():
        return None
    import cupy
    from cupy_memory import peak_hook

    cupy.cuda.get_current_stream().synchronize()
    hook = peak_hook(cupy)
    with hook:
        run()
    return hook.peak


def _torch(device: str) -> Any:
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return torch


def _torch_sync(torch: Any, device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _error(exc: BaseException) -> Dict[str, str]:
    from autograd.kernels import KernelNotSupportedError

    first = (str(exc).splitlines() or [""])[0][:160]
    if isinstance(exc, KernelNotSupportedError):  # its reasons follow the description of the inputs
        reasons = re.split(r"requires_grad=(?:True|False): ", str(exc), maxsplit=1)[-1]
        return {"error": f"declined: {reasons[:160]}"}
    return {"error": f"failed: {type(exc).__name__}: {first}"}


# --- attention ------------------------------------------------------------------------------------------------------


def attention_flops(b: int, h: int, t: int, d: int) -> float:
    """Forward and backward of causal attention: 3.5 x the forward's 2 B H T^2 D (the causal half of 4 B H T^2 D)."""
    return 3.5 * 2.0 * b * h * t * t * d


def autograd_attention(impl: str, shape: tuple, dtype: str, repeats: int) -> Dict[str, Any]:
    from autograd import backend
    from autograd import functional as F
    from autograd.tensor import Tensor

    q, k, v = (Tensor(backend.normal(shape, dt=dtype)) for _ in range(3))
    g = Tensor(backend.normal(shape, dt=dtype), requires_grad=False)

    def run() -> None:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, implementation=impl)
        out.backward(g)
        q.grad = k.grad = v.grad = None

    seconds = _best(run, repeats, sync_autograd)
    return {"seconds": seconds, "peak_bytes": cupy_peak(run)}


def torch_attention(torch: Any, shape: tuple, dtype: str, repeats: int, device: str) -> Dict[str, Any]:
    tdtype = getattr(torch, dtype)
    q, k, v = (torch.randn(shape, dtype=tdtype, device=device, requires_grad=True) for _ in range(3))
    g = torch.randn(shape, dtype=tdtype, device=device)

    def run() -> None:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        q.grad = k.grad = v.grad = None

    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    seconds = _best(run, repeats, _torch_sync(torch, device))
    return {"seconds": seconds, "peak_bytes": torch.cuda.max_memory_allocated() - base if cuda else None}


def _cell(result: Dict[str, Any], flops: float) -> str:
    if "error" in result:
        return result["error"]
    text = f"{result['seconds'] * 1e3:.2f} ms, {flops / result['seconds'] / 1e12:.1f} TFLOP/s"
    if result.get("peak_bytes") is not None:
        text += f", {result['peak_bytes'] / 2**20:.0f} MiB"
    return text


def attention(args: argparse.Namespace, budget: Budget) -> Dict[str, Any]:
    from autograd import backend

    impls = list(ATTENTION_IMPLS)
    device = "cuda"
    if args.smoke:
        args.seqs, args.head_dims, args.batch, args.heads, args.repeats = "16,32", "16", 1, 2, 1
        args.dtype, impls, device = "float32", ["triton_fused", "reference"], "cpu"
    torch = _torch(device)
    rows = []
    for d in [int(x) for x in args.head_dims.split(",")]:
        for t in [int(x) for x in args.seqs.split(",")]:
            shape = (args.batch, args.heads, t, d)
            flops = attention_flops(args.batch, args.heads, t, d)
            cells: Dict[str, Dict[str, Any]] = {}
            for name in [*impls, "torch"]:
                if budget.spent():
                    cells[name] = {"error": "not run (time budget spent)"}
                elif name == "torch" and torch is None:
                    cells[name] = {"error": f"PyTorch ({device}) not available"}
                else:
                    try:
                        if name == "torch":
                            cells[name] = torch_attention(torch, shape, args.dtype, args.repeats, device)
                        else:
                            cells[name] = autograd_attention(name, shape, args.dtype, args.repeats)
                    except Exception as exc:  # noqa: BLE001 - one failing case (out of memory...) must not end the table
                        cells[name] = _error(exc)
                if backend.BACKEND == "cupy":
                    backend.lib.get_default_memory_pool().free_all_blocks()
            rows.append({"head_dim": d, "seq": t, "flops": flops, "cells": cells})
            print(json.dumps(rows[-1]), flush=True)
    names = [*impls, "torch"]
    lines = [
        f"Causal attention forward+backward, {args.dtype}, batch {args.batch}, {args.heads} heads; time, TFLOP/s, "
        f"peak memory above the inputs; best of {args.repeats}; autograd backend {backend.BACKEND}.",
        "",
        "| D | T | " + " | ".join(names) + " | " + " | ".join(f"{n} / torch" for n in impls) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in names) + " | " + " | ".join("---:" for _ in impls) + " |",
    ]
    for row in rows:
        cells = row["cells"]
        ratios = []
        for n in impls:
            ours, ref = cells.get(n, {}), cells.get("torch", {})
            ratios.append(f"{ref['seconds'] / ours['seconds']:.2f}" if "seconds" in ours and "seconds" in ref else "-")
        lines.append(
            f"| {row['head_dim']} | {row['seq']} | "
            + " | ".join(_cell(cells[n], row["flops"]) for n in names)
            + " | "
            + " | ".join(ratios)
            + " |"
        )
    lines += ["", "Throughput ratio: torch time / implementation time (1.0 = as fast as PyTorch's SDPA)."]
    return {"rows": rows, "markdown": "\n".join(lines)}


# --- training steps -------------------------------------------------------------------------------------------------


def gpt_models(vocab: int, d: int, layers: int, heads: int, seq: int) -> Any:
    """The GPT in autograd.nn and a factory of the same GPT in torch.nn (pre-LN, GELU MLP, untied head)."""
    import numpy as np

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.tensor import Tensor

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiHeadAttention(heads, d, dropout_prob=0.0)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x: Tensor) -> Tensor:
            h = self.ln1(x)
            x = x + self.attn(h, h, h, is_causal=True)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq, d)
            self.tok.weight.data = self.tok.weight.data * 0.02
            self.pos.weight.data = self.pos.weight.data * 0.02
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
            self.positions = backend.asarray(np.arange(seq))

        def forward(self, idx: Any) -> Tensor:
            x = self.tok(idx) + self.pos(self.positions[: idx.shape[1]])
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    def torch_gpt(torch: Any, device: str) -> Any:
        nnt = torch.nn

        class TorchAttention(nnt.Module):
            def __init__(self) -> None:
                super().__init__()
                self.q_proj, self.k_proj, self.v_proj = nnt.Linear(d, d), nnt.Linear(d, d), nnt.Linear(d, d)
                self.out_proj = nnt.Linear(d, d)

            def forward(self, x: Any) -> Any:
                b, t, c = x.shape

                def split(y: Any) -> Any:
                    return y.view(b, t, heads, c // heads).transpose(1, 2)

                q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
                return self.out_proj(out.transpose(1, 2).reshape(b, t, c))

        class TorchBlock(nnt.Module):
            def __init__(self) -> None:
                super().__init__()
                self.ln1, self.ln2 = nnt.LayerNorm(d), nnt.LayerNorm(d)
                self.attn = TorchAttention()
                self.fc1, self.fc2 = nnt.Linear(d, 4 * d), nnt.Linear(4 * d, d)

            def forward(self, x: Any) -> Any:
                x = x + self.attn(self.ln1(x))
                return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

        class TorchGPT(nnt.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tok, self.pos = nnt.Embedding(vocab, d), nnt.Embedding(seq, d)
                self.blocks = nnt.ModuleList([TorchBlock() for _ in range(layers)])
                self.ln, self.head = nnt.LayerNorm(d), nnt.Linear(d, vocab, bias=False)

            def forward(self, idx: Any) -> Any:
                x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
                for block in self.blocks:
                    x = block(x)
                return self.head(self.ln(x))

        return TorchGPT().to(device)

    return GPT(), torch_gpt


def _autograd_step_result(step: Callable[[], None], repeats: int, warmup: int) -> Dict[str, Any]:
    from autograd import backend

    seconds = _median(step, repeats, warmup, sync_autograd)
    peak = None
    if backend.BACKEND == "cupy":
        pool = backend.lib.get_default_memory_pool()
        held = pool.used_bytes()
        extra = cupy_peak(step)
        peak = held + (extra or 0)
    return {"seconds": seconds, "peak_bytes": peak}


def gpt(args: argparse.Namespace, budget: Budget) -> Dict[str, Any]:
    import numpy as np

    from autograd import backend
    from autograd import functional as F
    from autograd.optim import Adam, LossScaler
    from autograd.precision import autocast

    vocab, d, layers, heads, seq, batch = 50257, 768, 12, 12, 1024, 8
    device, dtype = "cuda", "float16"
    if args.smoke:
        vocab, d, layers, heads, seq, batch, device = 97, 32, 2, 2, 16, 2, "cpu"
    model, torch_gpt = gpt_models(vocab, d, layers, heads, seq)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=(batch, seq + 1))
    inputs, targets = backend.asarray(tokens[:, :-1]), backend.asarray(tokens[:, 1:].reshape(-1))
    scaler = LossScaler() if dtype == "float16" else None
    opt = Adam(model.parameters, lr=3e-4, beta2=0.95, epsilon=1e-8, weight_decay=0.1, loss_scaler=scaler)

    def step() -> None:
        opt.zero_grad()
        with autocast(dtype):
            logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, vocab), targets)
        opt.scale_loss(loss).backward()
        opt.step()

    out: Dict[str, Any] = {"shape": dict(vocab=vocab, d=d, layers=layers, heads=heads, seq=seq, batch=batch)}
    try:
        out["autograd"] = _autograd_step_result(step, args.repeats, 2)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        out["autograd"] = _error(exc)
    out["kernels"] = _chosen_kernels(step)
    torch = _torch(device)
    if torch is None:
        out["torch"] = {"error": f"PyTorch ({device}) not available"}
    elif budget.spent():
        out["torch"] = {"error": "not run (time budget spent)"}
    else:
        try:
            out["torch"] = _torch_gpt_step(torch, torch_gpt, tokens, vocab, device, dtype, args.repeats)
        except Exception as exc:  # noqa: BLE001
            out["torch"] = _error(exc)
    out["markdown"] = _step_table(
        f"GPT step: d {d}, {layers} layers, {heads} heads, T {seq}, batch {batch}, vocab {vocab}, {dtype} autocast"
        f"{' with loss scaling' if scaler else ''}, AdamW; median of {args.repeats} steps, peak memory of a step "
        "(parameters and optimizer state included).",
        out,
        goal=1.2,
    )
    return out


def _torch_gpt_step(
    torch: Any, factory: Any, tokens: Any, vocab: int, device: str, dtype: str, repeats: int
) -> Dict[str, Any]:
    model = factory(torch, device)
    data = torch.as_tensor(tokens, device=device)
    inputs, targets = data[:, :-1], data[:, 1:].reshape(-1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tdtype = getattr(torch, dtype)
    scaler = torch.amp.GradScaler(device, enabled=dtype == "float16")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=tdtype):
            logits = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return _torch_step_result(torch, step, device, repeats)


def _torch_step_result(torch: Any, step: Callable[[], None], device: str, repeats: int) -> Dict[str, Any]:
    cuda = device == "cuda"
    seconds = _median(step, repeats, 2, _torch_sync(torch, device))
    peak = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    return {"seconds": seconds, "peak_bytes": peak}


def _chosen_kernels(step: Callable[[], None]) -> Dict[str, List[str]]:
    """Which implementation ran each kernel op in one more step."""
    from autograd.kernels import registry

    chosen: Dict[str, set] = {}
    real = registry.select

    def select(inputs: Any, implementation: Any = None) -> Any:
        impl = real(inputs, implementation)
        chosen.setdefault(inputs.op, set()).add(impl.name)
        return impl

    registry.select = select
    try:
        step()
    except Exception:  # noqa: BLE001 - the step's own failure is reported with its time
        pass
    finally:
        registry.select = real
    return {op: sorted(names) for op, names in sorted(chosen.items())}


def _step_table(title: str, out: Dict[str, Any], goal: float) -> str:
    ours, ref = out.get("autograd", {}), out.get("torch", {})

    def cell(r: Dict[str, Any]) -> str:
        if "error" in r:
            return r["error"]
        text = f"{r['seconds'] * 1e3:.1f} ms"
        return text + (f", {r['peak_bytes'] / 2**20:.0f} MiB" if r.get("peak_bytes") is not None else "")

    time_ratio = f"{ours['seconds'] / ref['seconds']:.2f}" if "seconds" in ours and "seconds" in ref else "-"
    mem_ratio = "-"
    if ours.get("peak_bytes") and ref.get("peak_bytes"):
        mem_ratio = f"{ours['peak_bytes'] / ref['peak_bytes']:.2f}"
    lines = [
        title,
        "",
        "| autograd | PyTorch | time autograd / PyTorch | memory autograd / PyTorch | goal (time) |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {cell(ours)} | {cell(ref)} | {time_ratio} | {mem_ratio} | at most {goal} |",
    ]
    for key in ("autograd_tf32",):
        if key in out:
            lines.append(f"| {cell(out[key])} (AUTOGRAD_CUDA_TF32=1) | | | | |")
    if out.get("kernels"):
        lines += ["", "Kernels used: " + ", ".join(f"{op} {'/'.join(n)}" for op, n in out["kernels"].items())]
    return "\n".join(lines)


def resnet_models(widths: tuple = (64, 128, 256), classes: int = 10) -> Any:
    """The small ResNet in autograd.nn and a factory of the same in torch.nn."""
    from autograd import functional as F
    from autograd import nn
    from autograd.tensor import Tensor

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.b1 = nn.BatchNorm(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                self.bd = nn.BatchNorm(cout)

        def forward(self, x: Tensor) -> Tensor:
            h = F.relu(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            skip = x if self.down is None else self.bd(self.down(x))
            return F.relu(h + skip)

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
            self.bn = nn.BatchNorm(widths[0])
            blocks, cin = [], widths[0]
            for i, w in enumerate(widths):
                blocks += [Basic(cin, w, 1 if i == 0 else 2), Basic(w, w, 1)]
                cin = w
            self.blocks = nn.ModuleList(blocks)
            self.fc = nn.Linear(widths[-1], classes)

        def forward(self, x: Tensor) -> Tensor:
            h = F.relu(self.bn(self.stem(x)))
            for block in self.blocks:
                h = block(h)
            return self.fc(h.mean(axis=(2, 3)))

    def torch_resnet(torch: Any, device: str) -> Any:
        nnt = torch.nn

        class TBasic(nnt.Module):
            def __init__(self, cin: int, cout: int, stride: int) -> None:
                super().__init__()
                self.c1 = nnt.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
                self.b1 = nnt.BatchNorm2d(cout)
                self.c2 = nnt.Conv2d(cout, cout, 3, padding=1, bias=False)
                self.b2 = nnt.BatchNorm2d(cout)
                self.down = None
                if stride != 1 or cin != cout:
                    self.down = nnt.Sequential(
                        nnt.Conv2d(cin, cout, 1, stride=stride, bias=False), nnt.BatchNorm2d(cout)
                    )

            def forward(self, x: Any) -> Any:
                h = torch.relu(self.b1(self.c1(x)))
                h = self.b2(self.c2(h))
                return torch.relu(h + (x if self.down is None else self.down(x)))

        class TResNet(nnt.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stem = nnt.Sequential(
                    nnt.Conv2d(3, widths[0], 3, padding=1, bias=False), nnt.BatchNorm2d(widths[0])
                )
                blocks, cin = [], widths[0]
                for i, w in enumerate(widths):
                    blocks += [TBasic(cin, w, 1 if i == 0 else 2), TBasic(w, w, 1)]
                    cin = w
                self.blocks = nnt.Sequential(*blocks)
                self.fc = nnt.Linear(widths[-1], classes)

            def forward(self, x: Any) -> Any:
                return self.fc(self.blocks(torch.relu(self.stem(x))).mean(dim=(2, 3)))

        return TResNet().to(device)

    return ResNet(), torch_resnet


def resnet(args: argparse.Namespace, budget: Budget) -> Dict[str, Any]:
    import os

    import numpy as np

    from autograd import backend
    from autograd import functional as F
    from autograd.optim import Adam
    from autograd.tensor import Tensor

    batch, size, widths, device = 128, 32, (64, 128, 256), "cuda"
    if args.smoke:
        batch, size, widths, device = 4, 8, (4, 8, 8), "cpu"
    model, torch_resnet = resnet_models(widths)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 10, size=batch)
    x, y = Tensor(backend.asarray(images), requires_grad=False), backend.asarray(labels)
    opt = Adam(model.parameters, lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    out: Dict[str, Any] = {}
    try:
        out["autograd"] = _autograd_step_result(step, args.repeats, 2)
        if not budget.spent():
            os.environ["AUTOGRAD_CUDA_TF32"] = "1"
            try:
                out["autograd_tf32"] = _autograd_step_result(step, args.repeats, 1)
            finally:
                os.environ.pop("AUTOGRAD_CUDA_TF32", None)
    except Exception as exc:  # noqa: BLE001
        out["autograd"] = _error(exc)
    out["kernels"] = _chosen_kernels(step)
    torch = _torch(device)
    if torch is None:
        out["torch"] = {"error": f"PyTorch ({device}) not available"}
    elif budget.spent():
        out["torch"] = {"error": "not run (time budget spent)"}
    else:
        try:
            tmodel = torch_resnet(torch, device)
            topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
            tx = torch.as_tensor(images, device=device)
            ty = torch.as_tensor(labels, device=device)

            def tstep() -> None:
                topt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
                topt.step()

            out["torch"] = _torch_step_result(torch, tstep, device, args.repeats)
        except Exception as exc:  # noqa: BLE001
            out["torch"] = _error(exc)
    out["markdown"] = _step_table(
        f"ResNet step: 3x{size}x{size}, batch {batch}, widths {widths}, float32, Adam; median of {args.repeats} "
        "steps, peak memory of a step (PyTorch's convolutions use TF32 by default).",
        out,
        goal=1.5,
    )
    return out


# --- per-op overhead ------------------------------------------------------------------------------------------------


def overhead(args: argparse.Namespace, budget: Budget) -> Dict[str, Any]:
    """Host microseconds per call on tiny tensors, forward only and forward+backward (each op on (16, 16))."""
    import numpy as np

    from autograd import backend
    from autograd import functional as F
    from autograd.tensor import Tensor, no_grad

    n = 200 if not args.smoke else 5
    device = "cuda" if not args.smoke else "cpu"
    rng = np.random.default_rng(0)
    a_host, w_host = rng.standard_normal((16, 16)).astype(np.float32), np.ones(16, np.float32)
    a, w = Tensor(backend.asarray(a_host)), Tensor(backend.asarray(w_host))
    ops = {
        "add": lambda t, w_: t + t,
        "matmul": lambda t, w_: t @ t,
        "gelu": lambda t, w_: F.gelu(t),
        "softmax": lambda t, w_: F.softmax(t),
        "layer_norm": lambda t, w_: F.layer_norm(t, w_, w_),
    }
    torch = _torch(device)
    tops: Dict[str, Callable[[Any, Any], Any]] = {}
    if torch is not None:
        tf = torch.nn.functional
        tops = {
            "add": lambda t, w_: t + t,
            "matmul": lambda t, w_: t @ t,
            "gelu": lambda t, w_: tf.gelu(t, approximate="tanh"),
            "softmax": lambda t, w_: tf.softmax(t, dim=-1),
            "layer_norm": lambda t, w_: tf.layer_norm(t, (16,), w_, w_),
        }
        ta = torch.as_tensor(a_host, device=device).requires_grad_(True)
        tw = torch.as_tensor(w_host, device=device).requires_grad_(True)

    def per_call(run: Callable[[], Any], sync: Callable[[], None]) -> float:
        run()
        sync()
        start = time.perf_counter()
        for _ in range(n):
            run()
        sync()
        return (time.perf_counter() - start) / n * 1e6

    rows = []
    for name, op in ops.items():
        if budget.spent():
            break

        def fwd(op: Any = op) -> Any:
            with no_grad():
                return op(a, w)

        def fwd_bwd(op: Any = op) -> Any:
            op(a, w).sum().backward()
            a.grad = w.grad = None

        row: Dict[str, Any] = {"op": name}
        row.update(autograd_fwd_us=per_call(fwd, sync_autograd), autograd_fwd_bwd_us=per_call(fwd_bwd, sync_autograd))
        if name in tops:
            top = tops[name]
            tsync = _torch_sync(torch, device)

            def tfwd(top: Any = top) -> Any:
                with torch.no_grad():
                    return top(ta, tw)

            def tfwd_bwd(top: Any = top) -> Any:
                top(ta, tw).sum().backward()
                ta.grad = tw.grad = None

            row.update(torch_fwd_us=per_call(tfwd, tsync), torch_fwd_bwd_us=per_call(tfwd_bwd, tsync))
        rows.append(row)
    lines = [
        f"Host time per call on (16, 16) float32 tensors, mean of {n} calls (the GPU idles: this is dispatch).",
        "",
        "| op | autograd fwd | PyTorch fwd | ratio | autograd fwd+bwd | PyTorch fwd+bwd | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def us(value: Optional[float]) -> str:
        return f"{value:.1f} us" if value else "-"

    def ratio(ours: float, theirs: Optional[float]) -> str:
        return f"{ours / theirs:.1f}" if theirs else "-"

    for r in rows:
        ours_f, ours_b = r["autograd_fwd_us"], r["autograd_fwd_bwd_us"]
        tf_, tb = r.get("torch_fwd_us"), r.get("torch_fwd_bwd_us")
        lines.append(
            f"| {r['op']} | {us(ours_f)} | {us(tf_)} | {ratio(ours_f, tf_)} | {us(ours_b)} | {us(tb)} | "
            f"{ratio(ours_b, tb)} |"
        )
    return {"rows": rows, "markdown": "\n".join(lines)}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("section", choices=SECTIONS)
    p.add_argument("--budget", type=float, default=120.0, help="seconds; cases left when it is spent are not run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seqs", default="1024,2048,4096,8192,16384")
    p.add_argument("--head-dims", default="64,128")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--output", type=Path, default=None, help="write the Markdown table here")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, any backend, PyTorch on the CPU")
    args = p.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    budget = Budget(args.budget)
    result = {"attention": attention, "gpt": gpt, "resnet": resnet, "overhead": overhead}[args.section](args, budget)
    markdown = result.pop("markdown")
    print(markdown)
    if args.output:
        args.output.write_text(markdown + "\n")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
