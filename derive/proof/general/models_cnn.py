"""A convolutional network with symbolic sizes: convolution, pooling, a dense output layer (深度学习的数学 ch. 5).

Filters k = 1..K, feature map rows i = 1..rowsF and columns j = 1..colsF,
pooling units r = 1..rowsP, s = 1..colsP, outputs n = 1..N, all of any size:

    zF[k, i, j] = Σ_p Σ_q wF[k, p, q]·x[i+p-1, j+q-1] + bF[k]           (one channel, stride 1, no padding:
                                                                           when `when` says so, as the book has)
    zF[k, i, j] = Σ_c Σ_p Σ_q wF[k, c, p, q]·xpad[c, stride(i-1)+p-padr, stride(j-1)+q-padc] + bF[k]
                                                                          (otherwise: any channels, stride, padding)
    aF[k, i, j] = σ(zF[k, i, j])
    aP[k, r, s] = the max / the average (1/(pr·pc)) Σ / the L2 norm sqrt(Σ ·²) of aF[k, ·, ·] over (r, s)'s window
    zO[n] = Σ_k Σ_r Σ_s wO[n, k, r, s]·aP[k, r, s] + bO[n],   aO[n] = σ(zO[n]) (or a softmax)
    C = ½ Σ_n (aO[n] − t[n])², −Σ_n t[n] ln aO[n], … or any function of aO

Windows are the predicates of derive.proof.general.windows: left as they are
(any window shape and stride) unless `when` fixes pool_size = pool_stride = p,
when they tile the map and aF[k, i, j] lies in the window (⌊(i−1)/p⌋+1, ⌊(j−1)/p⌋+1).
Max pooling is modelled where no window has a tie: there each pooling unit
equals its window's maximum unit nearby, so ∂aP[k, r, s]/∂aF[k, i, j] is
ismax(aF[k, i, j], aP[k, r, s]), an assumption every proof states.
"""

from __future__ import annotations

import sympy as sp

from derive.graph import functions as fn
from derive.proof.formulas import _IsMax, _Window
from derive.proof.general.indexcalc import rename_dummies
from derive.proof.general.models import Consumer, NotCovered, _is, _one, base, fresh
from derive.proof.general.windows import explicit, ismax, normal, split_channel, window, window_ranges

(K, N, ROWS_F, COLS_F, ROWS_P, COLS_P, KR, KC, CIN, STRIDE, PADR, PADC, PR, PC) = (
    sp.Symbol(n, real=True) for n in ("K", "N", "rowsF", "colsF", "rowsP", "colsP", "kr", "kc", "Cin", "stride",
                                      "padr", "padc", "pr", "pc"))
XB, XPAD, WF, BF, ZF, AF, AP, WO, BO, ZO, AO, T = (
    base(n) for n in ("x", "xpad", "wF", "bF", "zF", "aF", "aP", "wO", "bO", "zO", "aO", "t"))
C = sp.Symbol("C", real=True)
LEVELS = {"wF": 0, "bF": 0, "zF": 1, "aF": 2, "aP": 3, "wO": 3, "bO": 3, "zO": 4, "aO": 5}
PARAMETERS = ("wF", "bF", "wO", "bO")
POOLS = {"conv-maxpool-dense": "max", "conv-avgpool-dense": "average", "conv-l2pool-dense": "l2"}
COSTS = ("quadratic", "cross_entropy", "log_likelihood")


