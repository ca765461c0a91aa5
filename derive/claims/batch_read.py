r"""Reading a mini-batch matrix claim (deeplearning.ai's notation) into a tree.

On a batch network (derive.graph.batch) a LaTeX claim may name the batch
matrices: `Z^{[l]}`, `A^{[l]}` (n_l × m, one column per example), `W^{[l]}`,
`b^{[l]}`, `X` (= `A^{[0]}`), `Y`, and the course's gradients `dZ^{[l]}`,
`dA^{[l]}`, `dW^{[l]}`, `db^{[l]}`. A `T` inside the superscript transposes
(`W^{[l+1]T}`), `(i)` takes example i's column (`dZ^{[l](i)}`),
`\sum_{i=1}^{m}` sums over the examples, `np.sum(dZ^{[l]}, axis=1, keepdims=True)`
sums each row, `g^{[l]\prime}(Z^{[l]})`, `g'(…)`, `\sigma'(…)` apply the layer's
activation derivative elementwise. As in the course, `*` and `\odot` are the
elementwise product, juxtaposition and `\cdot` the matrix product; `m` is the
number of examples.

Only the shape of the formula is read here, by whitelist over the claims'
tokenizer (never eval or sympify).
"""

from __future__ import annotations

import re

from derive.errors import FormulaError
from derive.claims.indices import script_end
from derive.claims.matrix_read import HADAMARD, MatrixParser, Node, _script_text

BATCH_FAMILIES = {"Z", "A", "W", "b", "dZ", "dA", "dW", "db"}
WHOLE = {"X", "Y"}
_NP_SUM = re.compile(r"np\s*\.\s*sum\s*\(")
_AXIS = re.compile(r",\s*axis\s*=\s*([01])\s*(?:,\s*keepdims\s*=\s*True\s*)?$")
_SUMS = {"1": "rowsum", "0": "colsum"}  # np.sum over axis 1 sums each row; over axis 0, each column
_BRACKET = re.compile(r"\^\s*\{\s*\[")
_NIELSEN = {r"\delta": "dZ", "a": "A", "z": "Z", "w": "W", "b": "b"}  # Nielsen's family ↦ the course's
_NIELSEN_EXAMPLE = re.compile(r"\^\s*\{\s*[a-z]\s*,")  # δ^{x,l}


def rewrite_numpy(text: str) -> str:
    r"""`np.sum(M, axis=1, keepdims=True)` as `\operatorname{rowsum}(M)` (the tokenizer knows no `.`); other np
    calls refused."""
    out, position = [], 0
    for match in _NP_SUM.finditer(text):
        start, depth, i = match.end(), 1, match.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        if depth:
            raise FormulaError("np.sum( is not closed", column=match.start() + 1)
        inner = text[start:i - 1]
        axis = _AXIS.search(inner)
        if axis is None:
            raise FormulaError("np.sum is read as np.sum(M, axis=1, keepdims=True) (the sum of each row) or "
                               "np.sum(M, axis=0) (of each column) only", column=match.start() + 1)
        out += [text[position:match.start()], rf"\operatorname{{{_SUMS[axis.group(1)]}}}(", inner[:axis.start()], ")"]
        position = i
    if "np" in text[position:] and re.search(r"np\s*\.", text[position:]):
        raise FormulaError("of NumPy only np.sum(M, axis=1, keepdims=True) and np.sum(M, axis=0) are read")
    return "".join(out) + text[position:]


def names_batch_matrix(text: str) -> bool:
    """Whether a member names a batch matrix: `Z^{[`, `dW^{[`, X, Y, or np.sum."""
    if _NP_SUM.search(text) or _BRACKET.search(text) or _NIELSEN_EXAMPLE.search(text):
        return True
    return bool(re.search(r"(?<![A-Za-z\\])[XY](?![A-Za-z_])", text))


