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
from derive.graph.affine import affine
from derive.graph.batch import batch
from derive.graph.layered import layered
from derive.graph.modules import module_network

MAX_SEARCH_SECONDS = 20.0
WIDTHS = (1, 2, 3)


def candidates() -> list[tuple[int, ...]]:
    sizes = [s for depth in (2, 3, 4) for s in itertools.product(WIDTHS, repeat=depth)]
    return sorted(sizes, key=lambda s: (sum(a * b + b for a, b in zip(s, s[1:])), len(s), s))


def batch_candidates() -> list[tuple[tuple[int, ...], int]]:
    """(sizes, m) for a batch network: every m of 1..3 with each size, the smallest first (m = 1 early, so that
    a claim true only for one example is seen to fail at m = 2)."""
    pairs = [(s, m) for s in candidates() if len(s) <= 3 for m in (1, 2, 3)]
    return sorted(pairs, key=lambda p: (sum(a * b + b for a, b in zip(p[0], p[0][1:])) * p[1], len(p[0]), p))


def affine_candidates() -> list[tuple[tuple[int, ...], None]]:
    sizes = sorted(itertools.product(WIDTHS, repeat=3), key=lambda s: (s[0] * s[1] * s[2], s))
    return [(s, None) for s in sizes]


def module_candidates() -> list[tuple[tuple[int, ...], None]]:
    sizes = sorted(itertools.product(WIDTHS, repeat=2), key=lambda s: (s[0] * s[1], s))
    return [(s, None) for s in sizes]


def _candidate(network, sizes, m):
    """A network like the declared one (its activations and cost) of these sizes (and batch size m)."""
    if network.kind == "module":  # the same layer table over N examples of D values
        return module_network(*sizes, [network.facts["table"]], name="-".join(map(str, sizes)))
    if network.kind == "affine":
        return affine(*sizes, name="-".join(map(str, sizes)))
    facts = network.facts
    hidden, output = facts["activations"][0], facts["activations"][-1]
    activations = [hidden] * (len(sizes) - 2) + [output]
    label = "-".join(map(str, sizes))
    if network.kind == "batch":
        return batch(list(sizes), m, activation=activations, cost=facts["cost"], name=f"{label} (m={m})")
    return layered(list(sizes), activation=activations, cost=facts["cost"], regularization=facts["regularization"],
                   name=label)


@dataclass
class Smallest:
    sizes: tuple[int, ...] | None  # the network where the claim fails; None when none was found
    result: object | None  # its ClaimResult there
    tried: int
    seconds: float
    m: int | None = None  # a batch network's number of examples
    held: tuple = ()  # the smaller networks where it was proven, by name


def smallest_refutation(claim, network, budget: float, seconds: float = MAX_SEARCH_SECONDS) -> Smallest:
    from derive.claims.check import check
    from derive.claims.claimsfile import parse_claims

    start = time.perf_counter()
    facts = network.facts
    entry = {"name": claim.name, "formula": claim.text, "syntax": claim.syntax}
    tried, held = 0, []
    pairs = {"batch": batch_candidates, "affine": affine_candidates, "module": module_candidates}.get(
        network.kind, lambda: [(s, None) for s in candidates()])()
    for sizes, m in pairs:
        if time.perf_counter() - start > seconds:
            break
        if tuple(sizes) == tuple(facts["sizes"]) and m == facts.get("m"):
            continue  # the declared network: already checked
        try:
            candidate = _candidate(network, sizes, m)
            data = {"network": candidate.name, "syntax": claim.syntax, "claim": [entry]}
            claims_file = parse_claims(data, base=Path("."), network=candidate)
        except InputError:
            continue
        if not claims_file.claims:
            continue  # not read on this network (a layer it names is missing): no instance
        tried += 1
        result = check(claims_file, budget=budget).results[0]
        if result.verdict.status == "refuted":
            return Smallest(tuple(sizes), result, tried, time.perf_counter() - start, m, tuple(held))
        if result.verdict.status == "proven":
            held.append(candidate.name)
    return Smallest(None, None, tried, time.perf_counter() - start, held=tuple(held))
