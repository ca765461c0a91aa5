"""Evaluate SymPy expressions at a point: exactly, in certified intervals, or approximately.

The prover needs numbers it can trust: a counterexample must show two values
that differ beyond doubt. Rational arithmetic (`fractions.Fraction`) is exact;
where a transcendental function appears, interval arithmetic (mpmath's, at a
few hundred bits) gives an enclosure, and two values differ for certain when
their enclosures are disjoint. The approximate context (mpmath at 50 digits)
serves display: the `[values]` point of a spec, the numbers of a report.

Formulas come from users, so every step is bounded. An exact value may hold
at most MAX_EXACT_BITS bits (beyond, `ExactTooLarge`, a kind of `NotExact`:
the caller falls back to intervals, whose numbers have a fixed precision).
An interval's bounds stay within 2^±MAGNITUDE_BITS: a larger bound raises
`TooLarge` (a kind of `Indeterminate`: the point is skipped), a smaller
nonzero one is widened to 0 or ±2^-MAGNITUDE_BITS, which keeps the
enclosure sound and every quotient of two values within a double's range.
exp of an argument above EXP_LIMIT and integer powers beyond MAX_POWER raise
`TooLarge` before anything is computed, so no single operation takes long;
an `Evaluator` with a `deadline` raises `OutOfTime` once it has passed, so
no evaluation as a whole does either.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Callable, Mapping

import mpmath
import sympy as sp
from mpmath.ctx_iv import MPIntervalContext

from derive.graph import functions as fn
from derive.graph import registry


MAX_EXACT_BITS = 1 << 16  # numerator and denominator together: one operation stays under ~10 ms
MAGNITUDE_BITS = 500  # interval bounds within 2^±500; a quotient of two stays within a double
APPROXIMATE_MAGNITUDE_BITS = 1000  # display values stay within a double
EXP_LIMIT = 347  # e^-347 < 2^-500 (so [0, 2^-500] encloses exp below -347) and e^347 < 2^501
APPROXIMATE_EXP_LIMIT = 690  # exp(690) < 2^1000
MAX_POWER = 1 << 16  # |n| in x**n; a formula's own powers are far smaller (the parser allows 64 per level)
DEADLINE_STRIDE = 64  # operations between two looks at the clock


class NotExact(Exception):
    """The exact context met a function whose value is not rational (exp, log, …)."""


class ExactTooLarge(NotExact):
    """An exact value would exceed MAX_EXACT_BITS: evaluate in intervals instead."""


class Indeterminate(Exception):
    """A branch (max, step) or a domain (log, sqrt, 1/x) cannot be decided at this point."""


class TooLarge(Indeterminate):
    """A value is too large to evaluate (beyond the magnitude limits of this module)."""


class OutOfTime(Exception):
    """An Evaluator's deadline passed: the caller's time budget is spent."""


NOT_REAL = "not a real number (the square root of a negative number)"
UNDEFINED = "undefined (a division by zero, log(0) or an infinity)"


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
        n = abs(int(exponent))
        if n > MAX_POWER:
            raise TooLarge(f"a power with exponent {n} is too large to evaluate")
        if n * _bits(base) > MAX_EXACT_BITS:
            raise ExactTooLarge("an exact power too large to evaluate")
        return base ** int(exponent)

    def check(self, x):
        if isinstance(x, Fraction) and _bits(x) > MAX_EXACT_BITS:
            raise ExactTooLarge("an exact value too large to evaluate")
        return x

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
            n = int(exponent)
            if abs(n) > MAX_POWER:
                raise TooLarge(f"a power with exponent {abs(n)} is too large to evaluate")
            if n < 0:
                base, n = self.inverse(base), -n
            high = max(_magnitude(base._mpi_[0]), _magnitude(base._mpi_[1]))
            if high > 0 and (high - 1) * n > MAGNITUDE_BITS:
                raise TooLarge(f"a value above 2^{MAGNITUDE_BITS} (a power)")
            return self.check(base**n)
        if base.a <= 0:
            raise Indeterminate("fractional power of a number that may be ≤ 0")
        return self.exp(self.ctx.log(base) * self.lift(exponent))

    def exp(self, x):
        low, high = x._mpi_
        if _above(high, EXP_LIMIT):
            raise TooLarge(f"exp of a number above {EXP_LIMIT}")
        if _above(_negated(high), EXP_LIMIT):  # exp(x) < exp(-EXP_LIMIT): within [0, 2^-MAGNITUDE_BITS]
            return self.ctx.mpf([0, self._tiny])
        if _above(_negated(low), EXP_LIMIT):
            return self.ctx.mpf([0, self.ctx.exp(self.ctx.mpf(x.b)).b])
        return self.check(self.ctx.exp(x))

    def log(self, x):
        if x.a <= 0:
            raise Indeterminate("log of a number that may be ≤ 0")
        return self.ctx.log(x)

    @property
    def _tiny(self):
        return self.ctx.ldexp(self.ctx.mpf(1), -MAGNITUDE_BITS).b

    def check(self, x):
        """x itself, or x widened outwards where a bound is tiny; TooLarge where one is huge."""
        low, high = x._mpi_
        widen = False
        for bound in (low, high):
            if not bound[1]:  # zero, or an infinity / nan (a zero mantissa with a nonzero exponent)
                if bound[2]:
                    raise TooLarge("a value too large to evaluate (an infinity)")
                continue
            m = bound[2] + bound[3]
            if m > MAGNITUDE_BITS + 1:
                raise TooLarge(f"a value above 2^{MAGNITUDE_BITS} in magnitude")
            if m < -MAGNITUDE_BITS:
                widen = True
        if not widen:
            return x
        tiny = self._tiny
        a, b = x.a, x.b
        lo = a if _magnitude(low) >= -MAGNITUDE_BITS else (0 if not low[0] else -tiny)
        hi = b if _magnitude(high) >= -MAGNITUDE_BITS else (tiny if not high[0] else 0)
        return self.ctx.mpf([lo, hi])

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
        return self.check(1 / x)


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
            n = int(exponent)
            if abs(n) > MAX_POWER:
                raise TooLarge(f"a power with exponent {abs(n)} is too large to evaluate")
            if base == 0:
                return base**n
            if abs(_magnitude(base._mpf_) - 1) * abs(n) > 2 * APPROXIMATE_MAGNITUDE_BITS:
                raise TooLarge(f"a value beyond 2^±{APPROXIMATE_MAGNITUDE_BITS} (a power)")
            return self.check(base**n)
        if base < 0:
            raise Indeterminate("fractional power of a negative number")
        if base == 0:
            if exponent < 0:
                raise Indeterminate("division by zero")
            return base
        if abs(float(exponent) * _magnitude(base._mpf_)) > 2 * APPROXIMATE_MAGNITUDE_BITS:
            raise TooLarge(f"a value beyond 2^±{APPROXIMATE_MAGNITUDE_BITS} (a power)")
        return self.check(base ** self.lift(exponent))

    def exp(self, x):
        if x > APPROXIMATE_EXP_LIMIT:
            raise TooLarge(f"exp of a number above {APPROXIMATE_EXP_LIMIT}")
        if x < -APPROXIMATE_EXP_LIMIT:
            return self.ctx.zero  # below 2^-1000: 0 for display
        return self.ctx.exp(x)

    def check(self, x):
        mpf = getattr(x, "_mpf_", None)
        if mpf is not None and mpf[1] and mpf[2] + mpf[3] > APPROXIMATE_MAGNITUDE_BITS + 1:
            raise TooLarge(f"a value above 2^{APPROXIMATE_MAGNITUDE_BITS} in magnitude")
        if mpf is not None and not mpf[1] and mpf[2]:
            raise TooLarge("a value too large to evaluate (an infinity)")
        return x

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
        return self.check(1 / x)


def _bits(x: Fraction) -> int:
    return x.numerator.bit_length() + x.denominator.bit_length()


def _magnitude(bound) -> int:
    """log2 of an mpf bound's magnitude, rounded up (0 for zero)."""
    return bound[2] + bound[3] if bound[1] else 0


