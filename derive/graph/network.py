"""The symbolic graph: a network as SymPy symbols with their defining equations.

Every named quantity (a net input z, an activation a, the cost) is a plain
`Symbol` with its defining expression beside it, in evaluation order. Leaves
are the inputs, targets, trained parameters and constants (λ, n). Keeping the
nodes as symbols is what makes reverse mode linear: each node's local
partials are derivatives of one short expression.

Two builders make networks: `layered` (Nielsen's fully connected layers, his
names) and `free_form` (ordered named equations, any names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.errors import FormulaError, InputError
from derive.limits import MAX_CONNECTIONS, MAX_EQUATIONS, MAX_INPUT_VALUES, MAX_LAYERS, MAX_PARAMETERS
from derive.graph.parser import Vocabulary, parse_formula, tokenize
from derive.texsafe import math_or_text
from derive.texsafe import symbol_latex

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESERVED = frozenset({*registry.FORMULA_FUNCTIONS, "D", "Derivative", "sum"})

COSTS = ("quadratic", "cross_entropy", "log_likelihood", "generic")
NO_TIE = "where no pooling window has a tie"
REGULARIZATIONS = ("none", "l2")


def symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


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

    def activation_derivative(self, z: sp.Symbol) -> sp.Expr:
        """σ'(z) for the activation applied to the net input `z`, in node symbols (a(1 − a) for σ)."""
        for user in self.consumers.get(z, ()):
            definition = self.definitions[user]
            elementwise = definition == z or (
                isinstance(definition, sp.Function) and definition.args == (z,)
            )
            if elementwise:
                return self.local_partials(user)[z]
        raise LookupError(f"{z} does not feed an elementwise activation")

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
# Layered networks, in Nielsen's notation
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
    if not isinstance(sizes, (list, tuple)):
        raise InputError("must be a list of at least two positive integers, such as [12, 3, 2]", where="[network] layers")
    sizes = list(sizes)
    if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise InputError("must be a list of at least two positive integers, such as [12, 3, 2]", where="[network] layers")
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

    latex: dict[sp.Symbol, str] = {}
    families: dict[str, dict[tuple[int, ...], sp.Symbol]] = {k: {} for k in "wbzaxy"}
    aliases: dict[str, sp.Symbol] = {}

    def make(family: str, index: tuple[int, ...], text: str, tex: str) -> sp.Symbol:
        s = symbol(text)
        families[family][index] = s
        latex[s] = tex
        return s

    inputs = [make("x", (k,), f"x{k}", f"x_{{{k}}}") for k in range(1, sizes[0] + 1)]
    for k, x in enumerate(inputs, start=1):
        families["a"][(1, k)] = x
        aliases[f"a1_{k}"] = x
    targets = [make("y", (j,), f"y{j}", f"y_{{{j}}}") for j in range(1, sizes[-1] + 1)]

    parameters: list[sp.Symbol] = []
    order: list[sp.Symbol] = []
    definitions: dict[sp.Symbol, sp.Expr] = {}
    previous = inputs
    for l in range(2, L + 1):
        act = activations[l - 2]
        zs = []
        for j in range(1, sizes[l - 1] + 1):
            weights = [
                make("w", (l, j, k), f"w{l}_{j}_{k}", f"w^{{{l}}}_{{{layer_index_latex(j, k)}}}")
                for k in range(1, sizes[l - 2] + 1)
            ]
            bias = make("b", (l, j), f"b{l}_{j}", f"b^{{{l}}}_{{{j}}}")
            parameters.extend(weights)
            parameters.append(bias)
            z = make("z", (l, j), f"z{l}_{j}", f"z^{{{l}}}_{{{j}}}")
            definitions[z] = sp.Add(*[product(w, a) for w, a in zip(weights, previous)], bias)
            order.append(z)
            zs.append(z)
        current = []
        for j, z in enumerate(zs, start=1):
            a = make("a", (l, j), f"a{l}_{j}", f"a^{{{l}}}_{{{j}}}")
            if act == "softmax":
                definitions[a] = fn.softmax(sp.Integer(j), *zs)
            else:
                definitions[a] = registry.ACTIVATIONS[act](z)
            order.append(a)
            current.append(a)
        previous = current

    outputs = previous
    data_cost = symbol("C0" if regularization == "l2" else "C")
    definitions[data_cost] = cost_expression(cost, targets, outputs)
    if cost == "generic":
        targets = []
        families["y"] = {}
    order.append(data_cost)
    latex[data_cost] = "C_{0}" if regularization == "l2" else "C"
    constants: list[sp.Symbol] = []
    total = data_cost
    if regularization == "l2":
        lmbda, n = symbol("lmbda"), symbol("n")
        latex[lmbda], latex[n] = r"\lambda", "n"
        constants = [lmbda, n]
        total = symbol("C")
        weights = [s for i, s in families["w"].items()]
        definitions[total] = data_cost + lmbda / (2 * n) * sp.Add(*[w**2 for w in weights])
        order.append(total)
        latex[total] = "C"
    families_final: dict[str, Mapping] = {k: v for k, v in families.items()}
    families_final["C"] = {(): total}
    families_final["C0"] = {(): data_cost}
    if regularization == "l2":
        families_final["lmbda"] = {(): constants[0]}
        families_final["n"] = {(): constants[1]}

    facts = {
        "kind": "layered",
        "L": L,
        "sizes": tuple(sizes),
        "activations": tuple(activations),
        "output_activation": activations[-1],
        "output": "coupled" if activations[-1] == "softmax" else "elementwise",
        "cost": cost,
        "regularization": regularization,
    }
    network = Network(
        name=name or "-".join(str(n) for n in sizes),
        kind="layered",
        inputs=tuple(inputs),
        targets=tuple(targets),
        parameters=tuple(parameters),
        constants=tuple(constants),
        order=tuple(order),
        definitions=definitions,
        cost=total,
        latex_names=latex,
        families=families_final,
        aliases=aliases,
        facts=facts,
        description=description,
        source=source,
    )
    if values is not None:
        network = with_values(network, values)
    return network


