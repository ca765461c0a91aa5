r"""A matrix claim for every size: `derive check --general`.

The claim's members (the trees of derive.claims.matrix_read) are read once
more with symbolic shapes: δ^l is a column of size[l] entries `delta[l, r]`,
w^l a size[l]×size[l−1] matrix `w[l, r, c]`, a product's entry a sum over a
symbolic range. Each link `A = B` is then the index formula A[r, c] = B[r, c]
for every layer value where the layers it names exist, in every network of the
declared network's kind (its cost, its output, its activation), and is proven
by derive.proof.general. A claim not proven so is tried on the smallest
concrete networks first (derive.claims.smallest), where a refutation has a
counterexample, or shapes that do not conform.
"""

from __future__ import annotations

import contextvars
import itertools
from dataclasses import dataclass
from typing import Callable

import sympy as sp

from derive.errors import FormulaError
from derive.graph import functions as fn
from derive.claims.batch_matrix import _exponent, free_examples
from derive.claims.batch_read import BatchParser, MatrixNamesParser
from derive.proof.general import models_affine as affine
from derive.claims.matrix_read import MatrixParser, Node
from derive.claims.matrix_sympy import SympyMatrixParser
from derive.proof.general.models_batch import AB, BB, M, WB, YB, ZB, J
from derive.proof.general import models_modules as modules
from derive.proof.general.models import A, B, DELTA, L, SIZE, W, Z
from derive.proof.general.models import Y as TARGET
from derive.proof.general.prove import GeneralResult, prove_identity
from derive.proof.formulas import _D

_FAMILIES = {"delta": DELTA, "z": Z, "a": A, "b": B, "w": W}
LOWEST_LAYER = {"a": 1, "delta": 2, "z": 2, "b": 2, "w": 2,  # Nielsen's layers 1..L; the course's [0]..[L]
           "A": 0, "dA": 0, "Z": 1, "dZ": 1, "W": 1, "dW": 1, "B": 1, "dB": 1}
_G_PRIME = {"g'", "f'", r"g^{\prime}", r"f^{\prime}", r"g^\prime", r"f^\prime"}  # the activation's derivative
_SIGMA_PRIME = {r"\sigma'", r"\sigma^{\prime}", r"\sigma^\prime", r"\sigma^{'}"}
_FRESH = itertools.count(1)
# the module network whose claim is being read (its declared matrices), or None: set by general_link_results
_MODULE: contextvars.ContextVar = contextvars.ContextVar("general_module", default=None)
_MODULE_SCALARS: contextvars.ContextVar = contextvars.ContextVar("general_module_scalars", default=frozenset())
_SHAPE = {"N": modules.N, "D": modules.D, "1": sp.S.One, "T": sp.Symbol("T", real=True),
          "d": sp.Symbol("d", real=True), "C": sp.Symbol("C", real=True)}


class NotGeneral(Exception):
    """The claim names something the general reading does not know (a rate η, a function other than σ)."""


class GeneralShape(Exception):
    """Shapes that conform only for some sizes (size[l] = size[l+1]): the message says which."""


@dataclass(frozen=True)
class Shaped:
    rows: sp.Expr
    cols: sp.Expr
    entry: Callable[[sp.Expr, sp.Expr], sp.Expr]
    scalar: bool = False


def network_when(network) -> dict:
    """The facts a general proof may assume of every network like the declared one."""
    facts = network.facts
    when = {key: facts.get(key) for key in ("kind", "cost", "output", "output_activation", "regularization")}
    if facts.get("kind") in ("batch", "affine"):
        when = {"kind": facts["kind"], "cost": facts.get("cost")}
    if facts.get("kind") == "module":
        return {"kind": "module", "layer": facts.get("layer")}
    if set(facts.get("activations", ())) == {"sigmoid"}:  # every layer's: σ' = σ(1 − σ) wherever l is
        when["activation"] = "sigmoid"
    return {k: v for k, v in when.items() if v is not None}


