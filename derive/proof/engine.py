"""The proof engine: decide `lhs = rhs` under a network's definitions.

Verdicts, and what each one means:

* `proven`: an exact symbolic argument reached zero. The first attempts
  treat node symbols (z, a, …) and adjoint symbols (D(C, v)) as independent
  variables; an identity that holds for independent variables holds in
  particular for their defined values, so this is sound. If the difference
  does not vanish, definitions are substituted one level at a time (the
  adjoints nearest the inputs first, then nodes nearest the cost), and
  `cancel` is tried at each level, with exponentials turned into
  independent generators. Generic functions (σ, C) stay opaque atoms, so a
  proof holds for every σ.
* `refuted`: a counterexample, a point where every leaf has an exact
  rational value and every node its defined value, at which the two sides
  differ beyond doubt: in exact rational arithmetic (generic functions
  replaced by polynomials with rational coefficients), or with disjoint
  interval enclosures (sigmoid, tanh, exp, log).
* `undecided`: neither within the time budget; the verdict says at how many
  random points the sides agreed: evidence, never a proof. Where no point
  could be evaluated (a side undefined there, or too large), it says why.

The budget bounds the whole decision, not only the algebra: anything that
may take long (cancelling large expressions, `simplify`) runs in a child
process that is killed at the deadline; the in-process steps are bounded by
size (an expression whose expansion could be large goes to the child), and
numeric evaluation stops at the deadline (see numeric.py for the bounds on
each single operation).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.derivation import Derivations
from derive.proof.algebra import _cancels, after_levels, algebra_in_child
from derive.graph.numeric import NOT_REAL, UNDEFINED, Evaluator, ExactArithmetic, Indeterminate, NotExact, OutOfTime
from derive.proof.points import (
    COST_TEXT,
    SIGMA_STAND_INS,
    Counterexample,
    EvidencePoint,
    Polynomial,
    SearchOutcome,
    skip_reason,
)
from derive.proof.text import exact_text, value_text

Status = Literal["proven", "refuted", "undecided"]

DEFAULT_BUDGET = 5.0
STRUCTURAL_STEPS = 60
IN_PROCESS_SIZE = 400  # expressions up to this many nodes are cancelled without a child process
WRITTEN_OUT = ", with the activations written out (net inputs kept as variables)"
IN_PROCESS_TERMS = 2_000  # … and only when expanding them makes at most this many terms
EVIDENCE_SHARE = 0.1  # of the budget, kept for the evidence points after the algebra
PROBE_POINTS = 3
EVIDENCE_POINTS = 12


@dataclass(frozen=True)
class Verdict:
    status: Status
    method: str
    seconds: float = 0.0
    counterexample: Counterexample | None = None
    agreeing_points: int = 0
    assumptions: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "verdict": self.status,
            "method": self.method,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "agreeing_points": self.agreeing_points,
            "assumptions": list(self.assumptions),
            "seconds": round(self.seconds, 6),
        }


@dataclass
class Prover:
    """Decides identities over one network's derivations. One per network; reuse it."""

    derivations: Derivations
    budget: float = DEFAULT_BUDGET
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._pool: list[EvidencePoint] = []
        self.network = self.derivations.network
        # A wrong routing through a max pool shows only where its unit is the
        # window's maximum, at about one random point in four: look at more
        # (pooled points make each one cheap), so that 0.75**24 < 0.1 % of
        # such errors reach the slow algebra before their counterexample.
        max_pool = self.network.facts.get("pool") == "max"
        self.probe_points = 24 if max_pool else PROBE_POINTS
        self.evidence_points = EVIDENCE_POINTS * (5 if max_pool else 1)
        self._activation_map: dict | None = None

    # -- the decision ---------------------------------------------------------------
    def decide(
        self,
        lhs: sp.Expr,
        rhs: sp.Expr,
        assume: Mapping[sp.Symbol, sp.Expr] | None = None,
        assumption_text: tuple[str, ...] = (),
        deadline: float | None = None,
    ) -> Verdict:
        """Decide lhs = rhs within the budget (and before `deadline`, a time.perf_counter() value, if given)."""
        start = time.perf_counter()
        limit = start + self.budget if deadline is None else min(start + self.budget, deadline)
        assume = dict(assume or {})

        def verdict(status: Status, method: str, **extra) -> Verdict:
            return Verdict(status, method, time.perf_counter() - start, assumptions=assumption_text, **extra)

        proof = self._structural(lhs, rhs, assume)
        if proof:
            return verdict("proven", proof)

        undefined = _undefined_everywhere(lhs, rhs, assume)
        if undefined:
            return verdict("undecided", f"{undefined}: the sides cannot be compared at any point")

        probe = self._search(lhs, rhs, assume, self.probe_points, limit)
        if probe.counterexample:
            return verdict("refuted", "counterexample", counterexample=probe.counterexample)

        reserve = EVIDENCE_SHARE * (limit - start)
        proof = self._algebraic(lhs, rhs, assume, limit - reserve - time.perf_counter())
        if proof and proof.startswith("proven"):
            return verdict("proven", proof.removeprefix("proven: "))

        evidence = self._search(lhs, rhs, assume, self.evidence_points, limit)
        if evidence.counterexample:
            return verdict("refuted", "counterexample", counterexample=evidence.counterexample)
        why = proof or "no symbolic simplification reached zero"
        agreed = probe.agreed + evidence.agreed
        skipped = probe.skipped + evidence.skipped
        tried = agreed + sum(skipped.values())
        if agreed == 0 and skipped:
            reason, _ = skipped.most_common(1)[0]
            evidence_text = f"the sides could not be evaluated at any of the {tried} random points tried: {reason}"
        elif agreed == 0 and (probe.timed_out or evidence.timed_out):
            evidence_text = f"the budget of {self.budget:g} s ran out before the sides were evaluated at any point"
        else:
            evidence_text = f"the sides agreed at {agreed} random points (evidence, not a proof)"
            if skipped:
                reason, _ = skipped.most_common(1)[0]
                evidence_text += f"; {tried - agreed} other points could not be evaluated ({reason})"
        return verdict("undecided", f"{why}; {evidence_text}", agreeing_points=agreed)

    # -- step 1: canonical forms, expanding the chain rule one level at a time ---------
    def _structural(self, lhs, rhs, assume) -> str | None:
        """Cheap and bounded: SymPy's canonical form after each level of adjoint expansion."""
        if assume:
            lhs, rhs = lhs.xreplace(assume), rhs.xreplace(assume)
        for level in range(STRUCTURAL_STEPS):
            if lhs == rhs:
                return after_levels("identical canonical forms", level)
            nxt = self._expand_adjoints(lhs, rhs)
            if nxt is None:
                break
            lhs, rhs = nxt
            if assume:
                lhs, rhs = lhs.xreplace(assume), rhs.xreplace(assume)
            # each count stops at its limit, so the limits are twice the sum's: (400 + 400 > 800 never held)
            if _size(lhs, 2 * IN_PROCESS_SIZE) + _size(rhs, 2 * IN_PROCESS_SIZE) > 2 * IN_PROCESS_SIZE:
                break
        difference = lhs - rhs
        if difference == 0:
            return after_levels("the difference is 0 in canonical form", level)
        if _size(difference, IN_PROCESS_SIZE) < IN_PROCESS_SIZE and not self._adjoints_in(difference):
            if _cancels(difference, assume, limit=IN_PROCESS_TERMS):
                return after_levels("cancel() reduced the difference to 0", level)
            written = self._written_out(difference)
            if written is not None and _size(written, IN_PROCESS_SIZE) < IN_PROCESS_SIZE:
                if _cancels(written, assume, limit=IN_PROCESS_TERMS):
                    return after_levels("cancel() reduced the difference to 0", level) + WRITTEN_OUT
        return None

    def _written_out(self, expr: sp.Expr) -> sp.Expr | None:
        """expr with every activation node replaced by its definition, net inputs kept free; None if it has none.

        An activation node is one defined by other nodes alone: a = σ(z),
        a = 1/(1 + exp(−z)), (e^z − e^−z)/(e^z + e^−z), a softmax
        exp(z_i)/Σ_k exp(z_k). Replacing a node by its definition is an
        identity, and the nodes left (the net inputs) are treated as free
        variables, which is sound. Then both sides are rational in the
        exponentials of the net inputs whichever way the activation is
        spelled (σ and tanh are rewritten through exp too), and `cancel`
        decides them: a spelled-out logistic's local derivative,
        e^−z/(1 + e^−z)², meets the textbook's a(1 − a) there.
        """
        mapping = self._activations()
        changed = False
        for _ in range(len(mapping)):  # an activation of an activation: one more round
            used = {x: mapping[x] for x in expr.free_symbols if x in mapping}
            if not used:
                break
            expr = expr.xreplace(used)
            changed = True
        return expr if changed else None

    def _activations(self) -> dict[sp.Symbol, sp.Expr]:
        """The activation nodes (see _written_out) ↦ their definitions."""
        if self._activation_map is None:
            definitions = self.network.definitions
            self._activation_map = {
                node: e for node, e in definitions.items()
                if e.free_symbols and all(x in definitions for x in e.free_symbols)
            }
        return self._activation_map

    def _adjoints_in(self, expr: sp.Expr) -> list[sp.Symbol]:
        info = self.derivations.adjoint_info
        return [s for s in expr.free_symbols if info(s) is not None]

    def _expand_adjoints(self, *sides):
        """Replace the adjoints farthest from their quantity (deepest in the backward pass) by their definitions."""
        found = set()
        for side in sides:
            found.update(self._adjoints_in(side))
        if not found:
            return None
        depth = {}
        for s in found:
            derivation, wrt = self.derivations.adjoint_info(s)
            depth[s] = derivation.backward_depth.get(wrt, 0)
        deepest = max(depth.values())
        mapping = {s: self.derivations.definition(s) for s, d in depth.items() if d == deepest}
        return tuple(side.xreplace(mapping) for side in sides)

    # -- step 2: full algebra, in a child process with a deadline ---------------------
    def _algebraic(self, lhs, rhs, assume, budget: float) -> str | None:
        if budget <= 0:
            return f"the budget of {self.budget:g} s was spent before the algebra"
        return algebra_in_child(self, lhs, rhs, assume, budget)

    def expansion_levels(self, lhs, rhs, assume):
        """Successively expanded forms of lhs − rhs, as (level, how, difference).

        Adjoints first; then, once, the activations written out (`how` is
        WRITTEN_OUT, else ""); then nodes nearest the cost.
        """
        sides = (lhs, rhs)
        level = 0
        while True:
            yield level, "", sides[0] - sides[1]
            nxt = self._expand_adjoints(*sides)
            if nxt is None:
                break
            sides = nxt
            level += 1
        written = self._written_out(sides[0] - sides[1])
        if written is not None:
            yield level, WRITTEN_OUT, written
        network = self.network
        while True:
            nodes = {s for side in sides for s in side.free_symbols if s in network.definitions}
            if not nodes:
                break
            deepest = max(network.depth[s] for s in nodes)
            mapping = {s: network.definitions[s] for s in nodes if network.depth[s] == deepest}
            sides = tuple(side.xreplace(mapping) for side in sides)
            level += 1
            yield level, "", sides[0] - sides[1]

    # -- counterexamples ------------------------------------------------------------
    def search(self, lhs, rhs, assume, points: int, deadline: float | None = None) -> tuple[Counterexample | None, int]:
        """Look for a point where the sides differ for certain; count the points where they agree.

        Without an assumption the points come from a pool shared by every
        identity this prover decides: each point's node and derivative values
        are computed once, so many instances (or many points) cost little more
        than one. The search ends at `deadline` (default: one budget from now).
        """
        if deadline is None:
            deadline = time.perf_counter() + self.budget
        found = self._search(lhs, rhs, assume, points, deadline)
        return found.counterexample, found.agreed

    def _search(self, lhs, rhs, assume, points: int, deadline: float) -> "SearchOutcome":
        found = SearchOutcome()
        attempts = 0
        extras = [
            x for x in (lhs.free_symbols | rhs.free_symbols)
            if x not in self.network.position and self.derivations.definition(x) is None
        ]
        while found.agreed < points and attempts < 4 * points:
            if time.perf_counter() > deadline:
                found.timed_out = True
                break
            attempts += 1
            try:
                if assume:
                    counterexample, agrees = self._compare_fresh(lhs, rhs, assume, attempts, deadline)
                else:
                    point = self._pooled(attempts - 1)
                    for x in extras:
                        point.add(x, self._random_value(x))
                    counterexample, agrees = self._compare_pooled(lhs, rhs, point, deadline)
            except OutOfTime:
                found.timed_out = True
                break
            except (Indeterminate, NotExact, ZeroDivisionError, OverflowError, ValueError) as exc:
                found.skipped[skip_reason(exc)] += 1
                continue
            if counterexample:
                found.counterexample = counterexample
                return found
            found.agreed += agrees
        return found

    def _sigma_for(self, attempt: int) -> Polynomial:
        return SIGMA_STAND_INS[0] if attempt <= 2 else SIGMA_STAND_INS[attempt % len(SIGMA_STAND_INS)]

    def _pooled(self, index: int) -> "EvidencePoint":
        while len(self._pool) <= index:
            values = {x: self._random_value(x) for x in self.network.leaves}
            self._pool.append(EvidencePoint(values, self._sigma_for(len(self._pool) + 1), self.derivations.definition))
        return self._pool[index]

    def _compare_pooled(self, lhs, rhs, point: "EvidencePoint", deadline: float | None = None):
        left, right, certified, differ = point.compare(lhs, rhs, deadline)
        if not differ:
            return None, 1
        return self._counterexample(lhs, rhs, point.values, point.sigma, left, right, certified), 0

    def _compare_fresh(self, lhs, rhs, assume, attempt: int, deadline: float | None = None):
        leaves = self._leaves_needed(lhs, rhs, assume)
        values = {x: self._random_value(x) for x in leaves if x not in assume}
        solve = Evaluator(ExactArithmetic(), values, lambda x: None)
        solve.deadline = deadline
        for x, value in assume.items():
            values[x] = solve(value)
        point = EvidencePoint(values, self._sigma_for(attempt), self.derivations.definition)
        left, right, certified, differ = point.compare(lhs, rhs, deadline)
        if not differ:
            return None, 1
        return self._counterexample(lhs, rhs, values, point.sigma, left, right, certified), 0

    def _counterexample(self, lhs, rhs, values, sigma, left, right, certified) -> Counterexample:
        shown_leaves = set(self._leaves_needed(lhs, rhs, {}))
        shown = {
            x.name: exact_text(v)
            for x, v in sorted(values.items(), key=lambda kv: kv[0].name)
            if x in shown_leaves or x not in self.network.position
        }
        functions = {}
        if self._uses(lhs, rhs, fn.sigma):
            functions["sigma(t)"] = sigma.text
        if self._uses(lhs, rhs, fn.cost):
            functions["C(a_1, ..., a_n)"] = COST_TEXT
        return Counterexample(shown, functions, value_text(left), value_text(right), certified)

    def _leaves_needed(self, lhs, rhs, assume) -> list[sp.Symbol]:
        needed: set[sp.Symbol] = set()
        seen: set[sp.Symbol] = set()
        stack = [*lhs.free_symbols, *rhs.free_symbols]
        for value in assume.values():
            stack.extend(value.free_symbols)
        stack.extend(assume)
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            definition = self.derivations.definition(s)
            if definition is None:
                needed.add(s)
            else:
                stack.extend(definition.free_symbols)
        return sorted(needed, key=lambda s: s.name)

    def _random_value(self, s: sp.Symbol) -> Fraction:
        rng = self._rng
        if s in self.network.constants:
            return Fraction(rng.randint(1, 9), rng.randint(1, 4))
        if s in self.network.targets:
            return Fraction(rng.randint(-3, 12), 10)
        numerator = rng.choice([n for n in range(-9, 10) if n != 0])
        return Fraction(numerator, rng.randint(2, 9))

    def _uses(self, lhs, rhs, func) -> bool:
        related = {func}
        if func is fn.sigma:
            related |= {fn.sigma_prime, fn.sigma_second}
        if func is fn.cost:
            related |= {fn.cost_partial}
        stack = [lhs, rhs]
        seen = set()
        while stack:
            expr = stack.pop()
            if any(expr.atoms(f) for f in related):
                return True
            for s in expr.free_symbols:
                if s not in seen:
                    seen.add(s)
                    definition = self.derivations.definition(s)
                    if definition is not None:
                        stack.append(definition)
        return False


_NON_REAL_ATOMS = (
    (sp.I, f"contains I = sqrt(-1): {NOT_REAL}"),
    (sp.zoo, f"contains zoo, complex infinity: {UNDEFINED}"),
    (sp.nan, "contains nan, an undefined value such as 0/0"),
    (sp.oo, "contains an infinity"),
    (-sp.oo, "contains an infinity"),
)


def _undefined_everywhere(lhs, rhs, assume) -> str | None:
    """Why the identity has no real value at any point (a side holds I, zoo, nan or oo), or None."""
    sides = [("the left side", lhs), ("the right side", rhs)]
    sides += [(f"the assumption on {x}", v) for x, v in assume.items()]
    for which, expr in sides:
        if not isinstance(expr, sp.Basic):
            continue
        for atom, why in _NON_REAL_ATOMS:
            if expr.has(atom):
                return f"{which} {why}"
    return None


def _size(expr: sp.Expr, limit: int) -> int:
    """The number of nodes of an expression tree, counting no further than `limit`."""
    count = 0
    stack = [expr]
    while stack and count < limit:
        e = stack.pop()
        count += 1
        stack.extend(e.args)
    return count
