r"""Matrix and vector claims in SymPy syntax: `delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l])`.

The SymPy-syntax twin of derive.claims.matrix_read: on a layered network a
formula that names a whole layer is read as matrices, Nielsen's matrix form,
with NumPy's operators:

    delta[L] = D(C, a[L]) * sigma_prime(z[L])                       BP1
    delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l])          BP2
    D(C, b[l]) = delta[l]                                           BP3
    D(C, w[l]) = delta[l] @ a[l-1].T                                BP4

- a whole layer is a layered family with one index, the layer: `w[l]`, `b[l]`,
  `z[l]`, `a[l-1]`, `delta[l+1]`, `w[L]`, `a[2]` (index arithmetic of single
  letters and numbers). A family with more indices (`delta[l, j]`,
  `w[l, j, k]`) is one component, read as before by the indexed form, and
  mixing it with whole layers is refused;
- `X.T` transposes; `@` is the matrix product; `*` the elementwise product
  (a scalar times a matrix scales it); `/` divides by a scalar; `+`, `-`;
  `X**k` raises each component to a scalar power k (NumPy's elementwise
  power, so `1 - tanh(z[l])**2` is tanh' at every unit; no matrix power);
- `D(C, w[l])` (or `Derivative(C, w[l])`) is ∂C/∂w^l, shaped as w^l;
  `D(C, a[L])` is ∇_a C; the first argument is a scalar formula (the cost);
- functions apply elementwise: `sigma(z[l])`, `sigma_prime(z[l])` and every
  one-argument function SymPy-syntax claims know (`exp`, `tanh`, `relu`, …);
- anything else (a number, a name the file defines, `lmbda/n`) is a scalar,
  passed to the vocabulary unchanged.

    expression := term (('+' | '-') term)*
    term       := unary (('@' | '*' | '/') unary)*          (left to right, as in Python)
    unary      := ('+' | '-') unary | power
    power      := postfix (('**' | '^') unary)?
    postfix    := primary ('.T')*
    primary    := NUMBER | layer | ('D' | 'Derivative') '(' expression ',' layer ')'
                | function '(' expression ')' | '(' expression ')' | NAME
    layer      := ('w' | 'b' | 'z' | 'a' | 'delta') '[' index ']'

The text is tokenized here by whitelist (never eval or sympify) into the same
Node tree as the LaTeX reader's, so derive.claims.matrix evaluates it
unchanged; its `SYMPY` spelling writes each component in SymPy syntax with the
network's own names (`w3_1_2`, `delta3_1`, `D(C, w2_1_1)`,
`sigma_prime(z2_1)`), read by the claims vocabulary's whitelist parser as
any SymPy-syntax formula is. Sizes are bounded as in the LaTeX reader
(MAX_NODES parts, 100 levels of nesting, the whitelist parser's length).
"""

from __future__ import annotations

import re

from derive.errors import FormulaError
from derive.claims.matrix import Spelling, names_whole_layer, read_matrix
from derive.claims.matrix_read import MAX_NODES, Node
from derive.graph.parser import MAX_LENGTH, Token
from derive.graph.registry import FORMULA_FUNCTIONS

FAMILIES = ("w", "b", "z", "a", "delta")
VARIABLES = ("w", "b", "z", "a")  # what D(C, ·) differentiates by: δ is no variable
GRADIENTS = ("D", "Derivative")
FUNCTIONS = frozenset({"sigma", "sigma_prime"} | {name for name, (_, arity) in FORMULA_FUNCTIONS.items()
                                                  if arity == 1})
MAX_DEPTH = 100
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<transpose>\.T(?![A-Za-z0-9_]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/^@(),\[\]])
    """,
    re.VERBOSE,
)
_HINT = "(a matrix claim in SymPy syntax: names, numbers, w[l], + - * / ** @, .T and parentheses)"
_ATOMIC = re.compile(r"[A-Za-z_]\w*(\[[^\]]*\])?")


def tokenize(text: str, lenient: bool = False) -> list[Token]:
    """The member's tokens; an unexpected character is a FormulaError at its column (skipped when lenient)."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if not lenient:
                raise FormulaError(f"unexpected character {text[pos]!r} {_HINT}", column=pos + 1)
            pos += 1
            continue
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def whole_layers(text: str, known) -> bool:
    """Whether a SymPy-syntax formula names a whole layer: a layered family with one index (`delta[l]`)."""
    try:
        tokens = tokenize(text, lenient=True)
    except FormulaError:
        return False
    for i, token in enumerate(tokens[:-1]):
        if token.kind == "name" and token.text in FAMILIES and not known(token.text) \
                and tokens[i + 1].text == "[" and not _index_end(tokens, i + 2)[1]:
            return True
    return False


