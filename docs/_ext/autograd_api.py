"""The API reference: a page per package, a page per module, a page per public class or function.

The pages are generated from the packages themselves before Sphinx reads the sources
(``builder-inited``), into ``docs/api/`` (package pages) and ``docs/api/generated/`` (module and
object pages), which git ignores. What a module makes public is its ``__all__`` (or, without one,
the classes and functions it defines whose names do not start with ``_``).

Each object gets exactly one page, under the name users import it by. A re-exported object belongs to
the first *facade* module that exports it (``autograd.functional`` for the functions of
``autograd.ops``, ``autograd.nn`` for the layers of ``autograd.nn.linear``, ``autograd.kernels`` for the
registry's functions, ...), otherwise to the module that defines it. Every other module that exports it
still lists it in its tables, linking to that page, and a cross-reference to any of its names
(``autograd.nn.linear.Linear`` in a type annotation, say) resolves to it (``missing-reference``).

Constants (``autograd.kernels.OPS``, ...) are documented on their module's page.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer, PycodeError
from sphinx.util import logging

logger = logging.getLogger(__name__)


@dataclass
class Package:
    slug: str  # the page name under api/
    dist: str  # the distribution
    summary: str  # one paragraph for the package page and the API index
    modules: list[str]
    # facade module -> the module-name prefixes whose objects it re-exports under its own name
    facades: dict[str, tuple[str, ...]] = field(default_factory=dict)


PACKAGES = [
    Package(
        "core",
        "autograd-core",
        "Backend selection, the :class:`~autograd.tensor.Tensor` and its autograd engine, every op "
        "(:mod:`autograd.functional` gathers the activations, losses, normalization, convolution, pooling, "
        "embedding and attention), initialization, logging, gradient checks, mixed precision, and the kernel "
        "registry with its conformance suite.",
        [
            "autograd.tensor",
            "autograd.functional",
            "autograd.backend",
            "autograd.init",
            "autograd.precision",
            "autograd.engine",
            "autograd.kernels",
            "autograd.kernels.contract",
            "autograd.kernels.registry",
            "autograd.kernels.dropout",
            "autograd.kernels.tiled",
            "autograd.testing",
            "autograd.conformance",
            "autograd.ops",
            "autograd.ops.arithmetic",
            "autograd.ops.reduce",
            "autograd.ops.shape",
            "autograd.ops.index",
            "autograd.ops.common",
            "autograd.ops.activations",
            "autograd.ops.losses",
            "autograd.ops.norm",
            "autograd.ops.conv",
            "autograd.ops.pool",
            "autograd.ops.embedding",
            "autograd.ops.attention",
            "autograd.ops.optim",
            "autograd.ops.catalog",
            "autograd.logger",
            "autograd.files",
        ],
        {
            # Tensor, Function, no_grad, ... (defined in engine): users import them from autograd.tensor.
            "autograd.tensor": ("autograd.engine",),
            # relu, cross_entropy, scaled_dot_product_attention, ...: users call them as F.<name>.
            "autograd.functional": ("autograd.ops.",),
            "autograd.kernels": ("autograd.kernels.",),
            "autograd.testing": ("autograd.conformance",),
        },
    ),
    Package(
        "nn",
        "autograd-nn",
        "Modules and layers: :class:`~autograd.nn.Module` and its state dicts and safetensors weights, linear and "
        "embedding layers, convolution and pooling, normalization, dropout, recurrent blocks and attention.",
        ["autograd.nn"],
        {"autograd.nn": ("autograd.nn.",)},
    ),
    Package(
        "optim",
        "autograd-optim",
        "Optimizers (SGD, Adam and AdamW), the warmup + cosine schedule, gradient clipping, loss scaling for "
        "float16, and optimizer state that saves and resumes.",
        ["autograd.optim"],
        {"autograd.optim": ("autograd.optim.",)},
    ),
    Package(
        "data",
        "autograd-data",
        "Data sets (arrays, memory-mapped token files), samplers, the :class:`~autograd.data.DataLoader` "
        "(workers, seeding, prefetch, exact resume), padding collators, and tokenizers (see :doc:`/data`).",
        ["autograd.data", "autograd.data.tokenize"],
        {"autograd.data": ("autograd.data.",)},
    ),
    Package(
        "distributed",
        "autograd-distributed",
        "Data-parallel training on MPI, NCCL and ``mx.distributed``: the process group and its collectives, "
        ":class:`~autograd.distributed.DistributedDataParallel`, checkpoints (see :doc:`/distributed`).",
        ["autograd.distributed"],
        {"autograd.distributed": ("autograd.distributed.",)},
    ),
    Package(
        "kernels-cpu",
        "autograd-kernels-cpu",
        "Fused, multithreaded Numba kernels for the NumPy backend, as plain functions on NumPy arrays, and the "
        "kernel plugin (``cpu_fused``) that the registry finds through its entry points (see :doc:`/plugins`).",
        ["autograd_kernels_cpu", "autograd_kernels_cpu.plugin"],
        {"autograd_kernels_cpu": ("autograd_kernels_cpu.",)},
    ),
    Package(
        "kernels-mlx",
        "autograd-kernels-mlx",
        "Fused, memory-linear attention for MLX (``mlx_flash``), as a kernel plugin (see :doc:`/plugins`).",
        ["autograd_kernels_mlx", "autograd_kernels_mlx.flash"],
        {"autograd_kernels_mlx": ("autograd_kernels_mlx.",)},
    ),
    Package(
        "kernels-cuda",
        "autograd-kernels-cuda",
        "CUDA kernels for the CuPy backend, as kernel plugins: cuDNN's fused attention (``cudnn_sdpa``), Triton "
        "kernels for every op of the registry (``triton_fused``) and FlashAttention-2 style kernels in CUDA C "
        "(``cuda_flash``) (see :doc:`/plugins` and :doc:`/gpu_check`).",
        [
            "autograd_kernels_cuda",
            "autograd_kernels_cuda.attention",
            "autograd_kernels_cuda.cudnn_attention",
            "autograd_kernels_cuda.cudnn_sdpa",
            "autograd_kernels_cuda.triton_fused",
            "autograd_kernels_cuda.triton_kernels",
            "autograd_kernels_cuda.triton_support",
            "autograd_kernels_cuda.tiling_model",
        ],
        {"autograd_kernels_cuda": ("autograd_kernels_cuda.",)},
    ),
]

# Names a module exports that are not API: the array module and its aliases.
EXCLUDE = {"autograd.backend": {"xp", "lib", "ndarray", "active"}}

_CANONICAL: dict[str, str] = {}  # defining module.qualname -> documented full name, filled by generate()
API_DIR = Path(__file__).resolve().parents[1] / "api"
GENERATED = API_DIR / "generated"


def _public(module: Any) -> list[str]:
    """``__all__``, then the public classes the module defines outside it (the Functions and references that
    the kernels of ``__all__`` name, say); without ``__all__``, every public class and function it defines."""
    names = list(getattr(module, "__all__", []))
    for n, o in vars(module).items():
        if n.startswith("_") or n in names or getattr(o, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(o) or (not hasattr(module, "__all__") and inspect.isfunction(o)):
            names.append(n)
    return [n for n in names if n not in EXCLUDE.get(module.__name__, set())]


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def _key(obj: Any) -> str | None:
    """Where an object is defined: ``module.qualname``, or None for data (ints, strings, dicts...)."""
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return None


@dataclass
class Entry:
    name: str  # the name in its module
    module: str
    kind: str
    canonical: str  # the documented full name
    obj: Any


def collect() -> tuple[dict[str, list[Entry]], dict[str, str]]:
    """module -> its public entries, and (defining module.qualname) -> documented full name."""
    modules: dict[str, list[Entry]] = {}
    canonical: dict[str, str] = {}
    facades = {mod: prefixes for p in PACKAGES for mod, prefixes in p.facades.items()}
    order = [m for p in PACKAGES for m in p.modules]
    loaded = {m: importlib.import_module(m) for m in order}
    # Pass 1: facades claim what they re-export, in the order of the list.
    for m in order:
        if m not in facades:
            continue
        for name in _public(loaded[m]):
            obj = getattr(loaded[m], name)
            key = _key(obj)
            if key and key not in canonical and obj.__module__.startswith(facades[m]):
                canonical[key] = f"{m}.{name}"
    # Pass 2: the rest belongs to its defining module if that is listed, else to the first module exporting it.
    for m in order:
        for name in _public(loaded[m]):
            obj = getattr(loaded[m], name)
            key = _key(obj)
            if key and key not in canonical and (obj.__module__ == m or obj.__module__ not in loaded):
                canonical[key] = f"{m}.{name}"
    for m in order:
        entries = []
        for name in _public(loaded[m]):
            obj = getattr(loaded[m], name)
            key = _key(obj)
            if key and key not in canonical:
                canonical[key] = f"{m}.{name}"
            if key:
                documented = canonical[key]
            else:  # a constant: documented where its doc comment is
                home = [h for h in order if name in _attribute_docs(h) and getattr(loaded[h], name, None) is obj]
                documented = f"{home[0] if home else m}.{name}"
            entries.append(Entry(name, m, _kind(obj), documented, obj))
        modules[m] = entries
    return modules, canonical


@functools.cache
def _attribute_docs(module: str) -> set[str]:
    """The module-level names that have a doc comment (``#:``) or docstring in the module's source."""
    try:
        docs = ModuleAnalyzer.for_module(module).find_attr_docs()
    except PycodeError:
        return set()
    return {name for scope, name in docs if scope == ""}


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _members(cls: type) -> tuple[list[str], list[str]]:
    """The methods and properties autodoc documents on the class's page (its own, with a docstring)."""
    methods, attributes = [], []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        raw = value
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if isinstance(raw, property) or inspect.isdatadescriptor(raw):
            if inspect.getdoc(raw):
                attributes.append(name)
        elif inspect.isfunction(value) or inspect.ismethoddescriptor(value):
            if inspect.getdoc(getattr(cls, name)):
                methods.append(name)
    return methods, attributes


def _object_page(entry: Entry) -> str:
    module, _, name = entry.canonical.rpartition(".")
    out = [_title(entry.canonical), f".. currentmodule:: {module}\n"]
    if entry.kind in ("class", "exception"):
        out.append(f".. autoclass:: {name}\n   :members:\n   :show-inheritance:\n")
        methods, attributes = _members(entry.obj)
        for heading, names in (("Methods", methods), ("Attributes", attributes)):
            if len(names) > 1:
                out.append(f"   .. rubric:: {heading}\n\n   .. autosummary::\n")
                out.append("".join(f"      ~{name}.{n}\n" for n in names))
    else:
        out.append(f".. autofunction:: {name}\n")
    return "\n".join(out)


_KIND_HEADINGS = (("function", "Functions"), ("class", "Classes"), ("exception", "Exceptions"))


def _here(entry: Entry, module: str) -> str:
    return entry.name if entry.canonical == f"{module}.{entry.name}" else f"~{entry.canonical}"


def _module_page(module: str, entries: list[Entry], owned: list[Entry]) -> str:
    out = [_title(module), f".. automodule:: {module}\n   :no-members:\n"]
    for kind, heading in _KIND_HEADINGS:
        rows = [e for e in entries if e.kind == kind]
        if rows:
            out.append(_title(heading, "-"))
            out.append(".. autosummary::\n")
            # A name of this module as it is (autosummary resolves it against the module), others in full.
            out.append("".join(f"   {_here(e, module)}\n" for e in rows))
    data = [e for e in entries if e.kind == "data"]
    if data:
        out.append(_title("Constants", "-"))
        for e in data:
            if e.canonical == f"{module}.{e.name}" and e.name in _attribute_docs(module):
                out.append(f".. autodata:: {e.name}\n   :no-value:\n")
            elif e.canonical == f"{module}.{e.name}":  # no doc comment: its value says what it is
                value = repr(e.obj) if len(repr(e.obj)) < 80 else f"<{type(e.obj).__name__}>"
                out.append(f".. py:data:: {e.name}\n   :value: {value}\n")
            else:  # defined (and documented) in another module
                out.append(f".. py:data:: {e.name}\n   :no-index:\n\n   The same as :data:`{e.canonical}`.\n")
    if owned:
        out.append(".. toctree::\n   :hidden:\n\n" + "".join(f"   {e.canonical}\n" for e in owned))
    return "\n".join(out)


def _package_page(package: Package) -> str:
    out = [
        ".. Generated by docs/_ext/autograd_api.py: edit PACKAGES there, not this file.\n",
        _title(package.dist),
        package.summary + "\n",
        _title("Modules", "-"),
        ".. autosummary::\n",
        "".join(f"   {m}\n" for m in package.modules),
        ".. toctree::\n   :hidden:\n",
        "".join(f"   generated/{m}\n" for m in package.modules),
    ]
    return "\n".join(out)


def _write(path: Path, text: str) -> None:
    """Write only what changed, so an incremental build rereads only those pages."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app: Sphinx) -> None:
    modules, canonical = collect()
    _CANONICAL.clear()
    _CANONICAL.update(canonical)
    GENERATED.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for package in PACKAGES:
        _write(API_DIR / f"{package.slug}.rst", _package_page(package))
        for module in package.modules:
            entries = modules[module]
            owned = [e for e in entries if e.kind != "data" and e.canonical == f"{module}.{e.name}"]
            _write(GENERATED / f"{module}.rst", _module_page(module, entries, owned))
            wanted.add(f"{module}.rst")
            for e in owned:
                _write(GENERATED / f"{e.canonical}.rst", _object_page(e))
                wanted.add(f"{e.canonical}.rst")
    for stale in GENERATED.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    logger.info(f"autograd_api: {len(PACKAGES)} packages, {len(wanted)} module and object pages")


def _canonical_of(target: str, canonical: dict[str, str]) -> str | None:
    """The documented name of the object ``target`` names, if it is one the API documents under another name."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        key = _key(obj)
        if key in canonical:
            return canonical[key]
        # A method or attribute of a class documented under another name.
        owner = ".".join(parts[:-1])
        if owner != target:
            base = _canonical_of(owner, canonical) if len(parts) > 2 else None
            return f"{base}.{parts[-1]}" if base else None
        return None
    return None


def _by_short_name(name: str) -> str | None:
    """The documented object whose last name component is ``name``, if exactly one is."""
    found = {full for full in _CANONICAL.values() if full.rpartition(".")[2] == name}
    return found.pop() if len(found) == 1 else None


def resolve(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python cross-reference to the page of the object it names (``autograd.nn.linear.Linear``)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith("."):
        return None
    if re.match(r"^(autograd|autograd_kernels_\w+)\.", target):
        name = _canonical_of(target, _CANONICAL)
    else:
        # A short name in a docstring (``LayerNormFunction`` in layer_norm's, documented as
        # autograd.functional.layer_norm): the module's own name for it, else the one object of that name.
        module = node.get("py:module")
        name = _canonical_of(f"{module}.{target}", _CANONICAL) if module else None
        if not name and re.fullmatch(r"[A-Za-z_]\w*", target):
            name = _by_short_name(target)
    if not name or name == node.get("reftarget"):
        return None
    domain = env.get_domain("py")
    for _role, refnode in domain.resolve_any_xref(env, node["refdoc"], app.builder, name, node, contnode):
        return refnode
    return None


def public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Bases lists public classes: a private base (``_CPU``, ``_Elementwise``) gives way to its own bases."""
    out: list[type] = []
    for base in bases:
        stack = [base]
        while stack:
            b = stack.pop(0)
            if b.__name__.startswith("_") and b is not object:
                stack[:0] = [x for x in b.__bases__ if x is not object]
            elif b not in out:
                out.append(b)
    bases[:] = out or [object]


def prose_not_type(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Keep "Whether X: ..." as prose in an attribute's doc: Napoleon reads the words before a first colon as
    the attribute's type. A colon in front (which Napoleon removes) tells it there is no type."""
    if what not in ("attribute", "data", "property") or not lines:
        return
    before, colon, _ = lines[0].partition(":")
    typed = colon and re.fullmatch(r"[\w.]+( ?\| ?[\w.]+)*", re.sub(r"\[.*\]", "", before.strip()))
    if not typed:
        lines[0] = ":" + lines[0]


def source_page_anchors(app: Sphinx, doctree: Any) -> None:
    """Give each documented object the anchor its source page's "[docs]" link points at.

    viewcode links every object of a module's source page to ``<refname>.<qualname>``, where ``refname`` is the
    name of the module under which the first object of that source file was documented: for the objects of
    ``autograd.engine`` documented as ``autograd.tensor.Function`` and so on, or of ``autograd.ops.activations``
    documented both under ``autograd.functional`` and under their own module, that anchor does not exist.
    Runs after viewcode's own ``doctree-read``, which records ``refname``.
    """
    from sphinx import addnodes
    from sphinx.ext.viewcode import _get_full_modname

    modules = getattr(app.env, "_viewcode_modules", {})
    for signode in doctree.findall(addnodes.desc_signature):
        module, fullname = signode.get("module"), signode.get("fullname")
        if not module or not fullname:
            continue
        entry = modules.get(_get_full_modname(module, fullname) or module)
        if entry:
            alias = f"{entry[3]}.{fullname}"
            if alias not in signode["ids"]:
                signode["ids"].append(alias)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", source_page_anchors, priority=600)  # after viewcode's (500)
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", prose_not_type, priority=400)  # before Napoleon's (500)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("missing-reference", resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
