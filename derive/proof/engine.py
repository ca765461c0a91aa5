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

import math
import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.derivation import Derivations
from derive.errors import InputError
from derive.proof.numeric import (
    NOT_REAL,
    UNDEFINED,
    ExactArithmetic,
    Evaluator,
    Indeterminate,
    IntervalArithmetic,
    NotExact,
    OutOfTime,
    to_float,
)

Status = Literal["proven", "refuted", "undecided"]

DEFAULT_BUDGET = 5.0
STRUCTURAL_STEPS = 60
IN_PROCESS_SIZE = 400  # expressions up to this many nodes are cancelled without a child process
WRITTEN_OUT = ", with the activations written out (net inputs kept as variables)"
IN_PROCESS_TERMS = 2_000  # … and only when expanding them makes at most this many terms
EVIDENCE_SHARE = 0.1  # of the budget, kept for the evidence points after the algebra
PROBE_POINTS = 3
EVIDENCE_POINTS = 12

# Concrete stand-ins for the generic functions in counterexamples. Rational
# coefficients keep every value exact. A claim "for every σ" that fails for one
# polynomial σ is refuted; the quadratic comes first because values grow less
# through the layers, the cubic is tried on later points. The cost is not
# separable, so that a formula missing a cross term is caught.


@dataclass(frozen=True)
class Polynomial:
    """c0 + c1 t + c2 t² + … with rational coefficients."""

    coefficients: tuple[Fraction, ...]

    def __call__(self, arith, t):
        result = arith.lift(self.coefficients[-1])
        for c in reversed(self.coefficients[:-1]):
            result = result * t + arith.lift(c)
        return result

    def derivative(self) -> "Polynomial":
        cs = tuple(k * c for k, c in enumerate(self.coefficients))[1:] or (Fraction(0),)
        return Polynomial(cs)

    @property
    def text(self) -> str:
        return str(sp.Poly([sp.Rational(c.numerator, c.denominator) for c in reversed(self.coefficients)], sp.Symbol("t")).as_expr())


SIGMA_STAND_INS = (
    Polynomial((Fraction(1, 3), Fraction(1, 2), Fraction(1, 7))),
    Polynomial((Fraction(1, 7), Fraction(1, 2), Fraction(0), Fraction(1, 5))),
)
COST_TEXT = "sum_i i/(i+2) * a_i**3/3 + (sum_i a_i)**2/7"


def _cost(arith, value, args):
    a = [value(x) for x in args]
    total = sum(a[1:], a[0])
    result = total**2 / 7
    for i, ai in enumerate(a, start=1):
        result = result + ai**3 * i / (3 * (i + 2))
    return result


def _cost_partial(arith, value, args):
    i = int(args[0])
    a = [value(x) for x in args[1:]]
    total = sum(a[1:], a[0])
    return a[i - 1] ** 2 * i / (i + 2) + 2 * total / 7


def substitutes(sigma: Polynomial = SIGMA_STAND_INS[0]) -> dict:
    """Evaluator stand-ins for every generic function, with σ the given polynomial."""
    derivatives = [sigma, sigma.derivative(), sigma.derivative().derivative()]

    def apply(p):
        return lambda arith, value, args: p(arith, value(args[0]))

    return {
        fn.sigma: apply(derivatives[0]),
        fn.sigma_prime: apply(derivatives[1]),
        fn.sigma_second: apply(derivatives[2]),
        fn.cost: _cost,
        fn.cost_partial: _cost_partial,
    }


SUBSTITUTES = substitutes()


