"""The free-form kernel's code generator: the cse'd statements of a graph regrouped into array code.

Weighted sums sharing their operands become one matrix product (`linear_forms`), and statements
applying one formula to a layer's units one formula of (units × batch) arrays (`packs`), each
generated as straight-line Python source made of our own names only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp

from derive.kernels.elementwise import NUMPY_FUNCTIONS, PACKABLE, KernelError


class _linear(sp.Function):
    """_linear(k, n, v_1…v_n, c_11…c_kn, b_1…b_k): the k sums Σ_j c_ij v_j + b_i, as one matrix product."""


class _row(sp.Function):
    """_row(G, i): row i of a _linear group or a pack G (printed as G[i])."""

    def _numpycode(self, printer):
        return f"{printer._print(self.args[0])}[{int(self.args[1])}]"


def _numpy_linear(k, n, *arguments):
    rows = np.array(arguments[:n])
    weights = np.array(arguments[n : n + k * n], dtype=rows.dtype).reshape(k, n)
    result = weights @ rows
    result += np.array(arguments[n + k * n :], dtype=rows.dtype)[:, None]
    return result


LINEAR_FUNCTIONS = {"_linear": _numpy_linear, "_row": lambda group, i: group[i]}
LINEAR_MINIMUM = 8  # products a group must replace to pay for one matrix product (an array operation costs ~0.5 µs)


def linear_forms(replacements: list[tuple], batch: set[sp.Symbol]) -> list[tuple]:
    """Weighted sums Σ_j c_j v_j + b (c, b constant over the batch, v varying) that share their v's,
    each replaced by a row of one matrix product: a layer's Σ_k w_jk a_k + b_j, found in the cse'd
    statements of a free-form graph. Groups too small to pay for a matrix product stay as they are."""
    varying, defined = set(batch), {}
    for index, (symbol, value) in enumerate(replacements):
        defined[symbol] = index
        if value.free_symbols & varying:
            varying.add(symbol)
    groups: dict[tuple, list] = {}
    for index, (_, value) in enumerate(replacements):
        for node in sp.preorder_traversal(value):
            if not node.is_Add:
                continue
            weights, offset = {}, sp.S.Zero
            for term in node.args:
                if not term.free_symbols & varying:
                    offset += term
                    continue
                coefficient, rest = term.as_independent(*varying, as_Add=False)
                weights[rest] = weights.get(rest, sp.S.Zero) + coefficient
            if len(weights) < 2 or all(c.is_Number for c in weights.values()):
                continue
            key = tuple(sorted(weights, key=sp.default_sort_key))
            forms = groups.setdefault(key, [])
            if all(node != form[1] for form in forms):
                forms.append((index, node, [weights[v] for v in key], offset))
    inserted, rewrite = {}, {}
    for number, (key, forms) in enumerate(groups.items()):
        if len(key) * len(forms) < LINEAR_MINIMUM:
            continue
        first = min(form[0] for form in forms)
        arguments = [*key, *[c for form in forms for c in form[2]], *[form[3] for form in forms]]
        if any(defined.get(s, -1) >= first for a in arguments for s in a.free_symbols):
            continue  # a coefficient computed later than the first sum is needed: leave this group
        group = sp.Symbol(f"_g{number}", real=True)
        inserted.setdefault(first, []).append((group, _linear(len(forms), len(key), *arguments)))
        for i, form in enumerate(forms):
            rewrite[form[1]] = _row(group, i)
    if not rewrite:
        return replacements
    result = []
    for index, (symbol, value) in enumerate(replacements):
        result += inserted.get(index, [])
        result.append((symbol, value.xreplace(rewrite)))
    return result


def packs(replacements: list[tuple], batch: list[sp.Symbol], scalars: list[sp.Symbol], theta, matrix) -> tuple[list[tuple], dict]:
    """Statements that compute the same formula of different operands, at the same depth of the
    graph (the units of one layer: σ(z_j), a_j(1 − a_j)·Σ…), evaluated together as one formula of
    stacked (units × batch) arrays: one array operation per layer instead of one per unit.

    A statement's formula is its expression with each operand (a symbol, or a row of a packed
    or _linear group) replaced by a placeholder in order of appearance; equal formulas evaluate
    each member exactly, whatever the order. Per placeholder, the members' operands are passed
    once if they are all the same, as a column if they are constants (parameters), as the packed
    array itself if they are its rows in order, and stacked otherwise. Returns the rewritten
    statements and the functions they call."""
    varying, level = _varying_levels(replacements, batch)
    namespace, member_of = {}, {}
    rewrite_at: dict[int, list] = {}
    drop = set()
    for number, ((_, template), members) in enumerate(_same_formula_groups(replacements, varying, level).items()):
        if len(members) < 2:
            continue
        operands = _pack_operands(members, _Operands(scalars, batch), varying, member_of)
        if operands is None:
            continue
        name = f"_pack{number}"
        namespace[name] = _pack_function(name, template, operands)
        packed = sp.Symbol(f"_p{number}", real=True)
        first = members[0][0]
        rewrite_at.setdefault(first, []).append((packed, sp.Function(name)(theta, matrix, *operands.arguments)))
        for i, (index, symbol, _) in enumerate(members):
            member_of[symbol] = (packed, i)
            drop.add(index)
            rewrite_at.setdefault(index, []).append((symbol, _row(packed, i)))
    # each _linear group as a function of its own, its parameters gathered by one index
    for index, (symbol, value) in enumerate(replacements):
        if isinstance(value, _linear):
            name = f"_linear{index}"
            call = _linear_call(name, value, _Operands(scalars, batch), namespace, theta, matrix)
            rewrite_at.setdefault(index, []).append((symbol, call))
            drop.add(index)
    if not namespace:
        return replacements, {}
    result = []
    for index, statement in enumerate(replacements):
        if index in drop:
            result += rewrite_at[index]
        else:
            result += rewrite_at.get(index, [])
            result.append(statement)
    return _in_dependency_order(result), namespace


def _varying_levels(replacements: list[tuple], batch: list[sp.Symbol]) -> tuple[set, dict]:
    """The statements that vary over the batch, and each one's depth in the graph (1 + its deepest operand's)."""
    varying, level = set(batch), {}
    for symbol, value in replacements:
        if value.free_symbols & varying or value.atoms(_linear):
            varying.add(symbol)
            level[symbol] = 1 + max((level.get(s, 0) for s in value.free_symbols if s in varying), default=0)
    return varying, level


def _operands_in_order(value: sp.Expr) -> list:
    """The symbols and group rows of `value`, each once, in order of appearance."""
    found, walk = [], sp.preorder_traversal(value)
    for node in walk:
        if node.is_Symbol or isinstance(node, _row):
            if isinstance(node, _row):
                walk.skip()
            if node not in found:
                found.append(node)
    return found


def _same_formula_groups(replacements: list[tuple], varying: set, level: dict) -> dict[tuple, list]:
    """The packable varying statements by (depth, formula): [(index, symbol, operands)] each."""
    groups: dict[tuple, list] = {}
    for index, (symbol, value) in enumerate(replacements):
        if symbol not in varying or value.atoms(_linear) or any(not isinstance(f, PACKABLE) for f in value.atoms(sp.Function) if not isinstance(f, _row)):
            continue
        leaves = _operands_in_order(value)
        holders = [sp.Symbol(f"_h{j}", real=True) for j in range(len(leaves))]
        template = value.xreplace(dict(zip(leaves, holders)))
        groups.setdefault((level[symbol], template), []).append((index, symbol, leaves))
    return groups


def _pack_operands(members: list, operands: "_Operands", varying: set, member_of: dict) -> "_Operands | None":
    """How each placeholder of the members' formula is passed; None if they cannot be packed
    (a placeholder varying for some members only, or every operand the same)."""
    for j in range(len(members[0][2])):
        column = [m[2][j] for m in members]
        if all(c == column[0] for c in column):
            operands.add("same", [column[0]])
        elif not any(c.free_symbols & varying for c in column):
            operands.add("column", column)
        elif not all(c.free_symbols & varying for c in column):
            return None
        elif (whole := _whole(column, member_of)) is not None:
            operands.add("matrix", [whole])
        else:
            operands.add("rows", column)
    if all(mode == "same" for mode, _ in operands.parts):
        return None
    return operands


def _linear_call(name: str, group: "_linear", operands: "_Operands", namespace: dict, theta, matrix) -> sp.Expr:
    """A call of the _linear group's own generated function, which is put in `namespace`."""
    k, n, *arguments = group.args
    k, n = int(k), int(n)
    operands.add("rows", arguments[:n])
    operands.add("column", arguments[n : n + k * n])
    operands.add("column", arguments[n + k * n :])
    namespace[name] = _linear_function(name, k, n, operands)
    return sp.Function(name)(theta, matrix, *operands.arguments)


