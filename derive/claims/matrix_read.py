r"""Reading a LaTeX formula that names whole layers (`\delta^l`, `w^{l+1}`, `\nabla_a C`) into a tree.

Only the shape of the formula is read here, by whitelist over the claims'
tokenizer (never eval or sympify): derive.claims.matrix evaluates the tree at
each layer value into matrices of component formulas, each then read by the
claims vocabulary as any scalar formula is.

    expression := ('+'|'-')* product (('+'|'-') product)*
    product    := factor ((op | '/') factor | factor)*      (juxtaposition is a product)
    factor     := primary ('^T' | '^\top' | '^{T}' | '^' script)*
    primary    := layer | gradient | function '(' expression ')' | '(' expression ')'
                | '[' … ']' | '{' … '}' | '\left(' … '\right)' | '\frac' arg arg | scalar
    layer      := ('w'|'b'|'z'|'a'|'\delta') '^' script      (no subscript: the whole layer)
    gradient   := '\frac{\partial' cost '}{\partial' layer '}' | '\nabla_a' cost
    op         := '*' | '\cdot' | '\times' (the matrix product) | '\odot' | '\circ' | '\bullet' (elementwise)

A scalar is anything else that stands alone (a number, η, λ/n): its text is
passed to the vocabulary unchanged, component by component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from derive.errors import FormulaError
from derive.claims.indices import script_end
from derive.claims.latex_tokens import tokenize

FAMILIES = {"w": "w", "b": "b", "z": "z", "a": "a", r"\delta": "delta"}
HADAMARD = {r"\odot", r"\circ", r"\bullet"}
PRODUCT = {"*", r"\cdot", r"\times"}
FUNCTION_COMMANDS = {r"\sigma", r"\exp", r"\ln", r"\log", r"\tanh", r"\sqrt"}
_NABLA = re.compile(r"\\nabla\s*_\s*(?:\{\s*a\s*\}|a)\s*(?:\{\s*([A-Za-z])\s*\}|([A-Za-z]))")
_TOP = re.compile(r"\^\s*(?:\{\s*\\(?:top|intercal)\s*\}|\\(?:top|intercal))")
_SCRIPT_TOKEN = re.compile(r"[0-9]+|[A-Za-z]|[-+]")
MAX_NODES = 2_000
_BIG = {"\\" + s for s in ("big", "Big", "bigg", "Bigg")}
OPEN_SIZED = {r"\left"} | {b + "l" for b in _BIG}
CLOSE_SIZED = {r"\right"} | {b + "r" for b in _BIG}


@dataclass(frozen=True)
class Node:
    kind: str  # layer, grad, scalar, func, T, neg, add, sub, mul, had, div, pow
    args: tuple = ()
    text: str = ""  # a scalar's or a function's text; a layer's family; a gradient's numerator
    script: str = ""  # a layer's superscript, a power's exponent


def masked(text: str) -> str:
    r"""The formula with `\nabla` and `\top` spelled as commands of the same length the tokenizer knows
    (`\alpha`, `\tau`): where it splits at `=` is then where the formula does."""
    return text.replace("\\nabla", "\\alpha").replace("\\top", "\\tau")


def rewrite(text: str) -> str:
    r"""`\nabla_a C` as ∂C/∂a^L, and `^\top` as `^T` (the tokenizer knows neither command)."""
    text = _NABLA.sub(lambda m: r"\frac{\partial " + (m.group(1) or m.group(2)) + r"}{\partial a^{L}}", text)
    return _TOP.sub("^{T}", text)


def _script_text(tokens, start: int, end: int) -> str | None:
    """A layer script's text (`l+1`, `L`, `3`) when it is index arithmetic, else None (`T`, `\\prime`, `2x`)."""
    group = tokens[start:end + 1]
    if group and group[0].text == "{" and group[0].kind == "op":
        group = group[1:-1]
    text = "".join(t.text for t in group)
    if not group or any(t.kind not in ("letters", "number", "op") for t in group):
        return None
    if any(t.kind == "op" and t.text not in "+-" for t in group) or text == "T":
        return None
    pieces = _SCRIPT_TOKEN.findall(text)
    return text if "".join(pieces) == text and all(len(p) == 1 or p.isdigit() for p in pieces) else None


