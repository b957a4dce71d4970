"""Train a small character-level GPT on the English text that ships inside CPython (pydoc_data.topics).

Embedding + learned positions, pre-LN decoder blocks (causal MultiHeadAttention,
GELU MLP), cross entropy with label smoothing, AdamW with warmup + cosine decay.
Prints train/validation loss against the unigram baseline, then samples text
(temperature, top-k) from a prompt. The training batches are random windows of a
``TokenDataset`` over the character ids, read by a ``DataLoader`` (autograd-data).
``--checkpoint DIR`` saves the model, the optimizer state and the loader's state;
``--resume DIR`` continues exactly where that run stopped: the loader yields the
very next batch, and the dropout of step ``s`` depends only on the seed and ``s``.

The progress bar shows the loss of the latest training batch, computed with
dropout and label smoothing; the "train loss" and "val loss" lines average
``--eval-batches`` fixed batches in eval mode (no dropout) without label
smoothing, so they are lower than the bar's. ``--plot PATH`` draws both, with the unigram baseline, into a PNG.

    uv run --only-group examples python examples/char_gpt.py [--steps 600] [--backend mlx]

``--distributed`` trains data-parallel under ``mpiexec -n N`` (autograd-distributed): each rank reads its own
``--batch-size`` windows per step (its ``DistributedSampler`` shard of the windows), and only rank 0 prints and
checkpoints.
``--precision bfloat16`` (or ``float16``) trains in mixed precision (see docs/precision.rst); a checkpoint
remembers its precision.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["numpy", "mlx", "cupy"], default=None)
    p.add_argument("--steps", type=int, default=600, help="total optimizer steps of the run")
    p.add_argument("--stop-at", type=int, default=None, help="stop (and checkpoint) after this step")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--block", type=int, default=64, help="context length")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, metavar="DIR", help="save model + optimizer state here at the end")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue from a checkpoint")
    p.add_argument("--prompt", default="The ")
    p.add_argument("--sample-chars", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plot", default=None, metavar="PATH", help="write a PNG of the loss curves")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of mpiexec")
    p.add_argument(
        "--precision",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="mixed precision: weights and products in this dtype, float32 masters in the optimizer "
        "(float16 adds loss scaling; bfloat16 on NumPy needs ml_dtypes)",
    )
    return p.parse_args(argv)


def load_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def mlx_cpu_warning(backend_name: str) -> str | None:
    """A warning when the mlx backend computes on the CPU (MLX's CPU build, or no Apple GPU)."""
    if backend_name != "mlx":
        return None
    import mlx.core as mx

    if mx.default_device().type == mx.DeviceType.gpu:
        return None
    return (
        "warning: the mlx backend is running on the CPU (MLX's CPU build, no Apple GPU). This model trains about "
        "13x slower than with --backend numpy there (measured on a 2-core x86_64 machine: about 15 minutes for "
        "the default 600 steps)."
    )


def precision_problem(backend: Any, precision: str, argv: list[str]) -> str | None:
    """One line on how to run when the backend lacks ``precision``'s dtype (bfloat16 on NumPy without ml_dtypes)."""
    try:
        backend.dtype(precision)
    except TypeError as e:
        if "ml_dtypes" not in str(e):
            return f"char_gpt.py: --precision {precision}: {e}"
        return (
            f"char_gpt.py: --precision {precision} on NumPy needs ml_dtypes, which is not installed; "
            f"in this project run: "
            f"uv run --only-group examples --with ml_dtypes python examples/char_gpt.py {shlex.join(argv)}"
        )
    return None


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.backend:
        os.environ["AUTOGRAD_BACKEND"] = args.backend

    import numpy as np
    from tqdm import tqdm

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.data import DataLoader, DistributedSampler, TokenDataset
    from autograd.optim import Adam, CosineScheduler, LossScaler
    from autograd.tensor import Tensor, no_grad

    rank, world = 0, 1
    if args.distributed:
        from autograd import distributed as dist

        dist.init()
        rank, world = dist.rank(), dist.world_size()
        if rank:
            sys.stdout = open(os.devnull, "w")  # rank 0 reports for every rank
        print(f"distributed: {dist.world_size()} ranks over {dist.transport()}, backend {backend.BACKEND}")

    if args.resume:
        with open(os.path.join(args.resume, "meta.json")) as f:
            meta = json.load(f)
        for key in ("hidden", "layers", "heads", "block", "seed", "steps", "batch_size", "lr", "dropout"):
            setattr(args, key, meta["config"][key])  # the architecture and schedule of the run being resumed
        args.precision = meta["config"].get("precision", "float32")
    problem = precision_problem(backend, args.precision, sys.argv[1:] if argv is None else argv)
    if problem:
        raise SystemExit(problem)

    text = load_text()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.uint16)  # a token file's dtype (the vocabulary is small)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    vocab = len(chars)
    counts = np.bincount(train, minlength=vocab).astype(np.float64)
    probs = np.maximum(counts, 1) / counts.sum()
    unigram = float(-np.mean(np.log(probs[val])))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(args.hidden)
            self.attn = nn.MultiHeadAttention(args.heads, args.hidden, dropout_prob=args.dropout)
            self.ln2 = nn.LayerNorm(args.hidden)
            self.fc1 = nn.Linear(args.hidden, 4 * args.hidden)
            self.fc2 = nn.Linear(4 * args.hidden, args.hidden)
            self.drop = nn.Dropout(args.dropout)

        def forward(self, x: Tensor) -> Tensor:
            h = self.ln1(x)
            x = x + self.attn(h, h, h, is_causal=True)
            return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))

    class CharGPT(nn.Module):
        """(B, T) character ids -> (B, T, vocab) logits."""

        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(vocab, args.hidden)
            self.pos = nn.Embedding(args.block, args.hidden)
            for emb in (self.tok, self.pos):
                emb.weight.data = emb.weight.data * 0.02
            self.blocks = nn.ModuleList([Block() for _ in range(args.layers)])
            self.ln = nn.LayerNorm(args.hidden)
            self.head = nn.Linear(args.hidden, vocab)

        def forward(self, idx) -> Tensor:
            x = self.tok(idx) + self.pos(backend.asarray(np.arange(idx.shape[1], dtype=np.int32)))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    def windows(source: np.ndarray, count: int, seed: int) -> TokenDataset:
        """``count`` random (block,) windows of ``source`` and their next-character targets, int32."""
        return TokenDataset(source, args.block, random=True, num_samples=count, seed=seed, out_dtype=np.int32)

    # Training: one epoch of `steps` batches per rank, each a fresh draw of random windows; the loader's state
    # (in the checkpoint) says which batch comes next. Distributed, each rank reads its own shard of the windows.
    train_windows = windows(train, args.steps * args.batch_size * world, args.seed)
    sampler = DistributedSampler(train_windows, shuffle=False) if args.distributed else None
    loader = DataLoader(train_windows, batch_size=args.batch_size, sampler=sampler, seed=args.seed)
    # Evaluation: the same `eval_batches` batches every time (set_epoch(0) before each pass).
    eval_loaders = [
        DataLoader(windows(source, args.eval_batches * args.batch_size, args.seed + offset), args.batch_size)
        for source, offset in ((train, 1), (val, 2))
    ]

    backend.seed(args.seed)
    model = CharGPT()
    if args.precision != "float32":
        model.set_precision(args.precision)  # weights stored low; the optimizer keeps float32 masters
    net = dist.DistributedDataParallel(model) if args.distributed else model  # averages gradients in backward
    opt = Adam(
        model.parameters,
        lr=args.lr,
        beta2=0.99,
        weight_decay=args.weight_decay,
        lr_scheduler_kwargs={
            "lr_scheduler_cls": CosineScheduler,
            "warmup_steps": max(1, min(50, args.steps // 10)),
            "lr_decay_iters": max(args.steps, 2),
            "min_lr": args.lr / 10,
        },
        loss_scaler=LossScaler() if args.precision == "float16" else None,
    )
    start_step = 0
    if args.resume:
        model.load_weights(os.path.join(args.resume, "model.safetensors"))
        opt.load(os.path.join(args.resume, "optimizer.safetensors"))
        start_step = opt.timestep
        if "loader" not in meta:
            raise SystemExit(f"{args.resume} was written before char_gpt kept its data loader's state: start anew")
        loader.load_state_dict(meta["loader"])  # the next batch is the one the stopped run would have read
        print(f"resumed from {args.resume} at step {start_step}")

    def evaluate() -> tuple[float, float]:
        model.eval()
        out = []
        with no_grad():
            for eval_loader in eval_loaders:
                eval_loader.set_epoch(0)  # the same windows at every evaluation
                out.append(float(np.mean([F.cross_entropy(model(x), y).item() for x, y in eval_loader])))
        model.train()
        return out[0], out[1]

    stop = min(args.stop_at or args.steps, args.steps)
    print(
        f"backend {backend.BACKEND}, {args.precision}: {len(text):,} characters, vocab {vocab}, "
        f"{model.num_parameters():,} parameters; "
        f"unigram baseline {unigram:.3f} nats/char"
    )
    warning = mlx_cpu_warning(backend.BACKEND)
    if warning:
        print(warning, file=sys.stderr)
    print(
        "the bar's batch_loss: the latest training batch, with dropout and label smoothing; "
        f"train/val loss: {args.eval_batches} fixed batches in eval mode, without label smoothing (lower)"
    )
    history = []
    batch_losses = []  # (step, loss of that training batch), for --plot
    started = time.perf_counter()
    bar = tqdm(range(start_step, stop), disable=args.no_progress, file=sys.stdout, desc="training")
    loss = None
    batches = iter(loader)
    for step in bar:
        # The batch is the loader's next one (its state is in the checkpoint); step s's dropout depends only on
        # (seed, s): a resumed run continues exactly.
        backend.seed((args.seed * 1_000_003 + step) * world + rank)
        x, y = next(batches)  # (B, block) int32 inputs and next-character targets, backend arrays
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y, label_smoothing=args.label_smoothing)
        opt.scale_loss(loss).backward()  # the loss itself without a loss scaler
        opt.clip_grad_norm(1.0)
        opt.step()
        batch_losses.append((step + 1, loss.item()))
        bar.set_postfix(batch_loss=f"{batch_losses[-1][1]:.3f}", lr=f"{opt.lr:.1e}")
        if (step + 1) % args.eval_every == 0 or step + 1 == stop:
            tr, va = evaluate()
            history.append({"step": step + 1, "train": tr, "val": va})
            tqdm.write(
                f"step {step + 1:5d}: train loss {tr:.3f}  val loss {va:.3f}  (unigram {unigram:.3f})", file=sys.stdout
            )
    elapsed = time.perf_counter() - started
    result = {"unigram": unigram, "history": history, "final_loss": None if loss is None else loss.item()}
    if history:
        print(
            f"validation loss {history[-1]['val']:.3f} vs unigram baseline {unigram:.3f} "
            f"({stop - start_step} steps in {elapsed:.1f}s)"
        )

    if args.plot and rank == 0 and history:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 4))
        steps, losses = zip(*batch_losses)
        ax.plot(steps, losses, color="0.75", linewidth=0.8, label="training batch (dropout, label smoothing)")
        ax.plot([h["step"] for h in history], [h["train"] for h in history], marker="o", label="train (eval mode)")
        ax.plot([h["step"] for h in history], [h["val"] for h in history], marker="o", label="validation (eval mode)")
        ax.axhline(unigram, color="0.3", linestyle="--", label=f"unigram baseline {unigram:.2f}")
        ax.set(xlabel="step", ylabel="cross entropy (nats/char)", title="character-level GPT")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"loss curves written to {args.plot}")

    if args.checkpoint and rank == 0:  # the ranks hold the same weights
        os.makedirs(args.checkpoint, exist_ok=True)
        model.save_weights(os.path.join(args.checkpoint, "model.safetensors"))
        opt.save(os.path.join(args.checkpoint, "optimizer.safetensors"))
        config = {
            k: getattr(args, k)
            for k in ("hidden", "layers", "heads", "block", "seed", "steps", "batch_size", "lr", "dropout", "precision")
        }
        with open(os.path.join(args.checkpoint, "meta.json"), "w") as f:
            json.dump({"config": config, "step": stop, "vocab": chars, "loader": loader.state_dict()}, f)
        print(f"checkpoint written to {args.checkpoint} at step {stop}")

    # Sampling: temperature and top-k over the last position, context cropped to the block size.
    model.eval()
    rng = np.random.default_rng(args.seed)
    ids = [stoi.get(c, 0) for c in args.prompt] or [0]
    with no_grad():
        for _ in range(args.sample_chars):
            ctx = backend.asarray(np.array([ids[-args.block :]], dtype=np.int32))
            logits = model(ctx).numpy()[0, -1].astype(np.float64) / max(args.temperature, 1e-6)
            if 0 < args.top_k < vocab:
                cutoff = np.sort(logits)[-args.top_k]
                logits = np.where(logits < cutoff, -np.inf, logits)
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(vocab, p=p / p.sum())))
    sample = "".join(chars[i] for i in ids)
    print("--- sample " + "-" * 60)
    print(sample)
    result["sample"] = sample
    result["params"] = {k: backend.to_numpy(v.data) for k, v in model.parameters.items()}
    result["loss_is_finite"] = loss is None or math.isfinite(loss.item())
    return result


if __name__ == "__main__":
    main()