class BatchParser(MatrixParser):
    """MatrixParser with the course's batch families, `*` elementwise, sums over examples and row sums."""

    FAMILIES = BATCH_FAMILIES  # with a layer: Z^{[l]}
    WHOLE = WHOLE  # without one: X, Y
    ENTRYWISE = frozenset({"*", *HADAMARD})  # the course's `*` is entrywise
    MATRIX = frozenset({r"\cdot", r"\times"})

    def __init__(self, text: str, known):
        super().__init__(rewrite_numpy(text), known)

    def primary(self) -> Node:
        t = self.token
        if self.at(r"\sum"):
            return self.example_sum()
        words = [x.text for x in self.tokens[self.i + 1:self.i + 4]]
        if self.at(r"\operatorname") and words[0] == "{" and words[1] in _SUMS.values() and words[2] == "}":
            self.i += 4
            self.expect("(")
            inner = self.expression()
            self.expect(")")
            return self.node(words[1], inner)
        if self.nielsen_name():
            return self.nielsen()
        if t.kind == "letters" and t.text in self.FAMILIES | self.WHOLE and not self.known(t.text):
            return self.batch_family()
        if t.kind == "letters" and t.text == "g" or self.at(r"\sigma"):
            if self.tokens[self.i + 1].text in ("^", "'", "("):
                return self.activation()
        if t.kind == "letters" and t.text == "m" and not self.known("m"):
            self.i += 1
            return self.node("scalar", text="m")
        return super().primary()

    def batch_family(self) -> Node:
        family = self.token
        self.i += 1
        script, column, transposed = "", "", False
        if self.at("^"):
            end = script_end(self.tokens, self.i + 1)
            script, column, transposed = self._batch_script(self.i + 1, end, family)
            self.i = end + 1
        elif family.text not in self.WHOLE:
            raise FormulaError(f"{family.text} needs its layer: {family.text}^{{[l]}}", column=family.column)
        if family.text in self.WHOLE and (script or column):
            raise FormulaError(f"{family.text} takes no layer or example", column=family.column)
        if self.at("_"):
            raise FormulaError(f"{family.text} with a subscript is one component: write the claim in index form",
                               column=family.column)
        tree = self.node("bfam", text=family.text, script=script + (f"({column})" if column else ""))
        return self.node("T", tree) if transposed else tree

    # -- Nielsen's names on a batch: δ^{x,l}, a^{x,l-1}, w^l, ∂C/∂w^l (his layer l is the course's [l-1]) ----
    def nielsen_name(self) -> bool:
        t = self.token
        if self.FAMILIES is not BATCH_FAMILIES or t.text not in _NIELSEN or self.known(t.text):
            return False
        if self.tokens[self.i + 1].text != "^":
            return False
        after = self.tokens[self.i + 2]
        return not (after.text == "{" and self.tokens[self.i + 3].text == "[")  # b^{[l]} is the course's

    def nielsen(self) -> Node:
        family = self.token
        end = script_end(self.tokens, self.i + 2)
        texts = [x.text for x in self.tokens[self.i + 2:end + 1] if x.text not in "{}"]
        self.i = end + 1
        example = ""
        if len(texts) >= 3 and texts[1] == ",":  # ^{x,l}: example x of layer l
            example, texts = texts[0], texts[2:]
        layer = "".join(texts)
        if not layer or not all(c.isalnum() or c in "+-" for c in layer):
            raise FormulaError(f"{family.text}'s superscript must be a layer or an example and a layer: "
                               f"{family.text}^{{x,l}}", column=family.column)
        course = _NIELSEN[family.text]
        if course in ("W", "b") and example:
            raise FormulaError(f"{family.text} has no examples", column=family.column)
        script = f"{layer}-1" + (f"({example})" if example else "")
        return self.node("bfam", text=course, script=script)

    def fraction(self) -> Node:
        r"""`\frac{\partial C}{\partial w^l}` (Nielsen's) or `\frac{\partial J}{\partial W^{[l]}}` on a batch: dW."""
        if not (self.tokens[self.i + 1].text == "{" and self.tokens[self.i + 2].text == r"\partial"):
            return super().fraction()
        start = self.token
        self.i += 3
        if self.token.kind != "letters" or self.token.text not in ("C", "J"):
            raise FormulaError("a batch's gradients are of its cost: \\frac{\\partial C}{\\partial w^l}",
                               column=start.column)
        self.i += 1
        self.expect("}")
        self.expect("{")
        self.expect(r"\partial")
        quantity = self.primary()
        self.expect("}")
        if quantity.kind != "bfam" or quantity.text not in ("W", "b") or "(" in quantity.script:
            raise FormulaError("∂C/∂ of a whole layer's weights or biases (w^l, W^{[l]}, b^l, b^{[l]})",
                               column=start.column)
        return self.node("bfam", text="d" + quantity.text, script=quantity.script)

    def _batch_script(self, start: int, end: int, family):
        """`{[l+1]T}`, `{[l](i)}`, `{(i)}`, `{T}`: the layer's text, the example letter, a transpose."""
        tokens = [t for t in self.tokens[start:end + 1]]
        if tokens and tokens[0].text == "{":
            tokens = tokens[1:-1]
        texts = [t.text for t in tokens]
        layer, column, transposed = "", "", False
        if texts[:1] == ["["]:
            close = texts.index("]") if "]" in texts else -1
            if close < 0:
                raise FormulaError("a layer in brackets, such as [l+1], is not closed", column=family.column)
            inner = "".join(texts[1:close])
            if _script_text(tokens[1:close], 0, close - 2) is None and not inner.isdigit():
                raise FormulaError(f"[{inner}] must name a layer (l, l+1, L, 2)", column=family.column)
            layer, texts = inner, texts[close + 1:]
        if texts[:1] == ["("] and len(texts) >= 3 and texts[2] == ")":
            column, texts = texts[1], texts[3:]
        if texts == ["T"]:
            transposed, texts = True, []
        if texts:
            raise FormulaError(f"{family.text}'s superscript must be a layer [l], an example (i) or T",
                               column=family.column)
        return layer, column, transposed

    def example_sum(self) -> Node:
        r"""`\sum_{i=1}^{m} …` or `\sum_i …`: a sum over the examples of the term after it."""
        start = self.token
        self.i += 1
        if not self.at("_"):
            raise FormulaError(r"\sum needs its example letter: \sum_{i=1}^{m}", column=start.column)
        end = script_end(self.tokens, self.i + 1)
        below = [t.text for t in self.tokens[self.i + 1:end + 1] if t.text not in "{}"]
        self.i = end + 1
        if self.at("^"):
            top_end = script_end(self.tokens, self.i + 1)
            top = [t.text for t in self.tokens[self.i + 1:top_end + 1] if t.text not in "{}"]
            if top != ["m"]:
                raise FormulaError(r"a sum over the examples runs to m: \sum_{i=1}^{m}", column=start.column)
            self.i = top_end + 1
        if not below or not below[0].isalpha() or below[1:] not in ([], ["=", "1"]):
            raise FormulaError(r"a sum over the examples reads \sum_{i=1}^{m} or \sum_i", column=start.column)
        return self.node("exsum", self.product(), text=below[0])  # the sum's term runs to the next + or -

    def activation(self) -> Node:
        r"""`g^{[l]\prime}(Z)`, `g'(Z)`, `\sigma'(Z)`, `g^{[l]}(Z)`: the activation (or its derivative)."""
        start = self.token
        self.i += 1
        prime = False
        while self.at("'", "^"):
            if self.at("'"):
                prime, self.i = True, self.i + 1
                continue
            end = script_end(self.tokens, self.i + 1)
            texts = [t.text for t in self.tokens[self.i + 1:end + 1] if t.text not in "{}"]
            prime = prime or r"\prime" in texts or "'" in texts
            self.i = end + 1
        if not self.at("("):
            raise FormulaError(f"{start.text} must be applied: {start.text}'(Z^{{[l]}})", column=start.column)
        self.i += 1
        inner = self.expression()
        self.expect(")")
        return self.node("func", inner, text="sigma_prime" if prime else "sigma")


