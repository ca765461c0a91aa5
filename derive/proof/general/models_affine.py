"""One affine layer, rows are examples, for every N, D, M (the course assignment's backward pass).

    out[n, m] = Σ_d x[n, d]·w[d, m] + b[m],   L any function of the outputs out
"""

from __future__ import annotations

import sympy as sp

from derive.proof.general.models import Consumer, base, fresh

XA, WA, BA, OUT = (base(n) for n in ("x", "w", "b", "out"))
N, D, M = (sp.Symbol(n, real=True) for n in ("N", "D", "M"))  # as a formula set's template names them
LOSS = sp.Symbol("L", real=True)


class AffineModel:
    kind = "affine"
    cost_names = ("L",)

    def __init__(self, when):
        pass

    def assumptions(self) -> list[str]:
        return ["one affine layer of any sizes N, D, M: out[n, m] = Σ_d x[n, d]·w[d, m] + b[m] (b broadcast over "
                "the N rows), and a loss L that is any function of out; dout = ∂L/∂out comes from upstream"]

    def prepare(self, expr, derivative):
        return expr

    def gradient(self, cost: str, quantity, derivative):
        return derivative(LOSS, quantity)

    def level(self, quantity):
        return 1 if quantity.base.label.name == "out" else 0

    def floor(self, quantity):
        return 1

    def top(self):
        return sp.Integer(2)

    def reaches_cost(self, level) -> bool:
        return False  # L is generic: ∂L/∂out (dout) is where the chain rule stops

    def definition(self, quantity, ranges):
        if quantity.base.label.name == "out":
            return self.out(*quantity.indices)
        return None

    def out(self, n, m):
        d = fresh("d")
        return sp.Sum(XA[n, d] * WA[d, m], (d, 1, D)) + BA[m]

    def consumer(self, cost: str, quantity, ranges):
        if quantity.base.label.name not in ("x", "w", "b"):
            return None
        n, m = fresh("n"), fresh("m")
        return Consumer(OUT[n, m], self.out(n, m), n, sp.S.One, N, more=((m, sp.S.One, M),))

    def facts(self, expr):
        """out written as its definition (outside the gradients), so that the forward pass itself is checked."""
        return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == OUT, lambda e: self.out(*e.indices))
