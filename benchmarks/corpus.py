"""Grade the held-back corpus of formulas as printed (benchmarks/corpus/), and print the figures.

Each claim there records in `expect` the verdict it truly deserves. A formula is
*decided right* when derive's verdict is that one; *falsely proven* (a wrong
formula passed) and *falsely refuted* (a right formula refuted) are the two
errors a checker must never make; *undecided* and *unparsed* are honest failures
to read or decide. A claims file that derive cannot read at all counts each of
its claims as unparsed.

    python benchmarks/corpus.py            # the table and the totals; exit 1 on any false verdict
    python benchmarks/corpus.py --verbose  # and every claim not decided right, with its message
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.errors import DeriveError

CORPUS = Path(__file__).resolve().parent / "corpus"
OUTCOMES = ("right", "false proven", "false refuted", "undecided", "unparsed", "other")


def outcome(expect: str, verdict: str) -> str:
    if verdict == expect:
        return "right"
    if verdict == "proven":
        return "false proven"
    if verdict == "refuted" and expect == "proven":
        return "false refuted"
    if verdict in ("undecided", "unparsed"):
        return verdict
    return "other"


def grade_file(path: Path, budget: float) -> list[tuple[str, str, str, str]]:
    """(claim name, expected, verdict, message) for every claim of one corpus file."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    expected = {c.get("name", f"#{i}"): c.get("expect", "proven") for i, c in enumerate(raw.get("claim", []), 1)}
    try:
        result = check(load_claims(path), budget=budget)
    except DeriveError as exc:
        return [(name, expect, "unparsed", f"the file: {exc}") for name, expect in expected.items()]
    rows = []
    for r in result.results:
        message = getattr(r, "message", "") or ""
        rows.append((r.claim.name, expected.get(r.claim.name, "proven"), r.verdict.status, message))
    graded = {row[0] for row in rows}
    for u in result.claims_file.unparsed:
        if u.name not in graded:
            rows.append((u.name, expected.get(u.name, "proven"), "unparsed", u.message))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per identity (default 5)")
    parser.add_argument("--verbose", action="store_true", help="list every claim not decided right")
    args = parser.parse_args(argv)
    totals: Counter = Counter()
    start = time.perf_counter()
    print(f"{'file':28} {'claims':>6} " + " ".join(f"{o:>13}" for o in OUTCOMES))
    misses = []
    for path in sorted(CORPUS.glob("*.toml")):
        if "claim" not in tomllib.loads(path.read_text(encoding="utf-8")):
            continue  # a network spec the claims files use
        rows = grade_file(path, args.budget)
        counts = Counter(outcome(expect, verdict) for _, expect, verdict, _ in rows)
        totals += counts
        print(f"{path.stem:28} {len(rows):>6} " + " ".join(f"{counts[o]:>13}" for o in OUTCOMES))
        misses += [(path.stem, *row) for row in rows if outcome(row[1], row[2]) != "right"]
    n = sum(totals.values())
    print(f"{'total':28} {n:>6} " + " ".join(f"{totals[o]:>13}" for o in OUTCOMES))
    share = totals["right"] / n if n else 0.0
    print(f"decided right: {totals['right']}/{n} = {share:.0%}; false proven {totals['false proven']}, "
          f"false refuted {totals['false refuted']}; {time.perf_counter() - start:.1f} s")
    if args.verbose:
        for stem, name, expect, verdict, message in misses:
            print(f"  {stem}: {name}: expected {expect}, got {verdict}" + (f"\n      {message}" if message else ""))
    return 1 if totals["false proven"] or totals["false refuted"] else 0


if __name__ == "__main__":
    sys.exit(main())
