"""Reverse mode over the graph: every ∂C/∂v, and the recurrence between them.

For a quantity `of` (the cost, or any node) and each symbol v it depends on,
the adjoint `D(of, v)` = ∂(of)/∂v is itself a symbol whose definition is the
chain rule at v, one step deep:

    D(of, v) = Σ_{u uses v} D(of, u) · ∂u/∂v          (D(of, of) = 1)

The local partials ∂u/∂v are computed once per node (network.local_partials)
and the adjoints of later nodes appear as symbols, so δs are shared and the
work is linear in the number of edges. For a net input z the adjoint is the
neuron error δ, and its definition *is* the backward recurrence, derived
from the graph rather than filled into a template. Definitions are built on
demand and cached, so asking for one gradient does not derive them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import sympy as sp

from derive.limits import MAX_PRINTED_SIZE
from derive.graph.naming import delta_latex
from derive.graph.network import Network, product


def adjoint_name(of: sp.Symbol, wrt: sp.Symbol) -> str:
    return f"D({of.name}, {wrt.name})"


@dataclass(frozen=True)
class Term:
    """One path step of a recurrence: D(of, v) ∋ D(of, consumer) · partial."""

    consumer: sp.Symbol
    adjoint: sp.Expr  # D(of, consumer), or 1 when the consumer is `of` itself
    partial: sp.Expr  # ∂consumer/∂v


class Derivation:
    """All derivatives of one quantity `of` with respect to what it depends on."""

    def __init__(self, network: Network, of: sp.Symbol, registry: "Derivations"):
        if of not in network.definitions and of not in network.leaves:
            raise KeyError(of)
        self.network = network
        self.of = of
        self.registry = registry
        self.ancestors = network.ancestors(of)
        self._terms: dict[sp.Symbol, tuple[Term, ...]] = {}
        self._definitions: dict[sp.Symbol, sp.Expr] = {}
        self._closed: dict[sp.Symbol, sp.Expr] = {}
        self._adjoints: dict[sp.Symbol, sp.Expr] = {}

    # -- symbols -----------------------------------------------------------------
    def adjoint(self, v: sp.Symbol) -> sp.Expr:
        """The symbol D(of, v); 1 for v = of, 0 where `of` does not depend on v."""
        if v == self.of:
            return sp.S.One
        if v not in self.ancestors:
            return sp.S.Zero
        found = self._adjoints.get(v)
        if found is None:
            found = sp.Symbol(adjoint_name(self.of, v), real=True)
            self._adjoints[v] = found
            self.registry._register(found, self, v)
        return found

    # -- the chain rule ----------------------------------------------------------
    def terms(self, v: sp.Symbol) -> tuple[Term, ...]:
        """The recurrence for D(of, v), unsummed: one term per node that uses v."""
        found = self._terms.get(v)
        if found is None:
            network = self.network
            found = tuple(
                Term(u, self.adjoint(u), network.local_partials(u)[v])
                for u in network.consumers.get(v, ())
                if u in self.ancestors
            )
            self._terms[v] = found
        return found

    def definition(self, v: sp.Symbol) -> sp.Expr:
        """D(of, v) one step deep: in terms of the adjoints of the nodes that use v."""
        if v == self.of:
            return sp.S.One
        found = self._definitions.get(v)
        if found is None:
            found = sp.Add(*[product(t.adjoint, t.partial) for t in self.terms(v)])
            self._definitions[v] = found
        return found

    def small_closed_form(self, v: sp.Symbol, limit: int) -> sp.Expr | None:
        """The closed form of D(of, v) if it unfolds to at most `limit` leaves as a tree, else None.

        For callers that walk it as a tree (substitution, evaluation, the
        prover): a deep network's closed forms grow exponentially that way.
        """
        form = self.closed_form(v)
        return form if self.registry.printed_size(form) <= limit else None  # one size cache per network

    def closed_form(self, v: sp.Symbol) -> sp.Expr:
        """D(of, v) with every adjoint expanded: an expression in node and leaf symbols."""
        if v == self.of:
            return sp.S.One
        if v not in self.ancestors:
            return sp.S.Zero
        if v in self._closed:
            return self._closed[v]
        # Nodes nearer `of` first, so each closed form reuses the ones it needs.
        position = self.network.position
        pending = sorted(
            (u for u in self._needed(v) if u not in self._closed and u != self.of),
            key=lambda u: position[u],
            reverse=True,
        )
        for u in pending:
            self._closed[u] = sp.Add(
                *[
                    product(sp.S.One if t.consumer == self.of else self._closed[t.consumer], t.partial)
                    for t in self.terms(u)
                ]
            )
        return self._closed[v]

    def _needed(self, v: sp.Symbol) -> set[sp.Symbol]:
        """v and every node between v and `of`."""
        needed = {v}
        stack = [v]
        while stack:
            for u in self.network.consumers.get(stack.pop(), ()):
                if u in self.ancestors and u not in needed:
                    needed.add(u)
                    stack.append(u)
        return needed

    @property
    def backward_depth(self) -> dict[sp.Symbol, int]:
        """Longest path from `of` back to each symbol: the order in which a prover expands adjoints."""
        depth = self.__dict__.get("_depth")
        if depth is None:
            depth = {self.of: 0}
            network = self.network
            for node in reversed(network.order):
                if node not in depth or node not in self.ancestors:
                    continue
                for used in network.definitions[node].free_symbols:
                    depth[used] = max(depth.get(used, 0), depth[node] + 1)
            self.__dict__["_depth"] = depth
        return depth

    # -- everything at once --------------------------------------------------------
    def parameters(self) -> tuple[sp.Symbol, ...]:
        return tuple(p for p in self.network.parameters if p in self.ancestors)

    def nodes(self) -> tuple[sp.Symbol, ...]:
        """Intermediate nodes `of` depends on (not `of` itself), in evaluation order."""
        return tuple(n for n in self.network.order if n in self.ancestors and n != self.of)

    def derive_all(self, progress: Callable[[Iterable], Iterable] = iter) -> None:
        """Build every adjoint's definition (nodes nearer `of` first)."""
        todo = [*reversed(self.nodes()), *self.parameters(), *self.network.inputs]
        for v in progress(todo):
            if v in self.ancestors:
                self.definition(v)


