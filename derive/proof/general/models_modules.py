"""Module layers for every N and D: batch and layer normalisation, with any downstream loss L.

Batch norm takes its statistics over the examples (s = d, the sum over the rows k):

    mu[d] = (1/N) Σ_k x[k, d],   var[d] = (1/N) Σ_k (x[k, d] − mu[d])²,
    xhat[n, d] = (x[n, d] − mu[d]) / sqrt(var[d] + eps),   out[n, d] = gamma[d]·xhat[n, d] + beta[d]

layer norm over the features of each example (s = n, the sum over the columns k, by D). x
feeds mu, var and xhat; mu feeds var and xhat: the chain rule sums over every
consumer. The definition of the mean makes Σ_k x[k, d] = N·mu[d] (or
Σ_k x[n, k] = D·mu[n]), which the canonical form is given as an identity, so
Σ_k (x[k, d] − mu[d]) is 0.
"""

from __future__ import annotations

import sympy as sp

from derive.proof.general.models import Consumer, NotCovered, _one, base, fresh

XM, MU, VAR, XHAT, OUT, GAMMA, BETA = (base(n) for n in ("x", "mu", "var", "xhat", "out", "gamma", "beta"))
N, D = (sp.Symbol(n, real=True) for n in ("N", "D"))  # as a formula set's template names them
EPS = sp.Symbol("eps", real=True)
LOSS = sp.Symbol("L", real=True)
LEVELS = {"x": 0, "mu": 1, "var": 2, "xhat": 3, "gamma": 3, "beta": 3, "out": 4}


class NormModel:
    kind = "module"
    cost_names = ("L",)

    def __init__(self, when):
        layer = _one(when.get("layer"))
        if layer not in ("batchnorm", "layernorm"):
            raise NotCovered(f"no general model of a {when.get('layer')} layer yet")
        self.per_row = layer == "layernorm"  # layer norm's statistics are each example's
        self.count = D if self.per_row else N

    def assumptions(self) -> list[str]:
        if self.per_row:
            return ["layer normalisation of any N ≥ 1 examples of any D ≥ 1 features: mu[n] = (1/D) Σ_k x[n, k], "
                    "var[n] = (1/D) Σ_k (x[n, k] − mu[n])², xhat[n, d] = (x[n, d] − mu[n]) / sqrt(var[n] + eps) "
                    "with eps > 0, out[n, d] = gamma[d]·xhat[n, d] + beta[d]; the loss L is any function of out"]
        return ["batch normalisation of any N ≥ 1 examples of any D ≥ 1 features: mu[d] = (1/N) Σ_k x[k, d], "
                "var[d] = (1/N) Σ_k (x[k, d] − mu[d])², xhat[n, d] = (x[n, d] − mu[d]) / sqrt(var[d] + eps) with "
                "eps > 0, out[n, d] = gamma[d]·xhat[n, d] + beta[d]; the loss L is any function of out"]

    def _entry(self, k, s):
        """x's entry k of the statistics' group s: x[k, s] (a column) or x[s, k] (a row)."""
        return XM[s, k] if self.per_row else XM[k, s]

    def _stat(self, n, d):
        return n if self.per_row else d

    def prepare(self, expr, derivative):
        return expr

    def gradient(self, cost: str, quantity, derivative):
        return derivative(LOSS, quantity)

    def level(self, quantity):
        return LEVELS[quantity.base.label.name]

    def floor(self, quantity):
        label = quantity.base.label.name
        return 4 if label in ("gamma", "beta") else LEVELS[label]

    def top(self):
        return sp.Integer(5)

    def reaches_cost(self, level) -> bool:
        return False  # L is generic: ∂L/∂out (dout) is where the chain rule stops

    def definition(self, quantity, ranges=None):
        label, indices = quantity.base.label.name, quantity.indices
        if label == "mu":
            k = fresh("k")
            return sp.Sum(self._entry(k, indices[0]), (k, 1, self.count)) / self.count
        if label == "var":
            k = fresh("k")
            return sp.Sum((self._entry(k, indices[0]) - MU[indices[0]]) ** 2, (k, 1, self.count)) / self.count
        if label == "xhat":
            n, d = indices
            s = self._stat(n, d)
            return (XM[n, d] - MU[s]) / sp.sqrt(VAR[s] + EPS)
        if label == "out":
            n, d = indices
            return GAMMA[d] * XHAT[n, d] + BETA[d]
        return None

    def consumer(self, cost: str, quantity, ranges):
        label = quantity.base.label.name
        targets = {"x": ("mu", "var", "xhat"), "mu": ("var", "xhat"), "var": ("xhat",), "xhat": ("out",),
                   "gamma": ("out",), "beta": ("out",)}.get(label)
        if targets is None:
            return None
        return [self._through(name) for name in targets]

    def _through(self, name: str) -> Consumer:
        d = fresh("d")
        if name in ("mu", "var"):  # one per feature (batch norm) or per example (layer norm)
            node = base(name)[d]
            return Consumer(node, self.definition(node), d, sp.S.One, N if self.per_row else D)
        n = fresh("n")
        node = base(name)[n, d]
        return Consumer(node, self.definition(node), n, sp.S.One, N, more=((d, sp.S.One, D),))

    def facts(self, expr):
        """xhat written as its definition, so that both sides meet in x, mu and var."""
        return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == XHAT,
                            lambda e: self.definition(e))

    def identities(self, expr):
        """Σ_k x[k, d] = N·mu[d] (layer norm: Σ_k x[n, k] = D·mu[n]): the definition of the mean, backwards."""
        summed, kept = (1, 0) if self.per_row else (0, 1)

        def mean(node):
            body, limits = node.function, node.limits
            if len(limits) == 1 and isinstance(body, sp.Indexed) and body.base == XM:
                index, lo, hi = limits[0]
                group = body.indices[kept]
                if (body.indices[summed] == index and lo == 1 and sp.expand(hi - self.count) == 0
                        and not group.has(index)):
                    return self.count * MU[group]
            return node
        return expr.replace(lambda e: isinstance(e, sp.Sum), mean)


BatchNormModel = NormModel  # the name the model table has used
