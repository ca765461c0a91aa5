r"""Mini-batch matrix claims on a batch network: `dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}`.

The members (trees of derive.claims.batch_read) are evaluated at every value
of their layer letters (0..L in the course's numbering) into matrices of
component formulas in the network's own names, read by the claims vocabulary in
SymPy syntax, and decided as any claim of several instances.

What the course's names mean, component by component (layer [l], unit j,
example i; J = (1/m) Σ_i 𝓛^{(i)} the mean loss):

    Z^{[l]}_{j,i} = Z{l}_{j}_{i}     A^{[l]}_{j,i} = A{l}_{j}_{i}   (A^{[0]} = X)
    dZ^{[l]}_{j,i} = m ∂J/∂Z^{[l]}_{j,i} = ∂𝓛^{(i)}/∂z^{[l](i)}_j  (the course's convention:
    dA^{[l]}_{j,i} = m ∂J/∂A^{[l]}_{j,i}                            dZ^{[L]} = A^{[L]} − Y)
    dW^{[l]}_{j,k} = ∂J/∂W^{[l]}_{j,k}   db^{[l]}_j = ∂J/∂b^{[l]}_j
"""

from __future__ import annotations

import itertools
import re
import time

from derive.errors import FormulaError, InputError
from derive.claims.batch_read import (BatchParser, MatrixNamesParser, names_batch_matrix, names_matrix_names,
                                     rewrite_numpy)
from derive.claims.generic import MAX_READING_SECONDS, Generic
from derive.claims.matrix import ShapeError, ShapeMismatch, Value, _checked, _generic, _same_shapes
from derive.claims.matrix_read import Node

MAX_BATCH_COMPONENTS = 20_000


class _Missing(Exception):
    """A layer the network lacks at these layer values: no instance there."""


def rewrite_numpy_located(formula: str, where: str) -> str:
    try:
        return rewrite_numpy(formula)
    except FormulaError as exc:
        raise exc.located(where) from None


def names_batch(pieces, vocabulary) -> bool:
    """A batch network's claim naming a batch matrix, or an affine layer's naming its matrices."""
    network = vocabulary.network
    if "matrices" in network.facts:
        return any(names_matrix_names(piece, network.facts["matrices"]) for piece, _ in pieces)
    return network.kind == "batch" and any(names_batch_matrix(piece) for piece, _ in pieces)


def read_batch(entry, pieces, vocabulary, file_table, where: str) -> Generic:
    """A batch network's matrix claim (deeplearning.ai's names), or an affine layer's (the assignment's)."""
    network = vocabulary.network
    named = "matrices" in network.facts  # an affine or a module layer: its matrices by name
    known = lambda name: name in network.by_name or name in vocabulary.definitions  # noqa: E731
    parser = (lambda piece: MatrixNamesParser(piece, known, network.facts["matrices"],
                                              network.facts.get("products") == "entrywise")) if named else (
        lambda piece: BatchParser(piece, known))
    family = _named_family if named else _family
    trees = []
    for piece, offset in pieces:
        try:
            trees.append(parser(piece).parse())
        except InputError as exc:
            column = exc.column + offset if exc.column is not None else None
            raise FormulaError(exc.message, column=column).located(where) from None
    letters = sorted({c for tree in trees for c in _layer_letters(tree)})
    examples = sorted({c for tree in trees for c in free_examples(tree)})  # δ^{x,l}: for every example x
    depth = network.facts.get("L", 0)
    stop = time.perf_counter() + MAX_READING_SECONDS
    readings = []
    for env in _environments(letters, depth, examples, network.facts.get("m", 1)):
        if time.perf_counter() > stop:
            raise FormulaError(f"reading its instances took more than {MAX_READING_SECONDS:g} s").located(where)
        at = ", ".join(f"{k}={v}" for k, v in env.items())
        chosen = {k: v for k, v in env.items() if k in examples}
        try:
            members = [_evaluate(tree, env, chosen, network.facts, family) for tree in trees]
        except _Missing:
            continue
        except ShapeError as exc:
            raise ShapeMismatch(f"{'at ' + at + ', ' if at else ''}{exc.message}", where=where) from None
        except FormulaError as exc:
            raise exc.located(where) from None
        _same_shapes(members, pieces, at, where)
        readings.append((env, members))
    if not readings:
        raise FormulaError("no layer value gives a batch claim where every layer it names exists").located(where)
    roles = {**{k: "layer" for k in letters}, **{k: "example" for k in examples}}
    return _generic(readings, pieces, roles, vocabulary, {}, where, "sympy")


