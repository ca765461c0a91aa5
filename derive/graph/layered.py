"""Layered networks, in Nielsen's notation: fully connected layers with his names."""

from __future__ import annotations

from typing import Mapping, Sequence

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.errors import InputError
from derive.graph.network import (
    Network,
    check_cost,
    check_size,
    cost_expression,
    layer_index_latex,
    product,
    symbol,
    with_values,
)

REGULARIZATIONS = ("none", "l2")
SIZES_HINT = "must be a list of at least two positive integers, such as [12, 3, 2]"


def layered(
    sizes: Sequence[int],
    activation: str | Sequence[str] = "sigmoid",
    cost: str = "quadratic",
    regularization: str = "none",
    *,
    name: str | None = None,
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """A fully connected network with Nielsen's names.

    Layer 1 is the input: `a^1 = x`. For l = 2…L, `z^l_j = Σ_k w^l_{jk} a^{l-1}_k + b^l_j`
    and `a^l_j = σ(z^l_j)`. Names in formulas: `x3` (also `a1_3`), `y2`, `w2_1_3`
    for w^2_{13} (weight *to* neuron 1 of layer 2 *from* neuron 3 of layer 1),
    `b2_1`, `z2_1`, `a2_1`, the cost `C` (with L2: `C0` unregularised, `lmbda`, `n`).
    """
    sizes, activations = _checked_options(sizes, activation, cost, regularization)
    symbols = _LayeredSymbols()
    inputs, targets = symbols.leaves(sizes)
    outputs = inputs
    for l in range(2, len(sizes) + 1):
        outputs = symbols.layer(l, sizes, activations[l - 2], outputs)
    total = symbols.add_cost(cost, regularization, targets, outputs)
    if cost == "generic":
        targets = []
    network = Network(
        name=name or "-".join(str(n) for n in sizes),
        kind="layered",
        inputs=tuple(inputs),
        targets=tuple(targets),
        parameters=tuple(symbols.parameters),
        constants=tuple(symbols.constants),
        order=tuple(symbols.order),
        definitions=symbols.definitions,
        cost=total,
        latex_names=symbols.latex,
        families=symbols.families,
        aliases=symbols.aliases,
        facts={
            "kind": "layered",
            "L": len(sizes),
            "sizes": tuple(sizes),
            "activations": tuple(activations),
            "output_activation": activations[-1],
            "output": "coupled" if activations[-1] == "softmax" else "elementwise",
            "cost": cost,
            "regularization": regularization,
        },
        description=description,
        source=source,
    )
    if values is not None:
        network = with_values(network, values)
    return network


def _checked_options(
    sizes: object, activation: object, cost: object, regularization: object
) -> tuple[list[int], list[str]]:
    """The layer sizes and one activation per layer after the input, or the first option's error.

    The size limits are checked from the sizes alone, so an oversized network
    is refused before any of its symbols is made.
    """
    if not isinstance(sizes, (list, tuple)):
        raise InputError(SIZES_HINT, where="[network] layers")
    sizes = list(sizes)
    if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise InputError(SIZES_HINT, where="[network] layers")
    check_size(len(sizes), sum(a * b + b for a, b in zip(sizes, sizes[1:])),
               sum(a * b for a, b in zip(sizes, sizes[1:])), where="[network] layers")
    L = len(sizes)
    if not (isinstance(activation, str) or (isinstance(activation, (list, tuple)) and all(isinstance(a, str) for a in activation))):
        raise InputError("must be a name or a list of names", where="[network] activation")
    for key, value in (("cost", cost), ("regularization", regularization)):
        if not isinstance(value, str):
            raise InputError("must be a name (a string)", where=f"[network] {key}")
    activations = [activation] * (L - 1) if isinstance(activation, str) else list(activation)
    if len(activations) != L - 1:
        raise InputError(f"give one name or a list of {L - 1} (one per layer after the input)", where="[network] activation")
    for index, act in enumerate(activations, start=2):
        if act == "softmax":
            if index != L:
                raise InputError("softmax is allowed on the last layer only", where="[network] activation")
        elif act not in registry.ACTIVATIONS:
            known = ", ".join([*registry.ACTIVATIONS, "softmax"])
            raise InputError(f"unknown activation '{act}' (known: {known})", where="[network] activation")
    check_cost(cost, activations[-1])
    if regularization not in REGULARIZATIONS:
        raise InputError(f"unknown '{regularization}' (known: {', '.join(REGULARIZATIONS)})", where="[network] regularization")
    return sizes, activations


class _LayeredSymbols:
    """A layered network's symbols as they are made, layer by layer, with their equations."""

    def __init__(self) -> None:
        self.latex: dict[sp.Symbol, str] = {}
        self.families: dict[str, dict[tuple[int, ...], sp.Symbol]] = {k: {} for k in "wbzaxy"}
        self.aliases: dict[str, sp.Symbol] = {}
        self.parameters: list[sp.Symbol] = []
        self.constants: list[sp.Symbol] = []
        self.order: list[sp.Symbol] = []
        self.definitions: dict[sp.Symbol, sp.Expr] = {}

    def make(self, family: str, index: tuple[int, ...], text: str, tex: str) -> sp.Symbol:
        s = symbol(text)
        self.families[family][index] = s
        self.latex[s] = tex
        return s

    def define(self, node: sp.Symbol, expr: sp.Expr) -> None:
        self.definitions[node] = expr
        self.order.append(node)

    def leaves(self, sizes: Sequence[int]) -> tuple[list[sp.Symbol], list[sp.Symbol]]:
        """The inputs `x1…` (layer 1's activations, also `a1_1…`) and the targets `y1…`."""
        inputs = [self.make("x", (k,), f"x{k}", f"x_{{{k}}}") for k in range(1, sizes[0] + 1)]
        for k, x in enumerate(inputs, start=1):
            self.families["a"][(1, k)] = x
            self.aliases[f"a1_{k}"] = x
        targets = [self.make("y", (j,), f"y{j}", f"y_{{{j}}}") for j in range(1, sizes[-1] + 1)]
        return inputs, targets

    def layer(self, l: int, sizes: Sequence[int], act: str, previous: list[sp.Symbol]) -> list[sp.Symbol]:
        """Layer l's weights, biases and net inputs z, then its activations a (returned)."""
        zs = []
        for j in range(1, sizes[l - 1] + 1):
            weights = [
                self.make("w", (l, j, k), f"w{l}_{j}_{k}", f"w^{{{l}}}_{{{layer_index_latex(j, k)}}}")
                for k in range(1, sizes[l - 2] + 1)
            ]
            bias = self.make("b", (l, j), f"b{l}_{j}", f"b^{{{l}}}_{{{j}}}")
            self.parameters.extend(weights)
            self.parameters.append(bias)
            z = self.make("z", (l, j), f"z{l}_{j}", f"z^{{{l}}}_{{{j}}}")
            self.define(z, sp.Add(*[product(w, a) for w, a in zip(weights, previous)], bias))
            zs.append(z)
        current = []
        for j, z in enumerate(zs, start=1):
            a = self.make("a", (l, j), f"a{l}_{j}", f"a^{{{l}}}_{{{j}}}")
            if act == "softmax":
                self.define(a, fn.softmax(sp.Integer(j), *zs))
            else:
                self.define(a, registry.ACTIVATIONS[act](z))
            current.append(a)
        return current

    def add_cost(
        self, cost: str, regularization: str, targets: list[sp.Symbol], outputs: list[sp.Symbol]
    ) -> sp.Symbol:
        """The data cost (`C`, or `C0` under L2), then the total cost `C` (returned; the data cost without L2)."""
        data_cost = symbol("C0" if regularization == "l2" else "C")
        self.define(data_cost, cost_expression(cost, targets, outputs))
        if cost == "generic":
            self.families["y"] = {}
        self.latex[data_cost] = "C_{0}" if regularization == "l2" else "C"
        total = data_cost
        if regularization == "l2":
            lmbda, n = symbol("lmbda"), symbol("n")
            self.latex[lmbda], self.latex[n] = r"\lambda", "n"
            self.constants = [lmbda, n]
            total = symbol("C")
            weights = list(self.families["w"].values())
            self.define(total, data_cost + lmbda / (2 * n) * sp.Add(*[w**2 for w in weights]))
            self.latex[total] = "C"
        self.families["C"] = {(): total}
        self.families["C0"] = {(): data_cost}
        if regularization == "l2":
            self.families["lmbda"] = {(): self.constants[0]}
            self.families["n"] = {(): self.constants[1]}
        return total
