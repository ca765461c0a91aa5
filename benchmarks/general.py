"""`derive prove --general` for each covered set, and for the Nielsen set against per-instance proofs of 12-3-2,
784-30-10 and 784-100-10.

Prints one table (seconds, instances). The issue's target: the general proof in
at most 2 s, whatever the size. Run: python benchmarks/general.py [--quick]
(--quick skips 784-100-10).
"""

from __future__ import annotations

import sys
import time

from derive.graph.layered import layered
from derive.graph.spec import load
from derive.proof import prove
from derive.proof.formulas import builtin_sets
from derive.proof.general.report import prove_general


def main() -> None:
    sets = builtin_sets()
    nielsen = sets["nielsen"]
    rows = []
    for set_id in ("nielsen", "book-fc", "zhou", "book-cnn", "cnn"):
        start = time.perf_counter()
        general = prove_general([sets[set_id]])
        seconds = time.perf_counter() - start
        if set_id == "nielsen":
            general_seconds = seconds
        rows.append((f"general (every size), {set_id}", seconds, len(general.entries),
                     f"{general.count('proven')} proven for every size"))
    networks = [("12-3-2 (book-12-3-2)", lambda: load("book-12-3-2")),
                ("784-30-10", lambda: layered([784, 30, 10], name="784-30-10"))]
    if "--quick" not in sys.argv:
        networks.append(("784-100-10", lambda: layered([784, 100, 10], name="784-100-10")))
    for label, build in networks:
        start = time.perf_counter()
        network = build()
        report = prove(network, [nielsen], budget=5.0)
        seconds = time.perf_counter() - start
        summary = report.summary()
        rows.append((f"per instance, {label}", seconds, summary["total"], f"{summary['proven']} proven"))
    print(f"{'proof':<40} {'seconds':>9} {'formulas/instances':>19}  verdicts")
    for label, seconds, count, verdicts in rows:
        print(f"{label:<40} {seconds:>9.2f} {count:>19,}  {verdicts}")
    print(f"target: general ≤ 2 s: {'met' if general_seconds <= 2 else 'NOT met'} ({general_seconds:.2f} s)")


if __name__ == "__main__":
    main()