def _environments(letters, depth, examples=(), m=1):
    """Each layer letter over 0..L+1 (the course's layers 0..L; Nielsen's l, which is [l-1], runs to L+1; a
    value where a named layer is missing gives no instance), each free example letter over 1..m."""
    ranges = [range(0, depth + 2)] * len(letters) + [range(1, m + 1)] * len(examples)
    for combination in itertools.product(*ranges):
        yield dict(zip([*letters, *examples], combination))


def free_examples(tree: Node, bound: frozenset = frozenset()):
    """The example letters of a tree's columns (δ^{x,l}, dZ^{[l](i)}) that no sum over the examples binds."""
    if tree.kind == "exsum":
        yield from free_examples(tree.args[0], bound | {tree.text})
        return
    if tree.kind == "bfam" and "(" in tree.script:
        letter = tree.script.split("(")[1].rstrip(")")
        if letter not in bound:
            yield letter
    for arg in tree.args:
        if isinstance(arg, Node):
            yield from free_examples(arg, bound)


def _layer_letters(tree: Node):
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.kind == "bfam":
            layer = node.script.split("(")[0]
            yield from (c for c in layer if c.isalpha() and c != "L")
        stack.extend(a for a in node.args if isinstance(a, Node))


def _layer_number(text: str, env, depth: int) -> int:
    total, sign, word = 0, 1, ""
    for char in text + "+":
        if char in "+-":
            if word:
                value = depth if word == "L" else int(word) if word.isdigit() else env.get(word)
                if value is None:
                    raise FormulaError(f"the layer letter {word} has no value")
                total += sign * value
            sign, word = (-1 if char == "-" else 1), ""
        elif char.isdigit() and word.isdigit() or not word:
            word += char
        else:
            raise FormulaError(f"[{text}] is not a layer")
    return total


def _family(node: Node, env, examples, facts) -> Value:
    family = node.text
    layer_text, _, column = node.script.partition("(")
    column = column.rstrip(")")
    sizes, m, depth = facts["sizes"], facts["m"], facts["L"]
    layer = 0 if family == "X" else depth if family == "Y" else _layer_number(layer_text, env, depth)
    lowest = 0 if family in ("A", "dA", "X") else 1
    if not lowest <= layer <= depth:
        raise _Missing
    rows = sizes[layer]
    shown = family if family in ("X", "Y") else f"{family}^{{[{layer}]}}"
    if family in ("W", "dW"):
        text = (lambda j, k: f"W{layer}_{j}_{k}") if family == "W" else (lambda j, k: f"D(J, W{layer}_{j}_{k})")
        comps = tuple(tuple(text(j, k) for k in range(1, sizes[layer - 1] + 1)) for j in range(1, rows + 1))
        return _no_column(Value(rows, sizes[layer - 1], comps, False, shown), column, family)
    if family in ("b", "db"):
        text = (lambda j: f"b{layer}_{j}") if family == "b" else (lambda j: f"D(J, b{layer}_{j})")
        return _no_column(Value(rows, 1, tuple((text(j),) for j in range(1, rows + 1)), False, shown), column, family)
    unit = _unit(family, layer, m)
    if column:
        if column not in examples:
            raise FormulaError(f"the example letter ({column}) is not bound by a sum over the examples")
        i = examples[column]
        return Value(rows, 1, tuple((unit(j, i),) for j in range(1, rows + 1)), False, f"{shown}({i})")
    comps = tuple(tuple(unit(j, i) for i in range(1, m + 1)) for j in range(1, rows + 1))
    return Value(rows, m, comps, False, shown)


def _unit(family: str, layer: int, m: int):
    name = {"Z": "Z", "dZ": "Z", "A": "A", "dA": "A", "X": "X", "Y": "Y"}[family]
    if name == "A" and layer == 0:
        name = "X"

    def plain(j, i):
        return f"{name}{layer}_{j}_{i}" if name in ("Z", "A") else f"{name}{j}_{i}"
    if family.startswith("d"):
        return lambda j, i: f"{m}*D(J, {plain(j, i)})"
    return plain


