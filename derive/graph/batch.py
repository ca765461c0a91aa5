"""A layered network over a mini-batch of m examples, in the notation of the deeplearning.ai course.

Layers are numbered [0] (the input X) to [L]; columns are examples:

    Z^{[l]} = W^{[l]} A^{[l-1]} + b^{[l]}      (b broadcast over the m columns)
    A^{[l]} = g^{[l]}(Z^{[l]}),  A^{[0]} = X
    J = (1/m) Σ_i 𝓛(A^{[L](i)}, Y^{(i)})      the mean of the per-example losses

Names in formulas: `X1_2` (input unit 1 of example 2), `Y1_2`, `W1_2_3` (W^{[1]}
row 2, column 3), `b1_2`, `Z1_2_3` and `A1_2_3` (layer [1], unit 2, example 3),
the cost `J`. It is a free-form network underneath (as Zhou's is), so it shares
every check of that path; its facts say it is a batch.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import sympy as sp

from derive.errors import InputError
from derive.graph import functions as fn
from derive.graph import registry
from derive.graph.free_form import free_form
from derive.graph.network import check_size, symbol, with_values

MAX_BATCH = 64
LOSSES = ("cross_entropy", "quadratic", "generic")


def batch(
    sizes,
    m: int,
    *,
    activation="sigmoid",
    cost: str = "cross_entropy",
    name: str | None = None,
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
):
    sizes, activations = _checked(sizes, m, activation, cost)
    depth = len(sizes) - 1
    equations: dict[str, sp.Expr] = {}
    for l in range(1, depth + 1):
        func = _function(activations[l - 1])
        for i in range(1, m + 1):
            for j in range(1, sizes[l] + 1):
                previous = [symbol(f"X{k}_{i}") if l == 1 else symbol(f"A{l - 1}_{k}_{i}")
                            for k in range(1, sizes[l - 1] + 1)]
                total = sp.Add(*[symbol(f"W{l}_{j}_{k}") * a for k, a in enumerate(previous, start=1)])
                equations[f"Z{l}_{j}_{i}"] = total + symbol(f"b{l}_{j}")
            for j in range(1, sizes[l] + 1):
                equations[f"A{l}_{j}_{i}"] = func(symbol(f"Z{l}_{j}_{i}"))
    losses = [_loss(cost, [symbol(f"A{depth}_{j}_{i}") for j in range(1, sizes[-1] + 1)],
                    [symbol(f"Y{j}_{i}") for j in range(1, sizes[-1] + 1)]) for i in range(1, m + 1)]
    equations["J"] = sp.Add(*losses) / m
    parameters = [f"W{l}_{j}_{k}" for l in range(1, depth + 1) for j in range(1, sizes[l] + 1)
                  for k in range(1, sizes[l - 1] + 1)] + [f"b{l}_{j}" for l in range(1, depth + 1)
                                                          for j in range(1, sizes[l] + 1)]
    network = free_form(
        equations, cost="J",
        inputs=[f"X{k}_{i}" for i in range(1, m + 1) for k in range(1, sizes[0] + 1)],
        targets=[f"Y{j}_{i}" for i in range(1, m + 1) for j in range(1, sizes[-1] + 1)],
        parameters=parameters, name=name or "batch-" + "-".join(map(str, sizes)) + f"-m{m}",
        latex_names=_latex(sizes, m), description=description, source=source,
    )
    network = dataclasses.replace(network, kind="batch", facts={
        "kind": "batch", "name": network.name, "sizes": tuple(sizes), "m": m, "L": depth,
        "activations": tuple(activations), "output_activation": activations[-1], "cost": cost,
    })
    return network if values is None else with_values(network, values)


def _checked(sizes, m, activation, cost):
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise InputError("must be a list of two or more layer sizes, such as [2, 3, 1]", where="[network] layers")
    if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= MAX_BATCH:
        raise InputError(f"must be a whole number of examples from 1 to {MAX_BATCH}", where="[network] batch")
    parameters = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    check_size(len(sizes), parameters, m * parameters, where="[network] layers")
    activations = [activation] * (len(sizes) - 1) if isinstance(activation, str) else list(activation)
    if len(activations) != len(sizes) - 1 or not all(isinstance(a, str) for a in activations):
        raise InputError(f"give one name or a list of {len(sizes) - 1}", where="[network] activation")
    for act in activations:
        if act not in registry.ACTIVATIONS:
            raise InputError(f"unknown activation '{act}' (known: {', '.join(registry.ACTIVATIONS)})",
                             where="[network] activation")
    if cost not in LOSSES:
        raise InputError(f"unknown cost '{cost}' for a batch (known: {', '.join(LOSSES)})", where="[network] cost")
    return list(sizes), activations


def _function(name: str):
    return registry.ACTIVATIONS[name]


def _loss(cost: str, outputs: list, targets: list) -> sp.Expr:
    if cost == "cross_entropy":
        return -sp.Add(*[y * sp.log(a) + (1 - y) * sp.log(1 - a) for a, y in zip(outputs, targets)])
    if cost == "quadratic":
        return sp.Add(*[(a - y) ** 2 for a, y in zip(outputs, targets)]) / 2
    return fn.cost(*outputs)


def _latex(sizes, m) -> dict[str, str]:
    latex = {}
    for i in range(1, m + 1):
        for k in range(1, sizes[0] + 1):
            latex[f"X{k}_{i}"] = f"X_{{{k} {i}}}"
        for j in range(1, sizes[-1] + 1):
            latex[f"Y{j}_{i}"] = f"Y_{{{j} {i}}}"
    for l in range(1, len(sizes)):
        for j in range(1, sizes[l] + 1):
            latex[f"b{l}_{j}"] = f"b^{{[{l}]}}_{{{j}}}"
            for k in range(1, sizes[l - 1] + 1):
                latex[f"W{l}_{j}_{k}"] = f"W^{{[{l}]}}_{{{j} {k}}}"
            for i in range(1, m + 1):
                latex[f"Z{l}_{j}_{i}"] = f"Z^{{[{l}]}}_{{{j} {i}}}"
                latex[f"A{l}_{j}_{i}"] = f"A^{{[{l}]}}_{{{j} {i}}}"
    return latex
