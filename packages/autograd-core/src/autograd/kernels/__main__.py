"""``python -m autograd.kernels``: list the kernel implementations, the plugins that failed, and the choices.

For each op, every registered implementation with its package and version,
the backends it runs on, its priority, and whether it is usable here at all
(``check_environment``, with the reason when not). "Usable" is not "chosen":
for each op the report then runs the automatic selection on a typical call
(for attention, the call the options describe) and says which implementation
it picks and why each other one was passed over: declined by its ``check``
(cannot take those inputs), advised against by its ``advise`` (could, but
expects another to be faster), or simply outranked by a higher priority.
Plugins that failed to load are listed with their reason. ``--json`` prints
the same as JSON, for CI matrices that must prove which kernel ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from autograd import backend
from autograd.kernels import registry
from autograd.kernels.contracts import OPS, AttentionInputs
from autograd.kernels.registry import KernelInputs

_PROBE_ROWS, _PROBE_FEATURES = 1024, 128


def default_inputs(
    dtype: str = "float32",
    seq: int = 128,
    head_dim: int = 64,
    *,
    mask: str = "none",
    dropout: float = 0.0,
    causal: bool = True,
) -> AttentionInputs:
    """The attention probe: batch 1, 8 heads, self-attention; causal unless a mask is given or ``causal`` is False."""
    shape = (1, 8, seq, head_dim)
    return AttentionInputs(
        backend=backend.BACKEND,
        query_shape=shape,
        key_shape=shape,
        value_shape=shape,
        dtype=dtype,
        mask=mask,
        mask_shape=None if mask == "none" else (seq, seq),
        is_causal=causal and mask == "none",
        dropout_prob=dropout,
    )


def _probe(op: str, dtype: str) -> KernelInputs:
    """A typical call of ``op`` (the sizes of a small GPT or CNN training step), in ``dtype``."""
    rows, f = _PROBE_ROWS, _PROBE_FEATURES
    shapes: Dict[str, Any] = {
        "layer_norm": (((rows, f), (f,), (f,)), (("eps", 1e-5),)),
        "softmax": (((rows, f),), (("dim", 1),)),
        "log_softmax": (((rows, f),), (("dim", 1),)),
        "cross_entropy": (
            ((rows, 256), (rows,)),
            (("ignore_index", -100), ("label_smoothing", 0.0), ("reduction", "mean")),
        ),
        "conv2d": (((32, 16, 28, 28), (32, 16, 3, 3), (32,)), (("stride", 1), ("padding", (1, 1, 1, 1)))),
        "max_pool2d": (((32, 16, 28, 28),), (("kernel_size", 2), ("stride", 2))),
        "embedding": (((256, f), (8, 128)), ()),
        "adam": (((50,),), (("numel", 800_000), ("weight_decay", 0.01))),
    }
    arrays, params = shapes.get(op, (((rows, 4 * f),), ()))
    return KernelInputs(op, backend.BACKEND, dtype, OPS[op].arrays, arrays, params, op != "adam")


def _rows(op: str) -> List[Dict[str, Any]]:
    rows = []
    for impl in registry.implementations(op):
        e = registry.entry(impl.name, op)
        problems = _environment(impl)
        rows.append(
            {
                "op": op,
                "name": impl.name,
                "package": e.package,
                "version": e.version,
                "backends": list(impl.backends),
                "priority": impl.priority,
                "usable": not problems,
                "reasons": problems,
            }
        )
    return rows


def _environment(impl: Any) -> List[str]:
    try:
        return [str(r) for r in impl.check_environment()]
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
        return [f"{impl.name}.check_environment() raised {type(exc).__name__}: {exc}"]


def _explanation(report: registry.Explanation) -> List[Dict[str, Any]]:
    out = []
    for c in report.candidates:
        verdict = "chosen" if c.chosen else "declined" if c.reasons else "advised against" if c.advice else "outranked"
        out.append({"name": c.name, "priority": c.priority, "verdict": verdict, "why": c.reasons or c.advice})
    return out


def report(
    dtype: str = "float32",
    seq: int = 128,
    head_dim: int = 64,
    *,
    op: Optional[str] = None,
    mask: str = "none",
    dropout: float = 0.0,
    causal: bool = True,
) -> Dict[str, Any]:
    """Everything the CLI prints, as a dict (see the module docstring)."""
    ops = [op] if op else list(OPS)
    rows: List[Dict[str, Any]] = []
    choices: Dict[str, Any] = {}
    for name in ops:
        rows += _rows(name)
        inputs = default_inputs(dtype, seq, head_dim, mask=mask, dropout=dropout, causal=causal)
        if name != "attention":
            inputs = _probe(name, dtype)
        explanation = registry.explain(inputs, None)
        choices[name] = {
            "case": inputs.describe(),
            "mode": explanation.mode,
            "chosen": explanation.chosen,
            "candidates": _explanation(explanation),
        }
    failures = [f.__dict__ for f in registry.load_failures()]
    attention = choices.get("attention", {})
    return {
        "backend": backend.BACKEND,
        "implementations": rows,
        "choices": choices,
        "failures": failures,
        "default_case": attention.get("case"),
        "chosen": attention.get("chosen"),
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="autograd-kernels",
        description="List autograd's kernel implementations, which one each op would use, and why.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for CI matrices)")
    parser.add_argument("--op", choices=list(OPS), default=None, help="only this op (default: every op)")
    parser.add_argument("--dtype", default="float32", help="dtype of the probe calls (default: float32)")
    parser.add_argument("--seq", type=int, default=128, help="attention probe: sequence length (default: 128)")
    parser.add_argument("--head-dim", type=int, default=64, help="attention probe: head dimension (default: 64)")
    parser.add_argument(
        "--mask",
        choices=["none", "bool", "additive"],
        default="none",
        help="attention probe: a (seq, seq) mask of this kind; a mask turns causal off (default: none)",
    )
    parser.add_argument("--dropout", type=float, default=0.0, help="attention probe: dropout probability (default: 0)")
    parser.add_argument("--no-causal", action="store_true", help="attention probe: full attention instead of causal")
    args = parser.parse_args(argv)
    if not 0.0 <= args.dropout < 1.0:
        parser.error(f"--dropout must be in [0, 1), got {args.dropout}")
    data = report(
        args.dtype,
        args.seq,
        args.head_dim,
        op=args.op,
        mask=args.mask,
        dropout=args.dropout,
        causal=not args.no_causal,
    )
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=str)
        print()
        return 0
    print(f"autograd kernel implementations (backend: {data['backend']})")
    table = [
        [r["op"], r["name"], r["package"], r["version"], ",".join(r["backends"]), str(r["priority"])]
        + ["yes" if r["usable"] else "no: " + "; ".join(r["reasons"])]
        for r in data["implementations"]
    ]
    titles = ["op", "name", "package", "version", "backends", "priority", "usable here"]
    widths = [max(len(row[i]) for row in table + [titles]) for i in range(len(titles) - 1)]
    for row in [titles] + table:
        cells = [c.rjust(w) if i == 5 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells + [row[-1]]))
    if data["failures"]:
        print("\nplugins that failed to load (skipped):")
        for f in data["failures"]:
            print(f"  {f['group']} {f['name']} = {f['value']} ({f['package']} {f['version']}): {f['error']}")
    print(
        "\n'usable here' only says an implementation can run on this machine; automatic selection then takes, for"
        "\neach call, the highest priority that accepts the inputs (check) and is not advised against (advise):"
    )
    for name, choice in data["choices"].items():
        print(f"\n{name} for {choice['case']}:")
        for c in choice["candidates"]:
            why = f": {'; '.join(c['why'])}" if c["why"] else ""
            print(f"  {c['verdict']:<16} {c['name']} (priority {c['priority']}){why}")
    if "attention" in data["choices"]:
        print(f"\ndefault case ({data['default_case']}): {data['chosen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