# ---------------------------------------------------------------------------
# Free-form networks: ordered named equations
# ---------------------------------------------------------------------------


def free_form(
    equations: Mapping[str, str | sp.Expr],
    *,
    cost: str,
    inputs: Iterable[str] = (),
    targets: Iterable[str] = (),
    parameters: Iterable[str] | None = None,
    constants: Iterable[str] = (),
    name: str = "network",
    values: Mapping[str, object] | None = None,
    latex_names: Mapping[str, str] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """A network from ordered named equations: a name is defined once and used only after it.

    Equations are formula strings (parsed by the whitelist parser) or SymPy
    expressions. Without `parameters`, every name that is neither an input, a
    target, a constant nor an equation is a parameter, in order of appearance.
    """
    inputs, targets, constants = list(inputs), list(targets), list(constants)
    declared_parameters = None if parameters is None else list(parameters)
    equation_names = list(equations)
    _check_names(inputs, "[network] inputs")
    _check_names(targets, "[network] targets")
    _check_names(constants, "[network] constants")
    if declared_parameters is not None:
        _check_names(declared_parameters, "[network] parameters")
    _check_names(equation_names, "[equations]")
    if len(equation_names) > MAX_EQUATIONS:
        raise InputError(f"more than {MAX_EQUATIONS:,} equations; derive works symbolically and stops here",
                         where="[equations]")
    seen: dict[str, str] = {}
    groups = [("[network] inputs", inputs), ("[network] targets", targets), ("[network] constants", constants)]
    if declared_parameters is not None:
        groups.append(("[network] parameters", declared_parameters))
    groups.append(("[equations]", equation_names))
    for where, names in groups:
        for n in names:
            if n in seen:
                raise InputError(f"'{n}' is declared twice (in {seen[n]} and in {where})", where=where)
            seen[n] = where
    if cost not in equations:
        raise InputError(f"the cost '{cost}' is not one of the equations", where="[network] cost")

    table: dict[str, sp.Symbol] = {n: symbol(n) for n in (*inputs, *targets, *constants)}
    parameter_symbols: list[sp.Symbol] = []
    if declared_parameters is not None:
        for n in declared_parameters:
            table[n] = symbol(n)
            parameter_symbols.append(table[n])
    later = set(equation_names)
    dependencies = _name_dependencies(equations)

    definitions: dict[sp.Symbol, sp.Expr] = {}
    order: list[sp.Symbol] = []
    for current in equation_names:
        where = f"[equations] {current}"
        later.discard(current)

        def unknown(n: str, current=current) -> sp.Expr:
            if n == current:
                raise LookupError(f"'{current}' refers to itself (a cycle)")
            if n in later:
                cycle = _cycle_through(n, current, dependencies)
                if cycle:
                    raise LookupError("cycle: " + " → ".join(cycle))
                raise LookupError(f"'{n}' is used before its equation (equations are read in order)")
            if declared_parameters is None and NAME.match(n) and n not in RESERVED:
                table[n] = symbol(n)
                parameter_symbols.append(table[n])
                return table[n]
            raise LookupError(
                f"unknown name '{n}' (not an input, target, parameter, constant or earlier equation)"
            )

        text = equations[current]
        if isinstance(text, sp.Basic):
            expr = _adopt(text, table, unknown, where)
        else:
            try:
                expr = parse_formula(text, Vocabulary(table, unknown_name=unknown))
            except FormulaError as exc:
                raise exc.located(where) from None
        node = symbol(current)
        definitions[node] = expr
        order.append(node)
        table[current] = node

    cost_symbol = table[cost]
    network = Network(
        name=name,
        kind="free-form",
        inputs=tuple(table[n] for n in inputs),
        targets=tuple(table[n] for n in targets),
        parameters=tuple(parameter_symbols),
        constants=tuple(table[n] for n in constants),
        order=tuple(order),
        definitions=definitions,
        cost=cost_symbol,
        latex_names=_free_latex(table, latex_names),
        families={"C": {(): cost_symbol}, "C0": {(): cost_symbol}},
        facts={"kind": "free-form", "name": name},
        description=description,
        source=source,
    )
    check_size(max(network.depth.values(), default=0), len(parameter_symbols),
               sum(len(e.free_symbols) for e in definitions.values()),
               where="[equations]", levels="equations in a chain (the longest path from a leaf to the cost)")
    used = network.ancestors_of_cost
    for p in network.parameters:
        if p not in used:
            raise InputError(f"parameter '{p}' is declared but the cost '{cost}' does not depend on it", where="[network] parameters")
    if values is not None:
        network = with_values(network, values)
    return network


def _check_names(names: list[str], where: str) -> None:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError("must be a list of names", where=where)
    for n in names:
        if not NAME.match(n):
            raise InputError(f"'{n}' is not a name (letters, digits and _, not starting with a digit)", where=where)
        if n.startswith("__"):
            raise InputError(f"'{n}': names may not start with '__'", where=where)
        if n in RESERVED:
            raise InputError(f"'{n}' is the name of a function and cannot name a quantity", where=where)
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise InputError(f"'{sorted(duplicates)[0]}' is declared twice", where=where)


def _name_dependencies(equations: Mapping[str, object]) -> dict[str, set[str]]:
    """The names each string equation mentions (for explaining cycles), from its tokens only."""
    deps: dict[str, set[str]] = {}
    for key, text in equations.items():
        if not isinstance(text, str):
            deps[key] = {s.name for s in getattr(text, "free_symbols", ())}
            continue
        try:
            tokens = tokenize(text)
        except FormulaError:
            deps[key] = set()
            continue
        deps[key] = {
            t.text for t, nxt in zip(tokens, tokens[1:]) if t.kind == "name" and nxt.text != "("
        }
    return deps


def _cycle_through(start: str, target: str, deps: Mapping[str, set[str]]) -> list[str] | None:
    """A path target → start → … → target through the equations' names, if one exists."""
    stack = [(start, [target, start])]
    seen = {start}
    while stack:
        name, path = stack.pop()
        for used in deps.get(name, ()):
            if used == target:
                return path + [target]
            if used in deps and used not in seen:
                seen.add(used)
                stack.append((used, path + [used]))
    return None


def _adopt(expr: sp.Basic, table: dict[str, sp.Symbol], unknown, where: str) -> sp.Expr:
    """A SymPy expression from Python code, with its symbols mapped onto the network's."""
    mapping = {}
    # preorder of the canonical form: a deterministic order for new parameters
    ordered = dict.fromkeys(a for a in sp.preorder_traversal(expr) if isinstance(a, sp.Symbol))
    for s in ordered:
        try:
            mapping[s] = table[s.name] if s.name in table else unknown(s.name)
        except LookupError as exc:
            raise InputError(str(exc.args[0]), where=where) from None
    return expr.xreplace(mapping)


def _free_latex(table: Mapping[str, sp.Symbol], given: Mapping[str, str] | None) -> dict[sp.Symbol, str]:
    latex = {}
    for n, s in table.items():
        latex[s] = symbol_latex(n)
    for n, tex in (given or {}).items():
        if n not in table:
            raise InputError(f"'{n}' is not a name of this network", where="[latex]")
        # A user's LaTeX reaches reports: kept where every command is plain math,
        # printed literally otherwise (`\\input{...}` must never run).
        latex[table[n]] = str(math_or_text(tex))
    return latex


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
    return _replace(network, values=point)


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
    from derive.proof.numeric import ApproximateArithmetic, Evaluator, Indeterminate

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


def _replace(network: Network, **changes) -> Network:
    from dataclasses import replace

    return replace(network, **changes)


# ---------------------------------------------------------------------------
# Zhou Zhihua's one-hidden-layer network with thresholds
# ---------------------------------------------------------------------------


def zhou(
    d: int = 2,
    q: int = 2,
    l: int = 2,
    *,
    name: str | None = None,
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """Zhou Zhihua's d-q-l network (机器学习, ch. 5), in his names.

    α_h = Σ_i v_{ih} x_i, b_h = f(α_h − γ_h), β_j = Σ_h w_{hj} b_h, ŷ_j = f(β_j − θ_j),
    E = ½ Σ_j (ŷ_j − y_j)², f the sigmoid. Note the index order: v_{ih} and w_{hj}
    run *from* first (Nielsen's w^l_{jk} runs *to* first), and γ, θ are
    thresholds, subtracted. Names in formulas: `x1`, `y1`, `v12` (v_{12}, from
    input 1 to hidden 2), `w21`, `gamma1`, `theta1`, nodes `alpha1`, `b1`,
    `beta1`, `yhat1`, the cost `E`; with an index ≥ 10, `v1_12`.
    """
    sizes = (d, q, l)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 99 for n in sizes):
        raise InputError("must be three layer sizes [d, q, l] between 1 and 99", where="[network] zhou")
    wide = max(sizes) >= 10

    def pair(a: int, b: int) -> str:
        return f"{a}_{b}" if wide else f"{a}{b}"

    equations: dict[str, str] = {}
    for h in range(1, q + 1):
        equations[f"alpha{h}"] = " + ".join(f"v{pair(i, h)}*x{i}" for i in range(1, d + 1))
    for h in range(1, q + 1):
        equations[f"b{h}"] = f"sigmoid(alpha{h} - gamma{h})"
    for j in range(1, l + 1):
        equations[f"beta{j}"] = " + ".join(f"w{pair(h, j)}*b{h}" for h in range(1, q + 1))
    for j in range(1, l + 1):
        equations[f"yhat{j}"] = f"sigmoid(beta{j} - theta{j})"
    equations["E"] = "(" + " + ".join(f"(yhat{j} - y{j})**2" for j in range(1, l + 1)) + ") / 2"
    parameters = (
        [f"v{pair(i, h)}" for i in range(1, d + 1) for h in range(1, q + 1)]
        + [f"gamma{h}" for h in range(1, q + 1)]
        + [f"w{pair(h, j)}" for h in range(1, q + 1) for j in range(1, l + 1)]
        + [f"theta{j}" for j in range(1, l + 1)]
    )
    latex = {}
    for i in range(1, d + 1):
        for h in range(1, q + 1):
            latex[f"v{pair(i, h)}"] = f"v_{{{layer_index_latex(i, h)}}}"
    for h in range(1, q + 1):
        latex[f"gamma{h}"] = rf"\gamma_{{{h}}}"
        latex[f"alpha{h}"] = rf"\alpha_{{{h}}}"
        latex[f"b{h}"] = f"b_{{{h}}}"
        for j in range(1, l + 1):
            latex[f"w{pair(h, j)}"] = f"w_{{{layer_index_latex(h, j)}}}"
    for j in range(1, l + 1):
        latex[f"theta{j}"] = rf"\theta_{{{j}}}"
        latex[f"beta{j}"] = rf"\beta_{{{j}}}"
        latex[f"yhat{j}"] = rf"\hat{{y}}_{{{j}}}"
    network = free_form(
        equations,
        cost="E",
        inputs=[f"x{i}" for i in range(1, d + 1)],
        targets=[f"y{j}" for j in range(1, l + 1)],
        parameters=parameters,
        name=name or f"zhou-{d}-{q}-{l}",
        latex_names=latex,
        description=description,
        source=source,
    )
    network = _replace(
        network,
        kind="threshold",
        facts={"kind": "threshold", "name": network.name, "sizes": sizes, "cost": "quadratic"},
    )
    if values is not None:
        network = with_values(network, values)
    return network


# ---------------------------------------------------------------------------
# Convolutional networks, in the book's names
# ---------------------------------------------------------------------------

LAYER_TYPES = ("conv", "maxpool", "avgpool", "l2pool", "flatten", "dense")
POOL_KIND = {"maxpool": "max", "avgpool": "average", "l2pool": "l2"}


def convolutional(
    input_shape: Sequence[int],
    layers: Sequence[Mapping[str, object]],
    cost: str = "quadratic",
    *,
    name: str = "cnn",
    values: Mapping[str, object] | None = None,
    description: str = "",
    source: str | None = None,
) -> Network:
    """Convolution, pooling and dense layers in sequence, with 深度学习的数学's names.

    Layers are tables: `{type = "conv", filters, kernel, stride = 1, padding = "valid" | "same" | n,
    activation}`, `{type = "maxpool" | "avgpool" | "l2pool", size, stride = size}`,
    `{type = "flatten"}`, `{type = "dense", units, activation}`. Convolution is the
    book's (and PyTorch's) cross-correlation:

        z^F_{k,ij} = Σ_{c,p,q} w^F_{k,c,pq} x_{c, s(i−1)+p−pad, s(j−1)+q−pad} + b^F_k

    with x zero outside the image. Names: the input `x_i_j` (with channels
    `x_c_i_j`), a convolution's `wF_k_p_q` (`wF_k_c_p_q` with several input
    channels), `bF_k`, `zF_k_i_j`, `aF_k_i_j`; a pooling layer's `aP_k_i_j` (its
    z is its a); the output layer's `wO_n_k_i_j` (from a pooling unit) or
    `wO_n_m`, `bO_n`, `zO_n`, `aO_n`; targets `t1…`; the cost `C`. Where every
    index is a digit the book's run-together forms are aliases: `wF_1_11` for
    w^F_{1,11}, `aP_1_12`, `x_23` and `x23`. A second convolution is labelled F2,
    a hidden dense layer H. Each kind of layer is a class of derive.layers.
    """
    from derive.layers import Context, image_shape, input_image  # the layers build on this module

    shape = image_shape(input_shape)
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InputError("at least one [[layer]] is required", where="[[layer]]")
    channels, height, width = shape
    if channels * height * width > MAX_INPUT_VALUES:
        raise InputError(f"the input has more than {MAX_INPUT_VALUES:,} values", where="[network] input")
    check_size(len(layers), 0, 0, where="[[layer]]")
    context = Context(dense_total=sum(1 for t in layers if isinstance(t, Mapping) and t.get("type") == "dense"))
    inputs = input_image(context, shape)
    built = _build_layers(context, layers)
    if not context.flat:
        raise InputError("the last layer must be dense (the outputs the cost compares with targets)", where="[[layer]]")
    last_activation = [layer.activation for layer in built if layer.activation is not None][-1]
    check_cost(cost, last_activation)
    targets, cost_symbol = _cnn_cost(context, cost)
    network = Network(
        name=name,
        kind="cnn",
        inputs=tuple(inputs),
        targets=tuple(targets),
        parameters=tuple(context.parameters),
        constants=(),
        order=tuple(context.order),
        definitions=context.definitions,
        cost=cost_symbol,
        latex_names=context.latex,
        families=context.families,
        aliases=context.aliases,
        facts=_cnn_facts(name, shape, cost, built, last_activation),
        description=description,
        source=source,
    )
    if values is not None:
        network = with_values(network, values)
    return network


def _build_layers(context, layers: Sequence[Mapping[str, object]]) -> list:
    """Each `[[layer]]` table checked and built in turn (a layer's errors come before the next one's)."""
    from derive.layers import LAYERS, check_keys

    built = []
    for number, table in enumerate(layers, start=1):
        where = f"[[layer]] #{number}"
        if not isinstance(table, Mapping):
            raise InputError("must be a table", where=where)
        kind = table.get("type")
        if kind not in LAYER_TYPES:
            raise InputError(f"type must be one of {', '.join(LAYER_TYPES)}", where=where)
        if kind == "flatten":
            check_keys(table, {"type"}, where)
            continue
        layer = LAYERS[kind](table, where, context)
        layer.build(context, number, where)
        built.append(layer)
    return built


def _cnn_cost(context, cost: str) -> tuple[list[sp.Symbol], sp.Symbol]:
    """The targets `t1…` (also `y1…`) and the cost `C` of the flat outputs in `context`."""
    outputs = list(context.current.values())
    targets = []
    for n in range(1, len(outputs) + 1):
        t = context.make("t", (n,), f"t{n}", f"t_{{{n}}}")
        context.families.setdefault("y", {})[(n,)] = t
        context.alias(t, f"y{n}")
        targets.append(t)
    cost_symbol = symbol("C")
    context.define(cost_symbol, cost_expression(cost, targets, outputs))
    if cost == "generic":
        targets = []
        context.families.pop("t", None)
        context.families.pop("y", None)
    context.latex[cost_symbol] = "C"
    context.families["C"] = {(): cost_symbol}
    context.families["C0"] = {(): cost_symbol}
    return targets, cost_symbol


def _cnn_facts(name: str, shape: tuple[int, int, int], cost: str, built: list, last_activation: str) -> dict:
    integers: dict[str, int] = {}
    for layer in built:
        integers.update(layer.integers())
    pools = [layer.pool for layer in built if layer.pool is not None]
    return {
        "kind": "cnn",
        "name": name,
        "architecture": "-".join(layer.architecture for layer in built),
        "pool": pools[-1] if pools else None,
        "cost": cost,
        "output_activation": last_activation,
        "output": "coupled" if last_activation == "softmax" else "elementwise",
        "regularization": "none",
        "channels": shape[0],
        "integers": integers,
        "plan": tuple(layer.plan() for layer in built),
        "layers": tuple(built),  # the Layer objects, in order: later stages ask each for its part
        "input_shape": shape,
        "zero_outside": ("xpad",),
        # flat facts a formula set's `when` can test
        "conv_stride": integers.get("stride"),
        "padding": integers.get("padr") if integers.get("padr") == integers.get("padc") else None,
        "pool_size": integers.get("pr") if integers.get("pr") == integers.get("pc") else None,
        "pool_stride": integers.get("pstride"),
    }
