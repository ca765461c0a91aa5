"""What a formula's words mean over one network, for a student's claims and for formula sets alike.

`D(X, v)` is ∂X/∂v through the graph, the max-pool indicator is the
derivation's is_max(i, window…), `sigma(z)` and `sigma_prime(z)` are the
activation z feeds and its derivative, and `L`, `size[l]` (and `d`, `q`, `l`
in Zhou's d-q-l networks) are the network's layer counts and sizes. A claim
and a formula set spell these differently (see derive/claims/vocabulary.py and
derive/proof/formulas.py) and report a misuse in their own words; what the
words stand for is decided here, once. Neuron errors are named in
derive/graph/naming.py, since the derivation prints them too.
"""

from __future__ import annotations

from functools import cached_property

import sympy as sp

from derive.derivation import Derivations
from derive.graph import functions as fn
from derive.graph import registry
from derive.graph.network import Network

SCALARS = ("C", "C0", "lmbda", "n")  # the cost, the unregularised cost and the L2 constants
ALIASES = {"t": "y"}  # the book's name for the target


class NetworkVocabulary:
    """The meanings claims and formula sets share, over one network and its derivations."""

    def __init__(self, network: Network, derivations: Derivations):
        self.network = network
        self.derivations = derivations

    # -- D(X, v) ---------------------------------------------------------------------
    def adjoint(self, of: sp.Symbol, wrt: sp.Symbol) -> sp.Expr:
        """∂of/∂wrt for a quantity the network names: the derivation's adjoint symbol."""
        return self.derivations.of(of).adjoint(wrt)

    def derivative(self, quantity: sp.Expr, variable: sp.Symbol) -> sp.Expr:
        """∂quantity/∂variable through the graph: Σ_s ∂quantity/∂s · D(s, variable)."""
        if quantity == variable:
            return sp.S.One
        if isinstance(quantity, sp.Symbol) and quantity in self.network.definitions:
            return self.adjoint(quantity, variable)
        total = []
        for s in quantity.free_symbols:
            if s == variable:
                inner = sp.S.One
            elif s in self.network.definitions:
                inner = self.adjoint(s, variable)
            else:
                continue
            if inner != 0:
                total.append(sp.diff(quantity, s) * inner)
        return sp.Add(*total)

    # -- the max-pool indicator ------------------------------------------------------
    @cached_property
    def pools(self) -> dict[sp.Symbol, list[sp.Symbol]]:
        return max_pools(self.network)

    def indicator(self, element: sp.Expr, pool: sp.Expr) -> sp.Expr | None:
        """[element is the maximum of pool's window] (0 when it is not in the window); None when pool is no
        max-pooling unit."""
        definition = self.network.definitions.get(pool) if isinstance(pool, sp.Symbol) else None
        if not isinstance(definition, fn.maxpool):
            return None
        if element not in definition.args:
            return sp.S.Zero  # not in that window: never its maximum
        return indicator(element, pool, definition)

    def is_window(self, units: tuple[sp.Expr, ...]) -> bool:
        """Whether the units are a max-pooling window of the network, in order."""
        return any(self.network.definitions[pool].args == units for pools in self.pools.values() for pool in pools)

    # -- σ and σ′ --------------------------------------------------------------------
    def activation(self, z: sp.Expr) -> sp.Expr | None:
        """σ(z): the node applying the activation to z, else the network's one activation function applied
        to z; None when neither exists."""
        node = self.network.activation_node(z)
        if node is not None:
            return node
        func = self.sole_activation()
        return None if func is None else func(z)

    def activation_derivative(self, z: sp.Expr) -> sp.Expr | None:
        """σ′(z), in node symbols where z feeds an activation (a(1 − a) for σ); None when σ is ambiguous."""
        if self.network.activation_node(z) is not None:
            return self.network.activation_derivative(z)
        func = self.sole_activation()
        if func is None:
            return None
        if func is fn.sigma:
            return fn.sigma_prime(z)
        t = sp.Dummy("t")
        return sp.diff(func(t), t).xreplace({t: z})

    def sole_activation(self):
        """The network's one activation function, or None when it has several or none."""
        kinds = {
            type(d) for d in self.network.definitions.values()
            if isinstance(d, registry.ACTIVATION_CLASSES)
        }
        return kinds.pop() if len(kinds) == 1 else None

    # -- layers and scalars ----------------------------------------------------------
    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return self.network.facts.get("sizes", ())

    @cached_property
    def integers(self) -> dict[str, int]:
        """The whole numbers a formula may name: the network's own, L (its layers), and d, q, l in Zhou's d-q-l."""
        facts = self.network.facts
        integers = dict(facts.get("integers", {}))
        if facts.get("L") is not None:
            integers["L"] = facts["L"]
        if facts.get("kind") == "threshold" and len(self.sizes) == 3:
            integers.update(zip(("d", "q", "l"), self.sizes))
        return integers

    def scalar(self, name: str) -> sp.Symbol | None:
        """C, C0, lmbda, n: the network's cost, unregularised cost and L2 constants, where it has them."""
        if name in SCALARS and name in self.network.families:
            return self.network.families[name][()]
        return None


def max_pools(network: Network) -> dict[sp.Symbol, list[sp.Symbol]]:
    """Each unit of a max-pooling window ↦ the pooling units whose windows hold it."""
    found: dict[sp.Symbol, list[sp.Symbol]] = {}
    for node in network.order:
        definition = network.definitions[node]
        if isinstance(definition, fn.maxpool):
            for element in definition.args:
                found.setdefault(element, []).append(node)
    return found


def indicator(element: sp.Symbol, pool: sp.Symbol, definition: sp.Expr) -> sp.Expr:
    """[element is the maximum of pool's window], as the derivation writes it: is_max(i, window…)."""
    return fn.is_max(sp.Integer(definition.args.index(element) + 1), *definition.args)


class ismax(sp.Function):
    """The max-pool indicator as a claim writes it, for printing: ismax(aF_1_1_1) or ismax(aF_1_2_2, aP_1_1_1).

    Never used in a proof: the vocabulary turns it into the derivation's is_max(i, window…).
    """

    def _latex(self, printer, exp=None):
        element = printer._print(self.args[0])
        right = r"\max" if len(self.args) == 1 else printer._print(self.args[1])
        head = rf"\left[{element} = {right}\right]"
        return head if exp is None else rf"{head}^{{{exp}}}"
