"""``python -m autograd.kernels``: list the attention implementations and the default choice.

Prints, for each registered implementation, its package and version, the
backends it runs on, its priority, and whether it is usable here (with the
reason when not), then which one a default causal float32 call would use.
``--json`` prints the same as JSON for CI matrices.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from autograd import backend
from autograd.kernels import registry


def default_inputs(dtype: str = "float32", seq: int = 128, head_dim: int = 64) -> registry.AttentionInputs:
    """The default probe: batch 1, 8 heads, causal self-attention, no mask or dropout."""
    shape = (1, 8, seq, head_dim)
    return registry.AttentionInputs(
        backend=backend.BACKEND,
        query_shape=shape,
        key_shape=shape,
        value_shape=shape,
        dtype=dtype,
        is_causal=True,
    )


def report(dtype: str = "float32", seq: int = 128, head_dim: int = 64) -> Dict[str, Any]:
    rows: List[Dict[str, Any]] = []
    for impl in registry.implementations():
        e = registry.entry(impl.name)
        problems = impl.check_environment()
        rows.append(
            {
                "name": impl.name,
                "package": e.package,
                "version": e.version,
                "backends": list(impl.backends),
                "priority": impl.priority,
                "usable": not problems,
                "reasons": problems,
            }
        )
    inputs = default_inputs(dtype, seq, head_dim)
    chosen = registry.explain(inputs, None).chosen
    return {"backend": backend.BACKEND, "implementations": rows, "default_case": inputs.describe(), "chosen": chosen}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="autograd-kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--head-dim", type=int, default=64)
    args = parser.parse_args(argv)
    data = report(args.dtype, args.seq, args.head_dim)
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        print()
        return 0
    print(f"autograd attention implementations (backend: {data['backend']})")
    header = f"{'name':<16} {'package':<28} {'version':<10} {'backends':<18} {'priority':>8}  usable"
    print(header)
    print("-" * len(header))
    for r in data["implementations"]:
        usable = "yes" if r["usable"] else "no: " + "; ".join(r["reasons"])
        print(
            f"{r['name']:<16} {r['package']:<28} {r['version']:<10} {','.join(r['backends']):<18} "
            f"{r['priority']:>8}  {usable}"
        )
    print(f"default case ({data['default_case']}): {data['chosen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
