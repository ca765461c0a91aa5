r"""Matrix and vector claims in layered networks: `\delta^l = ((w^{l+1})^T \delta^{l+1}) \odot \sigma'(z^l)`.

A LaTeX claim that names a whole layer (a layered name with a superscript and
no subscript: `\delta^l`, `w^{l+1}`, `a^{l-1}`, `z^l`, `b^l`, `\nabla_a C`,
`\frac{\partial C}{\partial w^l}`) is read as matrices. Shapes come from the
network: δ^l, z^l, a^l, b^l are columns of layer l's width, w^l is
(width l)×(width l−1), ∂C/∂X^l has X^l's shape, ∇_a C is ∂C/∂a^L. `^T`/`^\top`
transposes, `\odot`/`\circ` is the elementwise product, juxtaposition, `\cdot`
and `\times` the matrix product (a scalar's product scales), functions apply
elementwise.

Each member is evaluated at every value of its layer letters (1..L, narrowed
by `indices`/`where` as for index claims; a value where a named layer does not
exist, such as w^1 or δ^{L+1}, is no instance) into a matrix of component
formulas, each read by the claims vocabulary as a scalar LaTeX formula. The
claim `A = B` is then the component claims A_{ij} = B_{ij}, one instance each
(l, row, column), decided as any claim of several instances: proven only when
every component at every layer value is proven.

A product, sum or `=` whose shapes do not conform at some layer value makes the
claim false as written for this network: it is refuted with the diagnosis
`shape` (ShapeMismatch), the shapes, and the transpose that would conform; no
counterexample is needed, as no numbers make the product exist.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Callable

from derive.errors import FormulaError, InputError
from derive.claims import indices as ix
from derive.claims.generic import MAX_READING_SECONDS, Generic, Part
from derive.claims.matrix_read import MatrixParser, Node, masked, whole_layers
from derive.proof.report import MAX_INSTANCES

MAX_COMPONENTS = 20_000  # of any matrix met while reading a member
MAX_PRODUCT_TERMS = 200_000  # the terms a matrix product's components hold together
MAX_COMPONENT_CHARS = 20_000  # one component's formula, as text
MAX_TOTAL_CHARS = 4_000_000  # all the component formulas written while reading one claim
# what is left of MAX_TOTAL_CHARS while one claim is read: a context variable, so that claims read at the
# same time (a server's threads) do not spend each other's allowance
_chars_left: contextvars.ContextVar[int] = contextvars.ContextVar("matrix_chars_left", default=MAX_TOTAL_CHARS)
_SHOWN = {"delta": "δ", "w": "w", "b": "b", "z": "z", "a": "a"}


@dataclass(frozen=True)
class Spelling:
    """How a member's components and shapes are written, in the claim's syntax (LaTeX here; SymPy syntax in
    derive.claims.matrix_sympy): the components are read by the vocabulary in that syntax."""

    syntax: str
    weight: Callable[[int, int, int], str]  # w^l_{jk}'s component
    unit: Callable[[str, int, int], str]  # family, layer, row: δ^l_j's component
    layer: Callable[[str, int], str]  # a whole layer, shown
    grad: Callable[[str, str], str]  # numerator, component: ∂C/∂w^l_{jk}
    grad_shown: Callable[[str, str], str]
    transposed: Callable[[str], str]  # a shown matrix, transposed
    power: Callable[[str, str], str]  # component, exponent
    power_shown: Callable[[str, str], str]
    quotient: Callable[[str, str], str]  # component, scalar
    times: str  # between two parenthesized components
    matmul: str  # between two shown matrices
    elementwise: str
    elementwise_power: bool = False
    target: Callable[[int], str] = lambda j: f"y_{{{j}}}"  # the target vector's component j  # NumPy's `X**2` squares each component; LaTeX's (\delta^l)^2 is not read


LATEX = Spelling(
    "latex",
    weight=lambda n, i, k: f"w^{{{n}}}_{{{i},{k}}}",
    unit=lambda family, n, i: (r"\delta" if family == "delta" else family) + f"^{{{n}}}_{{{i}}}",
    layer=lambda family, n: f"{_SHOWN[family]}^{{{n}}}",
    grad=lambda numerator, c: rf"\frac{{{numerator}}}{{\partial {c}}}",
    grad_shown=lambda numerator, shown: "∂" + numerator.replace(r"\partial", "").strip() + f"/∂{shown}",
    transposed=lambda shown: f"({shown})^T",
    power=lambda c, script: f"({c})^{{{script.strip('{}')}}}",
    power_shown=lambda shown, script: f"{shown}^{script}",
    quotient=lambda c, s: rf"\frac{{{c}}}{{{s}}}",
    times=r" \cdot ",
    matmul=" ",
    elementwise=" ⊙ ",
)


class ShapeError(FormulaError):
    """Shapes that do not conform: the message gives them."""


class _Missing(Exception):
    """A layer the network lacks at these values: no instance there."""


@dataclass(frozen=True)
class Value:
    """A matrix (or a scalar) of component formulas in LaTeX, and how it is shown in a message."""

    rows: int
    cols: int
    comps: tuple  # rows tuples of cols strings
    scalar: bool
    shown: str
    plain: str | None = None  # for a transpose: what it transposes (its own transpose, shown)

    @property
    def shape(self) -> str:
        return "scalar" if self.scalar else f"({self.rows}×{self.cols})"


def split_masked(formula: str, split_chain) -> list[tuple[str, int]]:
    r"""A chain with `\nabla_a C` or `^\top` split at its `=` (the chain splitter's tokenizer knows neither)."""
    return [(formula[offset:offset + len(piece)], offset) for piece, offset in split_chain(masked(formula), "latex")]


def names_whole_layer(pieces, vocabulary, detect=whole_layers) -> bool:
    """Whether the claim is a matrix claim: a layered network and a member that names a whole layer (`detect`
    reads a member in the claim's syntax: LaTeX's whole_layers, or matrix_sympy's)."""
    if ix.layer_count(vocabulary.network) is None:
        return False
    return any(detect(piece, _known(vocabulary)) for piece, _ in pieces)


def _known(vocabulary):
    network = vocabulary.network

    def known(name: str) -> bool:
        return (name in network.by_name or name in vocabulary.definitions or name in vocabulary.rates
                or name == vocabulary.example)
    return known


def read_matrix(entry, pieces, vocabulary, latex_names, file_table, where: str, read=None,
                spelling: Spelling = LATEX) -> Generic:
    """The claim's component parts at every layer value; a FormulaError for a shape that does not conform.

    `read(piece, known)` reads a member into a Node tree (LaTeX's MatrixParser unless given), and `spelling`
    writes its components in the same syntax."""
    network = vocabulary.network
    known = _known(vocabulary)
    trees = []
    _chars_left.set(MAX_TOTAL_CHARS)
    for piece, offset in pieces:
        try:
            trees.append(read(piece, known) if read is not None else MatrixParser(piece, known).parse())
        except InputError as exc:
            column = exc.column + offset if exc.column is not None else None
            raise FormulaError(exc.message, column=column).located(where) from None
    fixed = ix.fixed_letters(network, known)
    letters: dict[str, str] = {}
    for tree in trees:
        for letter in _layer_letters(tree):
            if letter not in fixed and not known(letter):
                letters[letter] = "layer"
    table = {**file_table, **ix.parse_index_table(entry.get("indices"), f"{where} indices")}
    conditions = ix.parse_conditions(entry.get("where"), f"{where} where")
    cap = min(ix.MAX_CLAIM_INSTANCES, MAX_INSTANCES)
    stop = time.perf_counter() + MAX_READING_SECONDS
    readings = []  # (env, [Value per member])
    count = 0
    for env in ix.environments(letters, table, fixed, network, conditions, f"{where} where"):
        if time.perf_counter() > stop:
            raise FormulaError(f"reading its instances took more than {MAX_READING_SECONDS:g} s; narrow the layer "
                               "letters with indices = { … } or where = '…'").located(where)
        at = ", ".join(f"{k}={v}" for k, v in env.items() if k in letters)
        try:
            members = [_evaluate(tree, env, network, spelling) for tree in trees]
        except _Missing:
            continue
        except ShapeError as exc:
            raise ShapeMismatch(f"{'at ' + at + ', ' if at else ''}{exc.message}", where=where) from None
        except FormulaError as exc:
            raise exc.located(where) from None
        _same_shapes(members, pieces, at, where)
        count += members[0].rows * members[0].cols
        if count > cap:
            raise FormulaError(f"it has more than {cap:,} components over its layer values; narrow the layer "
                               "letters with indices = { … } or where = '…'").located(where)
        readings.append((env, members))
    if not readings:
        raise FormulaError("no layer value gives a matrix claim where every layer it names exists"
                           + (f" (layer letters {', '.join(letters)})" if letters else "")).located(where)
    return _generic(readings, pieces, letters, vocabulary, latex_names, where, spelling.syntax)



class ShapeMismatch(FormulaError):
    """A matrix claim whose shapes do not conform: refuted by its shapes, with the diagnosis `shape`.

    No numbers can make (2×3)·(2×1) a product, so the claim is false as written
    for this network; the message gives the shapes and the transpose that would
    conform."""

def _same_shapes(members, pieces, at: str, where: str) -> None:
    first = members[0]
    for value, (piece, _) in zip(members[1:], pieces[1:]):
        if (value.rows, value.cols, value.scalar) != (first.rows, first.cols, first.scalar):
            raise ShapeMismatch(
                f"{'at ' + at + ', ' if at else ''}the sides of '=' differ: {first.shown} is {first.shape}, "
                f"{value.shown} is {value.shape}", where=where)


def _generic(readings, pieces, letters, vocabulary, latex_names, where: str, syntax: str) -> Generic:
    """Every component of every member read by the vocabulary: the parts, link-major."""
    read = []  # (shown indices, members, mentioned) per component instance
    for env, members in readings:
        layer = tuple((k, v) for k, v in env.items() if k in letters)
        at = ", ".join(f"{k}={v}" for k, v in layer)
        for i in range(members[0].rows):
            for j in range(members[0].cols):
                exprs, mentioned = [], []
                for value in members:
                    text = value.comps[i][j]
                    vocabulary.mentioned.clear()
                    try:
                        exprs.append(vocabulary.parse(text, syntax, latex_names, where))
                    except InputError as exc:
                        shown = f"{at + ', ' if at else ''}row {i + 1}, column {j + 1}"
                        raise FormulaError(f"at {shown}: {exc.message}").located(where) from None
                    mentioned.append(tuple(vocabulary.mentioned))
                read.append(((*layer, ("row", i + 1), ("column", j + 1)), exprs, mentioned))
    links = len(pieces) - 1
    parts = [Part(link, shown, exprs[link - 1], exprs[link], mentioned[link])
             for link in range(1, links + 1) for shown, exprs, mentioned in read]
    texts = tuple(piece.strip() for piece, _ in pieces)
    return Generic(tuple(parts), links, len(read), texts, (*letters, "row", "column"), tuple(read[0][1]))


# ---------------------------------------------------------------------------
# Evaluating a tree at one layer value
# ---------------------------------------------------------------------------


def _layer_letters(tree: Node) -> list[str]:
    found: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.kind == "layer":
            found.extend(c for c in node.script if c.isalpha() and c not in found)
        stack.extend(reversed([a for a in node.args if isinstance(a, Node)]))
    return found


def _layer_value(script: str, env) -> int:
    total, sign, i = 0, 1, 0
    while i < len(script):
        char = script[i]
        if char in "+-":
            sign = -1 if char == "-" else 1
            i += 1
            continue
        j = i + 1
        while char.isdigit() and j < len(script) and script[j].isdigit():
            j += 1
        word = script[i:j]
        if word.isdigit():
            total += sign * int(word[:6])
        elif word in env:
            total += sign * env[word]
        else:
            raise FormulaError(f"the layer letter {word} has no value")
        sign, i = 1, j
    return total


def _layer(family: str, script: str, env, network, spelling: Spelling) -> Value:
    """The layer's column (or w's matrix) of component names, or _Missing where the network lacks it."""
    n = _layer_value(script, env)
    widths = ix.sizes(network)
    layers = ix.layer_count(network)
    lowest = 1 if family == "a" else 2
    if not lowest <= n <= (layers or 0) or len(widths) < n:
        raise _Missing
    probe = {"a": f"a{n}_1", "z": f"z{n}_1", "delta": f"z{n}_1", "b": f"b{n}_1", "w": f"w{n}_1_1"}[family]
    if n > 1 and probe not in network.by_name:
        raise _Missing
    rows = widths[n - 1]
    _bound(rows * (widths[n - 2] if family == "w" else 1), 0)
    if family == "w":
        cols = widths[n - 2]
        comps = tuple(tuple(spelling.weight(n, i, k) for k in range(1, cols + 1)) for i in range(1, rows + 1))
    else:
        cols = 1
        comps = tuple((spelling.unit(family, n, i),) for i in range(1, rows + 1))
    return Value(rows, cols, comps, False, spelling.layer(family, n))


def _target(network, spelling: Spelling) -> Value:
    """y: a column of the output layer's width, where the network has targets (not under a generic cost)."""
    targets = network.families.get("y") or {}
    if not targets:
        raise FormulaError("y: this network has no targets (its cost is a generic C(a^L))")
    return Value(len(targets), 1, tuple((spelling.target(j),) for j in range(1, len(targets) + 1)), False, "y")


def _evaluate(node: Node, env, network, spelling: Spelling) -> Value:
    kind = node.kind
    if kind == "layer":
        return _layer(node.text, node.script, env, network, spelling)
    if kind == "grad":
        inner = node.args[0]
        layer = _layer(inner.text, inner.script, env, network, spelling)
        comps = tuple(tuple(spelling.grad(node.text, c) for c in row) for row in layer.comps)
        return Value(layer.rows, layer.cols, comps, False, spelling.grad_shown(node.text, layer.shown))
    if kind == "scalar":
        return Value(1, 1, ((node.text,),), True, node.text)
    if kind == "target":
        return _target(network, spelling)
    args = [_evaluate(a, env, network, spelling) for a in node.args]
    if kind == "neg":
        (x,) = args
        return _map(x, lambda c: f"-({c})", f"-{x.shown}")
    if kind == "func":
        (x,) = args
        return _map(x, lambda c: f"{node.text}({c})", f"{node.text}({x.shown})")
    if kind == "T":
        (x,) = args
        comps = tuple(tuple(x.comps[i][j] for i in range(x.rows)) for j in range(x.cols))
        shown = x.plain if x.plain is not None else spelling.transposed(x.shown)
        return Value(x.cols, x.rows, comps, x.scalar, shown, plain=x.shown)
    if kind == "pow":
        (x,) = args
        if not x.scalar and not spelling.elementwise_power:
            shown = spelling.power_shown(x.shown, node.script)
            raise FormulaError(f"{shown}: a power of a matrix {x.shape} is not read")
        return _map(x, lambda c: spelling.power(c, node.script), spelling.power_shown(x.shown, node.script))
    a, b = args
    if kind in ("add", "sub"):
        return _sum(a, b, "+" if kind == "add" else "-")
    if kind == "div":
        if not b.scalar:
            raise FormulaError(f"{a.shown} / {b.shown}: dividing by a matrix {b.shape} is not read")
        return _scaled(b, a, lambda s, c: spelling.quotient(c, s), f"{a.shown}/{b.shown}")
    if kind == "had":
        return _hadamard(a, b, spelling)
    return _product(a, b, spelling)


def _map(x: Value, f, shown: str) -> Value:
    return Value(x.rows, x.cols, tuple(tuple(_checked(f(c)) for c in row) for row in x.comps), x.scalar, shown)


def _scaled(scalar: Value, x: Value, f, shown: str) -> Value:
    s = scalar.comps[0][0]
    return Value(x.rows, x.cols, tuple(tuple(_checked(f(s, c)) for c in row) for row in x.comps), x.scalar, shown)


def _sum(a: Value, b: Value, op: str) -> Value:
    shown = f"{a.shown} {op} {b.shown}"
    if (a.rows, a.cols, a.scalar) != (b.rows, b.cols, b.scalar):
        raise ShapeError(f"{shown}: {a.shape} {op} {b.shape} do not have the same shape")
    comps = tuple(tuple(_checked(f"({x}) {op} ({y})") for x, y in zip(ra, rb)) for ra, rb in zip(a.comps, b.comps))
    return Value(a.rows, a.cols, comps, a.scalar, shown)


def _hadamard(a: Value, b: Value, spelling: Spelling) -> Value:
    shown = f"{a.shown}{spelling.elementwise}{b.shown}"
    if a.scalar or b.scalar:
        s, x = (a, b) if a.scalar else (b, a)
        return _scaled(s, x, lambda p, c: f"({p}){spelling.times}({c})", shown)
    if (a.rows, a.cols) != (b.rows, b.cols):
        raise ShapeError(f"{shown}: {a.shape}⊙{b.shape} do not have the same shape")
    comps = tuple(tuple(_checked(f"({x}){spelling.times}({y})") for x, y in zip(ra, rb))
                  for ra, rb in zip(a.comps, b.comps))
    return Value(a.rows, a.cols, comps, False, shown)


def _product(a: Value, b: Value, spelling: Spelling) -> Value:
    shown = f"{a.shown}{spelling.matmul}{b.shown}"
    if a.scalar or b.scalar:
        s, x = (a, b) if a.scalar else (b, a)
        return _scaled(s, x, lambda p, c: f"({p}){spelling.times}({c})", shown)
    if a.cols != b.rows:
        raise ShapeError(f"{shown}: {a.shape}·{b.shape} does not conform{_suggestion(a, b, spelling)}")
    _bound(a.rows * b.cols, a.rows * b.cols * a.cols)
    times = spelling.times
    comps = tuple(
        tuple(_checked("(" + " + ".join(f"({a.comps[i][k]}){times}({b.comps[k][j]})" for k in range(a.cols)) + ")")
              for j in range(b.cols))
        for i in range(a.rows))
    return Value(a.rows, b.cols, comps, False, shown)


def _suggestion(a: Value, b: Value, spelling: Spelling) -> str:
    """`; (w^{3})^T δ^{3} does` when a transpose (or the other order) would conform."""
    def transposed(x: Value) -> str:
        return x.plain if x.plain is not None else spelling.transposed(x.shown)
    between = spelling.matmul
    if a.rows == b.rows:
        return f"; {transposed(a)}{between}{b.shown} does"
    if a.cols == b.cols:
        return f"; {a.shown}{between}{transposed(b)} does"
    if b.cols == a.rows:
        return f"; {b.shown}{between}{a.shown} does"
    return ""


def _bound(components: int, terms: int) -> None:
    if components > MAX_COMPONENTS or terms > MAX_PRODUCT_TERMS:
        raise FormulaError(f"a matrix of {components:,} components ({terms:,} terms) is more than a matrix claim "
                           f"reads ({MAX_COMPONENTS:,} components, {MAX_PRODUCT_TERMS:,} terms)")


def _checked(text: str) -> str:
    if len(text) > MAX_COMPONENT_CHARS:
        raise FormulaError(f"a component's formula is longer than {MAX_COMPONENT_CHARS:,} characters")
    left = _chars_left.get() - len(text)
    _chars_left.set(left)
    if left < 0:
        raise FormulaError(f"its components' formulas come to more than {MAX_TOTAL_CHARS:,} characters")
    return text
