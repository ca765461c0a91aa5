"""A general proof's expressions as a reader writes them: plain text and LaTeX.

Text: `δ[l+1, i1]`, `Σ_{i1=1..size[l+1]} (…)`, `∂C/∂a[L, j]`, `[i = j]` for a
Kronecker delta (an Iverson bracket, so that it is never confused with δ).
LaTeX: Nielsen's `\\delta^{l+1}_{i_1}`, `w^{l+1}_{k j}`, `n_{l}` for size[l],
Zhou's `v_{i h}`, `\\hat{y}_{j}`.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter


LAYERED = {"a", "z", "w", "b", "delta"}
GREEK = {"delta": "δ", "lmbda": "λ", "alpha": "α", "beta": "β", "gamma": "γ", "theta": "θ", "eta": "η",
         "yhat": "ŷ"}
TEX = {"delta": r"\delta", "lmbda": r"\lambda", "alpha": r"\alpha", "beta": r"\beta", "gamma": r"\gamma",
       "theta": r"\theta", "eta": r"\eta", "yhat": r"\hat{y}", "size": "n"}
_INDEX = re.compile(r"^_?([a-z])_?(\d*)$")


def _index_text(symbol) -> str:
    match = _INDEX.match(str(symbol))
    return f"{match.group(1)}{match.group(2)}" if match else str(symbol)


class TextPrinter(StrPrinter):
    printmethod = "_derive_text"  # not Indexed's own _sympystr, which would print `w[l + 1, k, j]`

    def _print_Symbol(self, expr):
        name = expr.name
        return GREEK.get(name, _index_text(expr) if name.startswith("_") or "_" in name else name)

    def _print_Indexed(self, expr):
        label = expr.base.label.name
        inside = ", ".join(self._print(i).replace(" ", "") for i in expr.indices)
        return f"{GREEK.get(label, label)}[{inside}]"

    def _print_Sum(self, expr):
        text = self._print(expr.function)
        for index, lo, hi in expr.limits:
            text = f"Σ_{{{self._print(index)}={self._print(lo)}..{self._print(hi)}}} ({text})"
        return text

    def _print_KroneckerDelta(self, expr):
        return f"[{self._print(expr.args[0])} = {self._print(expr.args[1])}]"

    def _print_Function(self, expr):
        name = type(expr).__name__
        args = ", ".join(self._print(a) for a in expr.args)
        if name == "_D":
            return f"∂{self._print(expr.args[0])}/∂{self._print(expr.args[1])}"
        shown = {"sigma": "σ", "sigma_prime": "σ'", "sigmoid": "f", "exp": "exp", "log": "ln"}.get(name, name)
        return f"{shown}({args})"


class TexPrinter(LatexPrinter):
    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if name in TEX:
            return TEX[name]
        match = _INDEX.match(name)
        if match and (name.startswith("_") or "_" in name):
            return f"{match.group(1)}_{{{match.group(2)}}}" if match.group(2) else match.group(1)
        return super()._print_Symbol(expr)

    def _print_Indexed(self, expr):
        label = expr.base.label.name
        head = TEX.get(label, label)
        indices = [self._print(i) for i in expr.indices]
        if label in LAYERED:
            layer, rest = indices[0], indices[1:]
            return f"{head}^{{{layer}}}_{{{' '.join(rest)}}}"
        return f"{head}_{{{' '.join(indices)}}}"

    def _print_KroneckerDelta(self, expr, exp=None):
        return rf"[{self._print(expr.args[0])} = {self._print(expr.args[1])}]"

    def _print_Function(self, expr, exp=None):
        name = type(expr).__name__
        if name == "_D":
            return rf"\frac{{\partial {self._print(expr.args[0])}}}{{\partial {self._print(expr.args[1])}}}"
        if name == "sigmoid":
            return rf"f\left({self._print(expr.args[0])}\right)"
        return super()._print_Function(expr, exp)


def text(expr: sp.Expr) -> str:
    return TextPrinter().doprint(expr)


def tex(expr: sp.Expr) -> str:
    return TexPrinter().doprint(expr)

