"""autograd-data's DataLoader against torch.utils.data.DataLoader, alternating round by round in one process.

    python benchmarks/bench_data.py [--rounds 5] [--batches 40] [--token-mb 100]
    python benchmarks/bench_data.py --quick        # seconds: proves the script runs, measures nothing

Rows:

* **images, 0 and 2 workers**: samples per second of both loaders over the same map-style data set, whose
  ``__getitem__`` does about 100 us of NumPy work (a random 32x32 crop of a 3x36x36 uint8 image held in memory,
  a random flip, conversion to float32 and a few element-wise passes), batch 128, shuffled, workers kept
  between rounds (``persistent_workers``). PyTorch's loader gets the same data set and its default collation
  (NumPy samples to tensors). Goal: at least PyTorch's throughput in both rows.
* **TokenDataset windows, 0 and 2 workers**: random windows of 256 tokens (batch 64) from a ``--token-mb`` MB
  uint16 token file, against the reference a script writes by hand (the memory map, random starts, one
  ``np.stack`` of slices per batch) measured in the same process; and the main process's private memory
  (RssAnon) while it iterates, which stays flat because the file is mapped, not read.

How it keeps the numbers honest (as run_all.py, whose machine check it reuses): the 2048x2048 GEMM on 1 and 2
threads first (below 1.6x the host has lost a core, and the run says so); both loaders in one process, taking
turns round by round after a pause, the best round of each kept, each ratio against the PyTorch (or reference)
time of the same run. The time of a round starts after its first two batches (worker start-up and the
pipeline filling are not throughput). PyTorch is optional: without it its column says why it is empty.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run_all import MIN_SPEEDUP, PAUSE, gemm_speedup  # noqa: E402

MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)[:, None, None]
INV_STD = (1 / np.array([0.25, 0.24, 0.26], dtype=np.float32))[:, None, None]


class Crops:
    """A map-style image data set: sample ``i`` is a random crop of image ``i``, flipped, normalised; and a label.

    ``(3, 32, 32)`` float32 and an int. About 100 us per sample on the 2-core host of benchmarks/README.md (the
    script prints what it measures on this machine).
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, size=(n, 3, 36, 36), dtype=np.uint8)
        self.labels = rng.integers(0, 10, size=n)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, int]:
        top, left = np.random.randint(0, 3, size=2)
        x = self.images[i, :, top : top + 34, left : left + 34].astype(np.float32)
        if np.random.random() < 0.5:
            x = x[:, :, ::-1]
        x = (x * (1 / 255) - MEAN) * INV_STD
        # a 3x3 box blur of the 34x34 crop down to 32x32: nine shifted element-wise passes
        blurred = x[:, 0:32, 0:32].copy()
        for dy in range(3):
            for dx in range(3):
                if dy or dx:
                    blurred += x[:, dy : dy + 32, dx : dx + 32]
        x = blurred * np.float32(1 / 9)
        contrast = np.float32(1 + 0.2 * (np.random.random() - 0.5))
        x = (x - x.mean(axis=(1, 2), keepdims=True)) * contrast + x.mean(axis=(1, 2), keepdims=True)
        x += np.random.standard_normal(x.shape).astype(np.float32) * np.float32(0.05)
        return np.clip(x, -3, 3), int(self.labels[i])


def _per_sample_us(ds: Crops, n: int = 300) -> float:
    start = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return (time.perf_counter() - start) / n * 1e6


