"""Evaluate SymPy expressions at a point: exactly, in certified intervals, or approximately.

The prover needs numbers it can trust: a counterexample must show two values
that differ beyond doubt. Rational arithmetic (`fractions.Fraction`) is exact;
where a transcendental function appears, interval arithmetic (mpmath's, at a
few hundred bits) gives an enclosure, and two values differ for certain when
their enclosures are disjoint. The approximate context (mpmath at 50 digits)
serves display: the `[values]` point of a spec, the numbers of a report.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Mapping

import mpmath
import sympy as sp
from mpmath.ctx_iv import MPIntervalContext

from . import functions as fn


class NotExact(Exception):
    """The exact context met a function whose value is not rational (exp, log, …)."""


class Indeterminate(Exception):
    """A branch (max, step) or a domain (log, sqrt, 1/x) cannot be decided at this point."""


class ExactArithmetic:
    name = "exact"

    def lift(self, value):
        return value

    def number(self, value: sp.Number):
        if value.is_Rational:
            return Fraction(int(value.p), int(value.q))
        if value.is_Float:
            return Fraction(float(value))
        raise NotExact(str(value))

    def constant(self, name: str):
        raise NotExact(name)

    def power(self, base, exponent):
        if exponent.denominator != 1:
            raise NotExact("fractional power")
        if base == 0 and exponent < 0:
            raise Indeterminate("division by zero")
        return base ** int(exponent)

    def exp(self, x):
        if x == 0:
            return Fraction(1)
        raise NotExact("exp")

    def log(self, x):
        if x <= 0:
            raise Indeterminate("log of a non-positive number")
        if x == 1:
            return Fraction(0)
        raise NotExact("log")

    def sign(self, x) -> int:
        return (x > 0) - (x < 0)

    def choose(self, values, largest: bool):
        return max(values) if largest else min(values)

    def inverse(self, x):
        if x == 0:
            raise Indeterminate("division by zero")
        return 1 / x


class IntervalArithmetic:
    """Certified enclosures. Every operation rounds outwards."""

    name = "interval"

    def __init__(self, bits: int = 256):
        self.ctx = MPIntervalContext()
        self.ctx.prec = bits

    def lift(self, value):
        if isinstance(value, Fraction):
            return self.ctx.mpf(value.numerator) / self.ctx.mpf(value.denominator)
        return value

    def number(self, value: sp.Number):
        if value.is_Rational:
            return self.ctx.mpf(int(value.p)) / self.ctx.mpf(int(value.q))
        if value.is_Float:
            return self.lift(Fraction(float(value)))
        raise Indeterminate(f"number {value}")

    def constant(self, name: str):
        if name == "E":
            return self.ctx.e
        if name == "pi":
            return self.ctx.pi
        raise Indeterminate(name)

    def power(self, base, exponent: Fraction):
        if exponent.denominator == 1:
            if int(exponent) < 0:
                return self.inverse(base) ** (-int(exponent))
            return base ** int(exponent)
        if base.a <= 0:
            raise Indeterminate("fractional power of a number that may be ≤ 0")
        return self.ctx.exp(self.ctx.log(base) * self.lift(exponent))

    def exp(self, x):
        return self.ctx.exp(x)

    def log(self, x):
        if x.a <= 0:
            raise Indeterminate("log of a number that may be ≤ 0")
        return self.ctx.log(x)

    def sign(self, x) -> int:
        if x.a > 0:
            return 1
        if x.b < 0:
            return -1
        if x.a == 0 and x.b == 0:
            return 0
        raise Indeterminate("the sign of a value is not decided at this precision")

    def choose(self, values, largest: bool):
        # the max (min) of intervals, bound by bound
        lows = [v.a for v in values]
        highs = [v.b for v in values]
        pick = max if largest else min
        return self.ctx.mpf([pick(lows), pick(highs)])

    def inverse(self, x):
        if x.a <= 0 <= x.b:
            raise Indeterminate("division by a number that may be 0")
        return 1 / x


class ApproximateArithmetic:
    """mpmath floats at `digits` significant digits: for display, not for verdicts."""

    name = "approximate"

    def __init__(self, digits: int = 50):
        self.ctx = mpmath.MPContext()
        self.ctx.dps = digits

    def number(self, value: sp.Number):
        if value.is_Rational:
            return self.ctx.mpf(int(value.p)) / int(value.q)
        return self.ctx.mpf(float(value))

    def lift(self, value):
        if isinstance(value, Fraction):
            return self.ctx.mpf(value.numerator) / value.denominator
        return value

    def constant(self, name: str):
        return {"E": self.ctx.e, "pi": self.ctx.pi}[name]

    def power(self, base, exponent: Fraction):
        if exponent.denominator == 1:
            if base == 0 and exponent < 0:
                raise Indeterminate("division by zero")
            return base ** int(exponent)
        if base < 0:
            raise Indeterminate("fractional power of a negative number")
        return base ** self.lift(exponent)

    def exp(self, x):
        return self.ctx.exp(x)

    def log(self, x):
        if x <= 0:
            raise Indeterminate("log of a non-positive number")
        return self.ctx.log(x)

    def sign(self, x) -> int:
        return (x > 0) - (x < 0)

    def choose(self, values, largest: bool):
        return max(values) if largest else min(values)

    def inverse(self, x):
        if x == 0:
            raise Indeterminate("division by zero")
        return 1 / x


Arithmetic = ExactArithmetic | IntervalArithmetic | ApproximateArithmetic

# A concrete stand-in for a generic function: substitute(arith, value, args), where
# value(arg) evaluates one of the application's SymPy arguments.
Substitute = Callable[[object, Callable, tuple], object]


class Evaluator:
    """Evaluates expressions whose symbols are leaves (given) or defined (computed on demand).

    `definitions(symbol)` returns the defining expression of a symbol that is
    not a leaf (a network node, or an adjoint `D(C, v)`), or None.
    `substitutes` gives concrete functions for the generic ones (σ, C).
    """

    def __init__(
        self,
        arithmetic,
        leaves: Mapping[sp.Symbol, Fraction],
        definitions: Callable[[sp.Symbol], sp.Expr | None],
        substitutes: Mapping[type, Substitute] | None = None,
        ties: str = "refuse",
    ):
        self.arith = arithmetic
        # At a pooling window's tie, "refuse" (no derivative: the proof's convention)
        # or "first" (the first maximal element gets the gradient: PyTorch's).
        self.ties = ties
        self.definitions = definitions
        self.substitutes = dict(substitutes or {})
        self.known: dict[sp.Basic, object] = {}
        for symbol, value in leaves.items():
            self.known[symbol] = arithmetic.lift(Fraction(value))

    def __call__(self, expr: sp.Expr):
        self._resolve(expr)
        return self._eval(expr)

    def _resolve(self, expr: sp.Expr) -> None:
        """Compute every defined symbol `expr` needs, deepest first, without recursion."""
        pending = [s for s in expr.free_symbols if s not in self.known]
        while pending:
            symbol = pending[-1]
            if symbol in self.known:
                pending.pop()
                continue
            definition = self.definitions(symbol)
            if definition is None:
                raise KeyError(f"no value for {symbol}")
            missing = [s for s in definition.free_symbols if s not in self.known]
            if missing:
                pending.extend(missing)
                if len(pending) > 10_000_000:
                    raise RecursionError("cyclic definitions")
                continue
            pending.pop()
            self.known[symbol] = self._eval(definition)

    def _eval(self, expr: sp.Basic):
        known = self.known.get(expr)
        if known is not None:
            return known
        arith = self.arith
        if expr.is_Number:
            return arith.number(expr)
        if expr.is_Symbol:
            raise KeyError(f"no value for {expr}")
        if expr is sp.E:
            return arith.constant("E")
        if expr is sp.pi:
            return arith.constant("pi")
        if expr.is_Add:
            total = self._eval(expr.args[0])
            for arg in expr.args[1:]:
                total = total + self._eval(arg)
            return total
        if expr.is_Mul:
            product = self._eval(expr.args[0])
            for arg in expr.args[1:]:
                product = product * self._eval(arg)
            return product
        if expr.is_Pow:
            base, exponent = expr.args
            if exponent.is_Rational:
                return arith.power(self._eval(base), Fraction(int(exponent.p), int(exponent.q)))
            return arith.exp(arith.log(self._eval(base)) * self._eval(exponent))
        func = type(expr)
        if func in self.substitutes:
            return self.substitutes[func](arith, self._eval, expr.args)
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise Indeterminate(f"cannot evaluate {func.__name__}")
        return handler(self, arith, expr.args)


def _sigmoid(ev, arith, args):
    x = ev._eval(args[0])
    return arith.inverse(1 + arith.exp(-x))


def _tanh(ev, arith, args):
    x = ev._eval(args[0])
    e2 = arith.exp(2 * x)
    return (e2 - 1) * arith.inverse(e2 + 1)


def _heaviside(ev, arith, args):
    x = ev._eval(args[0])
    s = arith.sign(x)
    if s == 0:
        if len(args) < 2:
            raise Indeterminate("Heaviside(0) without a convention")
        return ev._eval(args[1])
    return arith.number(sp.S.One if s > 0 else sp.S.Zero)


def _extreme(largest: bool):
    def handler(ev, arith, args):
        values = [ev._eval(a) for a in args]
        return arith.choose(values, largest)

    return handler


def _relu(ev, arith, args):
    x = ev._eval(args[0])
    return arith.choose([x * 0, x], True)


def _softmax(ev, arith, args):
    i, *zs = args
    exps = [arith.exp(ev._eval(z)) for z in zs]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    return exps[int(i) - 1] * arith.inverse(total)


def _maxpool(ev, arith, args):
    return arith.choose([ev._eval(a) for a in args], True)


def _is_max(ev, arith, args):
    """1 for the strict maximum; at a tie, the first maximal element (PyTorch's max_pool2d), or refuse."""
    i, *elements = args
    values = [ev._eval(e) for e in elements]
    index = int(i) - 1
    winner = 0
    for k in range(1, len(values)):
        if arith.sign(values[k] - values[winner]) > 0:
            winner = k
    if ev.ties == "refuse" and any(arith.sign(values[winner] - v) == 0 for k, v in enumerate(values) if k != winner):
        raise Indeterminate("a pooling window has a tie: max is not differentiable there")
    return arith.number(sp.S.One if index == winner else sp.S.Zero)


def _kronecker(ev, arith, args):
    a, b = (ev._eval(x) for x in args)
    return arith.number(sp.S.One if arith.sign(a - b) == 0 else sp.S.Zero)


def _abs(ev, arith, args):
    x = ev._eval(args[0])
    return arith.choose([x, -x], True)


_FUNCTIONS = {
    sp.exp: lambda ev, arith, args: arith.exp(ev._eval(args[0])),
    sp.log: lambda ev, arith, args: arith.log(ev._eval(args[0])),
    fn.sigmoid: _sigmoid,
    sp.tanh: _tanh,
    fn.relu: _relu,
    sp.Heaviside: _heaviside,
    sp.Max: _extreme(True),
    sp.Min: _extreme(False),
    fn.softmax: _softmax,
    fn.maxpool: _maxpool,
    fn.is_max: _is_max,
    sp.KroneckerDelta: _kronecker,
    sp.Abs: _abs,
}


def to_float(value) -> float:
    """A display value: the midpoint of an interval, or the nearest double."""
    if hasattr(value, "mid"):
        return float(value.mid)
    return float(value)


def is_finite(value) -> bool:
    return math.isfinite(to_float(value))