def _no_column(value: Value, column: str, family: str) -> Value:
    if column:
        raise FormulaError(f"{family} has no examples: ({column}) is read on Z, A, dZ, dA, X, Y only")
    return value


def _named_family(node: Node, env, examples, facts) -> Value:
    """A declared matrix of the network (x, w, out, gamma, xhat …), or dX: the loss's gradient of each entry."""
    gradient = node.text not in facts["matrices"]
    name = node.text[1:] if gradient else node.text
    matrix = facts["matrices"][name]
    loss = facts["loss"]

    def unit(r, c):
        plain = matrix["entry"].format(r=r, c=c)
        return f"D({loss}, {plain})" if gradient else plain
    comps = tuple(tuple(unit(r, c) for c in range(1, matrix["cols"] + 1)) for r in range(1, matrix["rows"] + 1))
    return Value(matrix["rows"], matrix["cols"], comps, False, node.text)


def _evaluate(node: Node, env, examples, facts, family=_family) -> Value:
    kind = node.kind
    if kind == "bfam":
        return family(node, env, examples, facts)
    if kind == "scalar":
        return _scalar(node.text, facts)
    if kind == "exsum":
        total = None
        for i in range(1, facts["m"] + 1):
            term = _evaluate(node.args[0], env, {**examples, node.text: i}, facts, family)
            total = term if total is None else _add(total, term, "+")
        return Value(total.rows, total.cols, total.comps, total.scalar, f"Σ_{node.text} ({node.args[0].kind})")
    args = [_evaluate(a, env, examples, facts, family) for a in node.args]
    if kind == "rowsum":
        (x,) = args
        comps = tuple((_checked("(" + " + ".join(f"({c})" for c in row) + ")"),) for row in x.comps)
        return Value(x.rows, 1, comps, x.scalar, f"np.sum({x.shown}, axis=1)")
    if kind == "colsum":
        (x,) = args
        comps = (tuple(_checked("(" + " + ".join(f"({row[j]})" for row in x.comps) + ")") for j in range(x.cols)),)
        return Value(1, x.cols, comps, x.scalar, f"np.sum({x.shown}, axis=0)")
    if kind == "func":
        (x,) = args
        return _map(x, lambda c: f"{node.text}({c})", f"{node.text}({x.shown})")
    if kind == "T":
        (x,) = args
        comps = tuple(tuple(x.comps[i][j] for i in range(x.rows)) for j in range(x.cols))
        return Value(x.cols, x.rows, comps, x.scalar, x.plain or f"{x.shown}^T", plain=x.shown)
    if kind == "neg":
        return _map(args[0], lambda c: f"-({c})", f"-{args[0].shown}")
    if kind == "pow":
        (x,) = args
        exponent = _exponent(node.script)
        return _map(x, lambda c: f"({c})**({exponent})", f"{x.shown}^{exponent}")
    a, b = args
    if kind in ("add", "sub"):
        return _add(a, b, "+" if kind == "add" else "-")
    if kind == "div":
        if not b.scalar:
            raise FormulaError(f"{a.shown} / {b.shown}: dividing by a matrix is not read")
        return _map(a, lambda c: f"({c})/({b.comps[0][0]})", f"{a.shown}/{b.shown}")
    if a.scalar or b.scalar:
        s, x = (a, b) if a.scalar else (b, a)
        return _map(x, lambda c: f"({s.comps[0][0]})*({c})", f"{a.shown} {b.shown}")
    if kind == "had":
        return _elementwise(a, b)
    return _product(a, b)


def _exponent(script: str) -> str:
    r"""A power's exponent as SymPy text: a whole number or a fraction (`2`, `{-1/2}`, `{-\frac{1}{2}}`)."""
    text = script.strip().strip("{}").replace(" ", "")
    match = re.fullmatch(r"(-?)\\frac\{?(\d+)\}?\{?(\d+)\}?", text)
    if match:
        return f"{match.group(1)}{match.group(2)}/{match.group(3)}"
    if re.fullmatch(r"-?\d+(/\d+)?", text):
        return text
    raise FormulaError(f"the exponent {script} is not read (a whole number or a fraction is)")


