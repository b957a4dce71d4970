"""Checkpoints of a data-parallel run: written once (rank 0), read by every rank into the same state."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional

from autograd.distributed import group
from autograd.distributed.transports import DistributedError
from autograd.files import atomic_write
from autograd.nn import Module

__all__ = ["save_checkpoint", "load_checkpoint"]

_MODEL, _OPTIMIZER, _META = "model.safetensors", "optimizer.safetensors", "meta.json"


def save_checkpoint(
    folder: str | os.PathLike,
    model: Module,
    optimizer: Any = None,
    sampler: Any = None,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Save the model, optimizer and sampler state into ``folder`` from rank 0, then wait on a barrier.

    Every rank calls it; only rank 0 writes (the ranks hold the same state),
    each file atomically (``model.safetensors``, ``optimizer.safetensors``,
    then ``meta.json`` with the sampler state, the world size and ``extra``).
    The barrier means no rank goes on (or reads the folder) before the files
    are complete.

    Args:
        folder: Created if missing; on a file system every rank can read to resume.
        model: The model (a :class:`DistributedDataParallel` or any Module).
        optimizer: An ``autograd.optim`` optimizer (anything with ``save(path)``), or None.
        sampler: A :class:`DistributedSampler` (anything with ``state_dict()``), or None.
        extra: JSON-serializable values to keep (e.g. ``{"step": 1200}``).

    Examples:
        >>> import os, tempfile
        >>> from autograd import distributed as dist, nn
        >>> from autograd.optim import Adam
        >>> model = dist.DistributedDataParallel(nn.Linear(3, 2))
        >>> opt = Adam(model.parameters, lr=1e-3)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     dist.save_checkpoint(tmp, model, opt, extra={"step": 100})  # every rank calls it; rank 0 writes
        ...     sorted(os.listdir(tmp))
        ['meta.json', 'model.safetensors', 'optimizer.safetensors']
    """
    folder = os.fspath(folder)
    if group.rank() == 0:
        os.makedirs(folder, exist_ok=True)
        model.save_weights(os.path.join(folder, _MODEL))
        if optimizer is not None:
            optimizer.save(os.path.join(folder, _OPTIMIZER))
        meta = {
            "format": "autograd-distributed",
            "world_size": group.world_size(),
            "optimizer": optimizer is not None,
            "sampler": None if sampler is None else sampler.state_dict(),
            "extra": dict(extra or {}),
        }
        text = json.dumps(meta, indent=1, sort_keys=True)

        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(text)

        atomic_write(os.path.join(folder, _META), write, suffix=".json")
    group.barrier()


def load_checkpoint(
    folder: str | os.PathLike, model: Module, optimizer: Any = None, sampler: Any = None
) -> Dict[str, Any]:
    """Load a :func:`save_checkpoint` folder on every rank; return its ``extra`` dict.

    Each rank reads the files itself, then the ranks compare digests of what
    they read, so a rank that sees another (or a stale) copy fails loudly
    instead of training a diverging replica.

    Raises:
        DistributedError: the folder is not a checkpoint, it holds no
            optimizer state but an optimizer was given, or the ranks read
            different files.

    Examples:
        Resume a run: a fresh model and optimizer get the saved weights and state, and the ``extra`` values return:

        >>> import tempfile
        >>> from autograd import distributed as dist, nn
        >>> from autograd.optim import Adam
        >>> model = dist.DistributedDataParallel(nn.Linear(3, 2))
        >>> opt = Adam(model.parameters, lr=1e-3)
        >>> fresh = dist.DistributedDataParallel(nn.Linear(3, 2))
        >>> fresh_opt = Adam(fresh.parameters, lr=1e-3)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     dist.save_checkpoint(tmp, model, opt, extra={"step": 100})
        ...     dist.load_checkpoint(tmp, fresh, fresh_opt)
        {'step': 100}
        >>> bool((fresh.module.weight.numpy() == model.module.weight.numpy()).all())
        True
    """
    folder = os.fspath(folder)
    meta_path = os.path.join(folder, _META)
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise DistributedError(f"{meta_path} cannot be read as a checkpoint's meta.json: {exc}") from None
    if meta.get("format") != "autograd-distributed":
        raise DistributedError(f"{folder} is not an autograd.distributed checkpoint (meta.json format)")
    files = [_META, _MODEL] + ([_OPTIMIZER] if optimizer is not None else [])
    if optimizer is not None and not meta.get("optimizer"):
        raise DistributedError(f"{folder} holds no optimizer state, but an optimizer was given to load it into")
    digests = group.all_gather_object({name: _digest(os.path.join(folder, name)) for name in files})
    for r, theirs in enumerate(digests):
        if theirs != digests[0]:
            differ = sorted(name for name in files if theirs[name] != digests[0][name])
            raise DistributedError(
                f"load_checkpoint: rank {r} read different {differ} in {folder} than rank 0: every rank must see "
                "the same files (a shared file system, or copies made after the save finished)"
            )
    model.load_weights(os.path.join(folder, _MODEL))
    if optimizer is not None:
        optimizer.load(os.path.join(folder, _OPTIMIZER))
    if sampler is not None and meta.get("sampler") is not None:
        sampler.load_state_dict(meta["sampler"])
    return dict(meta.get("extra", {}))


def _digest(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return h.hexdigest()