def _rss() -> Dict[str, int]:
    """RssAnon (private memory) and RssFile (mapped file pages) of this process, in bytes (Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    key, value = line.split(":")
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _time_batches(it: Any, batches: int, batch_size: int) -> float:
    """Samples per second over ``batches`` batches of ``it``, after two untimed ones."""
    next(it)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def _alternate(makers: Dict[str, Callable[[], float]], rounds: int) -> Dict[str, float]:
    """The best of ``rounds`` rounds of each maker, taking turns, a pause before each."""
    best = {name: 0.0 for name in makers}
    for _ in range(rounds):
        for name, run in makers.items():
            time.sleep(PAUSE)  # the other side's worker processes and thread pools go idle first
            best[name] = max(best[name], run())
    return best


def images(workers: int, rounds: int, batches: int, torch: Any) -> Dict[str, float]:
    from autograd.data import DataLoader

    batch = 128
    ds = Crops((batches + 2) * batch)
    persistent = workers > 0
    ours = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=persistent, seed=0)
    makers: Dict[str, Callable[[], float]] = {"ours": lambda: _time_batches(iter(ours), batches, batch)}
    if torch is not None:
        theirs = torch.utils.data.DataLoader(
            ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=persistent
        )
        makers["torch"] = lambda: _time_batches(iter(theirs), batches, batch)
    try:
        return _alternate(makers, rounds)
    finally:
        ours.close()


def _token_file(megabytes: float, folder: str) -> str:
    path = os.path.join(folder, "tokens.npy")
    n = int(megabytes * 1e6) // 2
    tokens = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(n,))
    rng = np.random.default_rng(0)
    step = 1 << 22
    for start in range(0, n, step):  # written in pieces: this process never holds the whole file
        tokens[start : start + step] = rng.integers(0, 50257, size=min(step, n - start), dtype=np.uint16)
    tokens.flush()
    del tokens
    return path


def token_windows(path: str, workers: int, rounds: int, batches: int) -> Dict[str, Any]:
    from autograd.data import DataLoader, TokenDataset

    block, batch = 256, 64
    ds = TokenDataset(path, block, random=True, seed=0)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    tokens = np.load(path, mmap_mode="r")

    def reference() -> Callable[[], float]:
        rng = np.random.default_rng(0)

        def run() -> float:
            def batches_by_hand():
                while True:
                    starts = rng.integers(0, len(tokens) - block - 1, size=batch)
                    x = np.stack([tokens[s : s + block] for s in starts]).astype(np.int64)
                    y = np.stack([tokens[s + 1 : s + block + 1] for s in starts]).astype(np.int64)
                    yield x, y

            return _time_batches(batches_by_hand(), batches, batch)

        return run

    before = _rss()
    peak_anon = before.get("RssAnon", 0)

    def ours() -> float:
        nonlocal peak_anon
        it = iter(loader)
        rate = _time_batches(it, batches, batch)
        peak_anon = max(peak_anon, _rss().get("RssAnon", 0))
        return rate

    makers = {"ours": ours} if workers else {"ours": ours, "reference": reference()}
    try:
        best = _alternate(makers, rounds)
    finally:
        loader.close()
    after = _rss()
    return {
        **best,
        "anon_growth": peak_anon - before.get("RssAnon", 0),
        "file_mapped": after.get("RssFile", 0) - before.get("RssFile", 0),
    }


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per loader (best kept)")
    p.add_argument("--batches", type=int, default=40, help="timed batches per round")
    p.add_argument("--token-mb", type=float, default=100.0, help="size of the token file")
    p.add_argument("--quick", action="store_true", help="tiny settings: checks that the script runs, not speed")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.batches, args.token_mb = 1, 3, 4.0

    t1, t2, speedup = gemm_speedup()
    print(
        f"machine check: 2048x2048 float32 GEMM {t1 * 1e3:.0f} ms on 1 thread, {t2 * 1e3:.0f} ms on 2: {speedup:.2f}x"
    )
    if speedup < MIN_SPEEDUP:
        print(f"WARNING: the 2-thread speed-up is below {MIN_SPEEDUP}: this machine has lost a core; do not record")
    try:
        import torch

        torch.set_num_threads(2)
        torch_note = f"PyTorch {torch.__version__}"
    except ImportError:
        torch = None
        torch_note = "PyTorch is not installed: its column is empty (pip install torch to compare)"
    print(f"{torch_note}; autograd-data's __getitem__ costs {_per_sample_us(Crops(512)):.0f} us per sample here")

    rows: List[Tuple[str, str, str, str]] = []
    for workers in (0, 2):
        got = images(workers, args.rounds, args.batches, torch)
        ref = got.get("torch")
        rows.append(
            (
                f"images (3x32x32, ~100 us/sample), batch 128, {workers} workers",
                f"{got['ours']:.0f} samples/s",
                f"{ref:.0f} samples/s" if ref else "-",
                f"{got['ours'] / ref:.2f}x" if ref else "-",
            )
        )
        print(f"  images, {workers} workers: {got}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as folder:
        path = _token_file(args.token_mb, folder)
        for workers in (0, 2):
            got = token_windows(path, workers, args.rounds, args.batches)
            ref = got.get("reference")
            rows.append(
                (
                    f"TokenDataset windows of 256 from {args.token_mb:g} MB, batch 64, {workers} workers",
                    f"{got['ours']:.0f} windows/s",
                    f"{ref:.0f} windows/s (by hand)" if ref else "-",
                    f"{got['ours'] / ref:.2f}x" if ref else "-",
                )
            )
            rows.append(
                (
                    f"  main process memory while iterating ({workers} workers)",
                    f"+{got['anon_growth'] / 2**20:.1f} MiB private",
                    f"{got['file_mapped'] / 2**20:.1f} MiB of the file mapped",
                    "",
                )
            )
            print(f"  tokens, {workers} workers: {got}", file=sys.stderr)
    header = ("case", "autograd-data", "PyTorch / reference", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print()
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if args.quick:
        print("\n(--quick: tiny settings, the numbers above measure nothing)")


if __name__ == "__main__":
    main()