def _scalar(text: str, facts) -> Value:
    if text in ("m", "N") and text in facts:
        return Value(1, 1, ((str(facts[text]),),), True, text)
    if text == "eps" and "eps" in facts.get("constants", ("eps",)):
        return Value(1, 1, (("eps",),), True, "ε")
    if text.isdigit():
        return Value(1, 1, ((text,),), True, text)
    if text in facts.get("integers", {}) and "matrices" in facts:  # a module's sizes: attention's d
        return Value(1, 1, ((str(facts["integers"][text]),),), True, text)
    if text in facts.get("constants", ()) and "matrices" in facts:  # a module's constant: dropout's p
        return Value(1, 1, ((text,),), True, text)
    known = ", ".join(["numbers", "m", *facts.get("integers", {}), *facts.get("constants", ())])
    raise FormulaError(f"the scalar {text} is not read in this claim ({known} are)")


def _map(x: Value, f, shown: str) -> Value:
    return Value(x.rows, x.cols, tuple(tuple(_checked(f(c)) for c in row) for row in x.comps), x.scalar, shown)


def _broadcast(a: Value, b: Value, op: str) -> tuple[Value, Value]:
    """NumPy's broadcasting of a column over the examples: (n×m) + (n×1)."""
    if a.rows == b.rows and a.cols != b.cols and 1 in (a.cols, b.cols):
        wide = max(a.cols, b.cols)
        a, b = (_widen(a, wide) if a.cols == 1 else a), (_widen(b, wide) if b.cols == 1 else b)
    if a.cols == b.cols and a.rows != b.rows and 1 in (a.rows, b.rows):  # a row over the rows: x w + b
        tall = max(a.rows, b.rows)
        a, b = (_stack(a, tall) if a.rows == 1 else a), (_stack(b, tall) if b.rows == 1 else b)
    if (a.rows, a.cols) != (b.rows, b.cols):
        raise ShapeError(f"{a.shown} {op} {b.shown}: {a.shape} {op} {b.shape} do not have the same shape")
    return a, b


def _stack(x: Value, rows: int) -> Value:
    return Value(rows, x.cols, x.comps * rows, False, x.shown)


def _widen(x: Value, cols: int) -> Value:
    return Value(x.rows, cols, tuple(row * cols for row in x.comps), False, x.shown)


def _add(a: Value, b: Value, op: str) -> Value:
    if a.scalar != b.scalar:  # 1 - h * h: the scalar added to every entry
        s, x = (a, b) if a.scalar else (b, a)
        spread = Value(x.rows, x.cols, tuple((s.comps[0][0],) * x.cols for _ in range(x.rows)), False, s.shown)
        a, b = (spread, x) if a.scalar else (x, spread)
    a, b = _broadcast(a, b, op)
    comps = tuple(tuple(_checked(f"({x}) {op} ({y})") for x, y in zip(ra, rb)) for ra, rb in zip(a.comps, b.comps))
    return Value(a.rows, a.cols, comps, a.scalar, f"{a.shown} {op} {b.shown}")


def _elementwise(a: Value, b: Value) -> Value:
    a, b = _broadcast(a, b, "*")
    comps = tuple(tuple(_checked(f"({x})*({y})") for x, y in zip(ra, rb)) for ra, rb in zip(a.comps, b.comps))
    return Value(a.rows, a.cols, comps, False, f"{a.shown} * {b.shown}")


def _transposed(x: Value) -> str:
    return x.plain if x.plain is not None else f"{x.shown}^T"


def _product(a: Value, b: Value) -> Value:
    shown = f"{a.shown} {b.shown}"
    if a.cols != b.rows:
        hint = f"; {a.shown} {_transposed(b)} does" if a.cols == b.cols else (
            f"; {_transposed(a)} {b.shown} does" if a.rows == b.rows else (
                f"; {b.shown} {a.shown} does" if b.cols == a.rows else ""))
        raise ShapeError(f"{shown}: {a.shape}·{b.shape} does not conform{hint}")
    if a.rows * b.cols > MAX_BATCH_COMPONENTS or a.rows * b.cols * a.cols > 10 * MAX_BATCH_COMPONENTS:
        raise FormulaError("the matrix product is larger than a batch claim reads")
    comps = tuple(tuple(_checked("(" + " + ".join(f"({a.comps[i][k]})*({b.comps[k][j]})" for k in range(a.cols))
                                 + ")") for j in range(b.cols)) for i in range(a.rows))
    return Value(a.rows, b.cols, comps, False, shown)
