"""DistributedSampler: each rank's disjoint share of a data set's indices, reshuffled the same way on every rank.

The one implementation lives in autograd-data (:class:`autograd.data.DistributedSampler`), which the
:class:`~autograd.data.DataLoader` takes as its ``sampler``; it is re-exported here so that
``from autograd.distributed import DistributedSampler`` keeps working. Its defaults for ``num_replicas`` and
``rank`` come from the launcher's environment variables, read as :func:`detect_launch` reads them.
"""

from __future__ import annotations

from autograd.data.sampler import DistributedSampler

__all__ = ["DistributedSampler"]
