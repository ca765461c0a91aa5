"""Numbers and math for the reports: SymPy expressions broken across lines, numbers for tables.

The report's contexts (derive/report/context.py) print every formula through a
`MathWriter` and every number through `number`; both give `Tex`, which the
templates print as is.
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy as sp

from derive.derivation import Derivations
from derive.texsafe import Tex, escape

LINE_WIDTH = 62  # visible characters of one displayed equation line


class MathWriter:
    """SymPy expressions as LaTeX in a network's own notation, long sums split into lines.

    Printing is the derivations' own (`Derivations.latex`): the network's names,
    the adjoints' names as they appear, each shared sum printed once.
    """

    def __init__(self, derivations: Derivations):
        self.derivations = derivations

    def __call__(self, expr: sp.Expr) -> Tex:
        return Tex(self.derivations.latex(expr))

    def lines(self, expr: sp.Expr, width: int = LINE_WIDTH) -> list[Tex]:
        """The expression as displayed lines of at most about `width` visible characters."""
        tokens = self._tokens(expr, width)
        lines, current, length = [], "", 0
        for token in tokens:
            size = visible_length(token)
            if current and length + size > width and token[:2] in ("+ ", "- "):
                lines.append(Tex(current))
                current, length = r"\quad " + token, size + 2
            else:
                current += (" " if current else "") + token
                length += size
        if current:
            lines.append(Tex(current))
        return lines

    def _tokens(self, expr: sp.Expr, width: int) -> list[str]:
        whole = self(expr)
        if visible_length(whole) <= width:
            return [whole]
        if expr.is_Add:
            tokens: list[str] = []
            for i, term in enumerate(_ordered_terms(expr)):
                negative = term.could_extract_minus_sign()
                inner = self._tokens(-term if negative else term, width)
                sign = "- " if negative else ("+ " if i else "")
                if not sign:
                    tokens.extend(inner)
                else:
                    tokens.append(sign + inner[0])
                    tokens.extend(inner[1:])
            return tokens
        if expr.is_Mul:
            factors = list(expr.as_ordered_factors())
            sizes = {f: visible_length(self(f)) for f in factors if f.is_Add}
            big = max(sizes, key=sizes.get, default=None)
            if big is not None and sizes[big] > width // 2:
                # the longest sum in brackets that open on the first line and close on the last
                rest = sp.Mul(*[f for f in factors if f is not big], evaluate=False)
                head = "" if rest == 1 else ("-" if rest == -1 else self(rest))
                inner = self._tokens(big, width)
                inner[0] = f"{head} \\Big({inner[0]}"
                inner[-1] = inner[-1] + r" \Big)"
                return inner
        return [whole]


def _ordered_terms(expr: sp.Expr) -> list[sp.Expr]:
    """The terms of a sum in natural order of their names (w_2 before w_10), as a reader expects."""
    return sorted(sp.Add.make_args(expr), key=lambda t: _natural_key(str(t)))


def _natural_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def visible_length(tex: str) -> int:
    """About how many characters wide a LaTeX math string prints."""
    text = re.sub(r"\\(left|right|Big|big|mathrm|operatorname|quad)\b", "", tex)
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: max(m.group(1), m.group(2), key=len), text)
    text = re.sub(r"\\[A-Za-z]+", "x", text)
    text = re.sub(r"[{}_^\s]", "", text)
    return len(text)


def number(value: object, digits: int = 10) -> Tex:
    """A number for a table: exact fractions as fractions, floats in scientific form when tiny or huge."""
    if value is None:
        return Tex("--")
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return Tex(str(value.numerator))
        if value.denominator <= 10**6 and abs(value.numerator) <= 10**6:
            sign = "-" if value < 0 else ""
            return Tex(rf"${sign}\tfrac{{{abs(value.numerator)}}}{{{value.denominator}}}$")
        value = float(value)
    if isinstance(value, str):
        return escape(value)
    x = float(value)  # mpmath numbers too; a float keeps 16 digits, more than a table shows
    if x != x:
        return Tex("--")
    if x == 0:
        return Tex("0")
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return Tex(rf"${mantissa}\times 10^{{{int(exponent)}}}$")
    return Tex(text)


def breakable(text: str) -> Tex:
    """Escaped text that may break after operators and spaces (formulas as typed are long)."""
    return Tex(re.sub(r"(\\textbackslash\{\}|[-+*/,)=]|\s)", lambda m: m.group(0) + r"\allowbreak{}", escape(text)))


def exact_text(text: str) -> Tex:
    """A counterexample coordinate such as "-3/7" as math."""
    match = re.fullmatch(r"(-?)(\d+)/(\d+)", text.strip())
    if match:
        sign, p, q = match.groups()
        return Tex(rf"${sign}\tfrac{{{p}}}{{{q}}}$")
    if re.fullmatch(r"-?\d+(\.\d+)?", text.strip()):
        return Tex(f"${text.strip()}$")
    return escape(text)
