r"""Nielsen's component form in LaTeX as a template over symbolic letters, for a proof for every size.

    \delta^l_j = \Big(\sum_k w^{l+1}_{kj} \delta^{l+1}_k\Big) \sigma'(z^l_j)
      ↦ delta[l, j] = sum(w[l+1, k, j]*delta[l+1, k], k, 1, size[l+1]) * sigma_prime(z[l, j])

The names are a layered network's (`w b z a \delta`, `x_k` for a^1_k, `y_j`),
with a layer superscript and index subscripts of single letters or digits
(`_{kj}`, `_{k,j}`); `\frac{\partial C}{\partial w^l_{jk}}` is ∂C/∂w; `\sigma`,
`\sigma'`, `\sigma^{\prime}` apply the activation and its derivative; a sum
`\sum_k` (or `\sum_{k=1}^{…}`) runs over the term after it, and its range is the
width its index runs over where it stands (k in w^{l+1}_{kj}: 1..size[l+1]).
Anything else is not read for every size (the claim is then checked per instance
only). The same whitelist tokenizer as every LaTeX claim; nothing is evaluated.
"""

from __future__ import annotations

import sympy as sp

from derive.errors import FormulaError
from derive.graph import functions as fn
from derive.claims.general import NotGeneral
from derive.claims.latex_tokens import tokenize
from derive.proof.formulas import _D
from derive.proof.general.models import L, SIZE

_FAMILIES = {"w": "w", "b": "b", "z": "z", "a": "a", r"\delta": "delta", "y": "y", "x": "x"}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_SIZED = {r"\left", r"\bigl", r"\Bigl", r"\biggl", r"\Biggl", r"\big", r"\Big", r"\bigg", r"\Bigg"}
_CLOSE_SIZED = {r"\right", r"\bigr", r"\Bigr", r"\biggr", r"\Biggr", r"\big", r"\Big", r"\bigg", r"\Bigg"}
MAX_DEPTH = 60


def latex_templates(pieces) -> list[sp.Expr]:
    templates = []
    for piece, _ in pieces:
        try:
            templates.append(_Reader(piece).read())
        except FormulaError as exc:
            raise NotGeneral(f"not read as an index formula for every size: {exc.message}") from None
    return templates