class Derivations:
    """The derivations of one network, by the quantity differentiated; resolves any symbol's definition.

    The prover and the evaluator ask it for the definition of any symbol they
    meet: a node's equation, or an adjoint's chain-rule step.
    """

    def __init__(self, network: Network):
        self.network = network
        self._by_of: dict[sp.Symbol, Derivation] = {}
        self._adjoints: dict[sp.Symbol, tuple[Derivation, sp.Symbol]] = {}
        # LaTeX names, kept up to date as adjoints appear (each named once, so
        # printing n entries costs O(n), not O(n²)): adjoints only, and the
        # network's names with them, which one reused printer reads.
        self._latex_adjoints: dict[sp.Symbol, str] = {}
        self._latex_all: dict[sp.Symbol, str] = dict(network.latex_names)
        self._latex_pending: list[sp.Symbol] = []
        self._printer = None

    def of(self, quantity: sp.Symbol | None = None) -> Derivation:
        quantity = self.network.cost if quantity is None else quantity
        found = self._by_of.get(quantity)
        if found is None:
            found = Derivation(self.network, quantity, self)
            self._by_of[quantity] = found
        return found

    @property
    def cost(self) -> Derivation:
        return self.of(self.network.cost)

    def _register(self, adjoint: sp.Symbol, derivation: Derivation, wrt: sp.Symbol) -> None:
        self._adjoints[adjoint] = (derivation, wrt)
        self._latex_pending.append(adjoint)

    def adjoint_info(self, s: sp.Symbol) -> tuple[Derivation, sp.Symbol] | None:
        return self._adjoints.get(s)

    def definition(self, s: sp.Symbol) -> sp.Expr | None:
        """The defining expression of a node or an adjoint symbol; None for a leaf."""
        found = self.network.definitions.get(s)
        if found is not None:
            return found
        info = self._adjoints.get(s)
        if info is not None:
            derivation, wrt = info
            return derivation.definition(wrt)
        return None

    def closed_form(self, expr: sp.Expr) -> sp.Expr:
        """`expr` with its adjoint symbols replaced by their closed forms."""
        mapping = {}
        for s in expr.free_symbols:
            info = self._adjoints.get(s)
            if info is not None:
                derivation, wrt = info
                mapping[s] = derivation.closed_form(wrt)
        return expr.xreplace(mapping) if mapping else expr

    def latex_names(self) -> dict[sp.Symbol, str]:
        """LaTeX for every adjoint symbol so far: δ^l_j for a layered net's z, ∂C/∂v otherwise."""
        self._name_pending()
        return dict(self._latex_adjoints)

    def _name_pending(self) -> None:
        """Name the adjoints registered since the last call (each once)."""
        if not self._latex_pending:
            return
        network = self.network
        layered_net_inputs = self.__dict__.get("_layered_net_inputs")
        if layered_net_inputs is None:  # family z: a layered net's (a CNN's are zF, zO, …)
            layered_net_inputs = frozenset(network.families.get("z", {}).values())
            self.__dict__["_layered_net_inputs"] = layered_net_inputs
        known = network.latex_names

        def symbol(s: sp.Symbol) -> str:
            return known.get(s) or sp.latex(s)

        pending, self._latex_pending = self._latex_pending, []
        for s in pending:
            derivation, wrt = self._adjoints[s]
            if derivation.of == network.cost and wrt in layered_net_inputs:
                name = delta_latex(network, wrt)
            else:
                name = rf"\frac{{\partial {symbol(derivation.of)}}}{{\partial {symbol(wrt)}}}"
            self._latex_adjoints[s] = name
            self._latex_all[s] = name

    def printed_size(self, expr: sp.Expr) -> int:
        """How many symbols and numbers `expr` prints as (see `tree_size`), sizes kept between calls."""
        return tree_size(expr, self.__dict__.setdefault("_printed_sizes", {}))

    def _omitted(self, expr: sp.Expr) -> int | None:
        size = self.printed_size(expr)
        return size if size > MAX_PRINTED_SIZE else None

    def latex(self, expr: sp.Expr) -> str:
        """expr in LaTeX with the network's names and the adjoints' (one printer, reused)."""
        size = self._omitted(expr)
        if size is not None:
            return rf"\text{{(omitted: {size:.3g} symbols long)}}"
        self._name_pending()
        if self._printer is None:
            from sympy.printing.latex import LatexPrinter

            # the printer keeps a reference to the dict, so names added later are seen
            self._printer = _memoizing(LatexPrinter)({"symbol_names": self._latex_all})
        return self._printer.doprint(expr)

    def text(self, expr: sp.Expr) -> str:
        """str(expr), with the sums that closed forms share printed once."""
        size = self._omitted(expr)
        if size is not None:
            return f"(omitted: {size:.3g} symbols long)"
        printer = self.__dict__.get("_text_printer")
        if printer is None:
            from sympy.printing.str import StrPrinter

            printer = self.__dict__["_text_printer"] = _memoizing(StrPrinter)()
        return printer.doprint(expr)


