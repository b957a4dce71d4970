"""Data loading for autograd: data sets, samplers, a DataLoader with worker processes and exact resume, collators.

Depends on autograd-core only. Tokenizers live in
:mod:`autograd.data.tokenize` (``pip install tokenizers`` / ``tiktoken``;
imported only when used).

=================================== ====================================================================
name                                what it is
=================================== ====================================================================
``DataLoader``                      batches in order, as arrays of the active backend; worker processes,
                                    per-batch seeding, ``state_dict`` / ``load_state_dict`` exact resume
``ArrayDataset``                    samples ``(x[i], y[i], ...)`` of NumPy arrays or memory maps
``TokenDataset``                    ``(B, T)`` windows and next-token targets of a memory-mapped token file
``Dataset`` / ``IterableDataset``   base classes of map-style and iterable data sets
``SequentialSampler`` ...           ``RandomSampler`` (seeded per epoch), ``BatchSampler``,
                                    ``DistributedSampler`` (each rank's shard)
``default_collate``                 samples to a batch: arrays stacked, dicts and tuples recursively
``PadCollate``                      pads variable-length sequences, adds the ``(B, 1, 1, T)`` attention mask
``get_worker_info``                 inside a worker: its id, the number of workers, its seed
=================================== ====================================================================
"""

from autograd.data._worker import WorkerInfo, get_worker_info
from autograd.data.collate import PadCollate, default_collate, default_convert, pad_sequences, padding_mask
from autograd.data.dataset import ArrayDataset, Dataset, IterableDataset, TokenDataset, token_file_dtype
from autograd.data.launch import Launch, launch_rank_and_size, read_launch
from autograd.data.loader import DataLoader, DataLoaderError, LoaderTimeoutError, WorkerDiedError
from autograd.data.sampler import BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler

__all__ = [
    "DataLoader",
    "DataLoaderError",
    "WorkerDiedError",
    "LoaderTimeoutError",
    "Dataset",
    "IterableDataset",
    "ArrayDataset",
    "TokenDataset",
    "token_file_dtype",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "BatchSampler",
    "DistributedSampler",
    "launch_rank_and_size",
    "read_launch",
    "Launch",
    "default_collate",
    "default_convert",
    "PadCollate",
    "pad_sequences",
    "padding_mask",
    "get_worker_info",
    "WorkerInfo",
]
