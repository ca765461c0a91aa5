"""A mini-batch of m examples in the deeplearning.ai course's notation, for every width, depth and m.

Layers [0] (the input X) to [L], examples i = 1..m in columns:

    Z[l, j, i] = Σ_k W[l, j, k]·A[l-1, k, i] + b[l, j]        (1 ≤ l ≤ L; A[0] is X)
    A[l, j, i] = g(Z[l, j, i])                                  (g any differentiable function, or the
                                                                 logistic function at every layer)
    J = (1/m) Σ_i 𝓛(A[L, ·, i], Y[·, i])                        (the mean loss: 𝓛 any function of the
                                                                 example's outputs, or cross-entropy, or ½‖·‖²)
"""

from __future__ import annotations

import sympy as sp

from derive.graph import functions as fn
from derive.proof.general.models import L, SIZE, Consumer, NotCovered, _highest, _is, _one, base, fresh

ZB, AB, WB, BB, YB = (base(n) for n in ("Z", "A", "W", "b", "Y"))
M = sp.Symbol("m", positive=True)
J = sp.Symbol("J", real=True)


class BatchModel:
    kind = "batch"
    cost_names = ("J",)

    def __init__(self, when):
        self.cost = _one(when.get("cost"))
        self.logistic = _one(when.get("activation")) == "sigmoid"

    def assumptions(self) -> list[str]:
        said = ["a mini-batch of any m ≥ 1 examples through layers [0]…[L] of any widths n_0…n_L and any depth "
                "L ≥ 1: Z[l, j, i] = Σ_k W[l, j, k]·A[l-1, k, i] + b[l, j], A[l, j, i] = g(Z[l, j, i]), A[0] = X",
                "g is the logistic function at every layer, so g'(z) = g(z)(1 − g(z))" if self.logistic
                else "g is any differentiable function"]
        said.append({"cross_entropy": "J = −(1/m) Σ_i Σ_j (Y[j, i] ln A[L, j, i] + (1 − Y[j, i]) ln(1 − A[L, j, i]))",
                     "quadratic": "J = (1/m) Σ_i ½ Σ_j (A[L, j, i] − Y[j, i])²"}.get(
            self.cost, "J = (1/m) Σ_i 𝓛(A[L, ·, i]): the mean of any per-example loss of the outputs"))
        return said

    def prepare(self, expr, derivative):
        return expr

    def gradient(self, cost: str, quantity, derivative):
        return derivative(J, quantity)

    def level(self, quantity):
        layer = quantity.indices[0]
        return {"A": 2 * layer, "Z": 2 * layer - 1, "W": 2 * layer - 2, "b": 2 * layer - 2}[quantity.base.label.name]

    def floor(self, quantity):
        level = self.level(quantity)
        return level + 1 if quantity.base.label.name in ("W", "b") else level

    def top(self):
        return 2 * L + 1

    def reaches_cost(self, level) -> bool:
        gap = sp.expand(level - (2 * L - 1))
        return self.cost in ("cross_entropy", "quadratic") and gap.is_number and gap >= 0

    def net_input(self, layer, j, i):
        k = fresh("k")
        return sp.Sum(WB[layer, j, k] * AB[layer - 1, k, i], (k, 1, SIZE[layer - 1])) + BB[layer, j]

    def activation(self, layer, j, i):
        return (fn.sigmoid if self.logistic else fn.sigma)(ZB[layer, j, i])

    def definition(self, quantity, ranges):
        label = quantity.base.label.name
        if label == "Z":
            return self.net_input(*quantity.indices)
        if label == "A":
            return self.activation(*quantity.indices)
        return None

    def consumer(self, cost: str, quantity, ranges):
        label, layer = quantity.base.label.name, quantity.indices[0]
        j, i = fresh("j"), fresh("i")
        examples = ((i, sp.S.One, M),)
        if label in ("W", "b"):
            return Consumer(ZB[layer, j, i], self.net_input(layer, j, i), j, sp.S.One, SIZE[layer], more=examples)
        if label == "Z":
            return Consumer(AB[layer, j, i], self.activation(layer, j, i), j, sp.S.One, SIZE[layer], more=examples)
        if label == "A":
            if self._is_output(layer, ranges):
                definition = self.cost_definition()
                return None if definition is None else Consumer(None, definition)
            return Consumer(ZB[layer + 1, j, i], self.net_input(layer + 1, j, i), j, sp.S.One, SIZE[layer + 1],
                            more=examples)
        return None

    def cost_definition(self):
        p, i = fresh("p"), fresh("i")
        a, y = AB[L, p, i], YB[p, i]
        term = {"quadratic": (a - y) ** 2 / 2, "cross_entropy": -(y * sp.log(a) + (1 - y) * sp.log(1 - a))}.get(
            self.cost)
        return None if term is None else sp.Sum(term, (p, 1, SIZE[L]), (i, 1, M)) / M

    def _is_output(self, layer, ranges) -> bool:
        gap = sp.expand(L - layer)
        if gap.is_number:
            return gap == 0
        top = _highest(layer, ranges)
        if top is not None and (gap := sp.expand(L - top)).is_number and gap > 0:
            return False
        raise NotCovered(f"it cannot tell whether layer {layer} is the output layer")

    def facts(self, expr):
        if self.logistic:
            expr = expr.replace(lambda e: isinstance(e, fn.sigma_prime) and _is(e.args[0], ZB),
                                lambda e: AB[e.args[0].indices] * (1 - AB[e.args[0].indices]))
        expr = expr.replace(lambda e: isinstance(e, (fn.sigma, fn.sigmoid)) and _is(e.args[0], ZB),
                            lambda e: AB[e.args[0].indices])
        # Z written as its definition where it stands alone (a forward claim Z = W A + b); g(Z) stays A
        applied = {arg for node in sp.preorder_traversal(expr) if isinstance(node, sp.Function) for arg in node.args}
        return expr.replace(lambda e: _is(e, ZB) and e not in applied, lambda e: self.net_input(*e.indices))
