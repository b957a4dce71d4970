"""Delivery onto the backend: the CuPy path's stream and pinned-memory order (with a fake CuPy), and MLX."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from data_helpers import Indexed

from autograd.data import DataLoader
from autograd.data._device import AsarrayTransfer, CupyTransfer, map_arrays

Pair = namedtuple("Pair", ["a", "b"])


class FakeCupy:
    """Just enough of CuPy for CupyTransfer, logging every call that orders work."""

    def __init__(self) -> None:
        self.log: list = []
        self.allocated = 0
        self.events = 0
        fake = self

        class Event:
            def __init__(self, stream):
                fake.events += 1
                self.name, self.done = f"e{fake.events}@{stream}", False

            def synchronize(self):
                fake.log.append(("synchronize", self.name))
                self.done = True

        class Stream:
            def __init__(self, non_blocking=False, name="copy"):
                assert name != "copy" or non_blocking  # the copy stream must not sync with the legacy default
                self.name = name

            def record(self):
                e = Event(self.name)
                fake.log.append(("record", self.name, e.name))
                return e

            def wait_event(self, e):
                fake.log.append(("wait", self.name, e.name))

            def __repr__(self):
                return self.name

        class DeviceArray:
            def __init__(self, shape, dtype):
                self.shape, self.dtype, self.host = shape, np.dtype(dtype), None

            def set(self, host, stream=None):
                fake.log.append(("set", stream.name, host.ctypes.data))
                self.host = host.copy()  # what the GPU would hold once the copy ran

        compute = Stream(name="compute")

        class Cuda:
            Stream = staticmethod(lambda non_blocking=False: Stream(non_blocking))

            @staticmethod
            def get_current_stream():
                return compute

            @staticmethod
            def alloc_pinned_memory(n):
                fake.allocated += 1
                fake.log.append(("pin", n))
                return bytearray(n)

        self.cuda = Cuda

        def empty(shape, dtype):
            fake.log.append(("empty", tuple(shape)))
            return DeviceArray(shape, dtype)

        self.empty = empty


def test_cupy_copy_goes_through_pinned_memory_on_the_side_stream_in_the_right_order():
    cp = FakeCupy()
    t = CupyTransfer(cp)
    assert t.ahead  # the loader starts batch i + 1 before handing out batch i
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    started = t.start({"x": x, "meta": ["keep", np.int64(3)]})
    kinds = [entry[0] for entry in cp.log]
    # the copy stream first waits for the compute stream (the device buffers may reuse memory it still reads),
    # then each array goes host -> pinned -> device on the copy stream, then the copy stream records "done"
    assert kinds == ["record", "wait", "pin", "empty", "set", "pin", "empty", "set", "record"]
    assert cp.log[0][1] == "compute" and cp.log[1][1] == "copy" and cp.log[1][2] == cp.log[0][2]
    assert all(e[1] == "copy" for e in cp.log if e[0] == "set")
    cp.log.clear()
    out = t.finish(started)
    done = started[1].name
    assert cp.log == [("wait", "compute", done)]  # the step waits on the GPU, the host does not
    np.testing.assert_array_equal(out["x"].host, x)
    assert out["meta"][0] == "keep" and out["meta"][1].shape == () and out["meta"][1].host.tolist() == 3

    # once that copy has finished on the GPU, the next batch reuses its pinned buffers without waiting
    started[1].done = True
    cp.log.clear()
    t.start({"x": x + 1, "meta": ["keep", np.int64(4)]})
    assert cp.allocated == 2 and not any(e[0] in ("pin", "synchronize") for e in cp.log)


def test_cupy_reuses_finished_pinned_buffers_and_keeps_a_bounded_number():
    cp = FakeCupy()
    t = CupyTransfer(cp)
    started = [t.start(np.zeros(4, np.float32)) for _ in range(CupyTransfer.KEEP + 2)]
    # no copy has finished: new buffers up to KEEP, then the oldest is reused after waiting for its copy
    assert cp.allocated == CupyTransfer.KEEP and len(t.pinned[16]) == CupyTransfer.KEEP
    assert [e[1] for e in cp.log if e[0] == "synchronize"] == [started[0][1].name, started[1][1].name]
    for _, done in started:
        done.done = True
    cp.log.clear()
    t.start(np.zeros(4, np.float32))
    assert cp.allocated == CupyTransfer.KEEP and not any(e[0] == "synchronize" for e in cp.log)


def test_the_loader_starts_the_next_copy_before_returning_a_batch(monkeypatch):
    starts, finishes = [], []

    class Recording(AsarrayTransfer):
        ahead = True

        def start(self, batch):
            starts.append(int(batch[0][0]))
            return batch

        def finish(self, started):
            finishes.append(int(started[0][0]))
            return started

    loader = DataLoader(Indexed(6), batch_size=2)
    loader._transfer = Recording(np.asarray)
    got = [int(b[0][0]) for b in loader]
    assert got == [0, 2, 4] and finishes == [0, 2, 4] and starts == [0, 2, 4]
    # batch 2's copy had started when batch 0 was handed out
    loader2 = DataLoader(Indexed(6), batch_size=2)
    loader2._transfer = Recording(np.asarray)
    starts.clear()
    it = iter(loader2)
    next(it)
    assert starts == [0, 2]
    assert loader2.state_dict()["batches"] == 1  # only delivered batches count for resume


def test_an_error_of_the_batch_ahead_waits_its_turn():
    from data_helpers import Raising

    class Ahead(AsarrayTransfer):
        ahead = True

    loader = DataLoader(Raising(4, bad=2), batch_size=2)
    loader._transfer = Ahead(np.asarray)
    it = iter(loader)
    assert next(it) is not None  # batch 0 arrives although batch 1 (index 2) already failed
    with pytest.raises(ValueError, match="sample 2 is corrupt"):
        next(it)


def test_map_arrays_keeps_structure_and_skips_non_numeric():
    seen = []
    out = map_arrays(
        lambda a: seen.append(a.shape) or "dev",
        {"a": Pair(np.zeros(2), [np.ones((1, 3)), "s"]), "b": np.array(["x"]), "c": (np.float32(1),)},
    )
    assert out == {"a": Pair("dev", ["dev", "s"]), "b": out["b"], "c": ("dev",)}
    assert out["b"].dtype.kind == "U" and seen == [(2,), (1, 3), ()]


def test_mlx_batches_are_mlx_arrays_with_the_dtypes_kept():
    mx = pytest.importorskip("mlx.core")
    from autograd import backend

    if backend.BACKEND != "mlx":
        t = AsarrayTransfer(lambda a: mx.array(a))
    else:
        from autograd.data._device import make_transfer

        t = make_transfer()
    out = t.finish(t.start([np.arange(4, dtype=np.int32), np.ones((2, 2), np.float32)]))
    assert all(isinstance(a, mx.array) for a in out)
    assert out[0].dtype == mx.int32 and out[1].tolist() == [[1.0, 1.0], [1.0, 1.0]]
