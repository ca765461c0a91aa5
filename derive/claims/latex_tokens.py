"""The LaTeX reader's tokens: the whitelist of commands, the tokenizer, and a cursor over the tokens.

The cursor also keeps the two budgets every reading step spends: nesting depth
(`enter`) and tokens read (`advance`), so no formula can cost unbounded time.
"""

from __future__ import annotations

import re
from typing import Mapping

from derive.errors import FormulaError, ReadingFault
from derive.graph.parser import MAX_LENGTH, Token

# Nesting budget in this parser's own units (it spends fewer Python frames per unit than parser.py)
MAX_DEPTH = 200
MAX_INDEX_DIGITS = 6  # an index letter's value, or a subscript's number, in index arithmetic
MAX_STEPS = 100_000  # tokens read, sum bodies once per term: bounds the time a formula takes

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|~)
  | (?P<command>\\(?:[A-Za-z]+|.)?)
  | (?P<number>\d+(?:\.\d+)?|\.\d+)
  | (?P<letters>[A-Za-z]+)
  | (?P<op>[-+*/^_()\[\]{},='])
    """,
    re.VERBOSE | re.DOTALL,
)

GREEK = {
    g: g
    for g in (
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma"
        " tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega"
    ).split()
}
GREEK.update(varepsilon="epsilon", vartheta="theta", varphi="phi", varrho="rho")
FUNCTIONS = {"exp", "ln", "log", "tanh", "max", "min", "sqrt", "sigma"}
DECORATIONS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde", "widetilde": "tilde"}
WORDS = {"mathrm", "text", "textrm", "mathit", "mathcal", "operatorname"}
SIZES = {s + x for s in ("big", "Big", "bigg", "Bigg") for x in ("", "l", "r", "m")}
OPEN_SIZES = {s for s in SIZES if not s.endswith("r")}
CLOSE_SIZES = {s for s in SIZES if not s.endswith("l")}
_IGNORED = {",", ";", ":", "!", ">", " ", "quad", "qquad", "displaystyle", "textstyle", "limits", "cal"}
EQUALS = {"equiv"}  # a definition's sign, decided as `=` (the claim then checks the definition)
PRODUCTS = {"cdot", "times", "odot", "circ", "bullet"}  # in a scalar formula the elementwise ⊙ is a product
_STRUCTURE = {"frac", "dfrac", "tfrac", "left", "right", "sum", "partial", "prime", "dot"} | PRODUCTS
_KNOWN = set(GREEK) | FUNCTIONS | set(DECORATIONS) | WORDS | SIZES | _STRUCTURE
CLOSE = {"(": ")", "[": "]"}
_CHAR_HINTS = {
    "$": " (type the formula without $ delimiters)",
    "%": " (comments are not allowed)",
    "&": " (alignment is not allowed)",
    "#": "",
}


class NormalNames(dict):
    """`latex_names` with its keys in the form typed names are compared in, normalized once for many formulas."""

    @classmethod
    def of(cls, latex_names: Mapping[str, str]) -> "NormalNames":
        if isinstance(latex_names, cls):
            return latex_names
        return cls({normal_form(k): v for k, v in latex_names.items()})


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            raise FormulaError(f"unexpected character {char!r}{_CHAR_HINTS.get(char, '')}", column=pos + 1)
        kind, word = match.lastgroup, match.group()
        pos = match.end()
        if kind == "space" or (kind == "command" and (word[1:].isspace() or word[1:] in _IGNORED)):
            continue
        if kind == "command" and word[1:] in EQUALS:  # Nielsen's δ ≡ ∂C/∂z: "is defined as" is an equality
            tokens.append(Token("op", "=", match.start() + 1))
            continue
        if kind == "command" and word[1:] not in _KNOWN:
            raise FormulaError(f"unknown command {word}", column=match.start() + 1)
        tokens.append(Token(kind, word, match.start() + 1))
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def normal_form(typed: str) -> str:
    """How `latex_names` keys and typed names are compared: no spaces, `x_{1}` as `x_1`."""
    return re.sub(r"([_^])\{([^{}\\])\}", r"\1\2", re.sub(r"\s+", "", typed))


class TokenCursor:
    """A position in a formula's tokens, with the depth and step budgets spent so far."""

    def __init__(self, text: str, tokens: list[Token], max_steps: int = MAX_STEPS):
        self.text = text
        self.tokens = tokens
        self.max_steps = max_steps
        self.pos = 0
        self.depth = 0
        self.steps = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        self.steps += 1
        if self.steps > self.max_steps:
            left = "" if self.max_steps == MAX_STEPS else " (all that is left of the file's allowance)"
            raise FormulaError(
                f"the formula expands to more than {self.max_steps:,} tokens{left} (a sum reads its body once "
                "per term)",
                column=token.column,
            )
        return token

    def at(self, text: str, token: Token | None = None) -> bool:
        token = token or self.token
        return token.text == text and token.kind in ("op", "command")

    def first_char(self) -> Token:
        """The first character of the current token, as TeX reads `x^23` or `\\frac12`."""
        token = self.token
        if len(token.text) > 1:
            rest = Token(token.kind, token.text[1:], token.column + 1)
            token = Token(token.kind, token.text[0], token.column)
            self.tokens[self.pos : self.pos + 1] = [token, rest]
        return self.advance()

    def error(self, expected: str, token: Token | None = None) -> FormulaError:
        token = token or self.token
        found = "the end of the formula" if token.kind == "end" else f"'{token.text}'"
        return FormulaError(f"{expected} but found {found}", column=token.column)

    def expect(self, text: str, closing: str | None = None) -> Token:
        if not self.at(text):
            raise self.error(f"expected '{text}'" + (f" to close '{closing}'" if closing else ""))
        return self.advance()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula is nested deeper than {MAX_DEPTH} levels", column=self.token.column)

    def source(self, start: int, end: int) -> str:
        """The text of tokens[start:end] as typed, without whitespace."""
        last = self.tokens[end - 1]
        text = self.text[self.tokens[start].column - 1 : last.column - 1 + len(last.text)]
        return re.sub(r"\s+", "", text)


def error_message(exc: BaseException) -> str:
    """A vocabulary error's message, without the quotes `str()` puts around a KeyError's."""
    return str(exc.args[0]) if exc.args else str(exc)


class IndexBindings(dict):
    """The values of the index letters in force: a sum's own, and the claim's free letters (`free`).

    A claim's free letter names units and layers, so it is never an exponent:
    Zhou's ŷ^k_j (k the example) read with k = 2 as the square of ŷ_j refuted a
    true formula. A sum's letter may be one (`\\sum_k x^k`)."""

    def __init__(self):
        super().__init__()
        self.free: frozenset[str] = frozenset()
        self.exponents = 0  # how many exponents are being read, one inside another

    def bind_free(self, values: Mapping[str, int]) -> None:
        self.update(values)
        self.free = frozenset(values)

    def value(self, letter: str) -> int:
        """The letter's value where it stands as a number (not as a name's script, which labels)."""
        if self.exponents and letter in self.free:
            raise ReadingFault(f"the index letter {letter} stands in an exponent: a claim's index letters name "
                               "units and layers, never powers (declare an example index with example = "
                               f"\"{letter}\", or write the power's number)")
        return self[letter]


def index_arithmetic(part: list[tuple[str, str]]) -> int | None:
    """`k+1`, `-2`, `2i-1` (the book's pooling windows): integers (digits or index letters, a number before
    an index letter its coefficient) joined by + and -, else None."""
    total, sign, want_value, term = 0, 1, True, None
    for kind, text in part:
        if kind == "op":
            sign = (sign if want_value else 1) * (-1 if text == "-" else 1)
            want_value, term = True, None
        elif kind in ("digits", "index") and text.lstrip("-").isdigit() and len(text) <= MAX_INDEX_DIGITS:
            if want_value:
                term = sign * int(text)
                total += term
                sign, want_value = 1, False
            elif kind == "index" and term is not None:  # 2i: the coefficient times the letter's value
                total += term * int(text) - term
                term = None
            else:
                return None
        else:
            return None
    return None if want_value else total
