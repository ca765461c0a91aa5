"""The layered backend: BP1–BP4 in matrix form, one array operation per layer.

The structure is read off the symbolic graph and checked against it unit by unit (each z is
`Σ w a + b` with the expected weights); every elementwise piece is lambdified from the
derivation: the activation, its derivative σ' as the derivation wrote it (a(1 − a) for the
sigmoid), and the output error δ^L, taken from the derived closed form of ∂C/∂z^L and reduced
exactly by `cancel` (a − y for cross-entropy with sigmoid outputs, a·Σy − y for softmax with
log-likelihood), so the saturating quotients never reach floating point. The dense layers and
the output are shared with the convolutional backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp

from derive.derivation import Derivations
from derive.graph import functions as fn
from derive.graph.network import Network
from derive.kernels.base import Block, Kernel
from derive.kernels.elementwise import BUFFERED_SIZE, Elementwise, KernelError, quiet


@dataclass
class DenseLayer:
    weight: Block
    bias: Block
    zs: list[sp.Symbol]
    activation: Callable | None  # z -> a (None: softmax)
    derivative: Callable | None  # (z, a) -> σ'(z)


def activation_pieces(network: Network, zs: list[sp.Symbol], nodes: list[sp.Symbol]):
    """The layer's activation and σ' as lambdified patterns, checked for every unit."""
    Z, A = sp.Symbol("Z", real=True), sp.Symbol("A", real=True)
    first_z, first_a = zs[0], nodes[0]
    definition = network.definitions[first_a]
    if isinstance(definition, fn.softmax):
        return None, None
    forward = definition.xreplace({first_z: Z})
    derivative = network.local_partials(first_a)[first_z].xreplace({first_z: Z, first_a: A})
    for z, a in zip(zs[1:], nodes[1:]):
        if network.definitions[a].xreplace({z: Z}) != forward:
            raise KernelError(f"the units of {a}'s layer do not share one activation")
    return Elementwise(forward, [Z]), Elementwise(derivative, [Z, A])


def dense_blocks(network: Network, label_w: str, label_b: str, zs, sources, offset: int) -> tuple[Block, Block]:
    """Weight and bias blocks of a dense layer, after checking z_j = Σ_k w_jk s_k + b_j for every unit."""
    families = network.families
    weights = np.empty((len(zs), len(sources)), dtype=object)
    biases = np.empty(len(zs), dtype=object)
    w_index = {s: idx for idx, s in families[label_w].items()}
    b_index = {s: idx for idx, s in families[label_b].items()}
    for j, z in enumerate(zs):
        definition = network.definitions[z]
        terms = {}
        bias = None
        for term in sp.Add.make_args(definition):
            if term in b_index:
                bias = term
                continue
            w, s = _weight_and_source(term, w_index)
            terms[s] = w
        if bias is None or len(terms) != len(sources):
            raise KernelError(f"{z} is not Σ w·a + b over the previous layer")
        for k, s in enumerate(sources):
            if s not in terms:
                raise KernelError(f"{z} does not use {s}")
            weights[j, k] = terms[s]
        biases[j] = bias
    weight = Block(label_w.replace("w", "W", 1), weights.shape, offset, weights, fan_in=len(sources))
    bias = Block(label_b, biases.shape, offset + weight.size, biases, is_bias=True)
    return weight, bias


def _weight_and_source(term: sp.Expr, w_index) -> tuple[sp.Symbol, sp.Symbol]:
    factors = term.args if term.is_Mul else ()
    if len(factors) != 2:
        raise KernelError(f"{term} is not a weight times a unit")
    a, b = factors
    return (a, b) if a in w_index else (b, a)


class Output:
    """The cost and δ^L = ∂C/∂z^L, from the derivation, for a batch."""

    def __init__(self, network: Network, derivations: Derivations, zs, outputs, activation_name: str):
        self.network = network
        facts = network.facts
        self.cost_kind = facts["cost"]
        if self.cost_kind == "generic" or activation_name == "sigma":
            raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
        targets = list(network.targets)
        Zs, As, Ys = (sp.Symbol(n, real=True) for n in ("Z", "A", "Y"))
        cost = derivations.of(_data_cost(network))
        self.softmax = activation_name == "softmax"
        delta = [sp.cancel(sp.together(cost.closed_form(z))) for z in zs]
        if self.softmax:
            # the derivation's δ^L_j, reduced exactly, is a_j·Σ_k y_k − y_j: check it for every j
            total = sp.Add(*targets)
            for j, d in enumerate(delta):
                if sp.expand(d - (outputs[j] * total - targets[j])) != 0:
                    raise KernelError("δ^L of this softmax output is not a·Σy − y")
            self.delta = None
            if self.cost_kind != "log_likelihood":
                raise KernelError("a softmax output is compiled with the log-likelihood cost only")
        else:
            pattern = delta[0].xreplace({zs[0]: Zs, outputs[0]: As, targets[0]: Ys})
            for j in range(1, len(zs)):
                if delta[j].xreplace({zs[j]: Zs, outputs[j]: As, targets[j]: Ys}) != pattern:
                    raise KernelError("the output units do not share one δ^L")
            # factored (−a(a − 1)(a − y) for the quadratic cost): the same δ in fewer array operations
            self.delta = Elementwise(sp.factor(pattern), [Zs, As, Ys])
        if self.cost_kind == "cross_entropy" and activation_name != "sigmoid":
            raise KernelError("cross-entropy is compiled with sigmoid outputs only")

    def loss_and_error(self, z, a, y, memo, ones):
        """The batch's mean cost and δ^L divided by the batch size (BP1, the mean folded in once).

        `memo` is what `softmax_rows` left for the log-likelihood: the shifted z and Σ e^z per row;
        `ones`: as many ones as there are outputs.
        """
        scale = 1.0 / len(y)
        if self.delta is None:
            shifted, total = memo
            targets = y @ ones
            # −Σ y (z − max − log Σe^(z−max)): the log-likelihood through log-sum-exp
            loss = float(targets @ np.log(total)) - float(np.vdot(y, shifted))
            delta = a * targets[:, None]  # the derivation's a·Σy − y
            delta -= y
        else:
            if self.cost_kind == "quadratic":
                difference = y - a
                loss = 0.5 * float(np.vdot(difference, difference))
            else:  # −[y log σ(z) + (1 − y) log(1 − σ(z))] = log(1 + e^z) − y z, through logaddexp
                loss = float(np.logaddexp(0, z).sum()) - float(np.vdot(y, z))
            delta = self.delta(z, a, y)
        delta *= scale
        return loss * scale, delta


def softmax_rows(z, ones):
    """Softmax of each row, shifting z by its row maximum in place; returns (a, (shifted z, Σ e^shifted))."""
    # the row maxima from a transposed copy: a reduction along each short row costs 4-7x more
    top = np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)
    np.subtract(z, top[:, None], out=z)
    e = np.exp(z)
    total = e @ ones
    e /= total[:, None]
    return e, (z, total)


def _data_cost(network: Network) -> sp.Symbol:
    return network.families.get("C0", {}).get((), network.cost)


# ---------------------------------------------------------------------------
# Layered networks: BP1–BP4 in matrix form
# ---------------------------------------------------------------------------


class LayeredKernel(Kernel):
    backend = "layered"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        facts, families = network.facts, network.families
        sizes, L = facts["sizes"], facts["L"]
        blocks: list[Block] = []
        self.layers: list[DenseLayer] = []
        previous = [families["a"][(1, k)] for k in range(1, sizes[0] + 1)]
        offset = 0
        for l in range(2, L + 1):
            zs = [families["z"][(l, j)] for j in range(1, sizes[l - 1] + 1)]
            nodes = [families["a"][(l, j)] for j in range(1, sizes[l - 1] + 1)]
            weight, bias = dense_blocks(network, "w", "b", zs, previous, offset)
            weight.name, bias.name = f"W{l}", f"b{l}"
            offset += weight.size + bias.size
            blocks += [weight, bias]
            activation, derivative = activation_pieces(network, zs, nodes)
            self.layers.append(DenseLayer(weight, bias, zs, activation, derivative))
            previous = nodes
        super().__init__(network, dtype, blocks)
        self.output = Output(network, derivations, self.layers[-1].zs, previous, facts["activations"][-1])
        self.regularized = facts.get("regularization") == "l2"
        self.constants = {"lmbda": 0.0, "n": 1.0}

    def _forward(self, params, x, buffered: bool = True):
        """z and a of every layer; `buffered`: large arrays in workspaces kept between calls."""
        a = x
        zs, activations, memo = [], [x], None
        for index, layer in enumerate(self.layers):
            shape = (len(x), layer.weight.shape[0])
            z = self.workspace(index, "z", shape=shape) if buffered and math.prod(shape) >= BUFFERED_SIZE else None
            z = np.matmul(a, layer.weight.view(params).T, out=z)
            z += params[layer.bias.offset : layer.bias.end]
            if layer.activation is None:
                a, memo = softmax_rows(z, self.ones(z.shape[1]))
            else:
                a = (layer.activation if buffered else layer.activation.plain)(z)
            zs.append(z)
            activations.append(a)
        return zs, activations, memo

    @quiet
    def predict(self, params, x):
        return self._forward(params, self._cast(x), buffered=False)[1][-1]

    @quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        zs, activations, memo = self._forward(params, x)
        grad = np.empty_like(params)
        loss, delta = self.output.loss_and_error(zs[-1], activations[-1], y, memo, self.ones(y.shape[1]))  # BP1, over m
        ones = self.ones(len(x))
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            weight = layer.weight.view(params)
            np.matmul(delta.T, activations[index], out=layer.weight.view(grad))  # BP4
            np.matmul(ones, delta, out=grad[layer.bias.offset : layer.bias.end])  # BP3: Σ over the batch
            if index:
                shape = (len(x), weight.shape[1])
                out = self.workspace(index, "delta", shape=shape) if math.prod(shape) >= BUFFERED_SIZE else None
                delta = np.matmul(delta, weight, out=out)  # BP2: (w^{l+1})ᵀ δ^{l+1} …
                delta *= self.layers[index - 1].derivative(zs[index - 1], activations[index])  # … ⊙ σ'(z^l)
        if self.regularized:
            lmbda, n = self.constants["lmbda"], self.constants["n"]
            for layer in self.layers:
                w = layer.weight.view(params)
                layer.weight.view(grad)[...] += (lmbda / n) * w
                loss += lmbda / (2 * n) * float(np.vdot(w, w))
        return loss, grad
