"""The smallest network where a claim fails: a general claim not proven for every size, tried on small sizes.

Candidates are layered networks like the declared one (its activations, cost
and regularization), of depth 2 to 4 and widths 1 to 3, in order of their
parameter count; each is checked per instance exactly as `derive check` does,
and the first refutation is returned with its counterexample or its shapes.
A claim refuted on none of them within the time allowed is undecided in
general (evidence, not a proof).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from derive.errors import InputError
from derive.graph.layered import layered

MAX_SEARCH_SECONDS = 20.0
WIDTHS = (1, 2, 3)


def candidates() -> list[tuple[int, ...]]:
    sizes = [s for depth in (2, 3, 4) for s in itertools.product(WIDTHS, repeat=depth)]
    return sorted(sizes, key=lambda s: (sum(a * b + b for a, b in zip(s, s[1:])), len(s), s))


@dataclass
class Smallest:
    sizes: tuple[int, ...] | None  # the network where the claim fails; None when none was found
    result: object | None  # its ClaimResult there
    tried: int
    seconds: float


def smallest_refutation(claim, network, budget: float, seconds: float = MAX_SEARCH_SECONDS) -> Smallest:
    from derive.claims.check import check
    from derive.claims.claimsfile import parse_claims

    start = time.perf_counter()
    facts = network.facts
    hidden, output = facts["activations"][0], facts["activations"][-1]
    entry = {"name": claim.name, "formula": claim.text, "syntax": claim.syntax}
    tried = 0
    for sizes in candidates():
        if time.perf_counter() - start > seconds:
            break
        if len(sizes) == len(facts["sizes"]) and tuple(sizes) == tuple(facts["sizes"]):
            continue  # the declared network: already checked
        activations = [hidden] * (len(sizes) - 2) + [output]
        try:
            candidate = layered(list(sizes), activation=activations, cost=facts["cost"],
                                regularization=facts["regularization"], name="-".join(map(str, sizes)))
            data = {"network": candidate.name, "syntax": claim.syntax, "claim": [entry]}
            claims_file = parse_claims(data, base=Path("."), network=candidate)
        except InputError:
            continue
        if not claims_file.claims:
            continue  # not read on this network (a layer it names is missing): no instance
        tried += 1
        result = check(claims_file, budget=budget).results[0]
        if result.verdict.status == "refuted":
            return Smallest(tuple(sizes), result, tried, time.perf_counter() - start)
    return Smallest(None, None, tried, time.perf_counter() - start)
