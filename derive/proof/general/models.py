"""The networks a general proof is about: every width, and for layered networks every depth.

A model says what each quantity is defined as (its forward equation, with
symbolic bounds), which quantities consume it (where the chain rule goes next),
and which facts hold under a formula's `when` (which activation, which cost).
Nothing here is a backpropagation formula: the gradients come from
differentiating these definitions (derive.proof.general.prove).

Layered (Nielsen's notation, layers 1..L, L ≥ 2, widths size[1..L]):

    z[m, j] = Σ_{k=1}^{size[m-1]} w[m, j, k] a[m-1, k] + b[m, j]     (2 ≤ m ≤ L)
    a[m, j] = σ(z[m, j])                                              (σ elementwise below L;
                                                                       at L as `when` says)
    C = C(a[L, 1..size[L]])   (or the quadratic, cross-entropy, log-likelihood cost of the targets y;
                               with L2, C = C0 + λ/(2n) Σ_m Σ_j Σ_k w[m, j, k]²)

Threshold (Zhou's d-q-l network, every d, q, l):

    α[h] = Σ_i v[i, h] x[i],  b[h] = f(α[h] − γ[h]),  β[j] = Σ_h w[h, j] b[h],
    ŷ[j] = f(β[j] − θ[j]),    E = ½ Σ_j (ŷ[j] − y[j])²,   f the logistic function.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from derive.graph import functions as fn

_FRESH = itertools.count(1)


def fresh(name: str) -> sp.Symbol:
    """A new summation index: never equal to one a formula or another expansion uses."""
    return sp.Symbol(f"{name}_{next(_FRESH)}", integer=True)


def base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name)


class NotCovered(Exception):
    """The model cannot say what the formula needs (an unordered layer, an unknown activation)."""


@dataclass(frozen=True)
class Consumer:
    """Where the chain rule goes from a quantity: the sum over `index` in lo..hi of
    ∂cost/∂`quantity` · ∂`definition`/∂(the quantity differentiated)."""

    quantity: sp.Expr | None  # Y[i], or None when the consumer is the cost itself
    definition: sp.Expr  # Y[i]'s definition (or the cost's)
    index: sp.Symbol | None = None
    lo: sp.Expr = sp.S.One
    hi: sp.Expr = sp.S.One
    extra: sp.Expr = sp.S.Zero  # a direct term (the L2 penalty's derivative)
    more: tuple = ()  # further (index, lo, hi) the sum runs over (a batch's examples)

    @property
    def limits(self) -> list[tuple]:
        return [(self.index, self.lo, self.hi), *self.more]


# ---------------------------------------------------------------------------
# Layered networks of any depth
# ---------------------------------------------------------------------------

L = sp.Symbol("L", real=True)
SIZE = base("size")
W, B, Z, A, DELTA, Y, X = (base(n) for n in ("w", "b", "z", "a", "delta", "y", "x"))
LMBDA, N = sp.Symbol("lmbda", real=True), sp.Symbol("n", real=True)
COSTS = ("generic", "quadratic", "cross_entropy", "log_likelihood")


class LayeredModel:
    kind = "layered"
    cost_names = ("C", "C0")

    def __init__(self, when):
        self.cost = _one(when.get("cost"))
        self.output = _one(when.get("output"))
        self.output_activation = _one(when.get("output_activation"))
        self.regularization = _one(when.get("regularization"))
        # "sigmoid" when every layer's activation is (the output's too): σ' = σ(1 − σ) at any layer
        self.hidden_activation = _one(when.get("activation")) if self.output_activation == "sigmoid" else None
        if self.output_activation == "softmax":
            self.output = "coupled"
        elif self.output_activation is not None and self.output_activation != "softmax":
            self.output = "elementwise"

    # -- what the proof states it assumes ---------------------------------------------
    def assumptions(self) -> list[str]:
        said = ["a layered network of any depth L ≥ 2 and any widths size[1], …, size[L]: "
                "z[m, j] = Σ_k w[m, j, k]·a[m-1, k] + b[m, j] and a[m, j] = σ(z[m, j]) for 2 ≤ m < L, "
                "with σ any differentiable function"]
        if self.hidden_activation == "sigmoid":
            said.append("every hidden activation is the logistic σ, so σ'(z) = σ(z)(1 − σ(z))")
        if self.output_activation == "softmax":
            said.append("the output is a softmax: a[L, j] = exp(z[L, j]) / Σ_p exp(z[L, p])")
        elif self.output_activation == "sigmoid":
            said.append("the output activation is the logistic σ, so σ'(z) = σ(z)(1 − σ(z))")
        elif self.output == "elementwise":
            said.append("the output is elementwise: a[L, j] = σ(z[L, j])")
        elif self.output == "coupled":
            said.append("the output a[L] may depend on every z[L] (a coupled output, such as softmax)")
        said.append({
            None: "the cost C is any function of the output activations a[L]",
            "generic": "the cost C is any function of the output activations a[L]",
            "quadratic": "C = ½ Σ_j (a[L, j] − y[j])²",
            "cross_entropy": "C = −Σ_j (y[j] ln a[L, j] + (1 − y[j]) ln(1 − a[L, j]))",
            "log_likelihood": "C = −Σ_j y[j] ln a[L, j]",
        }[self.cost])
        if self.regularization == "l2":
            said.append("C = C0 + λ/(2n) Σ_m Σ_j Σ_k w[m, j, k]², with C0 the cost above")
        return said

    # -- names --------------------------------------------------------------------------
    def prepare(self, expr: sp.Expr, derivative) -> sp.Expr:
        """The book's aliases (t for y) and ∂C/∂z written δ, so that each quantity has one spelling."""
        expr = expr.xreplace({base("t"): Y})
        return expr.replace(
            lambda e: isinstance(e, derivative) and _is(e.args[1], Z) and str(e.args[0]) in self.cost_names,
            lambda e: DELTA[e.args[1].indices])

    def gradient(self, cost: str, quantity: sp.Expr, derivative) -> sp.Expr:
        if _is(quantity, Z):
            return DELTA[quantity.indices]
        return derivative(sp.Symbol(cost, real=True), quantity)

    def level(self, quantity: sp.Expr) -> sp.Expr:
        """Where a quantity sits on the way to the cost: a[m] at 2m, z[m] (and δ[m]) at 2m − 1,
        w[m] and b[m] at 2m − 2; the cost at 2L + 1."""
        m = quantity.indices[0]
        label = quantity.base.label.name
        return {"a": 2 * m, "z": 2 * m - 1, "delta": 2 * m - 1, "w": 2 * m - 2, "b": 2 * m - 2}[label]

    def floor(self, quantity: sp.Expr) -> sp.Expr:
        """The lowest frontier a gradient can stay at: a parameter's gradient always goes one step on."""
        level = self.level(quantity)
        return level + 1 if quantity.base.label.name in ("w", "b") else level

    def top(self) -> sp.Expr:
        return 2 * L + 1

    def definition(self, quantity: sp.Expr, ranges) -> sp.Expr | None:
        """a[m, i] or z[m, i] as the model defines it; None where it leaves it open (a coupled output)."""
        label, (m, i) = quantity.base.label.name, quantity.indices[:2]
        if label == "z":
            return self.net_input(m, i)
        if label == "a":
            if self._is_output(m, ranges) and self.output_activation == "softmax":
                return self.softmax(i)
            try:
                return self.activation(m, i, ranges)
            except NotCovered:
                return None
        return None

    def reaches_cost(self, level: sp.Expr) -> bool:
        """Whether a formula at this level talks about the output layer, where a known cost is differentiated."""
        gap = sp.expand(level - (2 * L - 1))
        return self.cost not in (None, "generic") and gap.is_number and gap >= 0

    # -- the chain rule's next step --------------------------------------------------------
    def consumer(self, cost: str, quantity: sp.Expr, ranges) -> Consumer | None:
        label = quantity.base.label.name
        m = quantity.indices[0]
        i = fresh("i")
        if label in ("w", "b"):
            extra = sp.S.Zero
            if label == "w" and cost == "C":
                extra = self._penalty_derivative(quantity)
            return Consumer(Z[m, i], self.net_input(m, i), i, sp.S.One, SIZE[m], extra)
        if label == "z":
            if self._is_output(m, ranges) and self.output != "elementwise":
                return self._coupled(m, i)
            return Consumer(A[m, i], self.activation(m, i, ranges), i, sp.S.One, SIZE[m])
        if label == "a":
            if self._is_output(m, ranges):
                cost_definition = self.cost_definition()
                return None if cost_definition is None else Consumer(None, cost_definition)
            return Consumer(Z[m + 1, i], self.net_input(m + 1, i), i, sp.S.One, SIZE[m + 1])
        return None

    def _coupled(self, m, i) -> Consumer | None:
        if self.output_activation == "softmax":
            return Consumer(A[m, i], self.softmax(i), i, sp.S.One, SIZE[m])
        if self.output == "coupled":
            return Consumer(A[m, i], None, i, sp.S.One, SIZE[m])  # ∂a/∂z left as it is: a coupled output
        raise NotCovered("its output layer's activation is not stated (elementwise or coupled)")

    def net_input(self, m, i) -> sp.Expr:
        k = fresh("k")
        return sp.Sum(W[m, i, k] * A[m - 1, k], (k, 1, SIZE[m - 1])) + B[m, i]

    def activation(self, m, i, ranges) -> sp.Expr:
        if self._is_output(m, ranges) and self.output_activation == "sigmoid":
            return fn.sigmoid(Z[m, i])
        if self._is_output(m, ranges) and self.output != "elementwise":
            raise NotCovered("its output activation is not elementwise")
        if self.hidden_activation == "sigmoid" and not self._is_output(m, ranges):
            return fn.sigmoid(Z[m, i])
        return fn.sigma(Z[m, i])

    def softmax(self, i) -> sp.Expr:
        p = fresh("p")
        return sp.exp(Z[L, i]) / sp.Sum(sp.exp(Z[L, p]), (p, 1, SIZE[L]))

    def cost_definition(self) -> sp.Expr | None:
        p = fresh("p")
        a, y = A[L, p], Y[p]
        term = {"quadratic": (a - y) ** 2 / 2, "cross_entropy": -(y * sp.log(a) + (1 - y) * sp.log(1 - a)),
                "log_likelihood": -y * sp.log(a)}.get(self.cost)
        return None if term is None else sp.Sum(term, (p, 1, SIZE[L]))

    def _penalty_derivative(self, weight: sp.Expr) -> sp.Expr:
        if self.regularization is None:
            raise NotCovered("it does not say whether the cost has a weight penalty (regularization)")
        if self.regularization != "l2":
            return sp.S.Zero
        m, p, q = fresh("m"), fresh("p"), fresh("q")
        penalty = LMBDA / (2 * N) * sp.Sum(sp.Sum(sp.Sum(W[m, p, q] ** 2, (q, 1, SIZE[m - 1])), (p, 1, SIZE[m])),
                                           (m, 2, L))
        return sp.diff(penalty, weight)

    def _is_output(self, m, ranges) -> bool:
        gap = sp.expand(L - m)
        if gap.is_number:
            if gap < 0:
                raise NotCovered(f"layer {m} is above the output layer L")
            return gap == 0
        top = _highest(m, ranges)
        if top is not None:
            gap = sp.expand(L - top)
            if gap.is_number and gap > 0:
                return False
        raise NotCovered(f"it cannot tell whether layer {m} is the output layer; state the layer's range")

    # -- facts that hold in the model -------------------------------------------------------
    def facts(self, expr: sp.Expr) -> sp.Expr:
        """σ(z[m, j]) is a[m, j]; σ'(z[L, j]) is a(1 − a) for a logistic output; a softmax output is
        written through z so that its sums can meet."""
        if self.output_activation == "sigmoid" or self.hidden_activation == "sigmoid":
            at_output = self.output_activation == "sigmoid"
            hidden = self.hidden_activation == "sigmoid"
            expr = expr.replace(lambda e: isinstance(e, fn.sigma_prime) and _is(e.args[0], Z)
                                and (at_output if sp.expand(e.args[0].indices[0] - L) == 0 else hidden),
                                lambda e: A[e.args[0].indices] * (1 - A[e.args[0].indices]))
        expr = expr.replace(lambda e: isinstance(e, (fn.sigma, fn.sigmoid)) and _is(e.args[0], Z),
                            lambda e: A[e.args[0].indices])
        if self.output_activation == "softmax":
            expr = expr.replace(lambda e: _is(e, A) and sp.expand(e.indices[0] - L) == 0,
                                lambda e: self.softmax(e.indices[1]))
        # z written as its definition where it stands alone (a forward claim z = w a + b); σ'(z) keeps its name
        applied = {arg for node in sp.preorder_traversal(expr) if isinstance(node, sp.Function) for arg in node.args}
        return expr.replace(lambda e: _is(e, Z) and e not in applied, lambda e: self.net_input(*e.indices[:2]))