def general_link_results(pieces, network, budget: float, syntax: str = "latex") -> list[GeneralResult]:
    """Each link of a matrix claim, proven (or not) for every size; NotGeneral or GeneralShape when it cannot
    be read so."""
    trees = []
    named = network.facts.get("matrices")
    parser = {"batch": BatchParser, "affine": lambda text, known: MatrixNamesParser(text, known, named),
              "module": lambda text, known: MatrixNamesParser(text, known, named,
                                                              network.facts.get("products") == "entrywise"),
              }.get(network.kind, MatrixParser)
    _MODULE.set(named if network.kind == "module" else None)
    _MODULE_SCALARS.set({*network.facts.get("integers", {}), *network.facts.get("constants", ())})
    if syntax == "sympy":
        parser = SympyMatrixParser  # the same trees: `w[l+1].T @ delta[l+1] * sigma_prime(z[l])`
    for piece, _ in pieces:
        try:
            trees.append(parser(piece, lambda name: False).parse())
        except FormulaError as exc:
            raise NotGeneral(exc.message) from None
    free = sorted({c for tree in trees for c in free_examples(tree)})  # δ^{x,l}: every example x
    examples = {c: sp.Symbol(f"ex_{c}", integer=True) for c in free}
    members = [_value(tree, examples) for tree in trees]
    letters = _letter_ranges(trees) + [(symbol, sp.S.One, M) for symbol in examples.values()]
    when = network_when(network)
    results = []
    for left, right in zip(members, members[1:]):
        if not (_same(left.rows, right.rows) and _same(left.cols, right.cols)):
            raise GeneralShape(f"the sides have shapes {_shape(left)} and {_shape(right)}")
        r = sp.Symbol("r", integer=True)
        c = sp.S.One if left.cols == 1 else sp.Symbol("c", integer=True)
        ranges = [*letters, (r, sp.S.One, left.rows)] + ([] if c == 1 else [(c, sp.S.One, left.cols)])
        results.append(prove_identity(left.entry(r, c), right.entry(r, c), ranges, when, budget=budget))
    return results


def _broadcast(a: Shaped, b: Shaped) -> tuple[Shaped, Shaped]:
    """NumPy's broadcasting of a column over the examples: (n×m) + (n×1)."""
    if _same(a.rows, b.rows) and not _same(a.cols, b.cols) and (a.cols == 1 or b.cols == 1):
        wide = b.cols if a.cols == 1 else a.cols
        widen = lambda x: x if x.cols != 1 else Shaped(x.rows, wide, lambda r, c: x.entry(r, 1))  # noqa: E731
        return widen(a), widen(b)
    if _same(a.cols, b.cols) and not _same(a.rows, b.rows) and (a.rows == 1 or b.rows == 1):  # x w + b
        tall = b.rows if a.rows == 1 else a.rows
        stack = lambda x: x if x.rows != 1 else Shaped(tall, x.cols, lambda r, c: x.entry(1, c))  # noqa: E731
        return stack(a), stack(b)
    return a, b


def _same(a, b) -> bool:
    return sp.expand(a - b) == 0


def _shape(x: Shaped) -> str:
    return "scalar" if x.scalar else f"({_width(x.rows)}×{_width(x.cols)})"


def _width(expr) -> str:
    return str(expr).replace("size[", "n_{").replace("]", "}").replace(" ", "")


def _layer_expr(script: str) -> sp.Expr:
    text = script.strip("{} ")
    expr, sign = sp.S.Zero, 1
    for token in _tokens(text):
        if token in "+-":
            sign = -1 if token == "-" else 1
            continue
        term = sp.Integer(int(token)) if token.isdigit() else (L if token == "L" else sp.Symbol(token, integer=True))
        expr, sign = expr + sign * term, 1
    return expr


