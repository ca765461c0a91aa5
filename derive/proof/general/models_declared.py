"""Module layers declared as tables of index definitions, for every size: dropout, attention, softmax with
cross-entropy.

Each layer is a list of families in forward order: a leaf (an input or a parameter) or a node with its
definition at symbolic indices. What consumes a quantity is read off the definitions (every family whose
definition names it), so the chain rule sums over each of them; the engine differentiates the definitions
and contracts the Kronecker deltas. Sizes are the formula sets' names (N, D, C, T, d), as templates write
them.

    dropout                 out[n, d] = x[n, d]·mask[n, d] / p
    residual                z[n, d] = Σ_k x[n, k]·W[k, d] + b[d],  h = g(z) (any g),  out = x + h
    attention (one head)    S[t, c] = Σ_k Q[t, k]·K[c, k] / sqrt(d),  P[t, c] = exp(S[t, c]) / Σ_m exp(S[t, m]),
                            out[t, i] = Σ_k P[t, k]·V[k, i]
    softmax_cross_entropy   p[n, c] = exp(x[n, c]) / Σ_k exp(x[n, k]),  L = −(1/N) Σ_n Σ_c y[n, c]·ln p[n, c]

A softmax (P, p) is written through its definition outside the gradients, so that both sides meet in the
scores; L is any function of out where the layer does not define it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from derive.graph import functions as fn
from derive.proof.general.models import Consumer, NotCovered, _one, base, fresh

N, D, C, T, W = (sp.Symbol(n, real=True) for n in ("N", "D", "C", "T", "d"))
P_KEEP = sp.Symbol("p", real=True)
LOSS = sp.Symbol("L", real=True)


@dataclass(frozen=True)
class Family:
    name: str
    sizes: tuple  # each index's upper bound (from 1)
    define: Callable | None = None  # indices ↦ the definition, None for a leaf
    softmax: bool = False  # written through its definition outside the gradients
    activation: bool = False  # g(z) is this family, read backwards (σ(z[n, d]) is h[n, d])


def _softmax(scores: str, rows) -> Callable:
    def define(t, c):
        m = fresh("m")
        return sp.exp(base(scores)[t, c]) / sp.Sum(sp.exp(base(scores)[t, m]), (m, 1, rows))
    return define


def _attention_scores(t, c):
    k = fresh("k")
    return sp.Sum(base("Q")[t, k] * base("K")[c, k], (k, 1, W)) / sp.sqrt(W)


def _attention_out(t, i):
    k = fresh("k")
    return sp.Sum(base("P")[t, k] * base("V")[k, i], (k, 1, T))


def _residual_input(n, d):
    k = fresh("k")
    return sp.Sum(base("x")[n, k] * base("W")[k, d], (k, 1, D)) + base("b")[d]


def _cross_entropy():
    n, c = fresh("n"), fresh("c")
    return -sp.Sum(base("y")[n, c] * sp.log(base("p")[n, c]), (c, 1, C), (n, 1, N)) / N


LAYERS = {
    "dropout": ([Family("x", (N, D)), Family("mask", (N, D)),
                 Family("out", (N, D), lambda n, d: base("x")[n, d] * base("mask")[n, d] / P_KEEP)], None,
                "out[n, d] = x[n, d]·mask[n, d] / p (inverted dropout, the mask given), for any N, D; "
                "the loss L is any function of out"),
    "attention": ([Family("Q", (T, W)), Family("K", (T, W)), Family("V", (T, W)),
                   Family("S", (T, T), _attention_scores), Family("P", (T, T), _softmax("S", T), softmax=True),
                   Family("out", (T, W), _attention_out)], None,
                  "one head of attention over any T positions of any width d: S = Q Kᵀ / sqrt(d), P = the "
                  "row softmax of S, out = P V; the loss L is any function of out"),
    "residual": ([Family("x", (N, D)), Family("W", (D, D)), Family("b", (D,)),
                  Family("z", (N, D), _residual_input),
                  Family("h", (N, D), lambda n, d: fn.sigma(base("z")[n, d]), activation=True),
                  Family("out", (N, D), lambda n, d: base("x")[n, d] + base("h")[n, d])], None,
                 "a residual block of any N examples of width D: z = x W + b, h = g(z) with g any differentiable "
                 "activation, out = x + h; the loss L is any function of out"),
    "softmax_cross_entropy": ([Family("x", (N, C)), Family("y", (N, C)),
                               Family("p", (N, C), _softmax("x", C), softmax=True)], _cross_entropy,
                              "p = the row softmax of the scores x (N×C, any N and C), "
                              "L = −(1/N) Σ_n Σ_c y[n, c] ln p[n, c]"),
}


class DeclaredModel:
    kind = "module"
    cost_names = ("L",)

    def __init__(self, when):
        layer = _one(when.get("layer"))
        if layer not in LAYERS:
            raise NotCovered(f"no general model of a {when.get('layer')} layer yet")
        families, self.cost, self.text = LAYERS[layer]
        self.families = {f.name: f for f in families}
        self.order = [f.name for f in families]

    def assumptions(self) -> list[str]:
        return [self.text]

    def prepare(self, expr, derivative):
        return expr

    def gradient(self, cost: str, quantity, derivative):
        return derivative(LOSS, quantity)

    def level(self, quantity):
        return self.order.index(quantity.base.label.name)

    def floor(self, quantity):
        """A leaf's gradient always goes on to the first quantity that consumes it (dropout's x: to out)."""
        family = self.families[quantity.base.label.name]
        if family.define is not None:
            return self.level(quantity)
        consumers = [c for c in self.consumer("L", quantity, {}) or [] if c.quantity is not None]
        return min((self.level(c.quantity) for c in consumers), default=len(self.order))

    def top(self):
        return sp.Integer(len(self.order) + 1)

    def reaches_cost(self, level) -> bool:
        return self.cost is not None

    def definition(self, quantity, ranges=None):
        family = self.families.get(quantity.base.label.name)
        if family is None or family.define is None:
            return None
        return family.define(*quantity.indices)

    def consumer(self, cost: str, quantity, ranges):
        found = []
        for name in self.order:
            family = self.families[name]
            if family.define is None:
                continue
            indices = [fresh("i") for _ in family.sizes]
            definition = family.define(*indices)
            if definition.has(quantity.base):
                limits = [(i, sp.S.One, size) for i, size in zip(indices, family.sizes)]
                found.append(Consumer(base(name)[tuple(indices)], definition, *limits[0], more=tuple(limits[1:])))
        cost = self.cost() if self.cost is not None else None
        if cost is not None and cost.has(quantity.base):
            found.append(Consumer(None, cost))
        return found or None

    def facts(self, expr):
        """A softmax (P, p) written through its definition, so that both sides meet in the scores; an
        activation g(z) written as the family it defines (h)."""
        for family in self.families.values():
            if family.activation:
                expr = expr.replace(lambda e: isinstance(e, fn.sigma) and isinstance(e.args[0], sp.Indexed),
                                    lambda e, f=family: base(f.name)[e.args[0].indices])
            if family.softmax:
                expr = expr.replace(lambda e, f=family: isinstance(e, sp.Indexed) and e.base.label.name == f.name,
                                    lambda e: self.definition(e))
        return expr