class CnnModel:
    kind = "cnn"
    cost_names = ("C",)

    def __init__(self, when):
        self.cost = _one(when.get("cost"))
        self.pool = POOLS.get(_one(when.get("architecture")) or "") or {"max": "max", "average": "average",
                                                                        "l2": "l2"}.get(_one(when.get("pool")) or "")
        self.output_activation = _one(when.get("output_activation"))
        self.output = "coupled" if self.output_activation == "softmax" else _one(when.get("output"))
        if self.output_activation not in (None, "softmax"):
            self.output = "elementwise"
        size, stride = when.get("pool_size"), when.get("pool_stride")
        self.size = size if isinstance(size, int) and size == stride and size >= 1 else None
        self.book = (when.get("conv_stride"), when.get("padding"), when.get("channels")) == (1, 0, 1)
        self.families = {"x": 2, "wF": 3} if self.book else {"xpad": 3, "wF": 4}
        self.families.update({"bF": 1, "zF": 3, "aF": 3, "aP": 3, "wO": 4, "bO": 1, "zO": 1, "aO": 1, "t": 1,
                              "deltaF": 3, "deltaO": 1})

    # -- what the proof states it assumes ---------------------------------------------
    def assumptions(self) -> list[str]:
        said = [self._conv_text(), "aF[k, i, j] = σ(zF[k, i, j]), σ any differentiable function"]
        said += self._pool_text()
        said.append("a dense output layer: zO[n] = Σ_k Σ_r Σ_s wO[n, k, r, s]·aP[k, r, s] + bO[n] for n = 1..N")
        if self.output_activation == "softmax":
            said.append("the output is a softmax: aO[n] = exp(zO[n]) / Σ_m exp(zO[m])")
        elif self.output_activation == "sigmoid":
            said.append("the output activation is the logistic σ, so σ'(z) = σ(z)(1 − σ(z))")
        elif self.output == "elementwise":
            said.append("the output is elementwise: aO[n] = σ(zO[n])")
        said.append({"quadratic": "C = ½ Σ_n (aO[n] − t[n])²",
                     "cross_entropy": "C = −Σ_n (t[n] ln aO[n] + (1 − t[n]) ln(1 − aO[n]))",
                     "log_likelihood": "C = −Σ_n t[n] ln aO[n]"}.get(
            self.cost, "the cost C is any function of the outputs aO (no weight penalty)"))
        return said

    def _conv_text(self) -> str:
        if self.book:
            return ("a convolution layer with one input channel, stride 1 and no padding, for any image and any K "
                    "filters of any size kr × kc: zF[k, i, j] = Σ_p Σ_q wF[k, p, q]·x[i+p-1, j+q-1] + bF[k] "
                    "for i = 1..rowsF, j = 1..colsF")
        return ("a convolution layer with any number Cin of input channels, any stride and zero padding, any K "
                "filters of any size kr × kc: zF[k, i, j] = Σ_c Σ_p Σ_q wF[k, c, p, q]·xpad[c, stride·(i-1)+p-padr, "
                "stride·(j-1)+q-padc] + bF[k] for i = 1..rowsF, j = 1..colsF, xpad the input, 0 outside the image")

    def _pool_text(self) -> list[str]:
        said = {None: ["a pooling layer of any kind (the proof does not go through it)"],
                "max": ["max pooling, each channel alone: aP[k, r, s] is the maximum of aF[k, ·, ·] over (r, s)'s "
                        "window", "no pooling window has a tie, so near the point aP[k, r, s] is its window's "
                        "maximum unit: ∂aP[k, r, s]/∂aF[k, i, j] = ismax(aF[k, i, j], aP[k, r, s]), 1 when "
                        "aF[k, i, j] is in the window and is its maximum, 0 otherwise"],
                "average": ["average pooling, each channel alone, windows of pr × pc units: "
                            "aP[k, r, s] = (1/(pr·pc)) Σ_i Σ_j window(aP[k, r, s], aF[k, i, j])·aF[k, i, j]"],
                "l2": ["L2 pooling, each channel alone: aP[k, r, s] = sqrt(Σ_i Σ_j window(aP[k, r, s], aF[k, i, j])"
                       "·aF[k, i, j]²)"]}[self.pool]
        if self.pool is None:
            return said
        if self.size is None:
            said.append("the pooling windows may have any shape and stride: window(aP, aF) is 1 when aF is in aP's "
                        "window and 0 otherwise, and is left as it is")
        else:
            p = self.size
            said.append(f"pooling windows of {p} × {p} units with stride {p} that tile the feature map (rowsF = {p}·"
                        f"rowsP, colsF = {p}·colsP): aF[k, i, j] is in the window (r, s) exactly when "
                        f"r = ⌊(i-1)/{p}⌋+1 and s = ⌊(j-1)/{p}⌋+1")
        return said

    # -- names --------------------------------------------------------------------------
    def prepare(self, expr: sp.Expr, derivative) -> sp.Expr:
        """ismax and window as differentiable predicates, δF and δO as ∂C/∂zF and ∂C/∂zO, windows explicit where
        `when` fixes them."""
        expr = expr.replace(lambda e: isinstance(e, _IsMax), lambda e: ismax(*e.args))
        expr = expr.replace(lambda e: isinstance(e, _Window), lambda e: window(*e.args))
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.Indexed):
                self._check(node)
            elif isinstance(node, (ismax, window)):
                unit, pool = (node.args[1], node.args[0]) if isinstance(node, window) else node.args
                if not (_is(unit, AF) and _is(pool, AP)):
                    raise NotCovered(f"{type(node).__name__}() takes a feature-map unit aF[k, i, j] and a pooling "
                                     "unit aP[k, r, s]: ismax(aF, aP), window(aP, aF)")
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name in ("deltaF", "deltaO"),
                            lambda e: derivative(C, (ZF if e.base.label.name == "deltaF" else ZO)[e.indices]))
        if self.size is None:
            if expr.has(sp.floor, sp.ceiling):
                raise NotCovered("it names pooling units by ⌊·⌋, but `when` does not fix the pool size and stride "
                                 "(pool_size = pool_stride)")
            return split_channel(expr)
        expr = normal(expr.xreplace({PR: sp.Integer(self.size), PC: sp.Integer(self.size)}))
        return explicit(split_channel(expr), self.size)

    def _check(self, node: sp.Indexed) -> None:
        label = node.base.label.name
        if label not in self.families:
            raise NotCovered(f"the convolutional network has no family {label}"
                             + (" with these facts (one channel, stride 1, no padding: x and wF[k, p, q])"
                                if label in ("x", "xpad") else ""))
        if len(node.indices) != self.families[label]:
            raise NotCovered(f"{label} has {self.families[label]} indices here, not {len(node.indices)}"
                             + (" (`when` fixes one input channel)" if self.book else ""))

    def gradient(self, cost: str, quantity: sp.Expr, derivative) -> sp.Expr:
        return derivative(sp.Symbol(cost, real=True), quantity)

    def level(self, quantity: sp.Expr) -> sp.Expr:
        return sp.Integer(LEVELS[quantity.base.label.name])

    def floor(self, quantity: sp.Expr) -> sp.Expr:
        level = self.level(quantity)
        return level + 1 if quantity.base.label.name in PARAMETERS else level

    def top(self) -> sp.Expr:
        return sp.Integer(6)

    def reaches_cost(self, level: sp.Expr) -> bool:
        return self.cost in COSTS and level >= LEVELS["zO"]

    # -- definitions --------------------------------------------------------------------
    def net_input(self, k, i, j) -> sp.Expr:
        p, q = fresh("p"), fresh("q")
        if self.book:
            return sp.Sum(WF[k, p, q] * XB[i + p - 1, j + q - 1], (q, 1, KC), (p, 1, KR)) + BF[k]
        c = fresh("c")
        image = XPAD[c, STRIDE * (i - 1) + p - PADR, STRIDE * (j - 1) + q - PADC]
        return sp.Sum(WF[k, c, p, q] * image, (q, 1, KC), (p, 1, KR), (c, 1, CIN)) + BF[k]

    def pooled(self, k, r, s) -> sp.Expr:
        if self.pool is None:
            raise NotCovered("`when` does not say which pooling (max, average or L2) the network has")
        i, j = fresh("i"), fresh("j")
        unit, pool = AF[k, i, j], AP[k, r, s]
        body = {"max": ismax(unit, pool) * unit, "average": window(pool, unit) * unit,
                "l2": window(pool, unit) * unit ** 2}[self.pool]
        if self.size is not None and self.pool != "l2":  # the L2 root is read back as aP first (facts)
            body = explicit(body, self.size)
        total = sp.Sum(body, (j, 1, COLS_F), (i, 1, ROWS_F))
        size = (sp.Integer(self.size) ** 2) if self.size is not None else PR * PC
        return {"max": total, "average": total / size, "l2": sp.sqrt(total)}[self.pool]

    def dense(self, n) -> sp.Expr:
        k, r, s = fresh("k"), fresh("r"), fresh("s")
        return sp.Sum(WO[n, k, r, s] * AP[k, r, s], (s, 1, COLS_P), (r, 1, ROWS_P), (k, 1, K)) + BO[n]

    def output_of(self, n) -> sp.Expr:
        if self.output_activation == "softmax":
            m = fresh("m")
            return sp.exp(ZO[n]) / sp.Sum(sp.exp(ZO[m]), (m, 1, N))
        if self.output_activation == "sigmoid":
            return fn.sigmoid(ZO[n])
        if self.output == "elementwise":
            return fn.sigma(ZO[n])
        raise NotCovered("`when` does not say whether the output activation is elementwise or a softmax")

    def cost_definition(self) -> sp.Expr | None:
        n = fresh("n")
        a, t = AO[n], T[n]
        term = {"quadratic": (a - t) ** 2 / 2, "cross_entropy": -(t * sp.log(a) + (1 - t) * sp.log(1 - a)),
                "log_likelihood": -t * sp.log(a)}.get(self.cost)
        return None if term is None else sp.Sum(term, (n, 1, N))

    def definition(self, quantity: sp.Expr, ranges) -> sp.Expr | None:
        self._windows(ranges)
        label, idx = quantity.base.label.name, quantity.indices
        if label == "zF":
            return self.net_input(*idx)
        if label == "aF":
            return fn.sigma(ZF[idx])
        if label == "aP" and self.pool is not None:
            return self.pooled(*idx)
        if label == "zO":
            return self.dense(*idx)
        if label == "aO":
            return self.output_of(*idx)
        return None

    def _windows(self, ranges) -> None:
        """With explicit windows, the ranges of ρ(i) = ⌊(i-1)/p⌋+1 for the proof's feature-map indices i (1..rowsP),
        so that the index calculus contracts [r = ρ(i)] over r = 1..rowsP like any Kronecker delta."""
        if self.size is not None:
            ranges.update(window_ranges(ranges, self.size, ((ROWS_F, ROWS_P), (COLS_F, COLS_P))))

    # -- the chain rule's next step --------------------------------------------------------
    def consumer(self, cost: str, quantity: sp.Expr, ranges) -> Consumer | None:
        self._windows(ranges)
        label = quantity.base.label.name
        if label in ("wF", "bF", "zF"):
            k, i, j = fresh("k"), fresh("i"), fresh("j")
            feature = ((j, sp.S.One, COLS_F), (i, sp.S.One, ROWS_F))
            if label == "zF":
                return Consumer(AF[k, i, j], fn.sigma(ZF[k, i, j]), k, sp.S.One, K, more=feature)
            return Consumer(ZF[k, i, j], self.net_input(k, i, j), k, sp.S.One, K, more=feature)
        if label == "aF":
            k, r, s = fresh("k"), fresh("r"), fresh("s")
            return Consumer(AP[k, r, s], self.pooled(k, r, s), k, sp.S.One, K,
                            more=((s, sp.S.One, COLS_P), (r, sp.S.One, ROWS_P)))
        if label in ("aP", "wO", "bO"):
            n = fresh("n")
            return Consumer(ZO[n], self.dense(n), n, sp.S.One, N)
        if label == "zO":
            n = fresh("n")
            return Consumer(AO[n], self.output_of(n), n, sp.S.One, N)
        if label == "aO":
            definition = self.cost_definition()
            return None if definition is None else Consumer(None, definition)
        return None

    # -- facts that hold in the model -------------------------------------------------------
    def facts(self, expr: sp.Expr) -> sp.Expr:
        """σ(zF) is aF and σ(zO) aO; a logistic output's σ' is aO(1 − aO); the L2 pool's root is aP (its windows
        then explicit where `when` fixes them); a softmax output is written through zO so that its sums can meet."""
        if self.output_activation == "sigmoid":
            expr = expr.replace(lambda e: isinstance(e, fn.sigma_prime) and _is(e.args[0], ZO),
                                lambda e: AO[e.args[0].indices] * (1 - AO[e.args[0].indices]))
        expr = expr.replace(lambda e: isinstance(e, (fn.sigma, fn.sigmoid)) and (_is(e.args[0], ZF) or
                                                                                  _is(e.args[0], ZO)),
                            lambda e: (AF if _is(e.args[0], ZF) else AO)[e.args[0].indices])
        if self.pool == "l2":
            expr = expr.replace(lambda e: isinstance(e, sp.Pow) and self._l2_root(e.base) is not None,
                                lambda e: self._l2_root(e.base) ** (2 * e.exp))
            if self.size is not None:
                expr = explicit(expr, self.size)
        if self.output_activation == "softmax":
            expr = expr.replace(lambda e: _is(e, AO), lambda e: self.output_of(*e.indices))
        return expr

    def _l2_root(self, total: sp.Expr):
        """aP[k, r, s] when `total` is Σ_i Σ_j window(aP[k, r, s], aF[k, i, j])·aF[k, i, j]², its definition squared."""
        if not isinstance(total, sp.Sum):
            return None
        pools = [w.args[0] for w in total.atoms(window) if _is(w.args[0], AP)]
        if len(pools) != 1:
            return None
        square = self.pooled(*pools[0].indices) ** 2
        return pools[0] if rename_dummies(total) == rename_dummies(square) else None