def tree_size(expr: sp.Expr, sizes: dict | None = None) -> int:
    """The leaves of `expr` as a tree (what printing or a plain traversal unfolds), counted through its graph.

    A closed form is a graph that shares its sums, and a tree walk unfolds it:
    in a deep network the tree doubles with every layer of width 2 (50 layers:
    2^49 terms). Counted once per distinct subexpression, the size costs as
    much as the graph, not as the tree.
    """
    sizes = {} if sizes is None else sizes
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in sizes:
            stack.pop()
            continue
        if not node.args:
            sizes[node] = 1
            stack.pop()
            continue
        missing = [a for a in node.args if a not in sizes]
        if missing:
            stack.extend(missing)
            continue
        sizes[node] = sum(sizes[a] for a in node.args)
        stack.pop()
    return sizes[expr]


def graph_free_symbols(expr: sp.Expr) -> set[sp.Symbol]:
    """`expr.free_symbols`, walking each distinct subexpression once (SymPy's walks the unfolded tree)."""
    seen, found, stack = set(), set(), [expr]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.is_Symbol:
            found.add(node)
        else:
            stack.extend(node.args)
    return found


def _memoizing(printer_class):
    """A printer class that prints each sum once and then reuses the text.

    Closed forms share their sums (every weight into unit j repeats δ_j's sum
    over the next layer), and sorting a sum's terms is most of the cost of
    printing it. A sum's own text does not depend on where it appears (the
    caller adds any brackets), so it is kept, except when a caller passes
    print options (such as an exponent folded into a function's name).
    """

    class Memoizing(printer_class):
        def __init__(self, settings=None):
            super().__init__(settings)
            self._sums: dict[sp.Expr, str] = {}

        def _print(self, expr, **kwargs):
            if kwargs or not isinstance(expr, sp.Add):
                return super()._print(expr, **kwargs)
            found = self._sums.get(expr)
            if found is None:
                found = self._sums[expr] = super()._print(expr)
            return found

    Memoizing.__name__ = f"Memoizing{printer_class.__name__}"
    return Memoizing