# ---------------------------------------------------------------------------
# Zhou's threshold network, every d, q, l
# ---------------------------------------------------------------------------

SIZES_DQL = tuple(sp.Symbol(n, real=True) for n in ("d", "q", "l"))


class ThresholdModel:
    kind = "threshold"
    cost_names = ("E",)

    def __init__(self, when):
        self.d, self.q, self.l = SIZES_DQL

    def assumptions(self) -> list[str]:
        return ["Zhou's d-q-l network for any d, q, l ≥ 1: α[h] = Σ_i v[i, h]·x[i], b[h] = f(α[h] − γ[h]), "
                "β[j] = Σ_h w[h, j]·b[h], ŷ[j] = f(β[j] − θ[j]), E = ½ Σ_j (ŷ[j] − y[j])², "
                "f the logistic function, so f'(u) = f(u)(1 − f(u))"]

    def prepare(self, expr: sp.Expr, derivative) -> sp.Expr:
        return expr

    def gradient(self, cost: str, quantity: sp.Expr, derivative) -> sp.Expr:
        return derivative(sp.Symbol(cost, real=True), quantity)

    def level(self, quantity: sp.Expr) -> sp.Expr:
        return {"x": 0, "v": 0, "alpha": 1, "gamma": 1, "b": 2, "w": 2, "beta": 3, "theta": 3,
                "yhat": 4}[quantity.base.label.name]

    def floor(self, quantity: sp.Expr) -> sp.Expr:
        return self.level(quantity)

    def top(self) -> sp.Expr:
        return sp.Integer(5)

    def reaches_cost(self, level) -> bool:
        return True

    def definition(self, quantity: sp.Expr, ranges=None) -> sp.Expr | None:
        label = quantity.base.label.name
        idx = quantity.indices[0] if quantity.indices else None
        if label == "alpha":
            i = fresh("i")
            return sp.Sum(base("v")[i, idx] * X[i], (i, 1, self.d))
        if label == "b":
            return fn.sigmoid(base("alpha")[idx] - base("gamma")[idx])
        if label == "beta":
            h = fresh("h")
            return sp.Sum(base("w")[h, idx] * base("b")[h], (h, 1, self.q))
        if label == "yhat":
            return fn.sigmoid(base("beta")[idx] - base("theta")[idx])
        return None

    def consumer(self, cost: str, quantity: sp.Expr, ranges) -> Consumer | None:
        label = quantity.base.label.name
        target = {"x": "alpha", "v": "alpha", "alpha": "b", "gamma": "b", "b": "beta", "w": "beta",
                  "beta": "yhat", "theta": "yhat"}.get(label)
        if label == "yhat":
            j = fresh("j")
            return Consumer(None, sp.Sum((base("yhat")[j] - Y[j]) ** 2, (j, 1, self.l)) / 2)
        if target is None:
            return None
        i = fresh("i")
        hi = {"alpha": self.q, "b": self.q, "beta": self.l, "yhat": self.l}[target]
        node = base(target)[i]
        return Consumer(node, self.definition(node), i, sp.S.One, hi)

    def facts(self, expr: sp.Expr) -> sp.Expr:
        """f(α[h] − γ[h]) is b[h] and f(β[j] − θ[j]) is ŷ[j]: their definitions read backwards."""
        def node_of(e):
            for label, threshold, node in (("alpha", "gamma", "b"), ("beta", "theta", "yhat")):
                arg = e.args[0]
                for term in sp.Add.make_args(arg):
                    if _is(term, base(label)):
                        idx = term.indices
                        if sp.expand(arg - (base(label)[idx] - base(threshold)[idx])) == 0:
                            return base(node)[idx]
            return e
        return expr.replace(lambda e: isinstance(e, fn.sigmoid), node_of)