def whole_layers(text: str, known) -> bool:
    """Whether a LaTeX formula names a whole layer: a family with a layer superscript and no subscript."""
    try:
        tokens = tokenize(rewrite(text))
    except FormulaError:
        return False
    for i, token in enumerate(tokens[:-1]):
        if token.kind in ("letters", "command") and token.text in FAMILIES and not known(token.text):
            nxt = tokens[i + 1]
            if nxt.kind == "op" and nxt.text == "^" and (i == 0 or tokens[i - 1].text not in ("^", "_")):
                end = script_end(tokens, i + 2)
                after = tokens[end + 1] if end + 1 < len(tokens) else None
                if _script_text(tokens, i + 2, end) is not None and not (
                        after is not None and after.kind == "op" and after.text == "_"):
                    return True
    return False


class MatrixParser:
    """A recursive-descent reader of one member of a matrix claim into a Node tree."""

    def __init__(self, text: str, known):
        self.text = rewrite(text)
        self.tokens = tokenize(self.text)
        self.i = 0
        self.known = known
        self.nodes = 0
        self.depth = 0

    # -- tokens ---------------------------------------------------------------------------
    @property
    def token(self):
        return self.tokens[self.i]

    def at(self, *texts: str) -> bool:
        t = self.token
        return t.kind in ("op", "command") and t.text in texts

    def expect(self, text: str):
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
            raise FormulaError(f"a matrix claim's member has more than {MAX_NODES:,} parts")
        return Node(kind, tuple(args), text, script)

    def source(self, start: int, end: int) -> str:
        first, last = self.tokens[start], self.tokens[end - 1]
        return self.text[first.column - 1:last.column - 1 + len(last.text)].strip()

    # -- grammar --------------------------------------------------------------------------
    def parse(self) -> Node:
        tree = self.expression()
        if self.token.kind != "end":
            raise self.error("an operator or the end of the formula")
        return tree

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > 100:
            raise FormulaError("a matrix claim is nested deeper than 100 levels")
        negative = False
        while self.at("+", "-"):
            negative ^= self.token.text == "-"
            self.i += 1
        tree = self.product()
        if negative:
            tree = self.node("neg", tree)
        while self.at("+", "-"):
            op = "add" if self.token.text == "+" else "sub"
            self.i += 1
            tree = self.node(op, tree, self.product())
        self.depth -= 1
        return tree

    # which operators are the entrywise product and which the matrix product, and what juxtaposition is:
    # readers of other notations (the course's `*`, a layer without weight matrices) change these, not product()
    ENTRYWISE: frozenset = frozenset(HADAMARD)
    MATRIX: frozenset = frozenset(PRODUCT)
    JUXTAPOSED = "mul"

    def product(self) -> Node:
        tree = self.factor()
        while True:
            if self.at(*self.ENTRYWISE):
                self.i += 1
                tree = self.node("had", tree, self.factor())
            elif self.at(*self.MATRIX):
                self.i += 1
                tree = self.node("mul", tree, self.factor())
            elif self.at("/"):
                self.i += 1
                tree = self.node("div", tree, self.factor())
            elif self.starts_primary():
                tree = self.node(self.JUXTAPOSED, tree, self.factor())
            else:
                return tree

    def starts_primary(self) -> bool:
        t = self.token
        if t.kind in ("letters", "number"):
            return True
        if t.kind == "op":
            return t.text in "([{"
        return t.kind == "command" and t.text not in (*CLOSE_SIZED, *HADAMARD, *PRODUCT)

    def factor(self) -> Node:
        tree = self.primary()
        while self.at("^"):
            end = script_end(self.tokens, self.i + 1)
            script = self.source(self.i + 1, end + 1)
            self.i = end + 1
            tree = self.node("T", tree) if script.strip("{} ") == "T" else self.node("pow", tree, script=script)
        return tree

    def primary(self) -> Node:
        t = self.token
        if t.kind == "number":
            self.i += 1
            return self.node("scalar", text=t.text)
        if self.at("(", "[", "{"):
            closing = {"(": ")", "[": "]", "{": "}"}[t.text]
            self.i += 1
            inner = self.expression()
            self.expect(closing)
            return inner
        if t.kind == "command" and t.text in OPEN_SIZED:
            return self.sized_group()
        if self.at(r"\frac", r"\dfrac", r"\tfrac"):
            return self.fraction()
        if self.at(r"\sum", r"\partial", r"\max", r"\min"):
            raise FormulaError(f"{t.text} is not read in a matrix claim (write the claim in index form)",
                               column=t.column)
        if t.kind == "letters" and t.text == "y" and not self.known("y") and self.tokens[self.i + 1].text not in "^_":
            self.i += 1
            return self.node("target", text="y")  # the target vector y (of the output layer's width)
        if t.text in FAMILIES and t.kind in ("letters", "command") and not self.known(t.text) \
                and self.tokens[self.i + 1].text == "^":
            return self.layer()
        if self.is_function():
            return self.function()
        if t.kind in ("letters", "command"):
            return self.scalar()
        raise self.error("a matrix, a vector or a scalar")

    def sized_group(self) -> Node:
        self.i += 1  # \left or \bigl
        opening = self.token.text
        closing = {"(": ")", "[": "]", r"\{": r"\}"}.get(opening)
        if closing is None:
            raise self.error("a bracket")
        self.i += 1
        inner = self.expression()
        if not (self.token.kind == "command" and self.token.text in CLOSE_SIZED):
            raise self.error(r"\right")
        self.i += 1
        self.expect(closing)
        return inner

    def fraction(self) -> Node:
        self.i += 1
        if self.at("{") and self.tokens[self.i + 1].text == r"\partial":
            start = self.i + 1
            end = script_end(self.tokens, self.i)
            numerator = self.source(start, end)
            self.i = end + 1
            self.expect("{")
            self.expect(r"\partial")
            family = self.token
            if family.text not in FAMILIES or self.tokens[self.i + 1].text != "^":
                raise self.error("a whole layer (w^l, b^l, z^l, a^l) after \\partial")
            layer = self.layer()
            self.expect("}")
            return self.node("grad", layer, text=numerator)
        top = self.argument()
        bottom = self.argument()
        return self.node("div", top, bottom)

    def argument(self) -> Node:
        if self.at("{"):
            self.i += 1
            inner = self.expression()
            self.expect("}")
            return inner
        t = self.token
        if t.kind == "number" and len(t.text) > 1:  # \frac12
            self.tokens[self.i] = type(t)(t.kind, t.text[1:], t.column + 1)
            return self.node("scalar", text=t.text[0])
        return self.primary()

    def layer(self) -> Node:
        family = self.token
        end = script_end(self.tokens, self.i + 2)
        script = _script_text(self.tokens, self.i + 2, end)
        if script is None:
            raise FormulaError(f"{family.text}'s superscript must name a layer (l, l+1, L, 3)",
                               column=family.column)
        self.i = end + 1
        if self.at("_"):
            raise FormulaError(f"{family.text}^{{{script}}} with a subscript is one component: a matrix claim names "
                               "whole layers only (write the claim in index form)", column=family.column)
        return self.node("layer", text=FAMILIES[family.text], script=script)

    def is_function(self) -> bool:
        t, j = self.token, self.i + 1
        if t.kind == "command" and t.text == r"\dot":
            return True
        if not (t.text in FUNCTION_COMMANDS or (t.kind == "letters" and len(t.text) == 1)):
            return False
        while self.tokens[j].text == "'" or (self.tokens[j].text == "^" and self._prime_at(j + 1)):
            j = j + 1 if self.tokens[j].text == "'" else script_end(self.tokens, j + 1) + 1
        primed = j > self.i + 1
        opens = self.tokens[j].text == "(" or (self.tokens[j].kind == "command" and self.tokens[j].text in OPEN_SIZED)
        return opens and (primed or t.text in FUNCTION_COMMANDS or t.text in ("f", "g"))

    def _prime_at(self, j: int) -> bool:
        end = script_end(self.tokens, j)
        return [t.text for t in self.tokens[j:end + 1] if t.text not in "{}"] == [r"\prime"]

    def function(self) -> Node:
        start = self.i
        if self.at(r"\dot"):
            self.i = script_end(self.tokens, self.i + 1) + 1
        else:
            self.i += 1
            while self.at("'") or (self.at("^") and self._prime_at(self.i + 1)):
                self.i = self.i + 1 if self.at("'") else script_end(self.tokens, self.i + 1) + 1
        name = self.source(start, self.i)
        if self.at("("):
            self.i += 1
            inner = self.expression()
            self.expect(")")
        else:
            inner = self.sized_group()
        return self.node("func", inner, text=name)

    def scalar(self) -> Node:
        start = self.i
        self.i += 1
        while self.at("^", "_"):
            end = script_end(self.tokens, self.i + 1)
            if self.at("^") and self.source(self.i + 1, end + 1).strip("{} ") == "T":
                break
            self.i = end + 1
        return self.node("scalar", text=self.source(start, self.i))
