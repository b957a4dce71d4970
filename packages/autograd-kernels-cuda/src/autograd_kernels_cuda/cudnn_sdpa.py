"""cuDNN's fused attention (SDPA) forward and backward through ``nvidia-cudnn-frontend``, on CuPy device pointers.

Shapes: ``q`` (B, H, Tq, D), ``k`` (B, H, Tk, D), ``v`` (B, H, Tk, Dv), float16
or bfloat16 (CuPy has no bfloat16 dtype: pass ``uint16`` storage with
``dtype="bfloat16"``); ``o`` (B, H, Tq, Dv) and ``stats`` (B, H, Tq, 1) float32,
the natural log-sum-exp of each row, which the backward needs. Strides are
taken from the arrays (any layout cuDNN accepts, e.g. BHSD or BSHD views).

What maps onto cuDNN's graph attributes:

* causal ``"top_left"`` (query i sees keys j <= i) and ``"bottom_right"``
  (j <= i + Tk - Tq, the contract of autograd's attention): a diagonal band
  with right bound 0 and that alignment;
* masks: an additive ``bias`` tensor (1|B, 1|H, Tq, Tk). Autograd's masks
  (bool: True forbids; float: ``mask * NEG`` is added) are converted to that
  bias by the caller of :meth:`CudnnSdpa.forward` (:func:`bias_from_mask`);
* padding: per-batch ``seq_len_q`` / ``seq_len_kv`` (int32 device arrays (B,)),
  cuDNN's padding mask;
* dropout: cuDNN's Philox generator, keyed by ``seed`` and ``offset``
  (pass-by-value int64). Its keep decisions are cuDNN's own, not
  :mod:`autograd.kernels.dropout`'s hash (the contract only asks that they be a
  function of the seed and the position); ``rng_dump`` returns the mask it drew
  (a (B, H, Tq, Tk) float32 array) for tests.

Execution plans are built once per :class:`SdpaKey` (shapes, strides, dtype,
causal kind, mask, padding, dropout, scale, direction) and kept in a bounded
LRU cache (a plan costs 55 ms to 1 s to build). Graphs run on CuPy's current
stream (the handle's stream is set before each call) with a workspace from
CuPy's allocator. :func:`reasons` lists why cuDNN declines a call.

Without a GPU, :func:`build_graph` still builds and validates both graphs
(``validate()``, ``build_operation_graph()``): with frontend 1.29+ that runs the
frontend's own Python SDPA checks; cuDNN's support check and plan building
need the library and a GPU. (Those Python checks are looser than cuDNN's: they
reject a head dim that is not a multiple of 8 but accept float32 and head dims
cuDNN's kernels do not support, which is why :func:`reasons` declines those
itself.)
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = [
    "SdpaKey",
    "CudnnSdpa",
    "reasons",
    "frontend_missing",
    "library_missing",
    "build_graph",
    "bias_from_mask",
    "key_for",
    "plan_key",
    "MIN_COMPUTE_CAPABILITY",
]

SUPPORTED_DTYPES = ("float16", "bfloat16")
CAUSAL_KINDS = ("none", "top_left", "bottom_right")
MIN_COMPUTE_CAPABILITY = 80
#: cuDNN 9's support matrix: forward head dims up to 256 (multiples of 8); backward up to 128 on Ampere/Ada
#: (sm_8x), up to 256 on Hopper and newer.
MAX_HEAD_DIM_FORWARD = 256
MAX_HEAD_DIM_BACKWARD = {8: 128}
DEFAULT_CACHE_SIZE = 32
# Graph tensor uids, fixed so one variant pack layout serves every cached plan.
UID = {
    "q": 1,
    "k": 2,
    "v": 3,
    "o": 4,
    "stats": 5,
    "bias": 6,
    "seq_len_q": 7,
    "seq_len_kv": 8,
    "seed": 9,
    "offset": 10,
    "dO": 11,
    "dQ": 12,
    "dK": 13,
    "dV": 14,
    "rng_dump": 15,
}


@dataclass(frozen=True)
class SdpaKey:
    """Everything a cuDNN SDPA plan depends on. Strides are in elements, in (B, H, T, D) order."""

    batch: int
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    value_dim: int
    dtype: str
    q_stride: Tuple[int, ...]
    k_stride: Tuple[int, ...]
    v_stride: Tuple[int, ...]
    o_stride: Tuple[int, ...]
    causal: str = "none"
    bias_shape: Optional[Tuple[int, ...]] = None
    padding: bool = False
    dropout: float = 0.0
    rng_dump: bool = False
    scale: float = 1.0
    backward: bool = False


def _row_major(dims: Tuple[int, ...]) -> Tuple[int, ...]:
    out, step = [], 1
    for d in reversed(dims):
        out.append(step)
        step *= d
    return tuple(reversed(out))


def _strides(array: Any) -> Tuple[int, ...]:
    return tuple(int(s) // int(array.itemsize) for s in array.strides)


def key_for(
    q: Any,
    k: Any,
    v: Any,
    *,
    dtype: Optional[str] = None,
    causal: str = "none",
    bias: Any = None,
    padding: bool = False,
    dropout: float = 0.0,
    rng_dump: bool = False,
    scale: Optional[float] = None,
    backward: bool = False,
) -> SdpaKey:
    """The :class:`SdpaKey` of a call on these arrays (the output is assumed row-major (B, H, Tq, Dv))."""
    b, h, tq, d = (int(s) for s in q.shape)
    tk, dv = int(k.shape[2]), int(v.shape[3])
    return SdpaKey(
        batch=b,
        heads=h,
        seq_q=tq,
        seq_k=tk,
        head_dim=d,
        value_dim=dv,
        dtype=dtype or str(q.dtype),
        q_stride=_strides(q),
        k_stride=_strides(k),
        v_stride=_strides(v),
        o_stride=_row_major((b, h, tq, dv)),
        causal=causal,
        bias_shape=None if bias is None else tuple(int(s) for s in bias.shape),
        padding=padding,
        dropout=float(dropout),
        rng_dump=rng_dump,
        scale=1.0 / math.sqrt(d) if scale is None else float(scale),
        backward=backward,
    )


def plan_key(
    q: Any,
    k: Any,
    v: Any,
    *,
    backward: bool,
    dtype: Optional[str] = None,
    causal: str = "none",
    bias: Any = None,
    seq_len_q: Any = None,
    seq_len_kv: Any = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
    rng_dump: bool = False,
) -> SdpaKey:
    """The :class:`SdpaKey` :meth:`CudnnSdpa.forward` (``backward=False``) or :meth:`CudnnSdpa.backward` builds
    its plan for, from the same arguments: the exact graph a call requests, also on NumPy arrays without a GPU."""
    padding = seq_len_q is not None or seq_len_kv is not None
    return key_for(
        q, k, v, dtype=dtype, causal=causal, bias=bias, padding=padding, dropout=dropout_p,
        rng_dump=rng_dump and dropout_p > 0 and not backward, scale=scale, backward=backward,
    )  # fmt: skip


# --- why cuDNN declines ------------------------------------------------------------------------------------------


def frontend_missing() -> Optional[str]:
    """Why ``import cudnn`` (nvidia-cudnn-frontend) cannot work here, or None."""
    if importlib.util.find_spec("cudnn") is None:
        return "nvidia-cudnn-frontend is not installed: pip install 'autograd-kernels-cuda[cudnn]'"
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return "cuda-bindings is not installed (nvidia-cudnn-frontend 1.29+ imports it)"
    return None


def library_missing() -> Optional[str]:
    """Why the cuDNN library itself cannot be loaded, or None (needs the frontend)."""
    missing = frontend_missing()
    if missing:
        return missing
    try:
        import cudnn

        cudnn.backend_version()
    except Exception as exc:  # noqa: BLE001 - the frontend raises RuntimeError or OSError for a missing library
        return (
            "no cuDNN library found (install nvidia-cudnn-cu12 for cupy-cuda12x, nvidia-cudnn-cu13 for "
            f"cupy-cuda13x): {exc}"
        )
    return None


def reasons(
    *,
    dtype: str,
    head_dim: int,
    value_dim: Optional[int] = None,
    seq_q: int = 0,
    seq_k: int = 0,
    causal: str = "none",
    mask_shape: Optional[Tuple[int, ...]] = None,
    dropout: float = 0.0,
    last_stride_one: bool = True,
    backward: bool = True,
    compute_capability: Optional[int] = None,
    check_library: bool = True,
    check_device: bool = True,
) -> List[str]:
    """Every reason cuDNN's SDPA cannot take this call (empty: it can).

    ``compute_capability`` is e.g. 90 for an H100/H200, None when no GPU is visible (which is a reason);
    ``check_library`` also tries to load libcudnn; ``check_device=False`` leaves out what depends on the GPU
    (for a call judged without one). ``mask_shape`` is the bias shape after broadcasting the batch and head
    axes only (cuDNN reads biases of shape (1|B, 1|H, Tq, Tk)).
    """
    out: List[str] = []
    if check_library:
        missing = library_missing()
        if missing:
            out.append(missing)
    if dtype not in SUPPORTED_DTYPES:
        out.append(f"{dtype} inputs: cuDNN's fused attention takes float16 and bfloat16 only")
    dims = {head_dim} | ({value_dim} if value_dim is not None else set())
    for d in sorted(dims):
        if d % 8:
            out.append(f"head dim {d} is not a multiple of 8")
        if d > MAX_HEAD_DIM_FORWARD:
            out.append(f"head dim {d} is over {MAX_HEAD_DIM_FORWARD}")
    if not check_device:
        pass
    elif compute_capability is None:
        out.append("no CUDA GPU is visible")
    else:
        if compute_capability < MIN_COMPUTE_CAPABILITY:
            out.append(f"GPU too old: sm_{compute_capability} (cuDNN's fused attention needs sm_80 or newer)")
        limit = MAX_HEAD_DIM_BACKWARD.get(compute_capability // 10, MAX_HEAD_DIM_FORWARD)
        if backward and max(dims) > limit:
            out.append(f"backward with head dim {max(dims)} on sm_{compute_capability}: cuDNN stops at {limit}")
    if causal not in CAUSAL_KINDS:
        out.append(f"unknown causal kind {causal!r} (one of {CAUSAL_KINDS})")
    if mask_shape is not None and len(mask_shape) != 4:
        out.append(f"bias of shape {mask_shape}: cuDNN wants 4 dims (1|B, 1|H, Tq, Tk)")
    # The frontend's own rules (nvidia-cudnn-frontend 1.32, cudnn/_sdpa_validate.py), checked here so the
    # dispatcher hears them before a graph is built.
    if causal == "bottom_right":
        if mask_shape is not None or dropout > 0.0:
            out.append("bottom-right causal masking together with a bias or dropout is not supported by cuDNN")
        if seq_q > seq_k:
            out.append(f"bottom-right causal masking needs Tq <= Tk (got {seq_q} > {seq_k})")
    if not last_stride_one:
        out.append("the head dim of q, k and v must be contiguous (last stride 1)")
    if backward and seq_q == 1 and seq_k == 1:
        out.append("Tq = Tk = 1 is not supported by cuDNN's backward")
    return out


def bias_from_mask(mask: Any, dtype: Any, shape: Tuple[int, int, int, int], neg: float) -> Any:
    """autograd's mask as cuDNN's additive bias: (1|B, 1|H, Tq, Tk), C-contiguous, in ``dtype``.

    A bool mask becomes ``where(mask, neg, 0)``, a float mask ``mask * neg``. cuDNN broadcasts the batch and
    head axes itself; a mask broadcast over Tq or Tk (a key-padding mask (B, 1, 1, Tk)) is expanded, which
    costs (1|B)(1|H) Tq Tk elements.
    """
    from autograd_kernels_cuda.triton_support import array_module

    xp = array_module(mask)
    m = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
    b, h, tq, tk = shape
    target = (m.shape[0], m.shape[1], tq, tk)
    if str(m.dtype) == "bool":
        bias = xp.where(m, xp.asarray(neg, dtype=xp.float32), xp.asarray(0.0, dtype=xp.float32))
    else:
        bias = m.astype(xp.float32) * neg
    return xp.ascontiguousarray(xp.broadcast_to(bias, target)).astype(dtype)


# --- graphs ------------------------------------------------------------------------------------------------------


def _data_type(cudnn: Any, name: str) -> Any:
    return {"float16": cudnn.data_type.HALF, "bfloat16": cudnn.data_type.BFLOAT16}.get(name, cudnn.data_type.FLOAT)


def _mask_kwargs(cudnn: Any, graph: Any, key: SdpaKey, io: Any) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {"attn_scale": key.scale}
    if key.causal != "none":
        align = cudnn.diagonal_alignment.TOP_LEFT if key.causal == "top_left" else cudnn.diagonal_alignment.BOTTOM_RIGHT
        kwargs.update(diagonal_alignment=align, diagonal_band_right_bound=0)
    if key.bias_shape is not None:
        kwargs["bias"] = graph.tensor(
            name="bias",
            dim=list(key.bias_shape),
            stride=list(_row_major(key.bias_shape)),
            data_type=io,
            uid=UID["bias"],
        )
    if key.padding:
        one = [key.batch, 1, 1, 1]
        kwargs.update(
            use_padding_mask=True,
            seq_len_q=graph.tensor(
                name="seq_len_q", dim=one, stride=[1, 1, 1, 1], data_type=cudnn.data_type.INT32, uid=UID["seq_len_q"]
            ),
            seq_len_kv=graph.tensor(
                name="seq_len_kv", dim=one, stride=[1, 1, 1, 1], data_type=cudnn.data_type.INT32, uid=UID["seq_len_kv"]
            ),
        )
    if key.dropout > 0.0:
        scalar = dict(dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=cudnn.data_type.INT64, is_pass_by_value=True)
        seed = graph.tensor(name="seed", uid=UID["seed"], **scalar)
        offset = graph.tensor(name="offset", uid=UID["offset"], **scalar)
        kwargs["dropout"] = (key.dropout, seed, offset)
        if key.rng_dump:
            dims = [key.batch, key.heads, key.seq_q, key.seq_k]
            kwargs["rng_dump"] = graph.tensor(
                name="rng_dump",
                dim=dims,
                stride=list(_row_major(tuple(dims))),
                data_type=cudnn.data_type.FLOAT,
                uid=UID["rng_dump"],
            )
    return kwargs


def build_graph(key: SdpaKey, handle: Any = None) -> Any:
    """The forward or backward SDPA graph of ``key``, validated and with its operation graph built.

    Runs without a GPU (the frontend's own checks; see the module docstring); raises the frontend's error
    (``cudnn.cudnnGraphNotSupportedError``, ValueError...) for a graph it rejects.
    """
    import cudnn

    io = _data_type(cudnn, key.dtype)
    graph = cudnn.pygraph(
        io_data_type=io,
        intermediate_data_type=cudnn.data_type.FLOAT,
        compute_data_type=cudnn.data_type.FLOAT,
        handle=handle,
    )
    b, h, tq, tk, d, dv = key.batch, key.heads, key.seq_q, key.seq_k, key.head_dim, key.value_dim

    def tensor(name: str, dims: List[int], stride: Tuple[int, ...], data_type: Any = io) -> Any:
        return graph.tensor(name=name, dim=dims, stride=list(stride), data_type=data_type, uid=UID[name])

    q = tensor("q", [b, h, tq, d], key.q_stride)
    k = tensor("k", [b, h, tk, d], key.k_stride)
    v = tensor("v", [b, h, tk, dv], key.v_stride)
    kwargs = _mask_kwargs(cudnn, graph, key, io)
    stats_dims = [b, h, tq, 1]
    if not key.backward:
        o, stats = graph.sdpa(name="sdpa", q=q, k=k, v=v, generate_stats=True, **kwargs)
        o.set_output(True).set_dim([b, h, tq, dv]).set_stride(list(key.o_stride)).set_uid(UID["o"])
        stats.set_output(True).set_data_type(cudnn.data_type.FLOAT).set_uid(UID["stats"])
    else:
        o = tensor("o", [b, h, tq, dv], key.o_stride)
        d_o = tensor("dO", [b, h, tq, dv], key.o_stride)
        stats = tensor("stats", stats_dims, _row_major(tuple(stats_dims)), cudnn.data_type.FLOAT)
        dq, dk, dvv = graph.sdpa_backward(name="sdpa_backward", q=q, k=k, v=v, o=o, dO=d_o, stats=stats, **kwargs)
        for out, name, dims, stride in (
            (dq, "dQ", [b, h, tq, d], key.q_stride),
            (dk, "dK", [b, h, tk, d], key.k_stride),
            (dvv, "dV", [b, h, tk, dv], key.v_stride),
        ):
            out.set_output(True).set_dim(dims).set_stride(list(stride)).set_uid(UID[name])
    graph.validate()
    graph.build_operation_graph()
    return graph


# --- execution on CuPy -------------------------------------------------------------------------------------------


class _Plans:
    """A bounded LRU cache of built graphs; ``build`` is called on a miss (thread-safe)."""

    def __init__(self, capacity: int, build: Callable[[SdpaKey], Any]) -> None:
        self.capacity = max(1, int(capacity))
        self.build = build
        self.items: "OrderedDict[SdpaKey, Any]" = OrderedDict()
        self.lock = threading.Lock()
        self.builds = 0

    def get(self, key: SdpaKey) -> Any:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                return hit
        built = self.build(key)
        with self.lock:
            self.builds += 1
            self.items[key] = built
            self.items.move_to_end(key)
            while len(self.items) > self.capacity:
                self.items.popitem(last=False)
        return built


class CudnnSdpa:
    """cuDNN SDPA on CuPy arrays, with a bounded cache of execution plans (``cache_size`` graphs)."""

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._plans = _Plans(cache_size, self._build_plan)
        self._handles: Dict[Tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    @property
    def plans(self) -> _Plans:
        return self._plans

    def _handle(self) -> Any:
        """One cuDNN handle per (thread, device): cuDNN handles must not be shared across threads."""
        import cudnn
        import cupy

        key = (threading.get_ident(), cupy.cuda.runtime.getDevice())
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                handle = self._handles[key] = cudnn.create_handle()
        cudnn.set_stream(handle=handle, stream=cupy.cuda.get_current_stream().ptr)
        return handle

    def _build_plan(self, key: SdpaKey) -> Any:
        import cudnn

        graph = build_graph(key, handle=self._handle())
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        graph.build_plans()
        return graph

    def _run(self, key: SdpaKey, pack: Dict[int, Any]) -> None:
        import cupy

        graph = self._plans.get(key)
        handle = self._handle()
        workspace = cupy.empty(max(int(graph.get_workspace_size()), 1), dtype=cupy.uint8)
        graph.execute(pack, workspace, handle=handle)

    @staticmethod
    def _pointers(**arrays: Any) -> Dict[int, Any]:
        return {UID[name]: int(a.data.ptr) for name, a in arrays.items() if a is not None}

    def forward(
        self,
        q: Any,
        k: Any,
        v: Any,
        *,
        dtype: Optional[str] = None,
        causal: str = "none",
        bias: Any = None,
        seq_len_q: Any = None,
        seq_len_kv: Any = None,
        dropout_p: float = 0.0,
        seed: int = 0,
        offset: int = 0,
        scale: Optional[float] = None,
        rng_dump: bool = False,
    ) -> Tuple[Any, ...]:
        """``(o, stats)`` (plus the dropout mask cuDNN drew when ``rng_dump``); o row-major (B, H, Tq, Dv)."""
        import cupy

        key = plan_key(
            q, k, v, backward=False, dtype=dtype, causal=causal, bias=bias, seq_len_q=seq_len_q,
            seq_len_kv=seq_len_kv, dropout_p=dropout_p, scale=scale, rng_dump=rng_dump,
        )  # fmt: skip
        b, h, tq, dv = key.batch, key.heads, key.seq_q, key.value_dim
        o = cupy.empty((b, h, tq, dv), dtype=q.dtype)
        stats = cupy.empty((b, h, tq, 1), dtype=cupy.float32)
        dump = cupy.empty((b, h, tq, key.seq_k), dtype=cupy.float32) if rng_dump and dropout_p > 0 else None
        pack = self._pointers(
            q=q, k=k, v=v, o=o, stats=stats, bias=bias, seq_len_q=seq_len_q, seq_len_kv=seq_len_kv, rng_dump=dump
        )
        if dropout_p > 0.0:
            pack[UID["seed"]], pack[UID["offset"]] = int(seed), int(offset)
        self._run(key, pack)
        return (o, stats) if dump is None else (o, stats, dump)

    def backward(
        self,
        q: Any,
        k: Any,
        v: Any,
        o: Any,
        stats: Any,
        grad: Any,
        *,
        dtype: Optional[str] = None,
        causal: str = "none",
        bias: Any = None,
        seq_len_q: Any = None,
        seq_len_kv: Any = None,
        dropout_p: float = 0.0,
        seed: int = 0,
        offset: int = 0,
        scale: Optional[float] = None,
    ) -> Tuple[Any, Any, Any]:
        """``(dq, dk, dv)`` with q's, k's and v's strides; the same seed/offset as the forward replays dropout."""
        import cupy

        key = plan_key(
            q, k, v, backward=True, dtype=dtype, causal=causal, bias=bias, seq_len_q=seq_len_q,
            seq_len_kv=seq_len_kv, dropout_p=dropout_p, scale=scale,
        )  # fmt: skip
        grad = cupy.ascontiguousarray(grad)
        dq, dk, dvv = (cupy.empty_like(a) for a in (q, k, v))
        pack = self._pointers(
            q=q, k=k, v=v, o=o, stats=stats, dO=grad, dQ=dq, dK=dk, dV=dvv, bias=bias, seq_len_q=seq_len_q,
            seq_len_kv=seq_len_kv,
        )  # fmt: skip
        if dropout_p > 0.0:
            pack[UID["seed"]], pack[UID["offset"]] = int(seed), int(offset)
        self._run(key, pack)
        return dq, dk, dvv