def _index_end(tokens, start: int) -> tuple[int, bool]:
    """Where a bracket's index ends (its `]`, a top-level comma, a stray `)`, or the end), and whether at a comma:
    then it holds several indices, one component."""
    depth, j = 0, start
    while tokens[j].kind != "end":
        text = tokens[j].text
        if tokens[j].kind == "op" and text in "([":
            depth += 1
        elif tokens[j].kind == "op" and text in ")]":
            if depth == 0:
                return j, False
            depth -= 1
        elif text == "," and depth == 0:
            return j, True
        j += 1
    return j, False


def names_whole_layer_sympy(pieces, vocabulary) -> bool:
    """Whether a SymPy-syntax claim is a matrix claim: a layered network and a member naming a whole layer."""
    return names_whole_layer(pieces, vocabulary, whole_layers)


def read_sympy_matrix(entry, pieces, vocabulary, file_table, where: str):
    """The claim's component parts at every layer value, read and written in SymPy syntax (derive.claims.matrix
    evaluates the trees and decides their shapes)."""
    return read_matrix(entry, pieces, vocabulary, {}, file_table, where,
                       read=lambda piece, known: SympyMatrixParser(piece, known).parse(), spelling=SYMPY)


def _transposed(shown: str) -> str:
    return f"{shown}.T" if _ATOMIC.fullmatch(shown) else f"({shown}).T"


SYMPY = Spelling(
    "sympy",
    weight=lambda n, i, k: f"w{n}_{i}_{k}",
    unit=lambda family, n, i: f"{family}{n}_{i}",
    layer=lambda family, n: f"{family}[{n}]",
    grad=lambda numerator, c: f"D({numerator}, {c})",
    grad_shown=lambda numerator, shown: f"D({numerator}, {shown})",
    transposed=_transposed,
    power=lambda c, exponent: f"({c})**({exponent})",
    power_shown=lambda shown, exponent: f"{shown}**{exponent}",
    quotient=lambda c, s: f"({c})/({s})",
    times="*",
    matmul=" @ ",
    elementwise=" * ",
    elementwise_power=True,
    target=lambda j: f"y{j}",
)