class MatrixNamesParser(BatchParser):
    r"""A network that declares its matrices by name (an affine layer, a module layer): x, out, gamma, xhat …
    and the loss's gradient dX of each (`dx`, `dout`, `d\gamma`); LaTeX spellings `\gamma`, `\hat{x}`,
    `\mu`, `\sigma^2` (var) name the matrices of those names; `np.sum(M, axis=0)` sums each column; a power
    or a square root of a matrix applies to each entry."""

    FAMILIES: set = set()

    def __init__(self, text: str, known, whole, elementwise: bool = False):
        self.WHOLE = set(whole) | {"d" + name for name in whole}
        if elementwise:  # a layer without weight matrices (batch norm): every product is entrywise, broadcast
            self.ENTRYWISE, self.MATRIX, self.JUXTAPOSED = self.ENTRYWISE | self.MATRIX, frozenset(), "had"
        super().__init__(text, known)

    def primary(self) -> Node:
        t = self.token
        spelled = self.spelled_name()
        if spelled is not None:
            return self.node("bfam", text=spelled)
        if t.kind == "letters" and t.text in self.WHOLE and not self.known(t.text):
            return self.declared(t)
        if t.kind == "letters" and t.text == "N" and not self.known("N"):
            self.i += 1
            return self.node("scalar", text="N")
        if self.at(r"\epsilon", r"\varepsilon"):
            self.i += 1
            return self.node("scalar", text="eps")
        if self.at(r"\sqrt"):
            self.i += 1
            return self.node("func", self.argument(), text="sqrt")
        return super().primary()

    def declared(self, token) -> Node:
        """A declared matrix: `h`, `dh`, `h^2` (entrywise), `W^T`; `dh0` is no name (not dh times 0)."""
        self.i += 1
        after = self.token
        if after.kind == "number" and after.column == token.column + len(token.text):
            raise FormulaError(f"{token.text}{after.text} is not a name of this layer's matrices (its matrices: "
                               f"{', '.join(sorted(self.WHOLE))}); write a product with a space: "
                               f"{token.text} {after.text}", column=token.column)
        tree = self.node("bfam", text=token.text)
        if self.at("_"):
            raise FormulaError(f"{token.text} with a subscript is one component: write the claim in index form",
                               column=token.column)
        return tree

    def spelled_name(self) -> str | None:
        r"""`\gamma`, `d\gamma`, `\hat{x}`, `\sigma^2` as the matrix they name, consuming their tokens."""
        texts = [t.text for t in self.tokens[self.i:self.i + 5]]
        prefix = ""
        if texts[0] == "d" and len(texts) > 1 and texts[1].startswith("\\"):
            prefix, texts = "d", texts[1:]
        for spelling, name, length in _SPELLINGS:
            if texts[:length] == spelling and prefix + name in self.WHOLE:
                self.i += length + len(prefix)
                return prefix + name
        return None



_SPELLINGS = [  # (tokens, the matrix's name, how many tokens)
    ([r"\hat", "{", "x", "}"], "xhat", 4), ([r"\sigma", "^", "2"], "var", 3),
    ([r"\sigma", "^", "{", "2", "}"], "var", 5), ([r"\gamma"], "gamma", 1), ([r"\beta"], "beta", 1),
    ([r"\mu"], "mu", 1),
]


def names_matrix_names(text: str, whole) -> bool:
    """Whether a member names one of the network's declared matrices (or its gradient)."""
    words = set(re.findall(r"(?<![A-Za-z\\])[A-Za-z]+", text)) | {m.group(1) for m in re.finditer(r"\\([a-z]+)", text)}
    spelled = {"gamma", "beta", "mu"} & words
    return bool(words & ({*whole} | {"d" + n for n in whole}) or spelled & set(whole) or r"\hat" in text)
