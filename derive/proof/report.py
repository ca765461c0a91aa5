"""Proving formula sets on a network: every instance of every applicable formula, counted and bounded first."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import sympy as sp

from derive.derivation import Derivations
from derive.errors import InputError
from derive.proof.engine import DEFAULT_BUDGET, Prover, Verdict
from derive.proof.text import shared_text


@dataclass(frozen=True)
class InstanceResult:
    set_id: str
    formula: str
    family: str
    indices: Mapping[str, int]
    lhs: sp.Expr
    rhs: sp.Expr
    verdict: Verdict

    def to_dict(self, text=str) -> dict:
        """`text` prints the sides (str by default; a report passes one shared printer)."""
        return {
            "set": self.set_id,
            "formula": self.formula,
            "family": self.family,
            "indices": dict(self.indices),
            "lhs": text(self.lhs),
            "rhs": text(self.rhs),
            **self.verdict.to_dict(),
        }


@dataclass
class ProofReport:
    """Every instance of the applicable formulas of some sets, decided on one network."""

    network: object
    derivations: Derivations
    sets: list
    results: list[InstanceResult]
    seconds: float

    def summary(self) -> dict[str, int]:
        counts = {"proven": 0, "refuted": 0, "undecided": 0}
        for r in self.results:
            counts[r.verdict.status] += 1
        counts["total"] = len(self.results)
        return counts

    def families(self) -> list[dict]:
        """Counts per (set, family), in the order formulas appear in their sets."""
        rows: dict[tuple[str, str], dict] = {}
        for r in self.results:
            row = rows.setdefault(
                (r.set_id, r.family),
                {"set": r.set_id, "family": r.family, "proven": 0, "refuted": 0, "undecided": 0, "total": 0},
            )
            row[r.verdict.status] += 1
            row["total"] += 1
        return list(rows.values())

    @property
    def all_proven(self) -> bool:
        return bool(self.results) and all(r.verdict.status == "proven" for r in self.results)

    def to_dict(self) -> dict:
        text = shared_text()
        return {
            "network": self.network.name,
            "sets": [{"id": s.id, "title": s.title, "source": s.source} for s in self.sets],
            "results": [r.to_dict(text) for r in self.results],
            "families": self.families(),
            "summary": self.summary(),
            "seconds": round(self.seconds, 4),
        }

    def _repr_latex_(self) -> str:
        rows = []
        for row in self.families():
            mark = r"\checkmark" if row["proven"] == row["total"] else r"\times"
            rows.append(rf"\text{{{row['set']}}} & \text{{{row['family']}}} & {row['proven']}/{row['total']} & {mark}")
        body = r" \\ ".join(rows)
        return r"$\begin{array}{llrl}" + body + r"\end{array}$"


MAX_INSTANCES = 200_000  # of all formulas together: 784-30-10 has 23,910 Nielsen instances
MAX_SUM_TERMS = 20_000  # terms the sums of one instance expand to (lhs, rhs and assumption together)
MAX_TERMS = 500_000  # … of all instances of all formulas together


def _count_instances(instantiator, formula_set, formula, network, caps: tuple[int, int]) -> tuple[int, int]:
    """(instances, terms) of `formula` on `network`, or an InputError once either exceeds its cap (what is left of it).

    Walks the index ranges without instantiating anything and gives up after
    `cap` steps, so a range such as 2..10**9 costs no more than a small one.
    The terms are those its sums expand to, counted from their bounds
    (Instantiator.sum_terms) before anything is expanded, at least one per
    side: nested sums over wide layers are refused here, not after minutes.
    """
    where = f"formula set '{formula_set.id}', formula '{formula.id}'"
    ranges_text = ", ".join(f"{symbol} = {lo}..{hi}" for symbol, lo, hi in formula.ranges) or "no ranges"
    cap, term_cap = caps
    sides = (formula.lhs, formula.rhs, *(formula.assume[:2] if formula.assume else ()))

    def too_many() -> InputError:
        return InputError(
            f"too many instances on the network '{network.name}': more than {MAX_INSTANCES:,}, the limit "
            f"for all formulas together; narrow its ranges ({ranges_text})",
            where=where,
        )

    def at(env) -> str:
        return ", ".join(f"{k}={v}" for k, v in env.items()) or "its first index"

    steps = terms = 0

    def count_terms(env) -> None:
        nonlocal terms
        here = 0
        for side in sides:
            here += instantiator.sum_terms(side, env, MAX_SUM_TERMS - here)
            if here > MAX_SUM_TERMS:
                raise InputError(
                    f"at {at(env)} its sums expand to more than {MAX_SUM_TERMS:,} terms, the limit for one "
                    f"instance (MAX_SUM_TERMS): narrow the sums' bounds or nest fewer sums",
                    where=where,
                )
        terms += here
        if terms > term_cap:
            raise InputError(
                f"its instances and their sums make more than {MAX_TERMS:,} terms on the network "
                f"'{network.name}' (instances × terms of each, for all formulas together: the limit MAX_TERMS); "
                f"narrow its ranges ({ranges_text}) or its sums",
                where=where,
            )

    def walk(ranges, env) -> int:
        nonlocal steps
        if not ranges:
            count_terms(env)
            return 1
        (symbol, lo, hi), rest = ranges[0], ranges[1:]
        first, last = instantiator.integer(lo, env), instantiator.integer(hi, env)
        if last - first + 1 > cap:
            raise too_many()
        found = 0
        for value in range(first, last + 1):
            steps += 1
            if steps > cap:
                raise too_many()
            env[symbol] = value
            found += walk(rest, env)
        env.pop(symbol, None)
        return found

    env: dict = {}
    try:
        return walk(formula.ranges, env), terms
    except LookupError as exc:
        raise InputError(f"at {at(env)}: {exc.args[0] if exc.args else exc}", where=where) from None


def prove(
    network,
    sets,
    *,
    derivations: Derivations | None = None,
    budget: float = DEFAULT_BUDGET,
    seed: int = 0,
    progress=None,
) -> ProofReport:
    """Decide every instance of every formula of `sets` that applies to `network`."""
    from derive.proof.formulas import Instantiator

    if not budget > 0:
        raise InputError(f"the budget must be a positive number of seconds, not {budget}")
    start = time.perf_counter()
    derivations = derivations or Derivations(network)
    instantiator = Instantiator(network, derivations)
    prover = Prover(derivations, budget=budget, seed=seed)
    work = [(s, f) for s in sets for f in s.applicable(network)]
    total = terms = 0
    for formula_set, formula in work:
        found, made = _count_instances(
            instantiator, formula_set, formula, network, (MAX_INSTANCES - total, MAX_TERMS - terms)
        )
        total, terms = total + found, terms + made
    bar = progress(total) if progress else None
    results = []
    for formula_set, formula in work:
        assumption = tuple(text for text in ((formula.assume[2] if formula.assume else ""), formula.note) if text)
        instances = instantiator.instances(formula, budget=budget)
        while True:  # the budget of each instance covers building it (its sums) and deciding it
            started = time.perf_counter()
            instance = next(instances, None)
            if instance is None:
                break
            if instance.unfinished:
                verdict = Verdict("undecided", instance.unfinished, budget, assumptions=assumption)
            else:
                verdict = prover.decide(instance.lhs, instance.rhs, instance.assume, assumption, started + budget)
            results.append(
                InstanceResult(
                    formula_set.id, formula.id, formula.family, instance.indices, instance.lhs, instance.rhs, verdict
                )
            )
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return ProofReport(network, derivations, list(sets), results, time.perf_counter() - start)