class _Reader:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def token(self):
        return self.tokens[self.i]

    def at(self, *texts) -> bool:
        return self.token.kind != "end" and self.token.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise FormulaError(f"expected '{text}', found '{self.token.text or 'the end'}'")
        self.i += 1

    def read(self) -> sp.Expr:
        expr = self.expression()
        if self.token.kind != "end":
            raise FormulaError(f"'{self.token.text}' is not read here")
        return expr

    def expression(self) -> sp.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError("nested too deeply")
        sign = 1
        while self.at("+", "-"):
            sign *= -1 if self.token.text == "-" else 1
            self.i += 1
        total = sign * self.term()
        while self.at("+", "-"):
            sign = -1 if self.token.text == "-" else 1
            self.i += 1
            total += sign * self.term()
        self.depth -= 1
        return total

    def term(self) -> sp.Expr:
        product = self.factor()
        while True:
            if self.at("*", r"\cdot", r"\times", r"\odot", r"\circ"):
                self.i += 1
                product *= self.factor()
            elif self.at("/"):
                self.i += 1
                product /= self.factor()
            elif self.token.kind != "end" and not self.at("+", "-", "=", ")", "]", "}", *_CLOSE_SIZED):
                product *= self.factor()
            else:
                return product

    def factor(self) -> sp.Expr:
        base = self.atom()
        if self.at("^"):
            self.i += 1
            exponent = self.group_or_one()
            if not exponent.is_Integer:
                raise FormulaError("a power must be a whole number")
            base = base ** exponent
        return base

    def group_or_one(self) -> sp.Expr:
        if self.at("{"):
            self.i += 1
            inner = self.expression()
            self.expect("}")
            return inner
        return self.atom()

    def atom(self) -> sp.Expr:
        t = self.token
        if t.kind == "number":
            self.i += 1
            return sp.Rational(t.text)
        if self.at(*_OPEN):
            closing = _OPEN[t.text]
            self.i += 1
            inner = self.expression()
            self.expect(closing)
            return inner
        if self.at(*_SIZED):
            self.i += 1
            closing = _OPEN.get(self.token.text)
            if closing is None:
                raise FormulaError("a sized bracket must be ( or [")
            self.i += 1
            inner = self.expression()
            if self.at(*_CLOSE_SIZED):
                self.i += 1
            self.expect(closing)
            return inner
        if self.at(r"\frac", r"\dfrac", r"\tfrac"):
            return self.fraction()
        if self.at(r"\sum"):
            return self.finite_sum()
        if self.at(r"\sigma"):
            return self.activation()
        if t.text in _FAMILIES:
            return self.name()
        raise FormulaError(f"'{t.text}' is not read in an index formula for every size")

    def fraction(self) -> sp.Expr:
        self.i += 1
        if self.at("{") and self.tokens[self.i + 1].text == r"\partial":
            self.i += 2
            top = self.token
            if top.text in _FAMILIES:  # ∂z^{l+1}_k/∂z^l_j: a quantity of the network
                numerator = self.name()
            elif top.kind == "letters":  # the cost, C
                numerator = sp.Symbol(top.text, real=True)
                self.i += 1
            else:
                raise FormulaError("∂ of a cost name, such as C, or of a quantity, such as z^{l+1}_k")
            self.expect("}")
            self.expect("{")
            self.expect(r"\partial")
            quantity = self.name()
            self.expect("}")
            return _D(numerator, quantity)
        top = self.group_or_one()
        bottom = self.group_or_one()
        return top / bottom

    def activation(self) -> sp.Expr:
        self.i += 1
        prime = False
        while self.at("'", "^"):
            if self.at("'"):
                prime, self.i = True, self.i + 1
                continue
            self.i += 1
            if self.at("{"):
                self.i += 1
                self.expect(r"\prime")
                self.expect("}")
            else:
                self.expect(r"\prime")
            prime = True
        self.expect("(")
        inner = self.expression()
        self.expect(")")
        return (fn.sigma_prime if prime else fn.sigma)(inner)

    def finite_sum(self) -> sp.Expr:
        self.i += 1
        self.expect("_")
        letters = self.script_letters()
        if len(letters) != 1 or not isinstance(letters[0], sp.Symbol):
            raise FormulaError(r"a sum's index must be one letter: \sum_k")
        index = letters[0]
        if self.at("="):  # \sum_{k=1}^{…}: the range is the width k runs over where it stands
            raise FormulaError("unexpected '='")
        if self.at("^"):
            self.i += 1
            self.group_or_one()
        body = self.term()
        width = _width_of(index, body)
        if width is None:
            raise FormulaError(f"the sum's index {index} names no unit of a layer")
        return sp.Sum(body, (index, 1, width))

    def script_letters(self) -> list:
        """`k`, `{kj}`, `{k,j}`, `{k=1}`, `{13}`: the indices, letters as integer symbols, digits as numbers."""
        items = []
        if self.at("{"):
            self.i += 1
            while not self.at("}"):
                t = self.token
                if t.kind == "end":
                    raise FormulaError("a subscript is not closed")
                if t.kind == "letters":
                    items += [sp.Symbol(c, integer=True) for c in t.text]
                elif t.kind == "number":
                    items += [sp.Integer(int(c)) for c in t.text]
                elif t.text == "=" and self.tokens[self.i + 1].text == "1":
                    self.i += 1
                elif t.text != ",":
                    raise FormulaError(f"'{t.text}' in a subscript")
                self.i += 1
            self.i += 1
            return items
        t = self.token
        self.i += 1
        if t.kind == "letters" and len(t.text) == 1:
            return [sp.Symbol(t.text, integer=True)]
        if t.kind == "number" and len(t.text) == 1:
            return [sp.Integer(int(t.text))]
        raise FormulaError("a subscript must be one letter or digit, or braced")

    def layer(self) -> sp.Expr:
        if self.at("{"):  # {l+1}, {L-1}, {2}: letters and numbers added and subtracted
            self.i += 1
            total, sign = sp.S.Zero, 1
            while not self.at("}"):
                t = self.token
                if t.text in ("+", "-"):
                    sign = -1 if t.text == "-" else 1
                elif t.kind == "number":
                    total, sign = total + sign * int(t.text), 1
                elif t.kind == "letters" and len(t.text) == 1:
                    total, sign = total + sign * (L if t.text == "L" else sp.Symbol(t.text, integer=True)), 1
                else:
                    raise FormulaError(f"'{t.text or 'the end'}' in a layer superscript")
                self.i += 1
            self.i += 1
            return total
        t = self.token
        self.i += 1
        if t.kind == "number":
            return sp.Integer(int(t.text))
        if t.kind == "letters" and len(t.text) == 1:
            return L if t.text == "L" else sp.Symbol(t.text, integer=True)
        raise FormulaError("a layer must be a letter, a number or braced: w^{l+1}")

    def name(self) -> sp.Expr:
        family = _FAMILIES[self.token.text]
        self.i += 1
        layer, indices = None, None
        for _ in range(2):
            if self.at("^") and layer is None and family not in ("x", "y"):
                self.i += 1
                layer = self.layer()
            elif self.at("_") and indices is None:
                self.i += 1
                indices = self.script_letters()
        if indices is None:
            raise FormulaError(f"{family} needs its indices (a matrix claim names whole layers)")
        if family == "x":
            return sp.IndexedBase("a")[(sp.Integer(1), *indices)]
        if family == "y":
            return sp.IndexedBase("y")[tuple(indices)]
        if layer is None:
            raise FormulaError(f"{family} needs its layer: {family}^l")
        return sp.IndexedBase(family)[(layer, *indices)]


def _width_of(index: sp.Symbol, body: sp.Expr):
    for item in sorted(body.atoms(sp.Indexed), key=str):
        family = item.base.label.name
        if family == "y" and item.indices[0] == index:
            return SIZE[L]
        if family in ("w", "b", "z", "a", "delta"):
            layer = item.indices[0]
            for position, value in enumerate(item.indices[1:]):
                if value == index:
                    return SIZE[layer] if position == 0 else SIZE[layer - 1]
    return None