MODELS = {"layered": LayeredModel, "threshold": ThresholdModel}


def model_for(when):
    kind = _one(when.get("kind"))
    if kind == "batch":
        from derive.proof.general.models_batch import BatchModel
        return BatchModel(when)
    if kind == "affine":
        from derive.proof.general.models_affine import AffineModel
        return AffineModel(when)
    if kind == "module":
        from derive.proof.general.models_declared import LAYERS, DeclaredModel
        from derive.proof.general.models_modules import NormModel
        return DeclaredModel(when) if _one(when.get("layer")) in LAYERS else NormModel(when)
    if kind == "cnn":
        from derive.proof.general.models_cnn import CnnModel
        return CnnModel(when)
    if kind not in MODELS:
        raise NotCovered(f"no general model of {kind or 'this kind of'} network yet (layered and threshold have one)")
    return MODELS[kind](when)


# ---------------------------------------------------------------------------


def _one(value):
    """A `when` fact stated as one value; a list of options means the model cannot assume one."""
    return value if isinstance(value, str) else None


def _is(expr, family: sp.IndexedBase) -> bool:
    return isinstance(expr, sp.Indexed) and expr.base == family


def _highest(m: sp.Expr, ranges):
    """m's largest value under the ranges of the letters it mentions (m = l + 1 with l ≤ L − 1: L)."""
    letters = [s for s in m.free_symbols if s in ranges]
    if len(letters) != 1:
        return None
    letter = letters[0]
    coefficient = sp.expand(m).coeff(letter)
    if coefficient != 1:
        return None
    return m.xreplace({letter: ranges[letter][1]})
