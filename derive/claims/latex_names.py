"""The LaTeX reader's names and scripts: how `w^2_{13}`, `\\hat{y}` or `wx` become vocabulary names.

The rules are the "Name rules" of `derive.claims.latex`'s docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from derive.errors import FormulaError, ReadingFault
from derive.graph.parser import Token, Vocabulary, _number, _power
from derive.claims.latex_examples import (
    check_unit_layer, cost_alias, cost_name, declare_hint, example_superscript, is_example_label, items_text,
    kronecker, loss_alias,
    uses_example,
)
from derive.claims.latex_tokens import (
    CLOSE, DECORATIONS, GREEK, WORDS, NormalNames, TokenCursor, error_message, index_arithmetic, normal_form,
)

MAX_TOWER = 8  # exponents within exponents: SymPy's Pow inspects its whole exponent, so towers cost O(n²)
# SymPy spells λ `lmbda`; the book's target t is y where the network has no t (derive.proof.vocabulary.ALIASES)
_BASE_ALIASES = {"lambda": ("lambda", "lmbda"), "t": ("t", "y"), "W": ("W", "w")}  # deeplearning.ai's W^{[l]}
ACTIVATION_LETTERS = ("f", "g")  # f(z), g(z): the activation, where f or g names nothing else


@dataclass
class TypedName:
    base: str
    kind: str  # "run" (may be split into letters), "joined" (`w5`), "word", "greek"
    column: int
    typed: str = ""
    typed_without_sup: str = ""
    sub: list[list[str]] | None = None  # comma-separated parts, each a list of pieces
    sup: list[list[str]] | None = None  # the superscript as text, if it is plain
    sup_span: tuple[int, int] | None = None  # its tokens, to read it again as an exponent
    sup_expr: sp.Expr | None = None
    sup_column: int = 0
    label: list[list[str]] | None = None  # a layer label, `^{(l)}`, `^{[l]}` or `_{(l)}`: never a power
    hyphen: list[list[str]] | None = None  # a subscript `1-11` read as the book's separator (k-ij), not 1 − 11



class NameReader(TokenCursor):
    """Reads scripts and names.

    The formula parser built on this supplies `braced`, `delimited`, `opens_bracket`, `activation` and `call`.
    """

    vocabulary: Vocabulary
    latex_names: NormalNames
    tower: int  # exponents open within exponents
    indices: dict[str, int]  # the enclosing sums' indices and their current values
    index_log: list[str]  # sum indices read in scripts, in order (a name's use of an index)
    probes: list  # open upper bounds being measured, innermost last (latex_sums.Probe)
    hyphen: list[list[str]] | None = None  # the last subscript read, as the book's `1-11` (k-ij), if it can be one
    example: str | None = None  # the claims file's example index (`example = "x"`): its scripts are dropped

    # -- scripts ---------------------------------------------------------------------
    def plain_script(self) -> list[list[tuple[str, str]]] | None:
        """A script made only of letters, digits, words, `,` `+` `-`: its items, or None."""
        if self.at("{"):
            self.advance()
            return self.script_items()
        token = self.token
        if token.kind in ("number", "letters"):
            return [[self.item(self.first_char())]]
        if token.text[1:] in GREEK and token.kind == "command":
            self.advance()
            return [[("word", GREEK[token.text[1:]])]]
        return None

    def script_items(self, close: str = "}") -> list[list[tuple[str, str]]] | None:
        parts: list[list[tuple[str, str]]] = [[]]
        while not self.at(close):
            token = self.token
            name = token.text[1:] if token.kind == "command" else ""
            if token.kind == "letters":
                parts[-1].extend(self.item(Token("letters", c, token.column)) for c in token.text)
            elif token.kind == "number":
                parts[-1].append(("digits", token.text))
            elif self.at(",") or self.at("+") or self.at("-"):
                parts.append([]) if token.text == "," else parts[-1].append(("op", token.text))
            elif name in GREEK:
                parts[-1].append(("word", GREEK[name]))
            elif name in WORDS:
                self.advance()
                parts[-1].append(("word", self.word()))
                continue
            elif self.at("_") and parts[-1] and parts[-1][-1][0] == "letter":  # E_{o_1}: a script in a script
                self.advance()
                self.enter()
                inner = self.plain_script()
                self.depth -= 1
                if inner is None or len(inner) != 1 or any(kind == "op" for kind, _ in inner[0]):
                    return None
                parts[-1].extend(inner[0])
                continue
            else:
                return None
            self.advance()
        self.advance()
        return parts

    def item(self, token: Token) -> tuple[str, str]:
        if token.kind == "letters" and token.text in self.indices:
            self.index_log.append(token.text)
            return ("index", str(self.indices[token.text]))
        return ("digits" if token.kind == "number" else "letter", token.text)

    def pieces(self, parts, column: int, what: str, strict: bool) -> list[list[str]] | None:
        result = []
        for part in parts:
            coefficient = len(parts) > 1 and [kind for kind, _ in part] == ["digits", "index"]  # {k,2i,2j}: 2·i
            if coefficient or any(kind == "op" for kind, _ in part):
                value = index_arithmetic(part)
                if value is None:
                    if strict:
                        raise FormulaError(f"{what}: index arithmetic needs integers", column=column)
                    return None
                result.append([str(value)])
            elif not part:
                if strict:
                    raise FormulaError(f"empty {what}", column=column)
                return None
            else:  # each digit is a piece: `13` is the layered `1_3`
                result.append([p for kind, text in part for p in (text if kind == "digits" else [text])])
        return result

    def script_expression(self) -> sp.Expr:
        """An exponent: `{...}`, or one digit, letter or Greek name."""
        self.indices.exponents += 1
        try:
            return self._script_expression()
        finally:
            self.indices.exponents -= 1

    def _script_expression(self) -> sp.Expr:
        if self.at("{"):
            self.tower += 1
            if self.tower > MAX_TOWER:
                raise FormulaError(f"exponents are nested more than {MAX_TOWER} deep", column=self.token.column)
            value = self.braced("^{")
            self.tower -= 1
            return value
        token = self.token
        if token.kind == "number":
            return _number(self.first_char())
        if token.kind == "letters":
            return self.bare(self.first_char())
        if token.kind == "command" and token.text[1:] in GREEK:
            return self.bare(self.advance())
        raise self.error("expected '{' or a single character after '^'")

    # -- names -----------------------------------------------------------------------
    def word(self) -> str:
        """The letters and digits of `\\mathrm{out}` and friends (after the command); `\\mathcal C`: one letter."""
        if self.token.kind == "letters":
            return self.first_char().text
        self.expect("{")
        text = ""
        while self.token.kind in ("letters", "number"):
            text += self.advance().text
        if not text:
            raise self.error("expected letters")
        self.expect("}", closing="{")
        return text

    def name_base(self) -> tuple[str, str, list | None]:
        token = self.advance()
        command = token.text[1:] if token.kind == "command" else ""
        if token.kind == "letters":
            following = self.token
            if following.kind == "number" and following.column == token.column + len(token.text):
                return token.text + self.advance().text, "joined", None
            return token.text, "run", None
        if command in GREEK:
            return GREEK[command], "greek", None
        if command in WORDS:
            return self.word(), "word", None
        # a decoration: \hat y, \hat{y}, \hat{\theta}, \hat{y_1}
        suffix, inner_sub = DECORATIONS[command], None
        if not self.at("{"):
            if self.token.kind != "letters" and self.token.text[1:] not in GREEK:
                raise self.error(f"expected a letter after {token.text}")
            letter = self.advance() if self.token.kind == "command" else self.first_char()
            return GREEK.get(letter.text[1:], letter.text) + suffix, "word", None
        self.advance()
        inner = self.token
        if inner.kind != "letters" and inner.text[1:] not in GREEK:
            raise self.error(f"expected a letter after {token.text}{{")
        self.advance()
        if self.at("_"):
            self.advance()
            inner_sub = self.subscript()
        self.expect("}", closing=token.text + "{")
        return GREEK.get(inner.text[1:], inner.text) + suffix, "word", inner_sub

    def subscript(self) -> list[list[str]]:
        column = self.token.column
        parts = self.plain_script()
        if parts is None:
            raise self.error("expected a subscript of letters and digits such as _1 or _{o1},")
        self.hyphen = _hyphenated(parts)
        return self.pieces(parts, column, "subscript", strict=True)

    def starts_label(self) -> bool:
        return self.at("{") and (self.at("(", self.peek()) or self.at("[", self.peek()))

    def label_script(self, script: str) -> tuple[list[list[str]] | None, list[list[str]] | None]:
        """`{(l)}`, `{[2]}`, or `{(l) j}` after `_`: the layer label and what follows it in the script.

        `^{[l](i)}` and `^{(i)}` with the example index i: the layer label, or None (the example alone).
        """
        self.advance()  # '{'
        opener = self.advance()
        close = CLOSE[opener.text]
        column = self.token.column
        parts = self.script_items(close)
        if parts is None:
            raise self.error(f"expected a layer label of letters and digits, as in {script}{{{opener.text}l{close}}},")
        if script == "^" and (self.at("(") or self.at("[")):  # deeplearning.ai's a^{[l](i)}
            parts = self.example_pair(opener.text, parts)
        elif opener.text == "(" and is_example_label(parts, self.example):
            parts = None
        label = None if parts is None else self.pieces(parts, column, "layer label", strict=True)
        if self.at("}"):
            self.advance()
            return label, None
        column = self.token.column
        parts = self.script_items() if script == "_" else None
        if parts is None:
            raise self.error(f"expected '}}' after the layer label {opener.text}…{close}")
        return label, self.pieces(parts, column, "subscript", strict=True)

    def example_pair(self, first: str, parts) -> list:
        """`^{[l](i)}`, `^{(i)[l]}`: the layer label's items, the example's group dropped; or refused."""
        column = self.token.column
        second = self.advance().text
        other = self.script_items(CLOSE[second])
        if other is None:
            raise FormulaError("expected a label of letters and digits", column=column)
        groups = [(first, parts), (second, other)]
        shown = "".join(f"{o}{','.join(items_text(q) for q in p)}{CLOSE[o]}" for o, p in groups)
        if self.example is None:
            letters = [items_text(p[0]) for o, p in groups if o == "(" and len(p) == 1 and len(p[0]) == 1]
            raise FormulaError(f"^{{{shown}}}: a layer label next to an example label (deeplearning.ai's "
                               f"a^{{[l](i)}}); {declare_hint(letters[0] if letters else 'i')}", column=column)
        examples = [g for g in groups if g[0] == "(" and is_example_label(g[1], self.example)]
        if len(examples) != 1:
            raise FormulaError(f"^{{{shown}}}: two labels, and not exactly one of them is the example index "
                               f"({self.example}) (example = \"{self.example}\")", column=column)
        return next(p for g in groups if g is not examples[0] for p in [g[1]])

    def example_layer(self, name: TypedName, parts, typed: str, column: int) -> bool:
        """`^{x,l}`: the layer l becomes the name's label (never a power), the example x is dropped."""
        if name.label is not None:
            raise FormulaError("two layer labels", column=column)
        layer = example_superscript(parts, self.example, typed, column)
        name.label = self.pieces([layer], column, "layer label", strict=True)
        return True

    def drop_example(self, name: TypedName, sub, typed: str):
        """`C_x`, `E_k`: the cost of the one example (the subscript dropped); the example letter elsewhere is refused."""
        if sub == [[self.example]] and name.base == cost_name(self.vocabulary) and name.label is None:
            return None
        if name.sup == [[self.example]] and name.label is None:  # Zhou's ŷ^k_j: the k-th example's ŷ_j
            name.sup = None
        if uses_example(sub, self.example) or uses_example(name.label, self.example) or uses_example(
                name.sup, self.example):
            raise FormulaError(f"'{typed}': {self.example} is the example index (example = \"{self.example}\"): "
                               "it names the one training example the network computes, never a unit or a layer",
                               column=name.column)
        return sub

    def name(self) -> tuple[sp.Expr, bool]:
        start = self.pos
        first = self.token
        logged = len(self.index_log)
        base, kind, sub = self.name_base()
        if kind in ("run", "word") and sub is None and len(base) > 1 and self.opens_bracket():
            try:  # relu(z), \operatorname{sigmoid}(z)
                builder = self.vocabulary.function(base)
            except LookupError:
                builder = None
            if builder is not None:
                self.enter()
                args = self.delimited(args=True)
                self.depth -= 1
                return self.call(base, args, first), False
        if kind == "run" and base in ACTIVATION_LETTERS and sub is None and self.opens_bracket() and self.names_nothing(
                base, first):
            return self.activation("sigma", first), False
        name = TypedName(base, kind, first.column)
        base_end = self.pos
        sub_span = None
        labelled_above = False
        while self.at("_") or self.at("^"):
            script = self.advance()
            if script.text == "_":
                if sub is not None:
                    raise FormulaError("double subscript", column=script.column)
                sub_start = self.pos
                if self.starts_label():
                    if name.label is not None:
                        raise FormulaError("two layer labels", column=script.column)
                    name.label, sub = self.label_script("_")
                else:
                    sub = self.subscript()
                    name.hyphen = self.hyphen
                sub_span = (sub_start - 1, self.pos)
                continue
            if labelled_above:
                raise FormulaError("a superscript after a layer label: for a power of a labelled name write "
                                   "(a^{(l)}_j)^2", column=script.column)
            if name.sup_span is not None:
                raise FormulaError("double superscript", column=script.column)
            if self.starts_label():
                if name.label is not None:
                    raise FormulaError("two layer labels", column=script.column)
                name.label = self.label_script("^")[0]
                labelled_above = True
                continue
            if self.at("'") or self.at(r"\prime"):
                raise self.error("a prime is only understood in \\sigma'(...); expected an exponent")
            if self.example is not None and self.token.kind == "letters" and self.token.text == self.example:
                self.advance()  # Zhou's y^k_j, k the declared example: the k-th example's y_j
                continue
            name.sup_column = script.column
            sup_start = self.pos
            parts = self.plain_script()
            if parts is not None and len(parts) > 1:  # Nielsen's a^{x,l}: the example x, the layer l
                labelled_above = self.example_layer(name, parts, self.source(start, self.pos), script.column)
                continue
            if parts is not None:
                name.sup = self.pieces(parts, script.column, "superscript", strict=False)
            else:  # not plain text: it can only be an exponent
                self.pos = sup_start
                self.enter()
                name.sup_expr = self.script_expression()
                self.depth -= 1
            name.sup_span = (sup_start, self.pos)
        if self.at("'"):
            raise FormulaError("a prime ' is only understood in \\sigma'(...)", column=self.token.column)
        name.typed = self.source(start, self.pos)
        name.sub = self.drop_example(name, sub, name.typed) if self.example is not None else sub
        name.typed_without_sup = self.source(start, base_end) + (self.source(*sub_span) if sub_span else "")
        uses = {p.index for p in self.probes} & set(self.index_log[logged:])
        if uses:  # a name indexed by an open sum bound: whether it exists decides the bound
            return self.probed(name, uses), True
        return self.resolve(name), True

    def probed(self, name: TypedName, uses: set[str]) -> sp.Expr:
        """A name read while an open sum bound is probed: recorded, and absent (a Dummy) where it does not exist."""
        tried: list[str] = []
        value = self.value(name, tried, [], whole=True)
        shown = str(value) if isinstance(value, sp.Symbol) else (tried[0] if tried else name.typed)
        if value is None or isinstance(value, sp.Symbol):  # e^{z_k} is no name: the z_k inside it is
            self.probes[-1].records.append((shown, frozenset(uses), value is not None))
        return sp.Dummy("absent") if value is None else value

    def resolve(self, name: TypedName) -> sp.Expr:
        tried: list[str] = []
        messages: list[str] = []
        value = self.value(name, tried, messages, whole=True)
        if value is not None:
            return value
        message = f"unknown name '{name.typed}' (tried {', '.join(tried)})"
        if name.kind == "joined":
            letters = name.base.rstrip("0123456789.")
            digits = name.base[len(letters):]
            message += f"; write {letters}_{digits} for a subscript or {letters} \\cdot {digits} for a product"
        elif name.label is not None:
            message += ("; a superscript in brackets is a layer label (never a power) and the network has no such "
                        "layered name; for a power write (" + name.typed_without_sup + ")^2")
            if len(name.label) == 1 and len(name.label[0]) == 1 and name.label[0][0].isalpha() and not self.example:
                message += (f"; if ({name.label[0][0]}) is the training example (deeplearning.ai's y^{{(i)}}), "
                            + declare_hint(name.label[0][0]))
        elif name.base == "sigma" and name.sub is None:
            message += "; to apply σ write \\sigma(...)"
        elif (name.sub is not None and len(name.sub) == 1 and len(name.sub[0]) == 1 and name.sub[0][0].isalpha()
              and name.base == cost_name(self.vocabulary) and not self.example):
            message += (f"; {name.base}_{name.sub[0][0]} as the cost of one training example (Nielsen's C_x, "
                        f"Zhou's E_k): {declare_hint(name.sub[0][0])}")
        elif messages and messages[0] != f"unknown name '{tried[0]}'":
            hint = messages[0]
            prefix = f"unknown name '{tried[0]}'"
            message += " " + hint[len(prefix):].strip() if hint.startswith(prefix) else f": {hint}"
        raise FormulaError(message, column=name.column)

    def value(self, name: TypedName, tried: list[str], messages: list[str], whole: bool) -> sp.Expr | None:
        """The name's value following the module's name rules, or None."""
        if whole and (found := self.mapped(name.typed, name.column)) is not None:
            return found
        if name.label is not None:
            return self.labelled(name, tried, messages)
        if name.sub is not None and name.sup is not None and len(name.sup) == 1:
            found = self.layered(name, name.sup[0], tried, messages)
            if found is not None:
                return found
        found = None
        if whole and name.sup_span is not None:
            found = self.mapped(name.typed_without_sup, name.column)
        if found is None and name.kind == "run" and name.base in self.indices and name.sub is None:
            found = sp.Integer(self.indices.value(name.base))
        if found is None:
            candidates = [c for b in _BASE_ALIASES.get(name.base, (name.base,)) for c in _candidates(b, name.sub)]
            found = self.lookup(candidates, tried, messages)
        if found is None and name.sup is None and name.label is None:  # E_{total}, C_0, 𝓛, J: the cost
            found = cost_alias(name.base, name.sub, self.vocabulary, lambda c: self.lookup(c, tried, messages)) \
                or loss_alias(name.typed, self.vocabulary, lambda c: self.lookup(c, tried, messages)) \
                or kronecker(name, self.indices)
        if found is None and name.base == "e" and name.sub is None and name.sup_span is not None:
            return self.call("exp", [self.exponent(name)], Token("command", "e^", name.column))
        if found is None and name.kind == "run" and len(name.base) > 1:
            return self.split(name)
        if found is None or name.sup_span is None:
            return found
        if name.sub is not None and name.sup is not None and self.layered_family(name.base):
            raise ReadingFault(
                f"'{name.typed}' is ambiguous: read as a layer, {name.base}{''.join(name.sup[0])}_"
                f"{'_'.join(_layer_parts(name.sub))} is not a name of the network; read as a power it is "
                f"({found})^{self.exponent(name)}; for the power write ({name.typed_without_sup})^"
                f"{{{self.source(*name.sup_span)}}}", column=name.column)
        return _power(found, self.exponent(name), name.sup_column)

    def layered(self, name: TypedName, sup: list[str], tried: list[str], messages: list[str]) -> sp.Expr | None:
        """The layered name base + layer + '_' + the subscript's parts (`w^2_{13}` is w2_1_3, `z^{F1}_{11}` zF_1_1_1)."""
        bases = _BASE_ALIASES.get(name.base, (name.base,))
        layers = ["".join(sup)]
        letters = "".join(p for p in sup if not p.isdigit())
        if letters and "".join(sup).startswith(letters) and len(letters) < len(layers[0]):  # the book's F1: F, filter 1
            layers.append(letters + "_" + "".join(sup)[len(letters):])
        found = self.lookup([b + layer + "_" + "_".join(_layer_parts(name.sub)) for b in bases for layer in layers],
                            tried, messages)
        if len(name.sub) == 1 and len(name.sub[0]) > 1 and all(p.isdigit() for p in name.sub[0]):
            joined = self.lookup([b + layer + "_" + "".join(name.sub[0]) for b in bases for layer in layers],
                                 list(tried), [])  # a^1_{12}: the 12th input, where no a1_1_2 exists
            if found is not None and joined is not None and found != joined:
                raise ReadingFault(f"'{name.typed}' is ambiguous: {found} or {joined}; write the subscript with "
                                   "commas", column=name.column)
            found = found if found is not None else joined
        if name.hyphen is None or not letters:  # the separator of w^{O1}_{1-11}: only with the book's lettered layers
            return found
        hyphen = "_".join(_layer_parts(name.hyphen))
        other = self.lookup([b + layer + "_" + hyphen for b in bases for layer in layers], tried, messages)
        if found is not None and other is not None and found != other:
            raise ReadingFault(f"'{name.typed}' is ambiguous: {found} (the subscript's - a minus) or {other} "
                               "(a separator); write the subscript with commas", column=name.column)
        return found if found is not None else other

    def labelled(self, name: TypedName, tried: list[str], messages: list[str]) -> sp.Expr | None:
        """A name with a layer label (`a^{(2)}_1`, `a^{[l]}_j`): only ever the layered name, never a power."""
        if name.sup_span is not None:
            raise FormulaError(f"'{name.typed}' has a layer label and a superscript; for a power of a labelled name "
                               "write (a^{(l)}_j)^2", column=name.sup_column)
        if name.sub is None or len(name.label) != 1:
            hint = ""
            if len(name.label) == 1 and len(name.label[0]) == 1 and name.label[0][0].isalpha() and not self.example:
                hint = f"; if ({name.label[0][0]}) is the training example (deeplearning.ai's y^{{(i)}}), " + \
                    declare_hint(name.label[0][0])
            raise FormulaError(f"'{name.typed}': a layer label needs one layer and a subscript naming the unit, as in "
                               "a^{(2)}_1" + hint, column=name.column)
        found = self.layered(name, name.label[0], tried, messages)
        if found is None and not self.layered_family(name.base):  # out_{h1}^{(2)}: the unit's layer in the graph
            bases = _BASE_ALIASES.get(name.base, (name.base,))
            plain = self.lookup([c for b in bases for c in _candidates(b, name.sub)], list(tried), [])
            if plain is not None:
                return check_unit_layer(plain, name.label[0], self.vocabulary, name.typed, name.column)
        return found

    def layered_family(self, base: str) -> bool:
        """Whether the vocabulary names layered units of this base (a2_1, aF_1_11): a superscript may be a layer."""
        names = self.vocabulary.names if isinstance(self.vocabulary, Vocabulary) else None
        if not isinstance(names, dict) or len(names) > 100_000:
            return False
        pattern = re.compile(re.escape(base) + r"[0-9A-Z]\w*_")
        return any(pattern.match(key) for key in names)

    def names_nothing(self, base: str, token: Token) -> bool:
        """Whether `f` in `f(z)` is no name at all (nor an index), so it can only be the activation."""
        if base in self.indices or self.mapped(base, token.column) is not None:
            return False
        return self.lookup([base], [], []) is None

    def split(self, name: TypedName) -> sp.Expr | None:
        """`wx` as `w*x`: single letters, the scripts going to the last one."""
        factors = []
        for letter in name.base[:-1]:
            if letter in self.indices:
                factors.append(sp.Integer(self.indices.value(letter)))
            elif (found := self.lookup([letter], [], [])) is not None:
                factors.append(found)
            else:
                return None
        last = TypedName(name.base[-1], "run", name.column, sub=name.sub, sup=name.sup, sup_span=name.sup_span,
                     sup_expr=name.sup_expr, sup_column=name.sup_column)
        found = self.value(last, [], [], whole=False)
        return None if found is None else sp.Mul(*factors, found)

    def exponent(self, name: TypedName) -> sp.Expr:
        """The superscript read as an expression (again, when it was first read as text)."""
        if name.sup_expr is None:
            resume = self.pos
            self.pos = name.sup_span[0]
            self.enter()
            name.sup_expr = self.script_expression()
            self.depth -= 1
            self.pos = resume
        return name.sup_expr

    def bare(self, token: Token) -> sp.Expr:
        """A single letter or Greek command standing alone (an exponent, `\\frac ab`)."""
        text = GREEK.get(token.text[1:], token.text) if token.kind == "command" else token.text
        if text in self.indices:
            return sp.Integer(self.indices.value(text))
        found = self.mapped(token.text, token.column)
        if found is None:
            found = self.lookup([text], [], [])
        if found is None:
            raise FormulaError(f"unknown name '{text}'", column=token.column)
        return found

    def mapped(self, typed: str, column: int) -> sp.Expr | None:
        target = self.latex_names.get(normal_form(typed))
        if target is None:
            return None
        try:
            return self.vocabulary.name(target)
        except LookupError as exc:
            raise FormulaError(f"latex_names maps '{typed}' to '{target}': {error_message(exc)}", column=column) from None

    def lookup(self, candidates: list[str], tried: list[str], messages: list[str]) -> sp.Expr | None:
        for candidate in candidates:
            if candidate in tried:
                continue
            tried.append(candidate)
            try:
                return self.vocabulary.name(candidate)
            except LookupError as exc:
                messages.append(error_message(exc))
        return None