@dataclass(frozen=True)
class Counterexample:
    """A point at which the two sides differ, with both values."""

    point: Mapping[str, str]  # leaf name ↦ exact value, such as "-3/7"
    functions: Mapping[str, str]  # generic function, as "sigma(t)", ↦ the concrete one used
    lhs: str
    rhs: str
    certified_by: str  # "exact rational arithmetic" or "interval arithmetic (256 bits)"

    def to_dict(self) -> dict:
        return {
            "point": dict(self.point),
            "functions": dict(self.functions),
            "lhs": self.lhs,
            "rhs": self.rhs,
            "certified_by": self.certified_by,
        }


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
        self._pool: list[_Point] = []
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
                return _levels("identical canonical forms", level)
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
            return _levels("the difference is 0 in canonical form", level)
        if _size(difference, IN_PROCESS_SIZE) < IN_PROCESS_SIZE and not self._adjoints_in(difference):
            if _cancels(difference, assume, limit=IN_PROCESS_TERMS):
                return _levels("cancel() reduced the difference to 0", level)
            written = self._written_out(difference)
            if written is not None and _size(written, IN_PROCESS_SIZE) < IN_PROCESS_SIZE:
                if _cancels(written, assume, limit=IN_PROCESS_TERMS):
                    return _levels("cancel() reduced the difference to 0", level) + WRITTEN_OUT
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
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_algebra_child, args=(self, lhs, rhs, assume, send), daemon=True)
        child.start()
        send.close()
        try:
            if receive.poll(budget):
                return receive.recv()
            return f"undecided within the budget of {self.budget:g} s"
        except EOFError:
            return "the symbolic step failed"
        finally:
            if child.is_alive():
                child.kill()
            child.join()
            receive.close()

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

    def _search(self, lhs, rhs, assume, points: int, deadline: float) -> "_Found":
        found = _Found()
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
                found.skipped[_skip_reason(exc)] += 1
                continue
            if counterexample:
                found.counterexample = counterexample
                return found
            found.agreed += agrees
        return found

    def _sigma_for(self, attempt: int) -> Polynomial:
        return SIGMA_STAND_INS[0] if attempt <= 2 else SIGMA_STAND_INS[attempt % len(SIGMA_STAND_INS)]

    def _pooled(self, index: int) -> "_Point":
        while len(self._pool) <= index:
            values = {x: self._random_value(x) for x in self.network.leaves}
            self._pool.append(_Point(values, self._sigma_for(len(self._pool) + 1), self.derivations.definition))
        return self._pool[index]

    def _compare_pooled(self, lhs, rhs, point: "_Point", deadline: float | None = None):
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
        point = _Point(values, self._sigma_for(attempt), self.derivations.definition)
        left, right, certified, differ = point.compare(lhs, rhs, deadline)
        if not differ:
            return None, 1
        return self._counterexample(lhs, rhs, values, point.sigma, left, right, certified), 0

    def _counterexample(self, lhs, rhs, values, sigma, left, right, certified) -> Counterexample:
        shown_leaves = set(self._leaves_needed(lhs, rhs, {}))
        shown = {
            x.name: _exact_text(v)
            for x, v in sorted(values.items(), key=lambda kv: kv[0].name)
            if x in shown_leaves or x not in self.network.position
        }
        functions = {}
        if self._uses(lhs, rhs, fn.sigma):
            functions["sigma(t)"] = sigma.text
        if self._uses(lhs, rhs, fn.cost):
            functions["C(a_1, ..., a_n)"] = COST_TEXT
        return Counterexample(shown, functions, _value_text(left), _value_text(right), certified)

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


class _Point:
    """One random point: exact leaf values, the σ stand-in, and cached evaluations (exact, then interval)."""

    def __init__(self, values: dict, sigma: Polynomial, definitions):
        self.values = values
        self.sigma = sigma
        stand_ins = substitutes(sigma)
        self.exact = Evaluator(ExactArithmetic(), values, definitions, stand_ins)
        self.interval_arithmetic = IntervalArithmetic()
        self.interval = Evaluator(self.interval_arithmetic, values, definitions, stand_ins)

    def add(self, symbol: sp.Symbol, value: Fraction) -> None:
        if symbol not in self.values:
            self.values[symbol] = value
            self.exact.known[symbol] = value
            self.interval.known[symbol] = self.interval_arithmetic.lift(value)

    def compare(self, lhs, rhs, deadline: float | None = None):
        """(left, right, how they are certified, whether they differ for certain).

        Raises Indeterminate where a side is undefined (or too large) at this
        point, OutOfTime once `deadline` has passed.
        """
        self.exact.deadline = self.interval.deadline = deadline
        try:
            left, right = self.exact(lhs), self.exact(rhs)
            return left, right, "exact rational arithmetic", left != right
        except NotExact:  # a transcendental function, or an exact value too large: intervals
            pass
        left, right = self.interval(lhs), self.interval(rhs)
        difference = left - right
        certified = f"interval arithmetic ({self.interval_arithmetic.ctx.prec} bits)"
        return left, right, certified, bool(difference.a > 0 or difference.b < 0)


@dataclass
class _Found:
    """What one counterexample search found."""

    counterexample: Counterexample | None = None
    agreed: int = 0
    skipped: Counter = field(default_factory=Counter)  # why points could not be evaluated ↦ how many
    timed_out: bool = False


