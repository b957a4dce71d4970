"""Train a small CNN on scikit-learn's bundled 8x8 handwritten digits (nothing to download).

Conv2d -> BatchNorm -> ReLU -> MaxPool2d, twice, then Dropout and Linear; Adam
with a warmup + cosine schedule and gradient clipping. The batches come from an
``ArrayDataset`` through a shuffling ``DataLoader`` (autograd-data). Prints a progress bar
per epoch and the test accuracy, saves the weights to safetensors, reloads them
into a fresh model and checks that it scores the same. ``--weights PATH`` keeps
the weights in that file; without it they go to a temporary folder that is
deleted once the reload check is done.

    uv run --only-group examples python examples/train_digits.py [--backend mlx] [--epochs 20] [--plot curves.png]

``--distributed`` trains data-parallel under ``mpiexec -n N`` (autograd-distributed): each rank takes its
shard of every epoch (the loader's sampler is a ``DistributedSampler``), ``--batch-size`` per rank, and only
rank 0 prints and keeps ``--weights``.
``--precision bfloat16`` (or ``float16``) trains in mixed precision (see docs/precision.rst).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--backend", choices=["numpy", "mlx", "cupy"], default=None, help="default: AUTOGRAD_BACKEND or numpy"
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only this many training images (for smoke tests)")
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="keep the trained weights in this safetensors file (default: a temporary one, deleted after reloading)",
    )
    p.add_argument("--plot", default=None, metavar="PATH", help="write a PNG of the loss and accuracy curves")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the ranks of mpiexec")
    p.add_argument(
        "--precision",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="mixed precision: weights and products in this dtype, float32 masters in the optimizer "
        "(float16 adds loss scaling; bfloat16 on NumPy needs ml_dtypes)",
    )
    return p.parse_args(argv)


def precision_problem(backend: Any, precision: str, argv: list[str]) -> str | None:
    """One line on how to run when the backend lacks ``precision``'s dtype (bfloat16 on NumPy without ml_dtypes)."""
    try:
        backend.dtype(precision)
    except TypeError as e:
        if "ml_dtypes" not in str(e):
            return f"train_digits.py: --precision {precision}: {e}"
        return (
            f"train_digits.py: --precision {precision} on NumPy needs ml_dtypes, which is not installed; "
            f"in this project run: "
            f"uv run --only-group examples --with ml_dtypes python examples/train_digits.py {shlex.join(argv)}"
        )
    return None


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    if args.backend:
        os.environ["AUTOGRAD_BACKEND"] = args.backend  # read once, when autograd.backend is imported

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from tqdm import tqdm

    from autograd import backend, nn
    from autograd import functional as F
    from autograd.data import ArrayDataset, DataLoader, DistributedSampler
    from autograd.optim import Adam, CosineScheduler, LossScaler
    from autograd.tensor import Tensor, no_grad

    problem = precision_problem(backend, args.precision, sys.argv[1:] if argv is None else argv)
    if problem:
        raise SystemExit(problem)
    rank = 0
    if args.distributed:
        from autograd import distributed as dist

        dist.init()
        rank = dist.rank()
        if rank:
            sys.stdout = open(os.devnull, "w")  # rank 0 reports for every rank
        print(f"distributed: {dist.world_size()} ranks over {dist.transport()}, backend {backend.BACKEND}")

    class DigitsCNN(nn.Module):
        """(N, 1, 8, 8) -> (N, 10) logits."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, padding_mode="same")
            self.bn1 = nn.BatchNorm(32)
            self.conv2 = nn.Conv2d(32, 64, 3, padding_mode="same")
            self.bn2 = nn.BatchNorm(64)
            self.pool = nn.MaxPool2d(2)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(64 * 2 * 2, 10)

        def forward(self, x: Tensor) -> Tensor:
            h = self.pool(F.relu(self.bn1(self.conv1(x))))  # (N, 32, 4, 4)
            h = self.pool(F.relu(self.bn2(self.conv2(h))))  # (N, 64, 2, 2)
            return self.fc(self.drop(h.reshape(h.shape[0], -1)))

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    backend.seed(args.seed + rank)  # ranks start from different weights (and dropout); the wrapper copies rank 0's
    model = DigitsCNN()
    if args.precision != "float32":
        model.set_precision(args.precision)  # weights stored low; the optimizer keeps float32 masters
    net, sampler = model, None
    if args.distributed:  # this rank's shard of each epoch's permutation, the same permutation on every rank
        net, sampler = dist.DistributedDataParallel(model), DistributedSampler(len(x_train), seed=args.seed)
    # Batches of (N, 1, 8, 8) images and (N,) labels as backend arrays, reshuffled every epoch from the seed.
    loader = DataLoader(
        ArrayDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        seed=args.seed,
    )
    steps_per_epoch = len(loader)
    total = max(args.epochs * steps_per_epoch, 2)
    opt = Adam(
        model.parameters,
        lr=args.lr,
        lr_scheduler_kwargs={
            "lr_scheduler_cls": CosineScheduler,
            "warmup_steps": min(50, total // 2),
            "lr_decay_iters": total,
            "min_lr": args.lr / 30,
        },
        loss_scaler=LossScaler() if args.precision == "float16" else None,
    )

    def accuracy(m: nn.Module, xs: np.ndarray, ys: np.ndarray) -> float:
        m.eval()
        correct = 0
        with no_grad():
            for i in range(0, len(xs), 256):
                logits = m(Tensor(backend.asarray(xs[i : i + 256]), requires_grad=False))
                correct += int((logits.numpy().argmax(-1) == ys[i : i + 256]).sum())
        m.train()
        return correct / len(xs)

    print(
        f"backend {backend.BACKEND}: {len(x_train)} training and {len(x_test)} test images, "
        f"{model.num_parameters()} parameters, {args.precision}"
    )
    history = {"loss": [], "train_acc": [], "test_acc": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loader.set_epoch(epoch)  # the epoch's permutation (and, distributed, every rank's shard of it)
        bar = tqdm(
            loader,
            total=steps_per_epoch,
            desc=f"epoch {epoch:2d}/{args.epochs}",
            disable=args.no_progress,
            leave=False,
            file=sys.stdout,
        )
        seen = correct = 0
        loss_sum = 0.0
        for xb, yb in bar:
            opt.zero_grad()
            logits = net(Tensor(xb, requires_grad=False))
            loss = F.cross_entropy(logits, yb)
            opt.scale_loss(loss).backward()  # the loss itself without a loss scaler
            opt.clip_grad_norm(1.0)
            opt.step()
            labels = backend.to_numpy(yb)
            loss_sum += loss.item() * len(labels)
            correct += int((logits.numpy().argmax(-1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        test_acc = accuracy(model, x_test, y_test)
        history["loss"].append(loss_sum / seen)
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(test_acc)
        print(
            f"epoch {epoch:2d}: loss {loss_sum / seen:.4f}  train acc {correct / seen:.4f}  "
            f"test acc {test_acc:.4f}  lr {opt.lr:.2e}"
        )
    elapsed = time.perf_counter() - start
    test_acc = accuracy(model, x_test, y_test)
    print(
        f"test accuracy: {test_acc:.4f} ({int(round(test_acc * len(x_test)))}/{len(x_test)}) after "
        f"{args.epochs} epochs in {elapsed:.1f}s"
    )

    with tempfile.TemporaryDirectory(prefix="digits-") as scratch:
        path = (rank == 0 and args.weights) or os.path.join(scratch, "digits_cnn.safetensors")
        model.save_weights(path)
        fresh = DigitsCNN()
        if args.precision != "float32":
            fresh.set_precision(args.precision)
        fresh.load_weights(path)
        reloaded = accuracy(fresh, x_test, y_test)
    where = f"saved to {path}" if args.weights else "saved to a temporary file (--weights PATH keeps them)"
    print(f"weights {where}; reloaded model test accuracy: {reloaded:.4f}")
    if reloaded != test_acc:
        raise SystemExit("the reloaded model does not reproduce the accuracy")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        epochs = range(1, args.epochs + 1)
        ax1.plot(epochs, history["loss"], marker="o")
        ax1.set(xlabel="epoch", ylabel="training loss", title="loss")
        ax2.plot(epochs, history["train_acc"], marker="o", label="train")
        ax2.plot(epochs, history["test_acc"], marker="o", label="test")
        ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"curves written to {args.plot}")
    return test_acc


if __name__ == "__main__":
    main()