class Derived:
    """What `derive derive` shows: every gradient, node derivative and recurrence of the cost.

    For each parameter θ: ∂C/∂θ one chain-rule step deep (through the δs) and in
    closed form (node symbols only). For each intermediate node v: ∂C/∂v in
    closed form and its recurrence. With the network's `[values]`, each number.
    """

    def __init__(self, network: Network, derivations: Derivations | None = None, progress=None):
        self.network = network
        self.derivations = derivations or Derivations(network)
        self.derivation = self.derivations.cost
        self.derivation.derive_all(progress or iter)

    @property
    def parameters(self) -> tuple[sp.Symbol, ...]:
        return self.derivation.parameters()

    @property
    def nodes(self) -> tuple[sp.Symbol, ...]:
        return self.derivation.nodes()

    def gradient(self, parameter: sp.Symbol) -> sp.Expr:
        return self.derivation.closed_form(parameter)

    def values(self) -> dict[sp.Symbol, float] | None:
        """Every node, adjoint and the loss at the spec's [values] point (50-digit arithmetic)."""
        if self.network.values is None:
            return None
        from derive.graph.numeric import ApproximateArithmetic, Evaluator, to_float

        from derive.graph.numeric import Indeterminate

        evaluate = Evaluator(ApproximateArithmetic(), self.network.values, self.derivations.definition)
        d = self.derivation
        wanted = [self.network.cost, *self.nodes, *(d.adjoint(v) for v in (*self.nodes, *self.parameters))]
        values = {}
        for s in wanted:
            try:
                values[s] = to_float(evaluate(s))
            except (KeyError, Indeterminate):
                continue  # a leaf it needs has no value, or the point is outside its domain
        return values

    def to_dict(self, progress: Callable[[Iterable], Iterable] = iter) -> dict:
        """The JSON of `derive derive --json`; `progress` wraps the loops over parameters and nodes."""
        network, d = self.network, self.derivation
        values = self.values() or {}
        latex, text = self.derivations.latex, self.derivations.text

        def entry(expr: sp.Expr, value_of: sp.Symbol | None = None) -> dict:
            item = {"expr": text(expr), "latex": latex(expr)}
            if value_of is not None and value_of in values:
                item["value"] = values[value_of]
            return item

        gradients = {}
        for p in progress(self.parameters):
            item = entry(d.closed_form(p), d.adjoint(p))
            item["chain"] = text(d.definition(p))
            gradients[p.name] = item
        errors, recurrences = {}, {}
        for n in progress(self.nodes):
            errors[n.name] = entry(d.closed_form(n), d.adjoint(n))
            # the recurrence is another expression for the same ∂C/∂n: the same value
            item = entry(d.definition(n), d.adjoint(n))
            item["terms"] = [
                {"via": t.consumer.name, "adjoint": str(t.adjoint), "factor": str(t.partial)} for t in d.terms(n)
            ]
            recurrences[n.name] = item
        return {
            "network": network.name,
            "kind": network.kind,
            "cost": network.cost.name,
            "parameters": [p.name for p in self.parameters],
            "gradients": gradients,
            "errors": errors,
            "recurrences": recurrences,
            "loss": values.get(network.cost),
            "assumptions": list(network.assumptions),
        }

    def _repr_latex_(self) -> str:
        d, latex = self.derivation, self.derivations.latex
        lines = []
        for n in self.nodes:
            lines.append(rf"{latex(d.adjoint(n))} &= {latex(d.definition(n))}")
        for p in self.parameters:
            lines.append(rf"{latex(d.adjoint(p))} &= {latex(d.definition(p))} = {latex(d.closed_form(p))}")
        return r"$\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}$"
