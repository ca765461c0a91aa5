"""The whitelist parser for formula strings in SymPy syntax.

A user's formula is never handed to `eval`, `sympify` or `parse_expr` (all of
which execute Python). This parser accepts exactly: numbers, the names a
vocabulary declares, `+ - * / **` (and `^` as a power, as students type it),
parentheses, calls of whitelisted functions and, where the vocabulary allows
it, indexing `w[l, j, k]`. Everything is bounded: the text's length, the
nesting depth, the height of a tower of exponents, the size of number
literals and of exact numbers (a power of `3**300*w1` multiplies its number
out), and a part made of numbers alone must be evaluable (`exp(exp(exp(100)))`
is refused: SymPy's assumption queries would evaluate it for minutes).

Grammar (precedence climbing, `**` binds right and tighter than unary minus,
as in Python: `-x**2 = -(x**2)`):

    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := ('+' | '-') unary | power
    power   := postfix (('**' | '^') unary)?
    postfix := atom ('[' sum (',' sum)* ']')?
    atom    := NUMBER | NAME | NAME '(' sum (',' sum)* ')' | '(' sum ')'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Mapping

import sympy as sp

from derive.errors import FormulaError
from derive.graph.registry import FORMULA_FUNCTIONS

MAX_LENGTH = 20_000
MAX_DEPTH = 100  # nesting levels; each costs several Python frames
MAX_NUMBER_LENGTH = 60
MAX_LITERAL_EXPONENT = 300  # the `e` part of a literal such as 1e-3
MAX_EXPONENT = 64  # |n| in x**n
MAX_EXACT_DIGITS = 1_000  # digits of an exact number such as 3**600
MAX_TOWER = 16  # exponents within exponents, w5**w5**…: SymPy's Pow and the algebra cost O(n²) and more in it

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^(),\[\]])
    """,
    re.VERBOSE,
)

Builder = Callable[[list], sp.Expr]


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    column: int  # 1-based


class Vocabulary:
    """What a formula may name: symbols, functions and (optionally) indexed families.

    Subclass or pass callables to change how an unknown name is explained (a spec
    says "used before its equation", a claims file lists the network's names).
    """

    def __init__(
        self,
        names: Mapping[str, sp.Expr],
        functions: Mapping[str, tuple[object, int | None]] | None = None,
        *,
        extra_functions: Mapping[str, Builder] | None = None,
        unknown_name: Callable[[str], sp.Expr] | None = None,
        indexed: Callable[[str, list], sp.Expr] | None = None,
    ):
        self.names = names
        self.functions = FORMULA_FUNCTIONS if functions is None else functions
        self.extra_functions = extra_functions or {}
        self._unknown_name = unknown_name
        self._indexed = indexed

    def name(self, name: str) -> sp.Expr:
        if name in self.names:
            return self.names[name]
        if self._unknown_name is not None:
            return self._unknown_name(name)
        raise LookupError(f"unknown name '{name}'")

    def function(self, name: str) -> Builder:
        if name in self.extra_functions:
            return self.extra_functions[name]
        if name in self.functions:
            func, arity = self.functions[name]
            return _checked_call(name, func, arity)
        known = ", ".join(sorted({*self.functions, *self.extra_functions}))
        raise LookupError(f"unknown function '{name}' (known: {known})")

    def index(self, name: str, indices: list) -> sp.Expr:
        if self._indexed is None:
            raise LookupError(f"'{name}[...]': indexing is not allowed here")
        return self._indexed(name, indices)


