"""Data-parallel training on the engines clusters already have: MPI, NCCL and MLX's distributed layer.

Start each process with a launcher (``mpiexec -n 2 python train.py``,
``mlx.launch``, or torchrun's variables for CuPy/NCCL); a plain ``python``
process is world size 1 and everything here is a cheap no-op. Importing this
package needs no MPI; using MPI without it raises an error naming the extra
to install (``pip install 'autograd-distributed[mpi]'``).

================================ ====================================================================
name                             what it is
================================ ====================================================================
``init``                         start the group from the launcher's variables; pick the transport
``rank`` / ``world_size`` ...    where this process is (``local_rank`` picks the GPU under NCCL)
``all_reduce`` ...               collectives on Tensors and backend arrays (sum, mean, max; broadcast,
                                 all_gather; ``barrier``), each failing after a timeout
``DistributedDataParallel``      averages gradients in buckets, overlapped with backward
``DistributedSampler``           each rank's disjoint shard of the indices, the same shuffle everywhere
``save_checkpoint`` ...          save on rank 0, resume every rank to the same state
================================ ====================================================================
"""

from autograd.distributed.checkpoint import load_checkpoint, save_checkpoint
from autograd.distributed.ddp import DistributedDataParallel
from autograd.distributed.group import (
    DEFAULT_TIMEOUT,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    init,
    is_initialized,
    local_rank,
    rank,
    set_timeout,
    transport,
    world_size,
)
from autograd.distributed.sampler import DistributedSampler
from autograd.distributed.transports import CollectiveTimeoutError, DistributedError, Launch, detect_launch

__all__ = [
    "init",
    "is_initialized",
    "transport",
    "rank",
    "world_size",
    "local_rank",
    "barrier",
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_object",
    "set_timeout",
    "DEFAULT_TIMEOUT",
    "DistributedDataParallel",
    "DistributedSampler",
    "save_checkpoint",
    "load_checkpoint",
    "DistributedError",
    "CollectiveTimeoutError",
    "Launch",
    "detect_launch",
]
