"""The symbolic graph: a network as SymPy symbols with their defining equations.

Every named quantity (a net input z, an activation a, the cost) is a plain
`Symbol` with its defining expression beside it, in evaluation order. Leaves
are the inputs, targets, trained parameters and constants (λ, n). Keeping the
nodes as symbols is what makes reverse mode linear: each node's local
partials are derivatives of one short expression.

The builders that make networks live beside this module: `layered`
(Nielsen's fully connected layers, his names), `free_form` (ordered named
equations, any names), `zhou` (Zhou Zhihua's threshold network) and
`convolutional` (深度学习的数学's layers). This module holds what they share:
the `Network` object, symbol and size helpers, the costs, a numeric point.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Mapping, Sequence

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.errors import FormulaError, InputError
from derive.limits import MAX_CONNECTIONS, MAX_LAYERS, MAX_PARAMETERS
from derive.graph.parser import Vocabulary, parse_formula

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESERVED = frozenset({*registry.FORMULA_FUNCTIONS, "D", "Derivative", "sum"})

COSTS = ("quadratic", "cross_entropy", "log_likelihood", "generic")
NO_TIE = "where no pooling window has a tie"
POOL_KIND = {"maxpool": "max", "avgpool": "average", "l2pool": "l2"}


def symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)



def per_network(compute):
    """`compute(network, …)` worked out once per Network object (held weakly), for what is the same for every
    claim of a file: a network is immutable, and compared by identity."""
    cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @functools.wraps(compute)
    def cached(network, *args, **kwargs):
        if network not in cache:
            cache[network] = compute(network, *args, **kwargs)
        return cache[network]

    return cached

@dataclass(frozen=True, eq=False)
class Network:
    """A network as a graph of symbols. Immutable; derived structure is cached.

    `families` maps the index notation of formula sets to this network's
    symbols (`"w"` ↦ {(l, j, k): w^l_{jk}}); `facts` holds what a formula set
    may require of a network (its cost, its activations, …).
    """

    name: str
    kind: str
    inputs: tuple[sp.Symbol, ...]
    targets: tuple[sp.Symbol, ...]
    parameters: tuple[sp.Symbol, ...]
    constants: tuple[sp.Symbol, ...]
    order: tuple[sp.Symbol, ...]
    definitions: Mapping[sp.Symbol, sp.Expr]
    cost: sp.Symbol
    latex_names: Mapping[sp.Symbol, str] = field(default_factory=dict)
    values: Mapping[sp.Symbol, Fraction] | None = None
    families: Mapping[str, Mapping[tuple[int, ...], sp.Symbol]] = field(default_factory=dict)
    aliases: Mapping[str, sp.Symbol] = field(default_factory=dict)
    facts: Mapping[str, object] = field(default_factory=dict)
    description: str = ""
    source: str | None = None

    # -- structure -------------------------------------------------------------
    @cached_property
    def leaves(self) -> tuple[sp.Symbol, ...]:
        return self.inputs + self.targets + self.parameters + self.constants

    @cached_property
    def by_name(self) -> dict[str, sp.Symbol]:
        """Every symbol by the name a formula uses, aliases included (`a1_3` for `x3`)."""
        names = {s.name: s for s in (*self.leaves, *self.order)}
        names.update(self.aliases)
        return names

    @cached_property
    def position(self) -> dict[sp.Symbol, int]:
        """Evaluation order: leaves first (−1), then nodes in the order they are defined."""
        pos = {s: -1 for s in self.leaves}
        pos.update({s: i for i, s in enumerate(self.order)})
        return pos

    @cached_property
    def consumers(self) -> dict[sp.Symbol, tuple[sp.Symbol, ...]]:
        """For each symbol, the nodes whose definitions use it, in evaluation order."""
        users: dict[sp.Symbol, list[sp.Symbol]] = {}
        for node in self.order:
            for used in self.definitions[node].free_symbols:
                users.setdefault(used, []).append(node)
        return {s: tuple(nodes) for s, nodes in users.items()}

    @cached_property
    def depth(self) -> dict[sp.Symbol, int]:
        """Longest path from a leaf: leaves 0, a node one more than its deepest argument."""
        depth = {s: 0 for s in self.leaves}
        for node in self.order:
            args = self.definitions[node].free_symbols
            depth[node] = 1 + max((depth[a] for a in args), default=0)
        return depth

    @cached_property
    def ancestors_of_cost(self) -> frozenset[sp.Symbol]:
        return self.ancestors(self.cost)

    def ancestors(self, node: sp.Symbol) -> frozenset[sp.Symbol]:
        """Every symbol `node` depends on, itself included."""
        seen = {node}
        stack = [node]
        while stack:
            current = stack.pop()
            definition = self.definitions.get(current)
            if definition is None:
                continue
            for used in definition.free_symbols:
                if used not in seen:
                    seen.add(used)
                    stack.append(used)
        return frozenset(seen)

    @cached_property
    def assumptions(self) -> tuple[str, ...]:
        """Conditions every derivative of this network holds under: max has none at a tie."""
        if any(isinstance(d, fn.maxpool) for d in self.definitions.values()):
            return (NO_TIE,)
        return ()

    def role(self, s: sp.Symbol) -> str:
        if s in self.definitions:
            return "cost" if s == self.cost else "node"
        for role, group in (
            ("input", self.inputs),
            ("target", self.targets),
            ("parameter", self.parameters),
            ("constant", self.constants),
        ):
            if s in group:
                return role
        raise KeyError(s)

    @cached_property
    def _function_nodes(self) -> dict[sp.Expr, sp.Expr]:
        """Defining expressions that are function applications or powers, ↦ their node.

        A local derivative such as d sigmoid(z)/dz = sigmoid(z)(1 − sigmoid(z))
        is rewritten through these to a(1 − a): the node symbols textbooks use.
        """
        replace: dict[sp.Expr, sp.Expr] = {}
        for node in self.order:
            definition = self.definitions[node]
            if isinstance(definition, sp.Function):
                replace[definition] = node
            elif definition.is_Pow and not definition.exp.is_Integer:
                base, exponent = definition.args
                replace[definition] = node
                replace[sp.Pow(base, -exponent)] = 1 / node
        return replace

    def local_partials(self, node: sp.Symbol) -> dict[sp.Symbol, sp.Expr]:
        """∂(definition of node)/∂v for every symbol v in that definition, computed once."""
        cache = self.__dict__.setdefault("_partials", {})
        if node not in cache:
            partials = _partials(self.definitions[node])
            replace = self._function_nodes
            if replace:
                partials = {v: d.xreplace(replace) if not d.is_Atom else d for v, d in partials.items()}
            cache[node] = partials
        return cache[node]

    def substituted(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with every node replaced by its definition, down to the leaves."""
        cache = self.__dict__.setdefault("_substituted", {})
        for node in self.order:
            if node not in cache:
                cache[node] = self.definitions[node].xreplace(
                    {s: cache[s] for s in self.definitions[node].free_symbols if s in cache}
                )
        return expr.xreplace({s: cache[s] for s in expr.free_symbols if s in cache})

    def activation_node(self, z: sp.Expr, *, identity: bool = False) -> sp.Symbol | None:
        """The node that applies an elementwise function to z (a = σ(z)), or None.

        `identity`: a node that copies z (a = z, a linear output layer) counts too.
        """
        for user in self.consumers.get(z, ()) if isinstance(z, sp.Symbol) else ():
            definition = self.definitions[user]
            if (identity and definition == z) or (isinstance(definition, sp.Function) and definition.args == (z,)):
                return user
        return None

    def activation_derivative(self, z: sp.Symbol) -> sp.Expr:
        """σ'(z) for the activation applied to the net input `z`, in node symbols (a(1 − a) for σ)."""
        user = self.activation_node(z, identity=True)
        if user is None:
            raise LookupError(f"{z} does not feed an elementwise activation")
        return self.local_partials(user)[z]

    def latex(self, expr: sp.Expr, names: Mapping[sp.Symbol, str] | None = None) -> str:
        symbol_names = dict(self.latex_names)
        if names:
            symbol_names.update(names)
        return sp.latex(expr, symbol_names=symbol_names)

    @property
    def missing_values(self) -> tuple[sp.Symbol, ...]:
        """Leaves that the `[values]` point leaves without a number."""
        if self.values is None:
            return ()
        return tuple(s for s in self.leaves if s not in self.values)

    def __repr__(self) -> str:
        return (
            f"<Network {self.name!r}: {len(self.inputs)} inputs, {len(self.parameters)} parameters, "
            f"{len(self.order)} nodes>"
        )

    def _repr_latex_(self) -> str:
        lines = [rf"{self.latex(node)} &= {self.latex(self.definitions[node])}" for node in self.order]
        return r"$\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}$"


