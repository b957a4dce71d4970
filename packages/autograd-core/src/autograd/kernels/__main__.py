"""``python -m autograd.kernels``: list the kernel implementations, the plugins that failed, and the choices.

For each op, every registered implementation with its package and version,
the backends it runs on, its priority, and whether it is usable here at all
(``check_environment``, with the reason when not). "Usable" is not "chosen":
for each op the report then runs the automatic selection on a typical call
(the op contract's ``probe``: the sizes of a small training step) and says
which implementation it picks and why each other one was passed over:
declined (cannot take those inputs, or cannot run here at all), advised
against by its ``advise`` (could, but expects another to be faster), or
outranked by a higher priority. Plugins that failed to load are listed with
their reason. ``--json`` prints the same as JSON, for CI matrices that must
prove which kernel ran.

The options of the probes (``--seq``, ``--head-dim``... for attention) are
read from the keyword parameters of each contract's ``probe``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any, Dict, List, Optional

from autograd import backend
from autograd.kernels import registry
from autograd.ops.catalog import KERNEL_OPS

_GENERIC = ("cls", "dtype", "options")


def _probe_options() -> Dict[str, Any]:
    """Every keyword parameter of a contract's ``probe``: its default, and the ops that take it."""
    found: Dict[str, Any] = {}
    for contract in KERNEL_OPS:
        for p in inspect.signature(contract.probe).parameters.values():
            if p.name in _GENERIC or p.kind is p.VAR_KEYWORD:
                continue
            entry = found.setdefault(p.name, {"default": p.default, "ops": []})
            entry["ops"].append(contract.op)
    return found


def _rows(op: str) -> List[Dict[str, Any]]:
    rows = []
    for impl in registry.implementations(op):
        e = registry.entry(op, impl.name)
        problems = registry._ask(impl, "check_environment", None)
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


def report(dtype: str = "float32", *, op: Optional[str] = None, **options: Any) -> Dict[str, Any]:
    """Everything the CLI prints, as a dict (see the module docstring); ``options`` go to the ops' probes."""
    contracts = [c for c in KERNEL_OPS if op is None or c.op == op]
    if not contracts:
        raise ValueError(f"no op named {op!r}; the ops are {', '.join(c.op for c in KERNEL_OPS)}")
    rows: List[Dict[str, Any]] = []
    choices: Dict[str, Any] = {}
    for contract in contracts:
        rows += _rows(contract.op)
        accepted = inspect.signature(contract.probe).parameters
        inputs = contract.probe(dtype, **{k: v for k, v in options.items() if k in accepted})
        explanation = registry.explain(inputs, None)
        choices[contract.op] = {
            "case": inputs.describe(),
            "mode": explanation.mode,
            "chosen": explanation.chosen,
            "candidates": [
                {"name": c.name, "priority": c.priority, "verdict": c.verdict, "why": c.reasons or c.advice}
                for c in explanation.candidates
            ],
        }
    return {
        "backend": backend.BACKEND,
        "implementations": rows,
        "choices": choices,
        "failures": [f.__dict__ for f in registry.load_failures()],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograd-kernels",
        description="List autograd's kernel implementations, which one each op would use, and why.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for CI matrices)")
    parser.add_argument("--op", choices=[c.op for c in KERNEL_OPS], default=None, help="only this op (default: all)")
    parser.add_argument("--dtype", default="float32", help="dtype of the probe calls (default: float32)")
    for name, info in _probe_options().items():
        flag = "--" + name.replace("_", "-")
        where = ", ".join(info["ops"])
        default = info["default"]
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=f"{where} probe (default: {default})"
            )
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=None, help=f"{where} probe (default: {default})")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = vars(parser.parse_args(argv))
    as_json, op, dtype = args.pop("json"), args.pop("op"), args.pop("dtype")
    options = {k: v for k, v in args.items() if v is not None}
    try:
        data = report(dtype, op=op, **options)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    if as_json:
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