class SympyMatrixParser:
    """A recursive-descent reader of one member of a SymPy-syntax matrix claim into a Node tree."""

    def __init__(self, text: str, known):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.known = known
        self.nodes = 0
        self.depth = 0

    # -- tokens ---------------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def at(self, *texts: str) -> bool:
        t = self.token
        return t.kind in ("op", "transpose") and t.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.error(f"'{text}'")
        self.i += 1

    def error(self, wanted: str) -> FormulaError:
        t = self.token
        found = "the end of the formula" if t.kind == "end" else f"'{t.text}'"
        return FormulaError(f"expected {wanted}, found {found} (reading a matrix claim)", column=t.column)

    def node(self, kind: str, *args, text: str = "", script: str = "") -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaError(f"a matrix claim's member has more than {MAX_NODES:,} parts",
                               column=self.token.column)
        return Node(kind, tuple(args), text, script)

    def source(self, start: int, end: int) -> str:
        """The text of tokens start..end-1, as typed."""
        first, last = self.tokens[start], self.tokens[end - 1]
        return self.text[first.column - 1:last.column - 1 + len(last.text)].strip()

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"a matrix claim is nested deeper than {MAX_DEPTH} levels", column=self.token.column)

    # -- grammar --------------------------------------------------------------------------
    def parse(self) -> Node:
        tree = self.expression()
        if self.token.kind != "end":
            raise self.error("an operator or the end of the formula")
        return tree

    def expression(self) -> Node:
        self.deeper()
        tree = self.term()
        while self.at("+", "-"):
            kind = "add" if self.token.text == "+" else "sub"
            self.i += 1
            tree = self.node(kind, tree, self.term())
        self.depth -= 1
        return tree

    def term(self) -> Node:
        tree = self.unary()
        kinds = {"@": "mul", "*": "had", "/": "div"}
        while self.at(*kinds):
            kind = kinds[self.token.text]
            self.i += 1
            tree = self.node(kind, tree, self.unary())
        return tree

    def unary(self) -> Node:
        if not self.at("+", "-"):
            return self.power()
        self.deeper()  # a sign, or an exponent's: each is a level (a parenthesis is an expression's)
        negative = self.token.text == "-"
        self.i += 1
        inner = self.unary()
        self.depth -= 1
        return self.node("neg", inner) if negative else inner

    def power(self) -> Node:
        base = self.postfix()
        if not self.at("**", "^"):
            return base
        self.i += 1
        start, column = self.i, self.token.column
        self.deeper()
        exponent = self.unary()
        self.depth -= 1
        _scalar_only(exponent, "an exponent must be a scalar (`**` raises each component to it)", column)
        return self.node("pow", base, script=self.source(start, self.i))

    def postfix(self) -> Node:
        tree = self.primary()
        while self.token.kind == "transpose":
            self.i += 1
            tree = self.node("T", tree)
        return tree

    def primary(self) -> Node:
        t = self.token
        if t.kind == "number":
            self.i += 1
            return self.node("scalar", text=t.text)
        if self.at("("):
            self.i += 1
            inner = self.expression()
            self.expect(")")
            return inner
        if t.kind != "name":
            raise self.error("a matrix, a vector or a scalar")
        following = self.tokens[self.i + 1].text
        if following == "[" and t.text in FAMILIES and not self.known(t.text):
            return self.layer()
        if following == "(":
            return self.call()
        if following == "[":
            raise FormulaError(f"{t.text}[…] is not read in a matrix claim, which names whole layers only: "
                               "w[l], b[l], z[l], a[l], delta[l] (write the claim in index form)", column=t.column)
        self.i += 1
        return self.node("scalar", text=t.text)

    def layer(self) -> Node:
        family = self.token
        end, several = _index_end(self.tokens, self.i + 2)
        if several:
            close = end
            while self.tokens[close].kind != "end" and self.tokens[close].text != "]":
                close += 1
            shown = self.source(self.i, min(close + 1, len(self.tokens) - 1))
            raise FormulaError(f"{shown} is one component: a matrix claim names whole layers only, "
                               f"{family.text}[l] (write the claim in index form)", column=family.column)
        if self.tokens[end].text != "]":
            self.i = end
            raise self.error("']'")
        group = self.tokens[self.i + 2:end]
        script = "".join(t.text for t in group)
        if not group or not _layer_script(group):
            raise FormulaError(f"{family.text}[…]'s index must name a layer (l, l+1, L, 3)", column=family.column)
        self.i = end + 1
        return self.node("layer", text=family.text, script=script)

    def call(self) -> Node:
        name = self.token
        if name.text in GRADIENTS:
            return self.gradient()
        if name.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise FormulaError(f"{name.text}(…) is not read in a matrix claim (its functions apply elementwise: "
                               f"{known}; write any other in index form)", column=name.column)
        self.i += 2
        inner = self.expression()
        self.expect(")")
        return self.node("func", inner, text=name.text)

    def gradient(self) -> Node:
        name = self.token
        self.i += 2
        start, column = self.i, self.token.column
        numerator = self.expression()
        _scalar_only(numerator, f"{name.text}'s first argument must be a scalar, such as the cost C", column)
        text = self.source(start, self.i)
        self.expect(",")
        family = self.token
        if not (family.kind == "name" and family.text in VARIABLES and self.tokens[self.i + 1].text == "["):
            raise self.error(f"a whole layer (w[l], b[l], z[l], a[l]) as {name.text}'s second argument")
        layer = self.layer()
        self.expect(")")
        return self.node("grad", layer, text=text)


def _layer_script(group) -> bool:
    """Whether an index is layer arithmetic: single letters and numbers joined by + and -."""
    expect_term = True
    for position, t in enumerate(group):
        sign = t.kind == "op" and t.text in "+-"
        if expect_term and ((t.kind == "name" and len(t.text) == 1) or (t.kind == "number" and t.text.isdigit())):
            expect_term = False
        elif sign and (not expect_term or position == 0):  # a leading sign, or one between terms
            expect_term = True
        else:
            return False
    return not expect_term


def _scalar_only(tree: Node, message: str, column: int) -> None:
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.kind in ("layer", "grad"):
            raise FormulaError(message, column=column)
        stack.extend(a for a in node.args if isinstance(a, Node))
