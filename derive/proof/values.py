"""The network at its [values] point: node values, gradients and central differences, as plain data.

Everything is evaluated once, in 60-digit arithmetic, by one evaluator (each
node is computed once for all the numbers). The report shows these numbers;
it computes none itself. An --explain target's numbers (its gradient, and the
local partial derivatives along its chain-rule paths, or the δ of each node
between it and the cost) come from the same evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

import mpmath
import sympy as sp

from derive.derivation import Derivation, Derivations
from derive.errors import InputError
from derive.graph.network import Network
from derive.graph.numeric import ApproximateArithmetic, Evaluator, Indeterminate

MAX_PATHS = 16  # chain-rule paths written out by --explain; beyond, node by node
FD_LIMIT = 200  # parameters whose gradient is checked by a central difference
FD_STEP = Fraction(1, 10**20)
FD_DIGITS = 60


@dataclass(frozen=True)
class GradientValue:
    """∂C/∂θ at the [values] point, from the derivation and from a central difference of the cost."""

    parameter: sp.Symbol
    value: object | None
    finite_difference: object | None
    relative: object | None  # |value − finite difference| / the larger of the two


@dataclass(frozen=True)
class NetworkValues:
    """The numbers of a network at its [values] point (mpmath numbers; None where there is none)."""

    numbers: Mapping[sp.Expr, object | None]  # every quantity evaluated: nodes, cost, δs, partials
    gradients: list[GradientValue]  # the first FD_LIMIT parameters the cost depends on
    gradients_omitted: int
    path_products: Mapping[tuple[sp.Symbol, ...], object | None]  # an explained path's product of factors

    def at(self, expr: sp.Expr):
        """expr's value, or None where it has none (a leaf without a number, a point outside its domain)."""
        return self.numbers.get(expr)


def network_values(network: Network, derivations: Derivations, explain: sp.Symbol | None = None) -> NetworkValues | None:
    """Every node, the cost and each gradient at the spec's [values] point (None without [values]).

    `explain`: a symbol from `explain_target`, whose explanation's numbers are evaluated too.
    """
    if network.values is None:
        return None
    evaluate = Evaluator(ApproximateArithmetic(FD_DIGITS), network.values, derivations.definition)
    d = derivations.cost
    numbers = {expr: _at(evaluate, expr) for expr in [*network.order, network.cost]}
    gradients = []
    for p in d.parameters()[:FD_LIMIT]:
        value = numbers[d.adjoint(p)] = _at(evaluate, d.adjoint(p))
        fd = _finite_difference(network, p)
        relative = None
        if value is not None and fd is not None:
            relative = abs(value - fd) / max(abs(value), abs(fd), mpmath.mpf(10) ** -300)
        gradients.append(GradientValue(p, value, fd, relative))
    path_products = {}
    if explain is not None:
        numbers[d.adjoint(explain)] = _at(evaluate, d.adjoint(explain))
        paths = chain_paths(network, d, explain, MAX_PATHS + 1)
        if len(paths) <= MAX_PATHS:
            for path in paths:
                path_products[tuple(path)] = _path_product(network, evaluate, path, numbers)
        else:
            numbers.update((d.adjoint(n), _at(evaluate, d.adjoint(n))) for n in nodes_between(d, explain))
    return NetworkValues(numbers, gradients, max(0, len(d.parameters()) - FD_LIMIT), path_products)


def _path_product(network: Network, evaluate: Evaluator, path: list[sp.Symbol], numbers: dict):
    """The product of the local partial derivatives along `path` (None if one has no value);
    each factor's value is added to `numbers`."""
    product = 1
    for upper, lower in zip(path, path[1:]):
        partial = network.local_partials(upper)[lower]
        value = numbers[partial] = _at(evaluate, partial)
        product = None if value is None or product is None else product * value
    return product


def _at(evaluate: Evaluator, expr: sp.Expr):
    """expr's value (an mpmath number), or None where it has none: a leaf without a number, or a
    point outside its domain."""
    try:
        return evaluate(expr)
    except (KeyError, Indeterminate, ZeroDivisionError, TypeError, ValueError):
        return None


def _finite_difference(network: Network, parameter: sp.Symbol):
    """(C(θ + h) − C(θ − h)) / 2h at the [values] point, evaluated forward only in 60 digits."""
    values = network.values or {}
    if parameter not in values:
        return None
    results = []
    for sign in (1, -1):
        point = dict(values)
        point[parameter] = values[parameter] + sign * FD_STEP
        value = _at(Evaluator(ApproximateArithmetic(FD_DIGITS), point, network.definitions.get), network.cost)
        if value is None:
            return None
        results.append(value)
    return (results[0] - results[1]) / 2 * FD_STEP.denominator / FD_STEP.numerator


def explain_target(network: Network, derivations: Derivations, name: str) -> sp.Symbol:
    """The parameter or node `--explain name` means; an InputError when the cost does not depend on it."""
    target = network.by_name.get(name)
    if target is None or (target not in derivations.cost.ancestors):
        known = ", ".join(p.name for p in network.parameters[:12])
        raise InputError(f"--explain: '{name}' is not a parameter or node the cost depends on (parameters: {known}, …)")
    return target


def chain_paths(network: Network, d: Derivation, start: sp.Symbol, limit: int) -> list[list[sp.Symbol]]:
    """Paths from the cost down to `start` (cost first), at most `limit` of them."""
    found: list[list[sp.Symbol]] = []
    stack = [[start]]
    while stack and len(found) < limit:
        path = stack.pop()
        head = path[-1]
        if head == d.of:
            found.append(list(reversed(path)))
            continue
        for user in reversed(network.consumers.get(head, ())):
            if user in d.ancestors:
                stack.append([*path, user])
    return found


def nodes_between(d: Derivation, target: sp.Symbol) -> list[sp.Symbol]:
    """The nodes on some path from the cost down to `target` (not the target), the cost's side first."""
    between = d._needed(target)
    return [n for n in reversed(d.nodes()) if n in between and n != target]


def count_chain_paths(network: Network, d: Derivation, start: sp.Symbol) -> int:
    """How many paths lead from the cost down to `start`."""
    counts: dict[sp.Symbol, int] = {d.of: 1}
    for node in reversed(network.order):
        if node == d.of or node not in d.ancestors:
            continue
        counts[node] = sum(counts.get(u, 0) for u in network.consumers.get(node, ()))
    if start in counts:
        return counts[start]
    return sum(counts.get(u, 0) for u in network.consumers.get(start, ()))  # a leaf: through the nodes it feeds
