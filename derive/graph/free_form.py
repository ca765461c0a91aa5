"""Free-form networks: ordered named equations, any names.

A name is defined once and used only after it; reading the equations in that
order is what turns a use before the definition into an error that names the
cycle, if there is one.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import sympy as sp

from derive.errors import FormulaError, InputError
from derive.graph.network import NAME, RESERVED, Network, check_size, symbol, with_values
from derive.graph.parser import Vocabulary, parse_formula, tokenize
from derive.limits import MAX_EQUATIONS
from derive.texsafe import math_or_text, symbol_latex


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
    _check_declarations(equations, cost, inputs, targets, constants, declared_parameters)
    table: dict[str, sp.Symbol] = {n: symbol(n) for n in (*inputs, *targets, *constants)}
    parameter_symbols: list[sp.Symbol] = []
    if declared_parameters is not None:
        for n in declared_parameters:
            table[n] = symbol(n)
            parameter_symbols.append(table[n])
    new_parameters = None if declared_parameters is not None else parameter_symbols
    definitions, order = _read_equations(equations, table, new_parameters)
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
    _check_built(network, cost)
    if values is not None:
        network = with_values(network, values)
    return network


def _check_declarations(
    equations: Mapping[str, object],
    cost: str,
    inputs: list[str],
    targets: list[str],
    constants: list[str],
    declared_parameters: list[str] | None,
) -> None:
    """Refuse a bad name, a name declared twice, too many equations, or a cost that is no equation."""
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


def _read_equations(
    equations: Mapping[str, str | sp.Expr], table: dict[str, sp.Symbol], new_parameters: list[sp.Symbol] | None
) -> tuple[dict[sp.Symbol, sp.Expr], list[sp.Symbol]]:
    """Each equation's definition, in order; each node joins `table` once defined.

    With `new_parameters` (a list), an unknown name becomes a parameter
    appended to it; without, an unknown name is an error.
    """
    later = set(equations)
    dependencies = _name_dependencies(equations)
    definitions: dict[sp.Symbol, sp.Expr] = {}
    order: list[sp.Symbol] = []
    for current in equations:
        where = f"[equations] {current}"
        later.discard(current)
        unknown = _unknown_name_handler(current, later, dependencies, table, new_parameters)
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
    return definitions, order


def _unknown_name_handler(
    current: str,
    later: set[str],
    dependencies: Mapping[str, set[str]],
    table: dict[str, sp.Symbol],
    new_parameters: list[sp.Symbol] | None,
) -> Callable[[str], sp.Expr]:
    """What a name not (yet) in `table` means in the equation of `current`: a new parameter, or why not."""

    def unknown(n: str) -> sp.Expr:
        if n == current:
            raise LookupError(f"'{current}' refers to itself (a cycle)")
        if n in later:
            cycle = _cycle_through(n, current, dependencies)
            if cycle:
                raise LookupError("cycle: " + " → ".join(cycle))
            raise LookupError(f"'{n}' is used before its equation (equations are read in order)")
        if new_parameters is not None and NAME.match(n) and n not in RESERVED:
            table[n] = symbol(n)
            new_parameters.append(table[n])
            return table[n]
        raise LookupError(
            f"unknown name '{n}' (not an input, target, parameter, constant or earlier equation)"
        )

    return unknown


def _check_built(network: Network, cost: str) -> None:
    """Refuse a network beyond the size limits, or a declared parameter the cost does not depend on."""
    check_size(max(network.depth.values(), default=0), len(network.parameters),
               sum(len(e.free_symbols) for e in network.definitions.values()),
               where="[equations]", levels="equations in a chain (the longest path from a leaf to the cost)")
    used = network.ancestors_of_cost
    for p in network.parameters:
        if p not in used:
            raise InputError(f"parameter '{p}' is declared but the cost '{cost}' does not depend on it", where="[network] parameters")


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
