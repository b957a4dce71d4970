"""How this process was started: the launcher's rank, world size and local rank, read from its variables.

One reader for every package: the :class:`~autograd.data.DistributedSampler`
takes its defaults from it, and ``autograd.distributed.detect_launch`` (which
depends on this package) returns what it reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = ["Launch", "read_launch", "launch_rank_and_size"]


@dataclass(frozen=True)
class Launch:
    """How this process was started.

    ``launcher`` is ``"none"`` (a plain ``python`` process), ``"mpi"``
    (``mpiexec``/``mpirun`` of OpenMPI, MPICH or Intel MPI), ``"mlx"``
    (``mlx.launch`` or ``MLX_RANK`` + ``MLX_HOSTFILE``) or ``"env"`` (the
    ``RANK``/``WORLD_SIZE`` variables of torchrun-style launchers).

    Examples:
        What :func:`read_launch` returns for rank 1 of ``mpiexec -n 2`` (MPICH's variables):

        >>> from autograd.data.launch import read_launch
        >>> launch = read_launch({"PMI_RANK": "1", "PMI_SIZE": "2"})
        >>> launch
        Launch(launcher='mpi', rank=1, size=2, local_rank=0, vars={'PMI_RANK': '1', 'PMI_SIZE': '2'})
        >>> launch.rank, launch.size
        (1, 2)
    """

    launcher: str
    rank: int
    size: int
    local_rank: int
    vars: Dict[str, str] = field(default_factory=dict)


def _int_var(env: Mapping[str, str], name: str, default: Optional[int] = None) -> int:
    raw = env.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"the launch sets no {name}; it is needed to place this process")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"the launcher variable {name}={raw!r} is not an integer") from None


def _read_hostfile(path: str) -> List[Any]:
    try:
        with open(path) as f:
            hosts = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"MLX_HOSTFILE={path!r} cannot be read as a JSON list of hosts: {exc}") from None
    if not isinstance(hosts, list) or not hosts:
        raise ValueError(f"MLX_HOSTFILE={path!r} must hold a JSON list with one entry per rank, got {hosts!r}")
    return hosts


def _ring_local_rank(hosts: List[Any], rank: int) -> int:
    # The ring host file lists "ip:port" entries per rank: ranks before this one on the same address share its node.
    def address(entry: Any) -> str:
        first = entry[0] if isinstance(entry, list) and entry else entry
        return str(first).rsplit(":", 1)[0]

    if not 0 <= rank < len(hosts):
        return 0
    mine = address(hosts[rank])
    return sum(address(h) == mine for h in hosts[:rank])


def read_launch(env: Optional[Mapping[str, str]] = None) -> Launch:
    """Read the launcher's variables (MPI first, then MLX's, then torchrun's); a plain process is world size 1.

    OpenMPI's ``OMPI_COMM_WORLD_*``, MPICH's ``PMI_RANK``/``PMI_SIZE`` (local
    rank ``MPI_LOCALRANKID``), MLX's ``MLX_RANK`` + ``MLX_HOSTFILE`` (the world
    size is the number of hosts in that JSON list), then torchrun's
    ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

    Args:
        env: The variables to read (default ``os.environ``).

    Raises:
        ValueError: a variable is not an integer, the MLX host file cannot be
            read, or the rank is not in ``0 .. world_size - 1``.

    Examples:
        >>> read_launch({})  # no launcher variables
        Launch(launcher='none', rank=0, size=1, local_rank=0, vars={})
        >>> read_launch({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})  # torchrun
        Launch(launcher='env', rank=3, size=4, local_rank=1, vars={'RANK': '3', 'WORLD_SIZE': '4'})
    """
    env = dict(os.environ if env is None else env)
    if "OMPI_COMM_WORLD_SIZE" in env:  # OpenMPI
        names = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
        launch = Launch(
            "mpi", _int_var(env, names[0]), _int_var(env, names[1]), _int_var(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0),
            {k: env[k] for k in names if k in env},
        )  # fmt: skip
    elif "PMI_SIZE" in env and "PMI_RANK" in env:  # MPICH / Intel MPI (Hydra)
        launch = Launch(
            "mpi", _int_var(env, "PMI_RANK"), _int_var(env, "PMI_SIZE"), _int_var(env, "MPI_LOCALRANKID", 0),
            {k: env[k] for k in ("PMI_RANK", "PMI_SIZE")},
        )  # fmt: skip
    elif "MLX_RANK" in env or "MLX_HOSTFILE" in env:
        path = env.get("MLX_HOSTFILE")
        if not path or "MLX_RANK" not in env:
            raise ValueError("MLX's ring launch needs both MLX_RANK and MLX_HOSTFILE (mlx.launch sets them)")
        hosts = _read_hostfile(path)
        rank = _int_var(env, "MLX_RANK")
        launch = Launch(
            "mlx", rank, len(hosts), _ring_local_rank(hosts, rank), {"MLX_RANK": env["MLX_RANK"], "MLX_HOSTFILE": path}
        )
    elif "WORLD_SIZE" in env and "RANK" in env:  # torchrun and friends
        launch = Launch(
            "env", _int_var(env, "RANK"), _int_var(env, "WORLD_SIZE"), _int_var(env, "LOCAL_RANK", 0),
            {k: env[k] for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k in env},
        )  # fmt: skip
    else:
        return Launch("none", 0, 1, 0)
    if launch.size < 1 or not 0 <= launch.rank < launch.size:
        raise ValueError(f"the launcher variables {launch.vars} give rank {launch.rank} of {launch.size}")
    return launch


def launch_rank_and_size(env: Optional[Mapping[str, str]] = None) -> Tuple[int, int]:
    """``(rank, world_size)`` of this process from its launcher's environment variables; ``(0, 1)`` without one.

    What :func:`read_launch` reads, as ``autograd.distributed.detect_launch`` does.

    Raises:
        ValueError: a variable is not an integer, the MLX host file cannot be
            read, or the rank is not in ``0 .. world_size - 1``.

    Examples:
        >>> from autograd.data import launch_rank_and_size
        >>> launch_rank_and_size({})  # no launcher: a single process
        (0, 1)
        >>> launch_rank_and_size({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3"})  # torchrun
        (3, 8)
        >>> launch_rank_and_size({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"})  # OpenMPI's mpirun
        (1, 2)
    """
    launch = read_launch(env)
    return launch.rank, launch.size
