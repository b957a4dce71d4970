"""CuPy's peak memory for the benchmarks: the most bytes in use from its memory pool at once.

The pool's own size is no high-water mark (it keeps freed blocks and reuses ones an earlier case left), so a
CuPy memory hook counts each block handed out and given back. Its Python calls slow every allocation: time
nothing while it is installed, unless the timing does not matter.
"""

from __future__ import annotations

from typing import Any


def peak_hook(cp: Any) -> Any:
    """A ``cupy.cuda.MemoryHook`` whose ``now`` and ``peak`` count the bytes in use since it was made or ``reset()``.

    Install it with ``with hook:`` (or ``hook.__enter__()`` for good). ``now`` goes negative when blocks made
    before it are freed; ``peak`` is the highest ``now`` reached.
    """

    class Peak(cp.cuda.MemoryHook):
        name = "autograd_bench_peak"

        def __init__(self) -> None:
            self.now = self.peak = 0

        def reset(self) -> None:
            self.now = self.peak = 0

        def malloc_postprocess(self, **kw: Any) -> None:
            self.now += kw["mem_size"]
            self.peak = max(self.peak, self.now)

        def free_postprocess(self, **kw: Any) -> None:
            self.now -= kw["mem_size"]

    return Peak()