def _tokens(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        j = i + 1
        while text[i].isdigit() and j < len(text) and text[j].isdigit():
            j += 1
        out.append(text[i:j])
        i = j
    return out


def _letter_ranges(trees) -> list[tuple]:
    bounds: dict[sp.Symbol, list] = {}
    for tree in trees:
        for family, m in _layers(tree):
            narrow_layer(bounds, m, LOWEST_LAYER[family])
    return [(letter, lo, hi) for letter, (lo, hi) in bounds.items()]


def narrow_layer(bounds: dict, layer: sp.Expr, lowest: int) -> None:
    """Narrow the range of the letter of `layer` (l + 1, l − 1) to where a family whose first layer is `lowest`
    exists there: lowest ≤ layer ≤ L."""
    letters = [s for s in layer.free_symbols if s != L]
    if len(letters) != 1:
        return
    letter = letters[0]
    offset = sp.expand(layer - letter)
    if not offset.is_number:
        raise NotGeneral(f"the layer {layer} is not a letter plus a number")
    lo, hi = bounds.setdefault(letter, [sp.Integer(1), L])
    gap = sp.expand(hi - (L - offset))
    bounds[letter] = [sp.Max(lo, lowest - offset), L - offset if gap.is_number and gap > 0 else hi]


def _layers(tree: Node):
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.kind == "layer":
            yield node.text, _layer_expr(node.script)
        elif node.kind == "bfam" and node.text not in ("X", "Y") and node.script:
            yield ("B" if node.text == "b" else "dB" if node.text == "db" else node.text), \
                _layer_expr(node.script.split("(")[0])
        stack.extend(a for a in node.args if isinstance(a, Node))


def _layer(family: str, script: str) -> Shaped:
    m = _layer_expr(script)
    base = _FAMILIES[family]
    if family == "w":
        return Shaped(SIZE[m], SIZE[m - 1], lambda r, c: base[m, r, c])
    return Shaped(SIZE[m], sp.S.One, lambda r, c: base[m, r])


def _batch_family(node: Node, examples) -> Shaped:
    family = node.text
    layer_text, _, column = node.script.partition("(")
    column = column.rstrip(")")
    layer = sp.S.Zero if family == "X" else L if family == "Y" else _layer_expr(layer_text)
    if family in ("W", "dW"):
        head = (lambda r, c: WB[layer, r, c]) if family == "W" else (lambda r, c: _D(J, WB[layer, r, c]))
        return Shaped(SIZE[layer], SIZE[layer - 1], head)
    if family in ("b", "db"):
        head = (lambda r, c: BB[layer, r]) if family == "b" else (lambda r, c: _D(J, BB[layer, r]))
        return Shaped(SIZE[layer], sp.S.One, head)
    base = YB if family == "Y" else ZB if family in ("Z", "dZ") else AB
    if family in ("Y", "X"):
        unit = lambda r, i: base[r, i] if family == "Y" else AB[0, r, i]  # noqa: E731
    elif family.startswith("d"):
        unit = lambda r, i: M * _D(J, base[layer, r, i])  # noqa: E731  the course's dZ = m ∂J/∂Z
    else:
        unit = lambda r, i: base[layer, r, i]  # noqa: E731
    if column:
        if column not in examples:
            raise NotGeneral(f"the example letter ({column}) is not bound by a sum over the examples")
        i = examples[column]
        return Shaped(SIZE[layer], sp.S.One, lambda r, c: unit(r, i))
    return Shaped(SIZE[layer], M, unit)


_AFFINE = {"x": (affine.N, affine.D, affine.XA), "w": (affine.D, affine.M, affine.WA),
           "b": (sp.S.One, affine.M, affine.BA), "out": (affine.N, affine.M, affine.OUT)}


def _affine_family(node: Node) -> Shaped:
    name = node.text[1:] if node.text.startswith("d") else node.text
    rows, cols, family = _AFFINE[name]
    unit = (lambda r, c: family[c]) if name == "b" else (lambda r, c: family[r, c])
    if node.text.startswith("d"):
        return Shaped(rows, cols, lambda r, c: _D(affine.LOSS, unit(r, c)))
    return Shaped(rows, cols, unit)


def _module_family(node: Node, matrices) -> Shaped:
    """A module's declared matrix by its symbolic shape (x: N×D, gamma: 1×D), or dX, the loss's gradient."""
    gradient = node.text not in matrices
    name = node.text[1:] if gradient else node.text
    rows, cols = (_SHAPE[s] for s in matrices[name]["shape"])
    family = sp.IndexedBase(name)
    if rows == 1:  # a row (gamma: 1×D) is indexed by its column, a column (layer norm's mu: N×1) by its row
        unit = lambda r, c: family[c]  # noqa: E731
    elif cols == 1:
        unit = lambda r, c: family[r]  # noqa: E731
    else:
        unit = lambda r, c: family[r, c]  # noqa: E731
    if gradient:
        return Shaped(rows, cols, lambda r, c: _D(modules.LOSS, unit(r, c)))
    return Shaped(rows, cols, unit)


def _value(node: Node, examples) -> Shaped:
    kind = node.kind
    matrices = _MODULE.get()
    if matrices is not None:
        if kind == "bfam":
            return _module_family(node, matrices)
        if kind == "scalar" and node.text in _MODULE_SCALARS.get():  # sizes and constants: N, D, d, eps, p
            value = sp.Symbol(node.text, real=True)  # as the general models and the formula sets name them
            return Shaped(sp.S.One, sp.S.One, lambda r, c: value, scalar=True)
    if kind == "bfam" and not node.script and (node.text in _AFFINE or node.text[1:] in _AFFINE):
        return _affine_family(node)  # an affine layer's x, w, b, out, dout…: no layer script
    if kind == "bfam":
        return _batch_family(node, examples)
    if kind == "colsum":
        x = _value(node.args[0], examples)
        k = sp.Symbol(f"e_{next(_FRESH)}", integer=True)
        return Shaped(sp.S.One, x.cols, lambda r, c: sp.Sum(x.entry(k, c), (k, 1, x.rows)))
    if kind == "exsum":
        i = sp.Symbol(f"e_{next(_FRESH)}", integer=True)
        inner = _value(node.args[0], {**examples, node.text: i})
        return Shaped(inner.rows, inner.cols, lambda r, c: sp.Sum(inner.entry(r, c), (i, 1, M)), inner.scalar)
    if kind == "rowsum":
        x = _value(node.args[0], examples)
        k = sp.Symbol(f"e_{next(_FRESH)}", integer=True)
        return Shaped(x.rows, sp.S.One, lambda r, c: sp.Sum(x.entry(r, k), (k, 1, x.cols)))
    if kind == "scalar" and node.text == "m":
        return Shaped(sp.S.One, sp.S.One, lambda r, c: M, scalar=True)
    if kind == "target":
        return Shaped(SIZE[L], sp.S.One, lambda r, c: TARGET[r])
    if kind == "layer":
        return _layer(node.text, node.script)
    if kind == "grad":
        inner = _layer(node.args[0].text, node.args[0].script)
        cost = sp.Symbol(node.text.replace(r"\partial", "").strip(), real=True)
        return Shaped(inner.rows, inner.cols, lambda r, c: _D(cost, inner.entry(r, c)))
    if kind == "scalar":
        try:
            number = sp.Rational(node.text)
        except (TypeError, ValueError):
            raise NotGeneral(f"'{node.text}' is not read for every size") from None
        return Shaped(sp.S.One, sp.S.One, lambda r, c: number, scalar=True)
    args = [_value(a, examples) for a in node.args]
    if kind == "func":
        (x,) = args
        func = fn.sigma_prime if node.text.replace(" ", "") in _SIGMA_PRIME | _G_PRIME | {"sigma_prime"} else (
            fn.sigma if node.text in (r"\sigma", "sigma", "g", "f") else sp.sqrt if node.text == "sqrt" else None)
        if func is None:
            raise NotGeneral(f"the function {node.text} is not read for every size")
        return Shaped(x.rows, x.cols, lambda r, c: func(x.entry(r, c)), x.scalar)
    if kind == "T":
        (x,) = args
        return Shaped(x.cols, x.rows, lambda r, c: x.entry(c, r), x.scalar)
    if kind == "neg":
        (x,) = args
        return Shaped(x.rows, x.cols, lambda r, c: -x.entry(r, c), x.scalar)
    if kind == "pow":
        (x,) = args
        try:
            exponent = sp.Rational(_exponent(node.script))
        except FormulaError as exc:
            raise NotGeneral(exc.message) from None
        return Shaped(x.rows, x.cols, lambda r, c: x.entry(r, c) ** exponent, x.scalar)
    return _binary(kind, *args)


def _binary(kind: str, a: Shaped, b: Shaped) -> Shaped:
    if kind in ("add", "sub") and a.scalar != b.scalar:  # σ² + ε: the scalar added to every entry
        s, x = (a, b) if a.scalar else (b, a)
        spread = Shaped(x.rows, x.cols, lambda r, c: s.entry(1, 1))
        a, b = (spread, x) if a.scalar else (x, spread)
    if kind in ("add", "sub", "had") and not (a.scalar or b.scalar):
        a, b = _broadcast(a, b)
    if kind in ("add", "sub"):
        if not (_same(a.rows, b.rows) and _same(a.cols, b.cols)) or a.scalar != b.scalar:
            raise GeneralShape(f"{_shape(a)} {'+' if kind == 'add' else '−'} {_shape(b)} differ in shape")
        sign = 1 if kind == "add" else -1
        return Shaped(a.rows, a.cols, lambda r, c: a.entry(r, c) + sign * b.entry(r, c), a.scalar)
    if kind == "div":
        if not b.scalar:
            raise NotGeneral("dividing by a matrix is not read")
        return Shaped(a.rows, a.cols, lambda r, c: a.entry(r, c) / b.entry(1, 1), a.scalar)
    if a.scalar or b.scalar:
        s, x = (a, b) if a.scalar else (b, a)
        return Shaped(x.rows, x.cols, lambda r, c: s.entry(1, 1) * x.entry(r, c), x.scalar)
    if kind == "had":
        if not (_same(a.rows, b.rows) and _same(a.cols, b.cols)):
            raise GeneralShape(f"{_shape(a)} ⊙ {_shape(b)} differ in shape")
        return Shaped(a.rows, a.cols, lambda r, c: a.entry(r, c) * b.entry(r, c))
    if not _same(a.cols, b.rows):
        raise GeneralShape(f"{_shape(a)}·{_shape(b)} does not conform unless {_width(a.cols)} = {_width(b.rows)}")
    if a.cols == 1:
        return Shaped(a.rows, b.cols, lambda r, c: a.entry(r, 1) * b.entry(1, c))
    k = sp.Symbol(f"k_{next(_FRESH)}", integer=True)
    return Shaped(a.rows, b.cols, lambda r, c: sp.Sum(a.entry(r, k) * b.entry(k, c), (k, 1, a.cols)))