def _in_dependency_order(statements: list[tuple]) -> list[tuple]:
    """The statements reordered so that each comes after those it uses (stable otherwise)."""
    defined_by = {symbol for symbol, _ in statements}
    done, ordered, pending = set(), [], list(statements)
    while pending:
        for i, (symbol, value) in enumerate(pending):
            if all(s in done for s in value.free_symbols if s in defined_by):
                ordered.append((symbol, value))
                done.add(symbol)
                del pending[i]
                break
        else:
            raise KernelError("packing the free-form kernel made a cycle")  # cannot happen: levels order them
    return ordered


def _whole(column: list, member_of: dict):
    """The packed or _linear group whose rows, in order, are `column`; None if there is none."""
    if all(isinstance(c, _row) for c in column):
        group = column[0].args[0]
        if all(c.args[0] == group and int(c.args[1]) == i for i, c in enumerate(column)):
            return group
        return None
    places = [member_of.get(c) for c in column]
    if all(p is not None for p in places) and all(p[0] == places[0][0] and p[1] == i for i, p in enumerate(places)):
        return places[0][0]
    return None


class _Operands:
    """How the stacked operands of a pack or _linear group are assembled at run time.

    Each part is ("same" | "matrix", 1 argument passed), ("theta", indices into the parameter
    vector: no argument), ("batch", indices into the batch matrix: no argument), or ("column" |
    "rows", k arguments stacked). Parameters and batch rows are gathered by one fancy index
    each, not stacked from k Python values."""

    def __init__(self, scalars: list[sp.Symbol], batch: list[sp.Symbol]):
        self.scalar_index = {s: i for i, s in enumerate(scalars)}
        self.batch_index = {s: i for i, s in enumerate(batch)}
        self.parts: list[tuple] = []
        self.arguments: list[sp.Expr] = []

    def add(self, mode: str, column: list[sp.Expr]) -> None:
        if mode == "column" and all(c in self.scalar_index for c in column):
            self.parts.append(("theta", np.array([self.scalar_index[c] for c in column], dtype=np.intp)))
        elif mode == "rows" and all(c in self.batch_index for c in column):
            self.parts.append(("batch", np.array([self.batch_index[c] for c in column], dtype=np.intp)))
        else:
            self.parts.append((mode, len(column)))
            self.arguments += column