def _candidates(base: str, sub: list[list[str]] | None) -> list[str]:
    if sub is None:
        return [base]
    if len(sub) == 1:
        text = "".join(sub[0])
        return [base + text, base + "_" + text]
    parts = ["".join(part) for part in sub]
    joined = "_".join(parts)
    candidates = [base + joined, base + "_" + joined]
    if all(len(part) == 1 for part in parts):  # w_{1,3}: w13 is unambiguous
        candidates.append(base + "".join(parts))
    return candidates


def _layer_parts(sub: list[list[str]]) -> list[str]:
    if len(sub) > 1:
        return ["".join(part) for part in sub]
    if all(piece.lstrip("-").isdigit() for piece in sub[0]):
        return sub[0]
    return ["".join(sub[0])]


def _hyphenated(parts) -> list[list[str]] | None:
    """`1-11` as the book's separator: groups of digits joined by '-' (no index letters, no '+'), else None."""
    if len(parts) != 1 or not any(kind == "op" for kind, _ in parts[0]):
        return None
    groups: list[list[str]] = [[]]
    for kind, text in parts[0]:
        if kind == "op" and text == "-" and groups[-1]:
            groups.append([])
        elif kind == "digits":
            groups[-1].extend(text)
        else:
            return None
    return groups if all(groups) else None
