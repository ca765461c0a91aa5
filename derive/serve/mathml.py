"""MathML of a formula as derive read it, from the parse tree (not from the text typed).

Browsers render MathML Core natively, so the page needs no script from elsewhere to show math.
Symbols print in the network's own notation (out_{h1} for outh1, w^{2}_{13}), read off its LaTeX
names; a gradient's left side is ∂cost/∂wrt. Everything here is made from the parsed SymPy
expression: names of the network and numbers, never a string of the request.
"""

from __future__ import annotations

import re
from html import escape

import sympy as sp
from sympy.printing.mathml import MathMLPresentationPrinter

MATHML = '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">{}</math>'


def _mathml_name(latex: str) -> str:
    """A LaTeX name as the MathML printer's split_super_sub reads it: out_{h1} → out_h1, \\sigma → sigma."""
    return re.sub(r"[\\{}\s]", "", latex)


class _Printer(MathMLPresentationPrinter):
    """SymPy's presentation printer, each network symbol printed under its notation's name (the printer's
    own symbol_names setting is not read by its _print_Symbol)."""

    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def doprint(self, expr):
        return super().doprint(expr.xreplace(self.names) if isinstance(expr, sp.Basic) else expr)


def _printer(claims) -> MathMLPresentationPrinter:
    names = {}
    for symbol, latex in claims.network.latex_names.items():
        name = _mathml_name(latex)
        if re.fullmatch(r"[A-Za-z0-9_^]+", name):
            names[symbol] = sp.Symbol(name)
    return _Printer(names)


def _side(printer, expr, by_name) -> str:
    from derive.proof.formulas import _D

    derivative = expr if isinstance(expr, _D) else None
    if derivative is None and expr.func.__name__ == "D" and len(expr.args) == 2:
        derivative = expr
    if derivative is not None:
        of, wrt = derivative.args
        return (f"<mfrac><mrow><mo>∂</mo>{printer.doprint(of)}</mrow>"
                f"<mrow><mo>∂</mo>{printer.doprint(wrt)}</mrow></mfrac>")
    if isinstance(expr, sp.Symbol) and expr.name.startswith("D("):  # an adjoint's symbol: D(E, w5)
        inside = expr.name[2:-1].split(", ")
        if len(inside) == 2 and all(n in by_name for n in inside):
            of, wrt = (printer.doprint(by_name[n]) for n in inside)
            return f"<mfrac><mrow><mo>∂</mo>{of}</mrow><mrow><mo>∂</mo>{wrt}</mrow></mfrac>"
    return printer.doprint(expr)


def claim_mathml(claims) -> str:
    """`lhs = rhs` of the claims file's one claim, as a MathML block."""
    claim = claims.claims[0]
    printer = _printer(claims)
    try:
        by_name = claims.network.by_name
        body = f"<mrow>{_side(printer, claim.lhs, by_name)}<mo>=</mo>{_side(printer, claim.rhs, by_name)}</mrow>"
    except Exception:  # a construct the MathML printer does not know: show the parse as text instead
        body = f"<mtext>{escape(str(claim.lhs))} = {escape(str(claim.rhs))}</mtext>"
    return MATHML.format(body)


def expression_mathml(claims, expr) -> str:
    """One expression in the network's notation (the correct formula, shown beside the student's)."""
    try:
        return MATHML.format(_printer(claims).doprint(expr))
    except Exception:  # a construct the MathML printer does not know
        return MATHML.format(f"<mtext>{escape(str(expr))}</mtext>")

