"""One mixed-precision training step on the cupy backend, and every host synchronisation it makes.

The step is what a user writes: a small GPT (token and position embeddings,
pre-LN blocks with causal multi-head attention and a GELU MLP, a linear head)
under ``autocast("float16")``, cross-entropy, ``Adam`` with weight decay and a
``LossScaler``, ``opt.scale_loss(loss).backward()``, ``opt.clip_grad_norm(1.0)``,
``opt.step()``. Two warm-up steps run first (the optimizer creates its state);
the third is recorded.

``--simulate`` runs on :mod:`simulated_cupy` (no GPU) and prints, as JSON, each
device-to-host transfer of the recorded step with the line that asked for it,
and which implementation ran each op. ``--kernels triton`` registers the
``triton_fused`` implementations on the simulated device, their kernels run
in Triton's interpreter on the same buffers (set ``TRITON_INTERPRET=1``);
``--kernels reference`` runs core's reference of every op.

Without ``--simulate`` (a real CUDA device) syncs cannot be counted one by one;
it queues a spin kernel of ``--spin-ms`` on the stream first and reports
whether the step returned while the kernel still ran (no host wait) and how
long the host spent in the step.

    python sync_step.py --simulate [--kernels triton|reference] [--no-loss-scaler]
    python sync_step.py [--spin-ms 500] [--no-loss-scaler]   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))

SPIN_KERNEL = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""


def build(vocab: int = 64, hidden: int = 32, layers: int = 2, heads: int = 2, seq: int = 16) -> Any:
    """The model (autograd.nn) and an input batch and targets (device arrays)."""
    import numpy as np

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.tensor import Tensor

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.attn = nn.MultiHeadAttention(heads, hidden, dropout_prob=0.0)
            self.fc1, self.fc2 = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)

        def forward(self, x: Tensor) -> Tensor:
            h = self.ln1(x)
            x = x + self.attn(h, h, h, is_causal=True)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, hidden), nn.Embedding(seq, hidden)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(hidden), nn.Linear(hidden, vocab)
            self.positions = backend.asarray(np.arange(seq))

        def forward(self, idx: Any) -> Tensor:
            x = self.tok(idx) + self.pos(self.positions)
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    backend.seed(0)
    rng = np.random.default_rng(0)
    tokens = backend.asarray(rng.integers(0, vocab, size=(2, seq + 1)).astype(np.int64))
    return GPT(), tokens[:, :-1], tokens[:, 1:]


def step(model: Any, opt: Any, inputs: Any, targets: Any) -> None:
    from autograd import functional as F
    from autograd.precision import autocast

    opt.zero_grad()
    with autocast("float16"):
        logits = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    opt.scale_loss(loss).backward()
    opt.clip_grad_norm(1.0)
    opt.step()


def _triton_on_simulated_device() -> List[Any]:
    """The triton_fused classes, told the simulated device is theirs (their kernels then run interpreted)."""
    from autograd_kernels_cuda import triton_fused

    return [
        type(f"Simulated{cls.__name__}", (cls,), {"check_environment": lambda self: []})()
        for cls in triton_fused.IMPLEMENTATIONS
    ]


def _chosen(report: Dict[str, Any]) -> None:
    """Record which implementation each op's Function came from, by wrapping the dispatcher's select."""
    from autograd.kernels import registry

    real = registry.select

    def select(inputs: Any, implementation: Any = None) -> Any:
        impl = real(inputs, implementation)
        report.setdefault(inputs.op, set()).add(impl.name)
        return impl

    registry.select = select


def simulate(kernels: str, loss_scaler: bool = True) -> Dict[str, Any]:
    sys.path.insert(0, HERE)
    import simulated_cupy

    simulated_cupy.install()
    os.environ["AUTOGRAD_BACKEND"] = "cupy"
    if kernels == "reference":
        os.environ["AUTOGRAD_KERNELS"] = "reference"
    from autograd import backend
    from autograd.kernels import registry
    from autograd.optim import Adam, LossScaler

    assert backend.BACKEND == "cupy", backend.BACKEND
    impls = _triton_on_simulated_device() if kernels == "triton" else []
    chosen: Dict[str, Any] = {}
    with registry.isolated(*impls):
        _chosen(chosen)
        model, inputs, targets = build()
        opt = Adam(model.parameters, lr=1e-3, weight_decay=0.01, loss_scaler=LossScaler() if loss_scaler else None)
        for _ in range(2):
            step(model, opt, inputs, targets)
        chosen.clear()
        with simulated_cupy.LOG.recording() as log:
            step(model, opt, inputs, targets)
        events = list(log.events)
    return {
        "kernels": kernels,
        "loss_scaler": loss_scaler,
        "syncs": events,
        "chosen": {op: sorted(names) for op, names in sorted(chosen.items())},
        "skipped_step": opt.last_step_skipped,
    }


def on_device(spin_ms: float, loss_scaler: bool = True) -> Dict[str, Any]:
    import cupy

    from autograd.optim import Adam, LossScaler

    model, inputs, targets = build()
    opt = Adam(model.parameters, lr=1e-3, weight_decay=0.01, loss_scaler=LossScaler() if loss_scaler else None)
    for _ in range(2):
        step(model, opt, inputs, targets)
    stream = cupy.cuda.get_current_stream()
    stream.synchronize()
    spin = cupy.RawKernel(SPIN_KERNEL, "spin")
    rate = cupy.cuda.Device().attributes["ClockRate"] * 1e3  # kHz -> cycles per second
    spin((1,), (1,), (cupy.int64(int(rate * spin_ms / 1e3)),))
    start = time.perf_counter()
    step(model, opt, inputs, targets)
    host = time.perf_counter() - start
    busy = not stream.done
    stream.synchronize()
    total = time.perf_counter() - start
    return {
        "spin_ms": spin_ms,
        "loss_scaler": loss_scaler,
        "host_ms": host * 1e3,
        "device_ms": total * 1e3,
        "returned_before_the_device_finished": busy,
    }


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--simulate", action="store_true", help="on the simulated CuPy (no GPU): list every sync")
    p.add_argument("--kernels", choices=["triton", "reference"], default="triton")
    p.add_argument("--spin-ms", type=float, default=500.0)
    p.add_argument("--no-loss-scaler", action="store_true", help="the step without a LossScaler")
    args = p.parse_args(argv)
    scaler = not args.no_loss_scaler
    result = simulate(args.kernels, scaler) if args.simulate else on_device(args.spin_ms, scaler)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