def _operand_lines(operands: _Operands, namespace: dict, name: str) -> tuple[list[str], list[str]]:
    """Source lines binding _h0, _h1, … to the assembled operands; the names of the arguments they take."""
    lines, parameters, at = [], [], 0
    for j, (mode, extra) in enumerate(operands.parts):
        if mode == "gathered":  # bound by the caller
            continue
        if mode in ("theta", "batch"):
            namespace[f"{name}_i{j}"] = extra
            source = "_theta" if mode == "theta" else "_batch"
            lines.append(f"_h{j} = {source}[{name}_i{j}]")
        elif mode in ("same", "matrix"):
            lines.append(f"_h{j} = _a{at}")
            parameters.append(f"_a{at}")
            at += 1
        else:
            taken = [f"_a{at + i}" for i in range(extra)]
            parameters += taken
            at += extra
            dtype = ", dtype=_batch.dtype" if mode == "column" else ""
            lines.append(f"_h{j} = numpy.array(({', '.join(taken)},){dtype})")
    return lines, parameters


_PRINTER_SETTINGS = {"allow_unknown_functions": True, "fully_qualified_modules": False, "inline": True}


def _generated(name: str, lines: list[str], parameters: list[str], namespace: dict) -> Callable:
    """Python source made of our own names only (_theta, _batch, _a…, _h…), compiled in `namespace`."""
    source = f"def {name}(_theta, _batch, {', '.join(parameters)}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace.update({k: getattr(np, k) for k in dir(np) if not k.startswith("_")})
    namespace.update(NUMPY_FUNCTIONS, numpy=np)
    exec(compile(source, f"<derive {name}>", "exec"), namespace)
    return namespace[name]


def _pack_function(name: str, template: sp.Expr, operands: _Operands) -> Callable:
    """The pack's formula on its stacked operands, generated as straight-line source."""
    from sympy.printing.numpy import NumPyPrinter

    namespace: dict = {}
    theta = [j for j, (mode, _) in enumerate(operands.parts) if mode == "theta"]
    if len(theta) > 1:  # all parameter columns by one index: (columns, members, 1), each column a view
        members = len(operands.parts[theta[0]][1])
        namespace[f"{name}_theta"] = np.concatenate([operands.parts[j][1] for j in theta])
        operands.parts = [("gathered", None) if mode == "theta" else (mode, extra) for mode, extra in operands.parts]
    lines, parameters = _operand_lines(operands, namespace, name)
    if len(theta) > 1:
        lines.insert(0, f"_t = _theta[{name}_theta].reshape({len(theta)}, {members}, 1)")
        for column, j in enumerate(theta):
            lines.append(f"_h{j} = _t[{column}]")
    for j, (mode, _) in enumerate(operands.parts):
        if mode in ("theta", "column"):  # one value per member: a column against the batch
            lines.append(f"_h{j} = _h{j}[:, None]")
    lines.append(f"return {NumPyPrinter(_PRINTER_SETTINGS).doprint(template)}")
    return _generated(name, lines, parameters, namespace)


def _linear_function(name: str, k: int, n: int, operands: _Operands) -> Callable:
    namespace: dict = {}
    lines, parameters = _operand_lines(operands, namespace, name)
    lines += ["_h3 = _h1.reshape(" + f"{k}, {n}" + ").astype(_h0.dtype, copy=False) @ _h0",
              "_h3 += _h2.astype(_h0.dtype, copy=False)[:, None]", "return _h3"]
    return _generated(name, lines, parameters, namespace)
