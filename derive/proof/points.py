"""Evidence points: concrete stand-ins for the generic functions, random points, and counterexamples.

A point gives every leaf an exact rational value and σ, C concrete
polynomial stand-ins; the sides are compared there in exact rational
arithmetic, or with interval enclosures where a transcendental function
appears. A difference certified either way is a counterexample.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.graph.numeric import Evaluator, ExactArithmetic, IntervalArithmetic, NotExact


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


class EvidencePoint:
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
class SearchOutcome:
    """What one counterexample search found."""

    counterexample: Counterexample | None = None
    agreed: int = 0
    skipped: Counter = field(default_factory=Counter)  # why points could not be evaluated ↦ how many
    timed_out: bool = False


def skip_reason(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "a value too large to evaluate"
    if isinstance(exc, NotExact):
        return "an assumption's value is not rational"
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text
