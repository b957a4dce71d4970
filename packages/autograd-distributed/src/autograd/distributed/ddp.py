"""DistributedDataParallel: one model replica per rank, gradients averaged in buckets while backward runs."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

from autograd import backend
from autograd.distributed import group
from autograd.distributed.transports import DistributedError, Pending, Transport
from autograd.nn import Module
from autograd.tensor import Tensor, is_grad_enabled

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Consecutive parameters (in reverse registration order) of one dtype, reduced as one flat array."""

    def __init__(self, index: int, dtype: Any) -> None:
        self.index = index
        self.dtype = dtype
        self.params: List[Tensor] = []
        self.names: List[str] = []
        self.offsets: List[int] = []
        self.numel = 0
        self.nbytes = 0
        self.flat: Any = None
        self.ready = 0  # parameters whose gradient is final in this step

    def add(self, name: str, p: Tensor) -> None:
        self.params.append(p)
        self.names.append(name)
        self.offsets.append(self.numel)
        self.numel += p.size
        self.nbytes += int(p.data.nbytes)


class DistributedDataParallel(Module):
    """Wrap ``module`` so every rank keeps an identical replica and ``backward()`` averages the gradients.

    At wrap time every rank checks that all ranks hold the same parameter
    and state names, shapes and dtypes (a mismatch raises
    :class:`DistributedError` naming the first difference and the ranks),
    then copies rank 0's parameters and states to every rank.

    During ``backward()`` each parameter's gradient is copied into a flat
    bucket as soon as it is final (through core's
    ``Tensor.register_post_accumulate_grad_hook``); buckets hold about
    ``bucket_cap_mb`` MiB of parameters of one dtype, filled in reverse
    registration order for the first step and, from then on, in the order in
    which the first step's gradients arrived on rank 0 (as PyTorch does), and
    each bucket's sum over the ranks starts, non-blocking, as soon as its last
    gradient arrives (buckets always start in the same order on every rank).
    When the last bucket has started, the hook waits for all of them and
    writes the averages back into ``p.grad``, so **gradients are averaged
    when ``backward()`` returns** and the optimizer steps as usual.

    A parameter that gets no gradient in a step leaves its bucket
    incomplete: call :meth:`synchronize` after ``backward()`` and before
    ``optimizer.step()`` (it reduces zeros for such parameters); the next
    forward raises an error naming them if a step was left incomplete.

    Parameter names are those of the wrapped module (no ``module.`` prefix),
    so ``state_dict``, ``save_weights`` and optimizers see the same names as
    without the wrapper. With world size 1 the wrapper only forwards.

    Args:
        module: The model (an ``autograd.nn.Module``).
        bucket_cap_mb: Bucket size in MiB (> 0). A parameter larger than it
            gets a bucket of its own.
        broadcast_buffers: Copy rank 0's states (e.g. BatchNorm running
            statistics) to every rank before each training forward, as
            PyTorch does.
        overlap: Start each bucket's reduction during backward (True), or
            only when every gradient is final (False: no overlap, for
            measuring what overlap gains).

    Usage::

        init()
        model = DistributedDataParallel(Net())
        opt = Adam(model.parameters, lr=1e-3 * world_size())
        for x, y in batches:                       # this rank's shard (DistributedSampler)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()  # gradients averaged over the ranks here
            opt.step()

    Examples:
        One training step, written as with PyTorch's DDP. Under ``mpiexec -n 2`` each rank feeds its own batch and
        ``backward()`` leaves the two ranks' mean gradient in every ``p.grad``; with one process the wrapper only
        forwards:

        >>> from autograd import distributed as dist, nn
        >>> from autograd import functional as F
        >>> from autograd.optim import SGD
        >>> from autograd.tensor import Tensor
        >>> model = dist.DistributedDataParallel(nn.Linear(3, 1))
        >>> opt = SGD(model.parameters, lr=0.1)
        >>> x, y = Tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]), Tensor([[1.0], [0.0]])
        >>> opt.zero_grad()
        >>> loss = F.mean_squared_loss(model(x), y)
        >>> loss.backward()  # the gradients are averaged over the ranks when it returns
        >>> opt.step()
        >>> F.mean_squared_loss(model(x), y).item() < loss.item()
        True
        >>> list(model.parameters)  # the wrapped module's names, no "module." prefix
        ['weight', 'bias']
    """

    def __init__(
        self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True, overlap: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an autograd.nn.Module, got {type(module).__name__}")
        cap = float(bucket_cap_mb)
        if not cap > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        self.bucket_cap_mb = cap
        self.broadcast_buffers = bool(broadcast_buffers)
        self.overlap = bool(overlap)
        #: Seconds spent blocked waiting for gradient reductions (what overlap did not hide, and waiting for a
        #: slower rank), summed over steps.
        self.comm_wait_s = 0.0
        #: Buckets whose reduction had already completed when the last gradient arrived, summed over steps
        #: (None on MLX, which cannot be asked): overlap at work.
        self.buckets_done_early: int | None = 0
        self._g: Transport = group._get()
        self._sync_enabled = True  # False inside no_sync()
        self._reducing = False  # whether the backward of the latest forward reduces
        self._finished = False  # whether that backward's reduction is done
        self._buckets: List[_Bucket] = []
        self._slots: Dict[int, Tuple[_Bucket, int]] = {}
        self._handles: List[Any] = []
        if self._g.size == 1:
            return
        self._check_same_layout()
        self._copy_from_rank0(states_only=False)
        self._trainable = [(n, p) for n, p in self.module.parameters.items() if p.requires_grad]
        self._index = {id(p): i for i, (_, p) in enumerate(self._trainable)}
        # The first reducing step records the order in which gradients arrive; buckets are then rebuilt in
        # rank 0's order (as PyTorch does), so each bucket fills at one point of the backward.
        self._arrivals: Optional[List[int]] = []
        self._build_buckets(list(reversed(range(len(self._trainable)))))
        for _, p in self._trainable:
            self._handles.append(p.register_post_accumulate_grad_hook(self._on_grad))

    # -- the module interface: the wrapped module's names, unprefixed --

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, Module]]:
        """The wrapped module's modules, with its own names (no ``module.`` prefix)."""
        yield from self.module.named_modules(prefix)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped module; its backward will average gradients (unless inside :meth:`no_sync`)."""
        if self._g.size > 1:
            self._check_previous_step()
            self._reducing = self._sync_enabled and is_grad_enabled()
            self._finished = False
            if self.broadcast_buffers and self.is_training and self.module.states:
                self._copy_from_rank0(states_only=True)
        return self.module(*args, **kwargs)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forwards inside this block make backwards that only accumulate locally (gradient accumulation).

        The first forward/backward after the block reduces the accumulated
        gradients. Example: two micro-batches per optimizer step::

            with model.no_sync():
                (loss_fn(model(x1), y1) / 2).backward()
            (loss_fn(model(x2), y2) / 2).backward()   # averages the sum of both
            opt.step()
        """
        prev = self._sync_enabled
        self._sync_enabled = False
        try:
            yield
        finally:
            self._sync_enabled = prev

    @property
    def bucket_names(self) -> List[List[str]]:
        """The parameter names of each bucket, in launch order (rebuilt after the first step; empty for world 1)."""
        return [list(b.names) for b in self._buckets]

    # -- wrap time --

    def _check_same_layout(self) -> None:
        params, states = self.module.parameters.items(), self.module.states.items()
        mine = [("parameter", n, tuple(p.shape), backend.dtype_name(p.dtype)) for n, p in params]
        mine += [("state", n, tuple(s.shape), backend.dtype_name(s.dtype)) for n, s in states]
        every = self._g.all_gather_object(mine)
        ref = every[0]
        for r, theirs in enumerate(every[1:], start=1):
            if theirs == ref:
                continue
            for i in range(max(len(ref), len(theirs))):
                a = ref[i] if i < len(ref) else None
                b = theirs[i] if i < len(theirs) else None
                if a != b:
                    raise DistributedError(
                        "DistributedDataParallel: the ranks do not hold the same model; first difference at entry "
                        f"#{i}: rank 0 has {_describe(a)}, rank {r} has {_describe(b)}"
                    )

    def _copy_from_rank0(self, states_only: bool) -> None:
        params = {} if states_only else {n: p.data for n, p in self.module.parameters.items()}
        states = self.module.states
        arrays = {("p", n): a for n, a in params.items()}
        arrays.update({("s", n): a for n, a in states.items()})
        got = _broadcast_many(self._g, arrays)
        self.module.load_state_dict(
            {
                "parameters": {n: got[("p", n)] for n in params},
                "states": {n: got[("s", n)] for n in states},
            },
            strict=not states_only,
        )

    def _build_buckets(self, order: List[int]) -> None:
        """Fill buckets with the trainable parameters in ``order`` (indices into registration order)."""
        cap = self.bucket_cap_mb * 1024 * 1024
        self._buckets, self._slots = [], {}
        bucket = None
        for i in order:
            name, p = self._trainable[i]
            nbytes = int(p.data.nbytes)
            if bucket is None or bucket.dtype != p.dtype or (bucket.params and bucket.nbytes + nbytes > cap):
                bucket = _Bucket(len(self._buckets), p.dtype)
                self._buckets.append(bucket)
            self._slots[id(p)] = (bucket, len(bucket.params))
            bucket.add(name, p)
        for b in self._buckets:
            b.flat = self._g.flat_buffer(b.numel, b.dtype)
        self._got = [[False] * len(b.params) for b in self._buckets]
        self._next = 0  # the next bucket to launch
        self._complete = 0  # buckets whose every gradient is final
        self._inflight: List[Tuple[_Bucket, Pending]] = []

    # -- during backward --

    def _on_grad(self, p: Tensor) -> None:
        if not self._reducing:
            return
        bucket, slot = self._slots[id(p)]
        if self._finished:
            raise DistributedError(
                f"DistributedDataParallel: parameter {bucket.names[slot]!r} got a gradient after this step's "
                "gradients were already averaged: run one backward per forward, and accumulate over several "
                "backwards inside no_sync()"
            )
        got = self._got[bucket.index]
        if got[slot]:
            raise DistributedError(
                f"DistributedDataParallel: parameter {bucket.names[slot]!r} got two gradients in one step"
            )
        got[slot] = True
        if self._arrivals is not None:
            self._arrivals.append(self._index[id(p)])
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            self._complete += 1
            if self._complete == len(self._buckets):
                self._finish()
                return
            if self.overlap:
                self._launch_ready()
        if self._inflight:
            self._g.progress([pending for _, pending in self._inflight])

    def _launch_ready(self) -> None:
        # Buckets start in index order on every rank: MPI and NCCL match collectives by their order.
        while self._next < len(self._buckets):
            bucket = self._buckets[self._next]
            if bucket.ready < len(bucket.params):
                return
            self._launch(bucket)
            self._next += 1

    def _launch(self, bucket: _Bucket) -> None:
        got = self._got[bucket.index]
        arrays = [
            p.grad.data if got[i] and p.grad is not None else backend.lib.zeros(p.shape, dtype=p.dtype)
            for i, p in enumerate(bucket.params)
        ]
        flat = self._g.pack(arrays, bucket.flat)
        self._inflight.append((bucket, self._g.start_sum(flat)))

    def _finish(self) -> None:
        """Launch what is left (zeros for parameters without a gradient), wait for every bucket, write averages."""
        early = self._g.finished([pending for _, pending in self._inflight])  # those started during backward
        if early is None or self.buckets_done_early is None:
            self.buckets_done_early = None
        else:
            self.buckets_done_early += early
        for bucket in self._buckets[self._next :]:
            bucket.ready = len(bucket.params)
        self._launch_ready()
        started = time.perf_counter()
        sums = self._g.wait([pending for _, pending in self._inflight], "all_reduce of the gradient buckets")
        self.comm_wait_s += time.perf_counter() - started
        world = self._g.size
        for (bucket, _), total in zip(self._inflight, sums):
            mean = total / world
            for p, off in zip(bucket.params, bucket.offsets):
                p.grad = mean[off : off + p.size].reshape(p.shape)
        self._inflight = []
        for bucket in self._buckets:
            bucket.ready = 0
        self._got = [[False] * len(b.params) for b in self._buckets]
        self._next = self._complete = 0
        self._finished = True
        if self._arrivals is not None:
            self._rebuild_buckets()

    def _rebuild_buckets(self) -> None:
        # Every rank gets here at the end of its first reducing step; all take rank 0's order, so the buckets
        # (and their launch order) stay identical on every rank.
        arrived = self._g.all_gather_object(self._arrivals, "the bucket order after the first step")[0]
        self._arrivals = None
        seen = set(arrived)
        rest = [i for i in reversed(range(len(self._trainable))) if i not in seen]  # no gradient in step 1
        self._build_buckets(list(dict.fromkeys(arrived)) + rest)

    # -- after backward --

    def synchronize(self) -> None:
        """Finish this step's gradient averaging; call between ``backward()`` and ``optimizer.step()``.

        A no-op when backward already averaged everything (every parameter
        got a gradient) or with world size 1. Otherwise it reduces zeros for
        the parameters that got no gradient on this rank, waits for every
        bucket and writes the averages, so every rank steps with the same
        gradients. Every rank must call it when any rank does.
        """
        if self._g.size > 1 and self._reducing and not self._finished:
            self._finish()

    def _check_previous_step(self) -> None:
        if self._finished or not self._reducing or not any(any(got) for got in self._got):
            return
        missing = [b.names[i] for b in self._buckets for i, ok in enumerate(self._got[b.index]) if not ok]
        raise DistributedError(
            f"DistributedDataParallel: the previous step's gradients were not averaged: {len(missing)} parameter(s) "
            f"got no gradient in its backward (first: {missing[:5]}). Call model.synchronize() after backward() and "
            "before optimizer.step() (it reduces zeros for them), or remove those parameters from the model"
        )


def _describe(entry: Any) -> str:
    if entry is None:
        return "nothing (fewer entries)"
    kind, name, shape, dtype = entry
    return f"{kind} {name!r} of shape {shape} {dtype}"


def _broadcast_many(g: Transport, arrays: Dict[Any, Any]) -> Dict[Any, Any]:
    """Rank 0's value of every array: one broadcast per dtype over a flat buffer."""
    by_dtype: Dict[str, List[Any]] = {}
    for key, arr in arrays.items():
        by_dtype.setdefault(backend.dtype_name(arr.dtype), []).append(key)
    out = {}
    for keys in by_dtype.values():
        flat = g.pack([arrays[k] for k in keys], None)
        flat = g.broadcast(flat, 0)
        off = 0
        for k in keys:
            n = int(arrays[k].size)
            out[k] = flat[off : off + n].reshape(tuple(arrays[k].shape))
            off += n
    return out
