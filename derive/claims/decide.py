"""Deciding a claim of several instances or links: proven only when every part is.

The parts are decided link by link, each link at every instance in order; the
first refuted part refutes the claim (its index values, its link, its
counterexample). All parts share INSTANCE_BUDGETS of the claim's budgets (each
part gets at most one); parts left when they run out leave the claim undecided
unless a later part is refuted first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from derive.claims.claimsfile import Claim
from derive.proof import Prover, Verdict

# The budgets all the parts of one claim share (a part is decided within one budget, as a claim of one part is).
INSTANCE_BUDGETS = 6


@dataclass(frozen=True)
class PartOutcome:
    """What the parts of a claim came to: the verdict, and the part it is about."""

    verdict: Verdict
    claim: Claim  # the deciding part as a claim of its own (its sides, target and kind), or the claim itself
    instance: dict | None = None  # its index values
    link: int | None = None
    decided: int = 0  # the parts decided (proven, or the refuting one)


def part_claim(claim: Claim, part) -> Claim:
    """One part as a claim: link 1 of a gradient or update claim keeps its kind, other links are identities."""
    kind = claim.kind if part.link == 1 else "identity"
    extra = {} if kind != "identity" or claim.kind == "identity" else {"wrt": None, "rate": None}
    return replace(claim, kind=kind, lhs=part.lhs, rhs=part.rhs, target=part.lhs, mentioned=part.mentioned,
                   generic=None, **extra)


def decide_parts(claim: Claim, prover: Prover, budget: float) -> PartOutcome:
    generic = claim.generic
    deadline = time.perf_counter() + INSTANCE_BUDGETS * budget
    first_open: tuple | None = None
    proven = 0
    for part in generic.parts:
        if time.perf_counter() > deadline:
            break
        verdict = prover.decide(part.lhs, part.rhs, claim.assume, claim.assumptions, deadline=deadline)
        if verdict.status == "proven":
            proven += 1
            continue
        if verdict.status == "refuted":
            return PartOutcome(verdict, part_claim(claim, part), dict(part.indices), part.link, proven + 1)
        if first_open is None:
            first_open = (verdict, part)
    total = len(generic.parts)
    if proven == total:
        methods = f"every part proven ({_count(generic)})"
        return PartOutcome(Verdict("proven", methods, assumptions=claim.assumptions), claim, None, None, proven)
    if first_open is None:
        method = f"decided {proven} of {total} parts within {INSTANCE_BUDGETS} budgets; the rest were not tried"
        return PartOutcome(Verdict("undecided", method, assumptions=claim.assumptions), claim, None, None, proven)
    verdict, part = first_open
    method = f"{proven} of {total} parts proven; at {_where(part)}: {verdict.method}"
    return PartOutcome(replace(verdict, method=method), part_claim(claim, part), dict(part.indices), part.link,
                       proven)


def _count(generic) -> str:
    parts = [f"{generic.instances} instance{'s' if generic.instances != 1 else ''}"]
    if generic.links > 1:
        parts.append(f"{generic.links} links")
    return ", ".join(parts)


def _where(part) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in part.indices)
    return f"link {part.link}" + (f", {shown}" if shown else "")