def _skip_reason(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "a value too large to evaluate"
    if isinstance(exc, NotExact):
        return "an assumption's value is not rational"
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text


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


def _expanded_terms(expr: sp.Expr, cap: int = IN_PROCESS_TERMS) -> int:
    """An upper bound, counting no further than cap + 1, on the terms `expand` and `together` make of expr.

    A power of a sum with n terms to the k has at most C(n+k-1, k) terms
    (the monomials of degree k); products multiply; a sum over a common
    denominator multiplies its numerators by every other term's denominator;
    the arguments of functions (exp, σ, …) are expanded too.
    """
    over = cap + 1
    memo: dict[sp.Basic, int] = {}
    inner = 0  # terms made inside function arguments and non-integer powers

    def power_terms(base, k: int) -> int:
        t = terms(base)
        if t <= 1:
            return 1
        return over if k > 4 * over else min(over, math.comb(t + k - 1, k))

    def terms(e) -> int:
        nonlocal inner
        if not e.args:
            return 1
        found = memo.get(e)
        if found is not None:
            return found
        if e.is_Add:
            numerators, denominators = 0, {}
            for term in e.args:
                numerator = 1
                for factor in sp.Mul.make_args(term):
                    if factor.is_Pow and factor.exp.is_Integer and factor.exp < 0:
                        denominators[factor] = terms(factor)
                    else:
                        numerator = min(over, numerator * terms(factor))
                numerators = min(over, numerators + numerator)
            n = numerators
            for count in denominators.values():
                n = min(over, n * count)
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(over, n * terms(a))
        elif e.is_Pow and e.exp.is_Integer:
            n = power_terms(e.base, abs(int(e.exp)))
        elif e.is_Pow:
            n = 1
            inner = min(over, inner + terms(e.base) + terms(e.exp))
        else:
            n = 1
            for a in e.args:
                inner = min(over, inner + terms(a))
        memo[e] = n
        return n

    return min(over, terms(expr) + inner)


CHILD_MEMORY = 2 << 30  # bytes the algebra child may add to what it inherits


def _limit_memory(extra: int = CHILD_MEMORY) -> None:
    """Cap this process's address space at its present size plus `extra`: an expansion too large fails
    with MemoryError (reported as a failed step) instead of exhausting the machine before the deadline."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        wanted = size + extra
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        if soft == resource.RLIM_INFINITY or wanted < soft:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    except (ImportError, OSError, ValueError):  # not Linux: the deadline alone bounds the child
        pass


def _algebra_child(prover: Prover, lhs, rhs, assume, send) -> None:
    """In the child: cancel at every expansion level, then simplify; report the first zero."""
    _limit_memory()
    try:
        for level, how, difference in prover.expansion_levels(lhs, rhs, assume):
            if _cancels(difference, assume):
                send.send("proven: " + _levels("cancel() reduced the difference to 0", level) + how)
                return
        last = _exp_generators(difference.xreplace(assume) if assume else difference)
        if sp.simplify(last) == 0:
            send.send("proven: simplify() reduced the fully expanded difference to 0")
            return
        send.send("no symbolic simplification reached zero")
    except Exception as exc:  # a failure in SymPy is reported, never raised into the parent
        send.send(f"the symbolic step failed ({type(exc).__name__})")
    finally:
        send.close()


def _cancels(difference: sp.Expr, assume: Mapping, limit: int | None = None) -> bool:
    """Whether expand or cancel reduces the difference to 0.

    With a `limit` (in the main process, without a deadline), False without
    trying when expanding or bringing it over a common denominator could
    make more than `limit` terms: the child process, which has a deadline,
    tries it then.
    """
    if assume:
        difference = difference.xreplace(assume)
    if difference == 0:
        return True
    if limit is not None and _expanded_terms(difference, limit) > limit:  # before exp arguments are expanded
        return False
    normal = _exp_generators(difference)
    if limit is not None and _expanded_terms(normal, limit) > limit:  # σ, tanh as fractions of generators
        return False
    if _surely_nonzero(normal):  # cancel could not reach 0: do not spend the time
        return False
    # A polynomial difference is zero exactly when it expands to 0, and expand is
    # far cheaper than together() on large sums; rational ones need cancel().
    if sp.expand(normal) == 0:
        return True
    return sp.cancel(sp.together(normal)) == 0


FILTER_MAX_EXPONENT = 256


def _surely_nonzero(normal: sp.Expr) -> bool:
    """Whether `normal`, as a function of its symbols, is certainly not identically 0: a quick filter before cancel.

    Every symbol gets an exact rational value that its assumptions allow
    (a positive one; a positive integer for an integer symbol). Where the
    result is a rational number (no σ, no exp of a constant left) and is
    not 0, the rational function is not identically 0, so neither expand
    nor cancel can reduce it to 0. Anything else (0, an undefined value, an
    opaque atom such as sigma(3/7)) says nothing: True only for certain.
    This never proves anything; it only spares cancel() a doomed search,
    which can take many seconds on a rational function of exponentials.
    """
    if any(not p.exp.is_Number or abs(p.exp) > FILTER_MAX_EXPONENT for p in normal.atoms(sp.Pow)):
        return False  # x**(10**9) at a rational point: a number too large to compute for a mere filter
    rng = random.Random(len(normal.free_symbols))
    values = {}
    for x in normal.free_symbols:
        if x.is_nonpositive or x.is_rational is False or x.is_algebraic is False:
            return False  # assumptions a positive rational cannot meet
        if x.is_integer:
            if x.is_even is not None or x.is_prime is not None:
                return False
            values[x] = sp.Integer(rng.randint(1, 9))
        else:  # odd over even: positive, never an integer (for a symbol assumed not to be one)
            values[x] = sp.Rational(2 * rng.randint(1, 48) + 1, 2 * rng.randint(1, 44))
    try:
        value = normal.xreplace(values)
    except (ZeroDivisionError, ArithmeticError, TypeError, ValueError):
        return False
    return bool(value.is_Rational and value != 0)


_generators: dict[sp.Expr, sp.Symbol] = {}


def _exp_generators(expr: sp.Expr) -> sp.Expr:
    """Rewrite σ, tanh and softmax through exp, then each exp(c·m) as G_m**c with one symbol G_m per monomial m.

    Exponentials of distinct monomials are algebraically independent, and
    treating them as independent generators is sound in any case: an identity
    in the generators holds at their actual values. `cancel` then decides
    rational identities in them.
    """
    forms = registry.EXP_FORMS  # σ, tanh, softmax, …: registry.py
    rewritten = expr.replace(lambda e: type(e) in forms, lambda e: forms[type(e)](e))

    def generator(e):
        argument = sp.expand(e.args[0])
        factors = []
        for term in sp.Add.make_args(argument):
            coefficient, monomial = term.as_coeff_Mul()
            if monomial == 1:
                factors.append(sp.exp(coefficient))
                continue
            g = _generators.get(monomial)
            if g is None:
                g = sp.Dummy(f"exp_{len(_generators)}", positive=True)
                _generators[monomial] = g
            factors.append(g**coefficient)
        return sp.Mul(*factors)

    return rewritten.replace(lambda e: isinstance(e, sp.exp), generator)


def _size(expr: sp.Expr, limit: int) -> int:
    """The number of nodes of an expression tree, counting no further than `limit`."""
    count = 0
    stack = [expr]
    while stack and count < limit:
        e = stack.pop()
        count += 1
        stack.extend(e.args)
    return count


def _levels(what: str, level: int) -> str:
    if level == 0:
        return what
    return f"{what} after {level} level{'s' if level > 1 else ''} of substitution"


def _exact_text(value) -> str:
    if isinstance(value, Fraction):
        return str(value)
    return _value_text(value)


def _value_text(value) -> str:
    if isinstance(value, Fraction):
        if value.denominator == 1 and value.numerator.bit_length() <= 1000 or len(str(value)) <= 24:
            return str(value)
        try:
            return f"{float(value):.15g}"
        except OverflowError:  # beyond a double: a decimal exponent of our own
            digits = len(str(abs(value.numerator))) - len(str(value.denominator))
            return f"{'-' if value < 0 else ''}about 10^{digits}"
    low, high = getattr(value, "a", None), getattr(value, "b", None)
    if low is not None and high is not None:
        mid = to_float(value)
        width = float(high - low)
        if not width <= 1e-12 * abs(mid):  # a wide enclosure (a value widened to a bound): show both ends
            return f"within [{float(low.mid):.6g}, {float(high.mid):.6g}]"
        return f"{mid:.15g}"
    return f"{to_float(value):.15g}"


# ---------------------------------------------------------------------------
# Writing many results: one printer, JSON in linear time
# ---------------------------------------------------------------------------


def shared_text():
    """A function that prints expressions exactly as str() does, for many expressions at less cost.

    One printer serves every call (str() builds one per expression); a name
    is its own text; a product of plain names is its factors in the printer's
    order (sort_key) joined by "*", which is what StrPrinter._print_Mul makes
    of it, without the printer's per-node dispatch.
    """
    from sympy.printing.str import StrPrinter

    printer = StrPrinter()
    symbol = sp.Symbol

    def text(expr) -> str:
        kind = type(expr)
        if kind is symbol:
            return expr.name
        if kind is sp.Mul and all(type(a) is symbol for a in expr.args):
            return "*".join(a.name for a in sorted(expr.args, key=_sort_key))
        return printer.doprint(expr)

    return text


def _sort_key(expr):
    return expr.sort_key()


# ---------------------------------------------------------------------------
# Proving formula sets on a network
# ---------------------------------------------------------------------------


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
