"""The text of values and expressions: counterexample values, and one shared printer for many results."""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from derive.graph.numeric import to_float


def exact_text(value) -> str:
    if isinstance(value, Fraction):
        return str(value)
    return value_text(value)


def value_text(value) -> str:
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
