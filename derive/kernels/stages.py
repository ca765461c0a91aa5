"""The stages of a stack kernel, one per layer kind, each compiled from formulas proven for every size.

Every stage answers forward(views, a, training) -> (cached, output) and backward(views, grads, dout, cached)
-> ∂L/∂input; only dropout reads `training` (the identity when predicting).

A stage's forward pass runs its layer's definitions as the general model states them (affine:
out = Σ_d x w + b; batch norm: mu, var, xhat, out), its backward pass the formulas of its formula
set (affine: dx, dw, db; batchnorm: dgamma, dbeta and the simplified dx; attention: dV, dP, dS,
dQ, dK; softmax_cross_entropy: dx = (p·Σy − y)/N, which needs no one-hot rows), each compiled by
derive.kernels.indexed. Before a formula is compiled it is proven for every size
(derive.proof.general); one that is not proven makes no kernel. Two steps are the definitions
computed stably: a row softmax as softmax(s − max s), equal to it for every s, and the loss
−(1/N) Σ y ln p through log-sum-exp. The activation's derivative is differentiated by SymPy from
the registry's function, as the layered kernel's σ' is.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.kernels.elementwise import Elementwise, KernelError
from derive.kernels.indexed import Input, Program
from derive.proof.formulas import builtin_sets
from derive.proof.general.models_affine import AffineModel
from derive.proof.general.models_declared import LAYERS as DECLARED
from derive.proof.general.models_modules import NormModel
from derive.proof.general.prove import prove_identity

N, D, M, C, T, W = (sp.Symbol(n, real=True) for n in ("N", "D", "M", "C", "T", "d"))
EPS = sp.Symbol("eps", real=True)
n, m, d, t, c, i = (sp.Symbol(f"{name}_", integer=True) for name in ("n", "m", "d", "t", "c", "i"))


@functools.cache
def proven(set_id: str, formula_id: str):
    """The formula, after proving it for every size; a KernelError when it is not proven."""
    formula = next((f for f in builtin_sets()[set_id].formulas if f.id == formula_id), None)
    if formula is None:
        raise KernelError(f"the formula set {set_id} has no formula {formula_id}")
    result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)
    if result.status != "proven":
        raise KernelError(f"{set_id} {formula_id} is not proven for every size ({result.status}): no kernel is "
                          "compiled from it")
    return formula


def backward_program(set_id: str, formula_ids, inputs: dict, constants=None, lead: bool = False,
                     fed: dict | None = None, rewrite=None) -> Program:
    """The formulas `formula_ids` of a set, in order: each output `d<name>` (the lhs's quantity); those in
    `fed` are read by the later formulas; `rewrite` maps a right side before it is compiled."""
    program = Program(inputs, constants)
    for formula_id in formula_ids:
        formula = proven(set_id, formula_id)
        quantity = formula.lhs.args[1]
        name = "d" + quantity.base.label.name
        rhs = rewrite(formula.rhs) if rewrite else formula.rhs
        program.output(name, rhs, quantity.indices, lead=lead, feeds=(fed or {}).get(name), ranges=formula.ranges)
    return program


def rows(a: np.ndarray) -> np.ndarray:
    """A batch (B, …, F) as rows (B·…, F): a sequence's positions are rows of an affine layer too."""
    return a.reshape(-1, a.shape[-1])


def softmax_rows(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The softmax of each row of the last axis, as (p, s − max, Σ exp(s − max)) of the rows flattened.

    Rows are short (T or C entries): their maxima come from a transposed copy and their sums from a
    matrix-vector product, each a loop over long rows (a reduction along short rows costs 4-7x more)."""
    flat = s.reshape(-1, s.shape[-1])
    top = np.maximum.reduce(np.ascontiguousarray(flat.T), axis=0)
    shifted = flat - top[:, None]
    e = np.exp(shifted)
    total = e @ np.ones(flat.shape[1], dtype=flat.dtype)
    e /= total[:, None]
    return e.reshape(s.shape), shifted, total


class Affine:
    """out = x w + b at every row (and every position of a sequence)."""

    def __init__(self, weight: str, bias: str, input_gradient: bool = True):
        self.weight, self.bias = weight, bias
        self.forward_program = Program({"x": Input((N, D)), "w": Input((D, M)), "b": Input((M,))})
        self.forward_program.output("out", AffineModel({}).out(n, m), (n, m))
        ids = ("dx", "dw", "db") if input_gradient else ("dw", "db")
        self.backward_program = backward_program(
            "affine", ids, {"x": Input((N, D)), "w": Input((D, M)), "dout": Input((N, M))})

    def forward(self, views, a, training: bool = True):
        x = rows(a)
        out = self.forward_program.run({"x": x, "w": views[self.weight], "b": views[self.bias]})["out"]
        return x, out.reshape(*a.shape[:-1], out.shape[-1])

    def backward(self, views, grads, dout, x):
        found = self.backward_program.run({"x": x, "w": views[self.weight], "dout": rows(dout)})
        grads[self.weight][...] = found["dw"]
        grads[self.bias][...] = found["db"]
        dx = found.get("dx")
        return None if dx is None else dx.reshape(*dout.shape[:-1], dx.shape[-1])


class Activation:
    def __init__(self, function: str):
        z, a = sp.Symbol("Z", real=True), sp.Symbol("A", real=True)
        forward = registry.ACTIVATIONS[function](z)
        derivative = sp.diff(forward, z)
        self.forward_formula = Elementwise(forward, [z]).plain
        self.derivative = Elementwise(derivative.subs(forward, a), [z, a]).plain

    def forward(self, views, z, training: bool = True):
        a = self.forward_formula(z)
        return (z, a), a

    def backward(self, views, grads, dout, cached):
        z, a = cached
        return dout * self.derivative(z, a)


class Residual:
    """out = x + g(z), z = x W + b: the formulas hold for any activation g (proven with the generic σ), so
    σ'(z) is read as the array g'(z) of the layer's own g."""

    def __init__(self, weight: str, bias: str, function: str):
        self.weight, self.bias = weight, bias
        self.activation = Activation(function)
        families = {f.name: f for f in DECLARED["residual"][0]}
        self.forward_program = Program({"x": Input((N, D)), "W": Input((D, D)), "b": Input((D,))})
        self.forward_program.output("z", families["z"].define(n, d), (n, d))
        gprime = sp.IndexedBase("gprime")

        def concrete(rhs):
            return rhs.replace(lambda e: isinstance(e, fn.sigma_prime) and isinstance(e.args[0], sp.Indexed),
                               lambda e: gprime[e.args[0].indices])
        self.backward_program = backward_program(
            "residual", ("dW", "db", "dx"),
            {"x": Input((N, D)), "W": Input((D, D)), "dout": Input((N, D)), "gprime": Input((N, D))},
            rewrite=concrete)

    def forward(self, views, a, training: bool = True):
        x = rows(a)
        z = self.forward_program.run({"x": x, "W": views[self.weight], "b": views[self.bias]})["z"]
        h = self.activation.forward(views, z)[1]
        return (x, z, h), (x + h).reshape(a.shape)

    def backward(self, views, grads, dout, cached):
        x, z, h = cached
        found = self.backward_program.run({"x": x, "W": views[self.weight], "dout": rows(dout),
                                           "gprime": self.activation.derivative(z, h)})
        grads[self.weight][...] = found["dW"]
        grads[self.bias][...] = found["db"]
        return found["dx"].reshape(dout.shape)


class Norm:
    """Batch norm (statistics over the rows) or layer norm (over each row's features)."""

    BACKWARD = {"batchnorm": ("dgamma", "dbeta", "dx"), "layernorm": ("dgamma", "dbeta", "dxhat", "dx")}

    def __init__(self, kind: str, gamma: str, beta: str, eps: float):
        self.gamma, self.beta = gamma, beta
        model = NormModel({"layer": kind})
        group = (N,) if kind == "layernorm" else (D,)
        s = n if kind == "layernorm" else d
        names = {name: sp.IndexedBase(name) for name in ("mu", "var", "xhat", "out")}
        program = Program({"x": Input((N, D)), "gamma": Input((D,)), "beta": Input((D,))}, {EPS: eps})
        program.output("mu", model.definition(names["mu"][s]), (s,), feeds=Input(group))
        program.output("var", model.definition(names["var"][s]), (s,), feeds=Input(group))
        program.output("xhat", model.definition(names["xhat"][n, d]), (n, d), feeds=Input((N, D)))
        program.output("out", model.definition(names["out"][n, d]), (n, d))
        self.forward_program = program
        self.backward_program = backward_program(
            kind, self.BACKWARD[kind],
            {"x": Input((N, D)), "var": Input(group), "mu": Input(group), "xhat": Input((N, D)),
             "gamma": Input((D,)), "dout": Input((N, D))}, {EPS: eps}, fed={"dxhat": Input((N, D))})

    def forward(self, views, a, training: bool = True):
        x = rows(a)
        found = self.forward_program.run({"x": x, "gamma": views[self.gamma], "beta": views[self.beta]})
        return (x, found), found["out"].reshape(a.shape)

    def backward(self, views, grads, dout, cached):
        x, found = cached
        result = self.backward_program.run({"x": x, "var": found["var"], "mu": found["mu"], "xhat": found["xhat"],
                                            "gamma": views[self.gamma], "dout": rows(dout)})
        grads[self.gamma][...] = result["dgamma"]
        grads[self.beta][...] = result["dbeta"]
        return result["dx"].reshape(dout.shape)


class Attention:
    """One head: Q, K, V = x wq + bq, x wk + bk, x wv + bv at every position, then S = Q Kᵀ / sqrt(d),
    P = the row softmax of S, out = P V, for each sequence of the batch (the lead axis)."""

    def __init__(self, number: int, input_gradient: bool = True):
        self.projections = {part: Affine(f"w{part}{number}", f"b{part}{number}", input_gradient)
                            for part in ("q", "k", "v")}
        families = {f.name: f for f in DECLARED["attention"][0]}
        sequence, square = Input((T, W), lead=True), Input((T, T), lead=True)
        self.scores = Program({"Q": sequence, "K": sequence})
        self.scores.output("S", families["S"].define(t, c), (t, c), lead=True)
        self.mixed = Program({"P": square, "V": sequence})
        self.mixed.output("out", families["out"].define(t, i), (t, i), lead=True)
        self.backward_program = backward_program(
            "attention", ("dV", "dP", "dS", "dQ", "dK"),
            {"Q": sequence, "K": sequence, "V": sequence, "P": square, "dout": sequence}, lead=True,
            fed={"dP": square, "dS": square})

    def forward(self, views, a, training: bool = True):
        cached, parts = {}, {}
        for part, projection in self.projections.items():
            cached[part], parts[part] = projection.forward(views, a)
        scores = self.scores.run({"Q": parts["q"], "K": parts["k"]})["S"]
        attention = softmax_rows(scores)[0]  # the definition exp(S)/Σ exp(S), shifted by the row maximum
        out = self.mixed.run({"P": attention, "V": parts["v"]})["out"]
        return (cached, parts, attention), out

    def backward(self, views, grads, dout, cached):
        inputs, parts, attention = cached
        found = self.backward_program.run({"Q": parts["q"], "K": parts["k"], "V": parts["v"], "P": attention,
                                           "dout": dout})
        dx = None
        for part, gradient in (("q", found["dQ"]), ("k", found["dK"]), ("v", found["dV"])):
            through = self.projections[part].backward(views, grads, gradient, inputs[part])
            dx = through if dx is None else dx + through  # x feeds Q, K and V: the chain rule sums the three
        return dx


class Dropout:
    """Inverted dropout: out = x·mask/p with a fresh mask each training step (each unit kept with
    probability p), the identity when predicting. The kernel lends the random generator (`masks`)."""

    def __init__(self, keep: float, masks):
        self.keep, self.masks = keep, masks
        family = next(f for f in DECLARED["dropout"][0] if f.name == "out")
        constants = {sp.Symbol("p", real=True): keep}
        self.forward_program = Program({"x": Input((N, D)), "mask": Input((N, D))}, constants)
        self.forward_program.output("out", family.define(n, d), (n, d))
        self.backward_program = backward_program("dropout", ("dx",), {"mask": Input((N, D)), "dout": Input((N, D))},
                                                 constants)

    def forward(self, views, a, training: bool = True):
        if not training:
            return None, a
        x = rows(a)
        mask = (self.masks().random(x.shape) < self.keep).astype(x.dtype)
        return mask, self.forward_program.run({"x": x, "mask": mask})["out"].reshape(a.shape)

    def backward(self, views, grads, dout, mask):
        return self.backward_program.run({"mask": mask, "dout": rows(dout)})["dx"].reshape(dout.shape)


class Readout:
    def __init__(self, position: str):
        self.position = position

    def forward(self, views, a, training: bool = True):
        return a.shape, (a[:, -1, :] if self.position == "last" else a.mean(axis=1))

    def backward(self, views, grads, dout, shape):
        if self.position == "last":
            dx = np.zeros(shape, dtype=dout.dtype)
            dx[:, -1, :] = dout
            return dx
        return np.broadcast_to(dout[:, None, :] / shape[1], shape).copy()


class SoftmaxCrossEntropy:
    """p = the row softmax of the scores, L = −(1/N) Σ_n Σ_c y ln p; dx = (p·Σ_c y − y)/N for any targets."""

    def __init__(self):
        self.backward_program = backward_program(
            "softmax_cross_entropy", ("dx-general",), {"p": Input((N, C)), "y": Input((N, C))})

    def loss_and_gradient(self, scores, y):
        p, shifted, total = softmax_rows(scores)
        # ln p = (s − max) − ln Σ exp(s − max), log-sum-exp: no log(0) for a saturated softmax
        loss = (float((y @ np.ones(y.shape[1], dtype=y.dtype)) @ np.log(total)) - float(np.vdot(y, shifted))) / len(y)
        gradient = self.backward_program.run({"p": p, "y": y})["dx"]
        return loss, gradient

    @staticmethod
    def predict(scores):
        return softmax_rows(scores)[0]