def _above(bound, limit: int) -> bool:
    """Whether an mpf bound (a raw tuple) exceeds `limit` > 0."""
    sign, mantissa, exponent, bits = bound
    if sign or not mantissa:
        return bool(not mantissa and exponent and not sign)  # +inf is above anything
    return exponent + bits > limit.bit_length() + 1 or (mantissa << exponent if exponent >= 0 else mantissa >> -exponent) >= limit


def _negated(bound):
    sign, mantissa, exponent, bits = bound
    if not mantissa and not exponent:
        return bound
    return (1 - sign, mantissa, exponent, bits)


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
        # A time.perf_counter() value after which evaluation raises OutOfTime (None: no limit).
        self.deadline: float | None = None
        self._countdown = DEADLINE_STRIDE
        self._check = getattr(arithmetic, "check", None) or (lambda x: x)

    def _tick(self) -> None:
        self._countdown = DEADLINE_STRIDE
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise OutOfTime("the time budget ran out during evaluation")

    def __call__(self, expr: sp.Expr):
        if self.deadline is not None:
            self._tick()
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
        self._countdown -= 1
        if self._countdown <= 0:
            self._tick()
        arith = self.arith
        if expr.is_Number:
            if not expr.is_finite:  # zoo, oo, nan: what SymPy makes of 1/0 and log(0)
                raise Indeterminate(UNDEFINED)
            return arith.number(expr)
        if expr.is_Symbol:
            raise KeyError(f"no value for {expr}")
        if expr is sp.E:
            return arith.constant("E")
        if expr is sp.pi:
            return arith.constant("pi")
        if expr is sp.I:
            raise Indeterminate(NOT_REAL)
        if expr is sp.zoo or expr is sp.nan:
            raise Indeterminate(UNDEFINED)
        check = self._check
        if expr.is_Add:
            total = self._eval(expr.args[0])
            for arg in expr.args[1:]:
                total = check(total + self._eval(arg))
            return total
        if expr.is_Mul:
            product = self._eval(expr.args[0])
            for arg in expr.args[1:]:
                product = check(product * self._eval(arg))
            return product
        if expr.is_Pow:
            base, exponent = expr.args
            if exponent.is_Rational:
                return arith.power(self._eval(base), Fraction(int(exponent.p), int(exponent.q)))
            return arith.exp(arith.log(self._eval(base)) * self._eval(exponent))
        func = type(expr)
        if func in self.substitutes:
            return check(self.substitutes[func](arith, self._eval, expr.args))
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise Indeterminate(f"cannot evaluate {func.__name__}")
        return check(handler(self, arith, expr.args))


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


def _softmax(ev, arith, args):
    i, *zs = args
    values = [ev._eval(z) for z in zs]
    if arith.name != "exact":  # e^(z_i − m) / Σ e^(z_k − m) with m a number near the largest z: no overflow
        shift = max((getattr(v, "b", v) for v in values))
        values = [v - shift for v in values]
    exps = [arith.exp(v) for v in values]
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
    **registry.EVALUATORS,  # sigmoid, tanh, relu, exp, log, …: one entry per function in registry.py
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