def product(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """a·b, as `sp.Mul(a, b)` builds it, but cheaper where that matters.

    Reverse mode builds one product per edge (δ·a for every weight). For two
    distinct symbols the canonical product is their sorted pair, which costs
    2 µs instead of Mul's 26 µs for a pair it has not cached; multiplying by 1
    builds nothing.
    """
    if a is sp.S.One:
        return b
    if b is sp.S.One:
        return a
    if a.is_Symbol and b.is_Symbol and a != b:
        if sp.Basic.compare(a, b) > 0:
            a, b = b, a
        return sp.Mul._from_args((a, b), is_commutative=True)
    return sp.Mul(a, b)


def _partials(expr: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """All first partials of `expr` in one pass over its sums and products.

    `sympy.diff` once per symbol would read a 785-term sum 785 times; splitting
    sums and products first keeps the work linear in the size of `expr`.
    """
    if expr.is_Symbol:
        return {expr: sp.S.One}
    if expr.is_Add:
        collected: dict[sp.Symbol, list[sp.Expr]] = {}
        for term in expr.args:
            for v, d in _partials(term).items():
                collected.setdefault(v, []).append(d)
        return {v: ds[0] if len(ds) == 1 else sp.Add(*ds) for v, ds in collected.items()}
    if expr.is_Mul:
        factors = expr.args
        collected = {}
        for i, factor in enumerate(factors):
            if factor.is_number:
                continue
            rest = sp.Mul(*(factors[:i] + factors[i + 1 :]))
            for v, d in _partials(factor).items():
                collected.setdefault(v, []).append(product(rest, d))
        return {v: ds[0] if len(ds) == 1 else sp.Add(*ds) for v, ds in collected.items()}
    return {v: sp.diff(expr, v) for v in sorted(expr.free_symbols, key=sp.default_sort_key)}


# ---------------------------------------------------------------------------
# What the builders share: size limits, LaTeX indices, costs, a numeric point
# ---------------------------------------------------------------------------


def check_size(layers: int, parameters: int, connections: int, *, where: str, levels: str = "layers") -> None:
    """Refuse a network beyond the limits of derive.limits, naming the limit (before it is built)."""
    for count, limit, what in (
        (layers, MAX_LAYERS, levels),
        (parameters, MAX_PARAMETERS, "parameters"),
        (connections, MAX_CONNECTIONS, "connections (weights times their sources, pooling windows' members)"),
    ):
        if count > limit:
            raise InputError(
                f"more than {limit:,} {what} ({count:,}); derive works symbolically and stops here", where=where
            )


def layer_index_latex(*indices: int) -> str:
    if all(i < 10 for i in indices):
        return "".join(str(i) for i in indices)
    return ",".join(str(i) for i in indices)


def check_cost(cost: str, output_activation: str) -> None:
    """Refuse an unknown cost, or log_likelihood without a softmax output layer."""
    if cost not in COSTS:
        raise InputError(f"unknown cost '{cost}' (known: {', '.join(COSTS)})", where="[network] cost")
    if cost == "log_likelihood" and output_activation != "softmax":
        raise InputError("log_likelihood needs a softmax output layer", where="[network] cost")


def cost_expression(cost: str, targets: Sequence[sp.Symbol], outputs: Sequence[sp.Symbol]) -> sp.Expr:
    """The data cost of `outputs` against `targets` (the generic cost C(a) ignores the targets)."""
    if cost == "quadratic":
        return sp.Add(*[(y - a) ** 2 for y, a in zip(targets, outputs)]) / 2
    if cost == "cross_entropy":
        return -sp.Add(*[y * sp.log(a) + (1 - y) * sp.log(1 - a) for y, a in zip(targets, outputs)])
    if cost == "log_likelihood":
        return -sp.Add(*[y * sp.log(a) for y, a in zip(targets, outputs)])
    return fn.cost(*outputs)



def with_values(network: Network, values: Mapping[str, object]) -> Network:
    """The network with a numeric point: exact values for some or all of its leaves.

    A partial point is accepted: quantities whose leaves all have values can be
    evaluated, the others are reported as lacking them (`missing_values`).
    """
    point: dict[sp.Symbol, Fraction] = {}
    names = {s.name: s for s in network.leaves}
    for key, raw in values.items():
        if key not in names:
            raise InputError(f"'{key}' is not an input, target, parameter or constant", where=f"[values] {key}")
        point[names[key]] = exact_number(raw, where=f"[values] {key}")
    return dataclasses.replace(network, values=point)


def exact_number(raw: object, where: str) -> Fraction:
    """A TOML number or a numeric formula string ("1/3") as an exact fraction."""
    if isinstance(raw, bool):
        raise InputError("expected a number, not true/false", where=where)
    if isinstance(raw, int):
        return Fraction(raw)
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise InputError("expected a finite number", where=where)
        return Fraction(repr(raw))  # 0.05 means 1/20, the number the user typed
    if isinstance(raw, str):
        try:
            value = parse_formula(raw, Vocabulary({}))
        except FormulaError as exc:
            raise exc.located(where) from None
        if not value.is_Rational:
            raise InputError(f"'{raw}' is not a rational number", where=where)
        return Fraction(int(value.p), int(value.q))
    raise InputError(f"expected a number, got {type(raw).__name__}", where=where)


def undefined_node(network: Network, evaluate=None) -> tuple[sp.Symbol, str] | None:
    """The first node (in evaluation order) with no finite value at a point, and why; None if all have one.

    The point is the spec's [values] (50-digit arithmetic, a pooling tie going to
    the first maximum as the kernels do) unless `evaluate`, a numeric.Evaluator,
    is given. Nodes that need a leaf without a value are skipped. A node is
    undefined by a division by zero, log of a non-positive number, a fractional
    power of a negative one, or a magnitude beyond 2^1000 (see numeric.py).
    """
    from derive.graph.numeric import ApproximateArithmetic, Evaluator, Indeterminate

    if evaluate is None:
        if network.values is None:
            return None
        evaluate = Evaluator(ApproximateArithmetic(), network.values, network.definitions.get, ties="first")
    for node in network.order:
        try:
            evaluate(node)
        except KeyError:  # a leaf it needs has no value: a partial point
            continue
        except Indeterminate as exc:
            return node, str(exc)
        except (ArithmeticError, ValueError) as exc:
            return node, f"not computable ({type(exc).__name__}: {exc})"
    return None