def _checked_call(name: str, func, arity: int | None) -> Builder:
    def build(args: list) -> sp.Expr:
        if arity is not None and len(args) != arity:
            raise ValueError(f"{name}() takes {arity} argument{'s' if arity > 1 else ''}, got {len(args)}")
        if arity is None and not args:
            raise ValueError(f"{name}() needs at least one argument")
        for arg in args:
            check_constant(arg)
        return func(*args)

    return build


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            hint = " (formulas use SymPy syntax: names, numbers, + - * / ** and parentheses)"
            raise FormulaError(f"unexpected character {char!r}{hint}", column=pos + 1)
        kind = match.lastgroup
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def parse_formula(text: str, vocabulary: Vocabulary) -> sp.Expr:
    """Parse `text` into a SymPy expression over `vocabulary`'s names, or raise FormulaError."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
    if not text.strip():
        raise FormulaError("empty formula")
    try:
        return _Parser(tokenize(text), vocabulary).parse()
    except RecursionError:  # a backstop: MAX_DEPTH should stop nesting first
        raise FormulaError(f"formula is nested deeper than {MAX_DEPTH} levels") from None


@dataclass
class _Parser:
    tokens: list[Token]
    vocabulary: Vocabulary
    pos: int = 0
    depth: int = field(default=0)
    tower: int = field(default=0)  # exponents being read within exponents

    # -- helpers -----------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, text: str) -> Token:
        if self.token.text != text or self.token.kind != "op":
            raise self.error(f"expected '{text}'")
        return self.advance()

    def error(self, expected: str, token: Token | None = None) -> FormulaError:
        token = token or self.token
        found = "the end of the formula" if token.kind == "end" else f"'{token.text}'"
        return FormulaError(f"{expected} but found {found}", column=token.column)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula is nested deeper than {MAX_DEPTH} levels", column=self.token.column)

    # -- grammar -------------------------------------------------------------
    def parse(self) -> sp.Expr:
        expr = self.sum()
        if self.token.kind != "end":
            if self.token.kind in ("name", "number") or self.token.text == "(":
                raise self.error("expected an operator such as '*'")
            raise self.error("expected an operator or the end of the formula")
        return expr

    def sum(self) -> sp.Expr:
        self.enter()
        terms = [self.product()]
        while self.token.kind == "op" and self.token.text in "+-":
            sign = self.advance().text
            term = self.product()
            terms.append(-term if sign == "-" else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else sp.Add(*terms)

    def product(self) -> sp.Expr:
        factors = [self.unary()]
        digits = _digits(factors[0])
        while self.token.kind == "op" and self.token.text in ("*", "/"):
            op = self.advance()
            factor_token = self.token
            factor = self.unary()
            if op.text == "/":
                check_constant(factor, factor_token.column)
                if factor.is_zero:
                    raise FormulaError("division by zero", column=factor_token.column)
                factor = sp.Pow(factor, -1)
            digits += _digits(factor)
            if digits > MAX_EXACT_DIGITS:
                raise FormulaError(f"the number would have about {digits:,.0f} digits", column=factor_token.column)
            factors.append(factor)
        return factors[0] if len(factors) == 1 else sp.Mul(*factors)

    def unary(self) -> sp.Expr:
        if self.token.kind == "op" and self.token.text in "+-":
            sign = self.advance().text
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return -operand if sign == "-" else operand
        return self.power()

    def power(self) -> sp.Expr:
        base = self.postfix()
        if self.token.kind == "op" and self.token.text in ("**", "^"):
            op = self.advance()
            self.enter()
            self.tower += 1
            if self.tower > MAX_TOWER:
                raise FormulaError(f"exponents are nested more than {MAX_TOWER} deep", column=op.column)
            exponent = self.unary()
            self.tower -= 1
            self.depth -= 1
            return _power(base, exponent, op.column)
        return base

    def postfix(self) -> sp.Expr:
        start = self.token
        follows = self.tokens[self.pos + 1] if start.kind == "name" else None
        if follows is None or not (follows.kind == "op" and follows.text == "["):
            return self.atom()
        self.pos += 2  # the name and '['
        indices = self.arguments("]")
        try:
            return self.vocabulary.index(start.text, indices)
        except (LookupError, ValueError) as exc:
            raise FormulaError(_message(exc), column=start.column) from None

    def atom(self) -> sp.Expr:
        token = self.token
        if token.kind == "number":
            self.advance()
            return _number(token)
        if token.kind == "name":
            self.advance()
            if self.token.kind == "op" and self.token.text == "(":
                return self.call(token)
            try:
                return self.vocabulary.name(token.text)
            except LookupError as exc:
                raise FormulaError(_message(exc), column=token.column) from None
        if token.kind == "op" and token.text == "(":
            self.advance()
            inner = self.sum()
            self.expect(")")
            return inner
        raise self.error("expected a name, a number or '('")

    def call(self, name: Token) -> sp.Expr:
        try:
            build = self.vocabulary.function(name.text)
        except LookupError as exc:
            raise FormulaError(_message(exc), column=name.column) from None
        self.advance()  # '('
        args = self.arguments(")")
        try:
            return build(args)
        except FormulaError as exc:
            if exc.column is not None:
                raise
            raise FormulaError(f"{name.text}(): {exc.message}", column=name.column) from None
        except (ValueError, TypeError, LookupError) as exc:
            raise FormulaError(f"{name.text}(): {_message(exc)}", column=name.column) from None

    def arguments(self, closing: str) -> list:
        self.enter()
        args = [self.sum()]
        while self.token.kind == "op" and self.token.text == ",":
            self.advance()
            args.append(self.sum())
        if not (self.token.kind == "op" and self.token.text == closing):
            raise self.error(f"expected ',' or '{closing}'")
        self.advance()
        self.depth -= 1
        return args


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def _number(token: Token) -> sp.Rational:
    text = token.text
    if len(text) > MAX_NUMBER_LENGTH:
        raise FormulaError(f"number literal longer than {MAX_NUMBER_LENGTH} characters", column=token.column)
    mantissa, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_LITERAL_EXPONENT:
        raise FormulaError(f"number exponent beyond ±{MAX_LITERAL_EXPONENT}", column=token.column)
    value = Fraction(text)  # exact: 0.05 is 1/20, not the nearest double
    return sp.Rational(value.numerator, value.denominator)


def _digits(value: sp.Expr) -> float:
    """Decimal digits of the exact numbers SymPy multiplies out of `value` in a product or an integer power.

    A Rational's numerator and denominator; a product's numbers together
    (3**300*w1 carries 144 digits into any product or power of it); a number's
    power such as sqrt(3) its share. Anything else (a sum, a function) keeps
    its numbers inside and counts 0.
    """
    if value.is_Rational:
        return math.log10(max(abs(value.p), 1)) + math.log10(value.q)
    if value.is_Mul:
        return sum(_digits(factor) for factor in value.args)
    if value.is_Pow and value.base.is_Rational and value.exp.is_Rational:
        return _digits(value.base) * abs(float(value.exp))
    return 0.0


def check_constant(value: sp.Expr, column: int | None = None) -> None:
    """A FormulaError for a number-only part too large to work with, such as exp(exp(exp(100))).

    SymPy's assumption queries (is it zero? negative?) evaluate such a part
    numerically, which takes minutes or overflows, so it is refused before
    any function, power or division is built on it. Our interval evaluation
    stops at 2^±500 at once; a part with no real value (log(0), sqrt(-1)) is
    left to the prover, which says so.
    """
    if value.is_Atom or not value.is_number:
        return
    from derive.graph.numeric import Evaluator, Indeterminate, IntervalArithmetic, NotExact, TooLarge

    try:
        Evaluator(IntervalArithmetic(), {}, lambda s: None)(value)
    except TooLarge:
        raise FormulaError("a number in the formula is too large to work with (beyond 2^±500)", column=column) from None
    except (Indeterminate, NotExact, ZeroDivisionError, ValueError, KeyError):
        pass
    except OverflowError:
        raise FormulaError("a number in the formula is too large to work with", column=column) from None


def _power(base: sp.Expr, exponent: sp.Expr, column: int) -> sp.Expr:
    check_constant(base, column)
    check_constant(exponent, column)
    if exponent.is_Number:
        if abs(exponent) > MAX_EXPONENT:
            raise FormulaError(f"exponent {exponent} is beyond the limit ±{MAX_EXPONENT}", column=column)
        if base.is_zero and exponent.is_negative:
            raise FormulaError("division by zero (0 to a negative power)", column=column)
        if base.is_Rational and exponent.is_Integer:
            size = max(abs(base.p), abs(base.q), 2)
            digits = abs(int(exponent)) * math.log10(size)
        else:  # (3**300*w1)**64 multiplies its number out: 3**19200
            digits = _digits(base) * abs(float(exponent))
        if digits > MAX_EXACT_DIGITS:
            raise FormulaError(f"the number would have about {digits:,.0f} digits", column=column)
    return sp.Pow(base, exponent)
