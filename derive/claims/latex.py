r"""Read the LaTeX students type for gradient formulas, by whitelist.

Nothing here calls `eval`, `exec`, `sympify`, `parse_expr` or SymPy's
`parse_latex`: a hand-written tokenizer and recursive-descent parser accept a
fixed set of commands and refuse everything else with a `FormulaError` that
gives the 1-based column. Numbers, exponents and nesting are bounded as in
`derive.parser`; sums are expanded and bounded too.

Grammar (spaces, `~`, `\, \; \: \! \> \quad \qquad \displaystyle` and
`\limits` are ignored; `\cdot`, `\times` and `*` are the same operator):

    expression := ('+'|'-')* product (('+'|'-') ('+'|'-')* product)*
    product    := factor (('*' | '/') ('+'|'-')* factor | factor)*   (a factor
                  after a factor is an implicit product; `/` is left-associative)
    factor     := atom ('^' script)?
    script     := '{' expression '}' | one digit | one letter | one Greek command
    atom       := NUMBER | name | '(' expression ')' | '[' expression ']'
                | '\left(' expression '\right)' | '\bigl(' ... '\bigr)' (any size)
                | '[' expression '=' '\max' ']' | '[' expression '=' name ']'  (also with
                  '\left[' ... '\right]': the max-pool indicator, the vocabulary's `ismax`)
                | '{' expression '}' | '\frac' arg arg (also \dfrac, \tfrac)
                | function | derivative | sum
    function   := ('\exp'|'\ln'|'\log'|'\tanh'|'\max'|'\min'|'\sigma') ('^' n)?
                  bracketed-arguments | "\sigma'" (...) | '\sigma^{\prime}' (...)
                | '\sqrt' arg
    derivative := '\frac{\partial' name '}{\partial' name '}'
                | '\frac{\partial}{\partial' name '}' factor
                | '\partial' name '/' '\partial' name
    sum        := '\sum_{k=' int '}^{' (int | name) '}' product     (either script first)

`\frac12`, `x^2` and `w_1` take a single character, as TeX does, so `x^23`
and `w_12` are refused (two numbers in a row): write `x^{23}`, `w_{12}`.
`a / 2 b` is `(a/2)*b`, as in SymPy. Derivatives map to the vocabulary's
function `D`, `\sigma'` and `\sigma^{\prime}` to `sigma_prime`, `\tanh^2(z)` to
`tanh(z)**2`, `e^{x}` to `exp(x)` (unless the vocabulary knows a name `e`).

Bounds, each failing with a FormulaError: MAX_LENGTH characters; MAX_DEPTH
levels (a bracket, brace, fraction or function counts as one to three, after
the Python frames it costs); exponents within exponents MAX_TOWER deep;
exponents ±64 and exact numbers of 1,000 digits (`derive.parser`); sums
expanding to MAX_SUM_TERMS terms; MAX_STEPS tokens read in all.

Name rules (a name is resolved through `vocabulary.name`, trying candidate
spellings in order and keeping the first it knows):

* A name is a letter run (`w`, `out`), a Greek command (`\eta` is `eta`,
  `\varepsilon` is `epsilon`; `\lambda` tries `lambda`, then `lmbda`), a
  decorated letter or word (`\hat{y}` is `yhat`, `\bar{x}` `xbar`, `\tilde{x}`
  `xtilde`), or a word in `\mathrm{}`, `\text{}`, `\operatorname{}`; then an
  optional subscript and an optional superscript, in either order.
* `latex_names` is consulted first: its keys are compared with the name as
  typed after removing whitespace and the braces of one-character scripts
  (`x_{1}` matches `x_1`).
* With a subscript and a superscript (`w^2_{13}`, `w_{1,3}^{2}`,
  `\delta^2_1`) the first candidate is the layered name base + sup + '_' +
  the subscript's parts joined by '_': `w2_1_3`. The parts are the
  comma-separated pieces (`12,3` gives `12_3`) or, for a subscript of digits
  only, each digit (`13` gives `1_3`).
* Otherwise, or if the vocabulary knows no layered name, the superscript is a
  power of the subscripted name (`x_1^2` is `x1**2`), whose candidates are
  base + sub and base + '_' + sub (`\delta_{o1}`: `deltao1`, `delta_o1`);
  with commas (`w_{12,3}`) base + parts joined by '_' (`w12_3`), base + '_' +
  that (`w_12_3`) and, if every part is one character, the parts run together.
* A letter run the vocabulary does not know as a whole is split into single
  letters, each a known name, the scripts attaching to the last one: `wx`
  is `w*x`. Letters typed right before digits (`w5`) must be a known name as
  a whole: `w5` is refused unless `w5` is a name (write `w_5` or `w \cdot 5`).
* A letter run (or `\operatorname{}` word) of two letters or more that names a
  vocabulary function and is followed by a bracket is a call: `relu(z_1)`,
  `\operatorname{sigmoid}(z)`. A single letter before a bracket is a
  product: `x(1-x)`. `\sigma` followed by a bracket, `'` or `^{\prime}` is
  the activation; otherwise it is the name `sigma`.
* Inside `\sum_{k=1}^{3}` the index letter is replaced by its value wherever
  it stands alone or in a script: `w_k` is `w_1`, `w^{2}_{1k}` with k=3 is
  `w2_1_3`; scripts and bounds may use `+` and `-` on integers (`w^{l+1}`).
  The sum repeats the product that follows it, up to the next `+` or `-`.
* A name as the upper bound (`\sum_{k=1}^{n}`) is the whole number the
  vocabulary gives it (a claims file's `[definitions]`, `n = "2"`), or else
  the last k for which every name of the summand that uses k exists: the
  summand is read for k = 1, 2, … until its names run out. If at that k some
  of them exist and others do not, the bound is ambiguous and refused, naming
  both; so is a summand that names nothing indexed by k.
* `'` is only understood in `\sigma'`.

Refused on purpose: `\sqrt[n]{}`, `\ln x` without brackets, second
derivatives, `|x|`, `\{ \}`, unicode symbols, `$`, `%`, `#`, `&` and every
command not listed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import sympy as sp

from derive.errors import FormulaError
from derive.graph.parser import MAX_EXACT_DIGITS, MAX_LENGTH, Token, Vocabulary, _number, _power, check_constant

# Nesting budget in this parser's own units (it spends fewer Python frames per unit than parser.py)
MAX_DEPTH = 200

MAX_SUM_TERMS = 1_000  # terms all the sums of one formula expand to, nested ones included
MAX_STEPS = 100_000  # tokens read, sum bodies once per term: bounds the time a formula takes
MAX_INDEX_DIGITS = 6
MAX_TOWER = 8  # exponents within exponents: SymPy's Pow inspects its whole exponent, so towers cost O(n²)

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

_GREEK = {
    g: g
    for g in (
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma"
        " tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega"
    ).split()
}
_GREEK.update(varepsilon="epsilon", vartheta="theta", varphi="phi", varrho="rho")
_BASE_ALIASES = {"lambda": ("lambda", "lmbda")}  # SymPy spells λ `lmbda`
_FUNCTIONS = {"exp", "ln", "log", "tanh", "max", "min", "sqrt", "sigma"}
_DECORATIONS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde", "widetilde": "tilde"}
_WORDS = {"mathrm", "text", "textrm", "mathit", "operatorname"}
_SIZES = {s + x for s in ("big", "Big", "bigg", "Bigg") for x in ("", "l", "r", "m")}
_OPEN_SIZES = {s for s in _SIZES if not s.endswith("r")}
_CLOSE_SIZES = {s for s in _SIZES if not s.endswith("l")}
_IGNORED = {",", ";", ":", "!", ">", " ", "quad", "qquad", "displaystyle", "textstyle", "limits"}
_STRUCTURE = {"frac", "dfrac", "tfrac", "cdot", "times", "left", "right", "sum", "partial", "prime"}
_KNOWN = set(_GREEK) | _FUNCTIONS | set(_DECORATIONS) | _WORDS | _SIZES | _STRUCTURE
_CLOSE = {"(": ")", "[": "]"}
_CHAR_HINTS = {
    "$": " (type the formula without $ delimiters)",
    "%": " (comments are not allowed)",
    "&": " (alignment is not allowed)",
    "#": "",
}


def parse_latex(text: str, vocabulary: Vocabulary, latex_names: Mapping[str, str] | None = None) -> sp.Expr:
    """Parse a LaTeX formula into a SymPy expression over `vocabulary`'s names, or raise FormulaError."""
    return parse_latex_counted(text, vocabulary, latex_names)[0]


def parse_latex_counted(
    text: str, vocabulary: Vocabulary, latex_names: Mapping[str, str] | None = None, *, max_steps: int = MAX_STEPS
) -> tuple[sp.Expr, int]:
    """parse_latex, reading at most `max_steps` tokens, and how many it read (a caller's running allowance)."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
    if not text.strip():
        raise FormulaError("empty formula")
    parser = _Parser(text, _tokenize(text), vocabulary, latex_names or {}, max_steps=min(max_steps, MAX_STEPS))
    try:
        return parser.parse(), parser.steps
    except RecursionError:
        # Backstop only: the depth limit stops our own recursion first, but SymPy's
        # assumption queries on a deep expression recurse on their own.
        raise FormulaError("formula is nested too deeply", column=parser.token.column) from None


class NormalNames(dict):
    """`latex_names` with its keys in the form typed names are compared in, normalized once for many formulas."""

    @classmethod
    def of(cls, latex_names: Mapping[str, str]) -> "NormalNames":
        if isinstance(latex_names, cls):
            return latex_names
        return cls({_normal(k): v for k, v in latex_names.items()})


def _tokenize(text: str) -> list[Token]:
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
        if kind == "command" and word[1:] not in _KNOWN:
            raise FormulaError(f"unknown command {word}", column=match.start() + 1)
        tokens.append(Token(kind, word, match.start() + 1))
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _normal(typed: str) -> str:
    """How `latex_names` keys and typed names are compared: no spaces, `x_{1}` as `x_1`."""
    return re.sub(r"([_^])\{([^{}\\])\}", r"\1\2", re.sub(r"\s+", "", typed))


class _Absent(FormulaError):
    """An open-bounded sum whose summand's names do not exist even for its first index."""


@dataclass
class _Probe:
    """One reading of a sum's body at one value of `index`: the names read that use an open bound's index."""

    index: str
    records: list = field(default_factory=list)  # (name shown, the indices it uses, whether it exists)

    @property
    def found(self) -> list[str]:
        return [shown for shown, uses, exists in self.records if self.index in uses and exists]

    @property
    def missing(self) -> list[str]:
        return [shown for shown, uses, exists in self.records if self.index in uses and not exists]


@dataclass
class _Name:
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


class _Parser:
    def __init__(self, text: str, tokens: list[Token], vocabulary: Vocabulary, latex_names: Mapping[str, str],
                 max_steps: int = MAX_STEPS):
        self.text = text
        self.tokens = tokens
        self.vocabulary = vocabulary
        self.latex_names = NormalNames.of(latex_names)
        self.max_steps = max_steps
        self.pos = 0
        self.depth = 0
        self.steps = 0
        self.sum_terms = 0
        self.tower = 0
        self.indices: dict[str, int] = {}
        self.index_log: list[str] = []  # sum indices read in scripts, in order (a name's use of an index)
        self.probes: list[_Probe] = []  # open upper bounds being measured, innermost last

    # -- tokens ----------------------------------------------------------------------
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

    # -- expressions -----------------------------------------------------------------
    def parse(self) -> sp.Expr:
        expr = self.expression()
        if self.token.kind != "end":
            raise self.error("expected an operator or the end of the formula")
        return expr

    def expression(self) -> sp.Expr:
        self.enter()
        terms = [self.product(signed=True)]
        while self.at("+") or self.at("-"):
            sign = self.advance().text
            term = self.product(signed=True)
            terms.append(-term if sign == "-" else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else sp.Add(*terms)

    def product(self, signed: bool) -> sp.Expr:
        factors = [self.factor(signed)]
        while True:
            if self.at("*") or self.at(r"\cdot") or self.at(r"\times"):
                self.advance()
                factors.append(self.factor(signed=True))
            elif self.at("/"):
                self.advance()
                token = self.token
                divisor = self.factor(signed=True)
                factors.append(self.reciprocal(divisor, token))
            elif self.starts_factor():
                previous = self.tokens[self.pos - 1]
                if previous.kind == "number" and self.token.kind == "number":
                    raise self.two_numbers(previous)
                factors.append(self.factor(signed=False))
            else:
                break
        return factors[0] if len(factors) == 1 else _bounded(sp.Mul(*factors), self.token.column)

    def two_numbers(self, previous: Token) -> FormulaError:
        # TeX prints `x_12` as x₁2 and `2 3` as 23: surely a typo either way
        message = f"expected an operator such as \\cdot between two numbers but found '{self.token.text}'"
        script = self.tokens[self.pos - 2]
        if script.kind == "op" and script.text in "_^":
            message += f" (write {script.text}{{{previous.text}{self.token.text}}} for a script of several digits)"
        return FormulaError(message, column=self.token.column)

    def reciprocal(self, divisor: sp.Expr, token: Token) -> sp.Expr:
        check_constant(divisor, token.column)
        # structural test: an assumption query could recurse deep into the divisor
        if divisor == 0:
            raise FormulaError("division by zero", column=token.column)
        return sp.Pow(divisor, -1)

    def starts_factor(self) -> bool:
        token = self.token
        if token.kind in ("number", "letters"):
            return True
        if token.kind == "op":
            return token.text in "([{"
        if token.kind != "command":
            return False
        name = token.text[1:]
        if name in _SIZES:
            return name in _OPEN_SIZES and self.peek().text in _CLOSE
        return name not in ("cdot", "times", "right", "prime")

    def factor(self, signed: bool) -> sp.Expr:
        negative = False
        while signed and (self.at("+") or self.at("-")):
            negative ^= self.advance().text == "-"
        value, scripted = self.atom()
        if self.at("^") and not scripted:
            caret = self.advance()
            value = _power(value, self.script_expression(), caret.column)
        if self.at("^"):
            raise self.error("expected an operator (double superscript)")
        if self.at("_"):
            raise self.error("a subscript must follow a name; expected an operator")
        if self.at("'"):
            raise FormulaError("a prime ' is only understood in \\sigma'(...)", column=self.token.column)
        return -value if negative else value

    def atom(self) -> tuple[sp.Expr, bool]:
        """An operand, and whether it has already read its own superscript."""
        token = self.token
        if token.kind == "number":
            self.advance()
            return _number(token), False
        if token.kind == "letters":
            return self.name()
        if self.at("{"):
            return self.braced("{"), False
        name = token.text[1:] if token.kind == "command" else ""
        if self.at("(") or self.at("[") or name == "left" or name in _OPEN_SIZES:
            return self.delimited(args=False)[0], False
        if name in ("frac", "dfrac", "tfrac"):
            return self.fraction(), False
        if name == "partial":
            self.advance()
            quantity = self.derivative_name()
            if not self.at("/"):
                raise self.error(f"expected '/' after '\\partial {quantity}'")
            self.advance()
            self.expect(r"\partial")
            return self.derivative(quantity, self.derivative_name(), token), False
        if name == "sum":
            return self.sum(), False
        if name == "sigma" and not self.sigma_applied():
            return self.name()
        if name in _FUNCTIONS:
            return self.function(), False
        if name in _GREEK or name in _DECORATIONS or name in _WORDS:
            return self.name()
        raise self.error("expected a name, a number or '('")

    def braced(self, label: str) -> sp.Expr:
        self.expect("{")
        self.enter()
        value = self.expression()
        self.expect("}", closing=label)
        self.depth -= 1
        return value

    def argument(self, label: str) -> sp.Expr:
        """The argument of `\\frac` or `\\sqrt`: braces, or one digit or letter as in `\\frac12`."""
        if self.at("{"):
            return self.braced(label)
        if self.token.kind == "number":
            return _number(self.first_char())
        if self.token.kind == "letters":
            return self.bare(self.first_char())
        raise self.error(f"expected '{{' after '{label[:-1]}'")

    def delimited(self, args: bool) -> list[sp.Expr]:
        """`( )`, `[ ]`, `\\left( \\right)` or a sized pair such as `\\bigl( \\bigr)`."""
        opener = self.advance()
        left = opener.text == r"\left"
        if opener.kind == "command":
            if self.token.text not in _CLOSE or self.token.kind != "op":
                raise self.error(f"expected '(' or '[' after '{opener.text}'")
            label = opener.text + self.advance().text
        else:
            label = opener.text
        close = _CLOSE[label[-1]]
        self.enter()
        items = [self.expression()]
        if not args and close == "]" and self.at("="):  # Iverson's bracket: [a^F_{1,11} = \max]
            items = [self.indicator(items[0])]
        while args and self.at(","):
            self.advance()
            items.append(self.expression())
        if left:
            if not (self.at(r"\right") and self.at(close, self.peek())):
                raise self.error(f"expected '\\right{close}' to close '{label}'")
            self.advance()
        elif self.token.text[1:] in _CLOSE_SIZES and self.at(close, self.peek()):
            self.advance()
        elif not self.at(close):
            raise self.error(f"expected '{close}' to close '{label}'")
        self.advance()
        self.depth -= 1
        return items

    def indicator(self, element: sp.Expr) -> sp.Expr:
        """`[a = \\max]`: 1 where a is the maximum of its pooling window, else 0 (`[a = a^P_{1,11}]` names the window)."""
        equals = self.advance()
        if self.at(r"\max"):
            self.advance()
            args = [element]
        elif self.token.kind in ("letters", "command") and not self.at("]"):
            args = [element, self.expression()]
        else:
            raise self.error("expected \\max (as in [a^F_{1,11} = \\max]) after '='")
        return self.call("ismax", args, Token("command", "[ = \\max]", equals.column))

    def fraction(self) -> sp.Expr:
        command = self.advance()
        label = command.text + "{"
        self.enter()  # counts twice: a fraction costs more Python frames than a bracket
        if self.at("{") and self.at(r"\partial", self.peek()):
            value = self.derivative_fraction(command, label)
        else:
            numerator = self.argument(label)
            token = self.token
            value = _bounded(sp.Mul(numerator, self.reciprocal(self.argument(label), token)), command.column)
        self.depth -= 1
        return value

    def derivative_fraction(self, command: Token, label: str) -> sp.Expr:
        self.enter()
        self.advance()  # '{'
        self.advance()  # '\partial'
        operand_follows = self.at("}")
        quantity = None if operand_follows else self.derivative_name()
        self.expect("}", closing=label)
        self.expect("{")
        self.expect(r"\partial")
        variable = self.derivative_name()
        self.expect("}", closing=label)
        if operand_follows:  # \frac{\partial}{\partial w} E
            quantity = self.factor(signed=False)
        self.depth -= 1
        return self.derivative(quantity, variable, command)

    def derivative_name(self) -> sp.Expr:
        token = self.token
        if token.kind == "letters" or token.text[1:] in set(_GREEK) | set(_DECORATIONS) | _WORDS:
            return self.name()[0]
        raise self.error("expected a name after '\\partial'")

    def derivative(self, quantity: sp.Expr, variable: sp.Expr, token: Token) -> sp.Expr:
        try:
            return self.vocabulary.function("D")([quantity, variable])
        except (ValueError, TypeError, LookupError) as exc:
            raise FormulaError(f"derivative: {_message(exc)}", column=token.column) from None

    # -- functions -------------------------------------------------------------------
    def sigma_applied(self) -> bool:
        """Whether `\\sigma` here is the activation applied (σ(z), σ'(z), σ^2(z)) or a name."""
        start = self.pos
        self.pos += 1
        try:
            if self.at("'"):
                return True
            if self.at("^"):
                following = self.peek()
                if self.at(r"\prime", following) or (self.at("{", following) and self.at(r"\prime", self.peek(2))):
                    return True
                self.advance()
                self.plain_script()  # skip it, to see whether a bracket follows
            return self.opens_bracket()
        finally:
            self.pos = start

    def opens_bracket(self) -> bool:
        name = self.token.text[1:]
        if self.at("(") or self.at("["):
            return True
        return (name == "left" or name in _OPEN_SIZES) and self.peek().text in _CLOSE

    def function(self) -> sp.Expr:
        command = self.advance()
        name = command.text[1:]
        power = None
        if name == "sigma" and self.at("'"):
            self.advance()
            name = "sigma_prime"
            if self.at("'"):
                raise FormulaError("only the first derivative \\sigma' is understood", column=self.token.column)
        elif name == "sigma" and self.at("^") and (self.at(r"\prime", self.peek()) or self.at("{", self.peek())
                                                   and self.at(r"\prime", self.peek(2))):
            self.advance()  # '^'
            if self.at("{"):
                self.advance()
                self.advance()  # \prime
                self.expect("}", closing="^{")
            else:
                self.advance()  # \prime
            name = "sigma_prime"
        elif self.at("^"):  # \tanh^2(z) is (tanh z)^2
            caret = self.advance()
            power = self.script_expression()
            if not (power.is_Integer and power > 0):
                raise FormulaError(f"expected a positive integer power of {command.text}", column=caret.column)
        if name == "sqrt":
            if self.at("["):
                raise FormulaError("\\sqrt[n]{...} is not supported (write x^{1/n})", column=self.token.column)
            self.enter()
            args = [self.argument(r"\sqrt{")]
            self.depth -= 1
        elif self.opens_bracket():
            self.enter()
            args = self.delimited(args=True)
            self.depth -= 1
        else:
            raise self.error(f"expected '(' after {command.text}")
        value = self.call(name, args, command)
        return value if power is None else _power(value, power, command.column)

    def call(self, name: str, args: list, token: Token) -> sp.Expr:
        try:
            return self.vocabulary.function(name)(args)
        except FormulaError as exc:
            if exc.column is not None:
                raise
            raise FormulaError(f"{token.text}: {exc.message}", column=token.column) from None
        except (ValueError, TypeError, LookupError) as exc:
            raise FormulaError(f"{token.text}: {_message(exc)}", column=token.column) from None

    # -- sums ------------------------------------------------------------------------
    def sum(self) -> sp.Expr:
        command = self.advance()
        self.enter()
        bounds: dict[str, object] = {}
        while (self.at("_") or self.at("^")) and self.token.text not in bounds:
            script = self.advance().text
            bounds[script] = self.lower_bound() if script == "_" else self.upper_bound()
        if len(bounds) != 2:
            raise self.error("expected the bounds of the sum, as in \\sum_{k=1}^{n},")
        index, first = bounds["_"]
        last = bounds["^"]
        if index in self.indices:
            raise FormulaError(f"the index {index} is already used by an outer sum", column=command.column)
        if isinstance(last, str):
            last = self.open_bound(index, first, last, command)
        count = last - first + 1
        if count < 1:
            raise FormulaError(f"empty sum: the upper bound {last} is below the lower bound {first}",
                               column=command.column)
        self.sum_terms += count
        if self.sum_terms > MAX_SUM_TERMS:
            raise FormulaError(f"the sums expand to more than {MAX_SUM_TERMS:,} terms", column=command.column)
        body, terms = self.pos, []
        for value in range(first, last + 1):
            self.indices[index] = value
            self.pos = body
            terms.append(self.product(signed=True))
        del self.indices[index]
        self.depth -= 1
        return sp.Add(*terms)

    def lower_bound(self) -> tuple[str, int]:
        self.expect("{")
        token = self.token
        if token.kind != "letters" or len(token.text) != 1:
            raise self.error("expected a one-letter index, as in \\sum_{k=1}")
        self.advance()
        self.expect("=")
        return token.text, self.bound(self.script_items, "lower bound")

    def upper_bound(self) -> int | str:
        """An integer, or a name: one [definitions] gives a whole number, or else an open bound (`n`)."""
        start, column = self.pos, self.token.column
        parts = self.plain_script()
        if parts is not None and len(parts) == 1 and len(parts[0]) == 1 and parts[0][0][0] in ("letter", "word"):
            text = parts[0][0][1]
            try:
                value = self.vocabulary.name(text)
            except LookupError:
                value = None
            if isinstance(value, sp.Integer):
                return int(value)
            if value is not None and value.is_number:
                raise FormulaError(f"the upper bound {text} of a sum is {value}, not a whole number", column=column)
            return text
        self.pos = start
        return self.bound(self.plain_script, "upper bound")

    def open_bound(self, index: str, first: int, bound: str, command: Token) -> int:
        """The symbolic upper bound `n` of `\\sum_{k=1}^{n}`: the last k for which the summand's names exist.

        The summand is read for k = first, first + 1, …; n is the last k at which every
        name that uses k exists. Where some of them exist at n + 1 and others do not,
        the bound is ambiguous and refused; so is a summand with no name using k.
        """
        body = self.pos
        value = first
        while True:
            if value - first >= MAX_SUM_TERMS:
                raise FormulaError(f"the sum up to {bound} would have more than {MAX_SUM_TERMS:,} terms",
                                   column=command.column)
            probe = _Probe(index)
            self.probes.append(probe)
            self.indices[index] = value
            self.pos = body
            try:
                self.product(signed=True)
            except FormulaError:
                if not probe.missing:  # a real error, not a consequence of an absent name
                    raise
            finally:
                self.probes.pop()
                del self.indices[index]
            outer = self.probes[-1] if self.probes else None
            if outer is not None and (not probe.missing or value == first):
                outer.records.extend(probe.records)  # what an outer bound learns from this reading
            where = f"\\sum_{{{index}={first}}}^{{{bound}}}"
            if probe.missing and probe.found:
                have = ", ".join(sorted(set(probe.found)))
                lack = ", ".join(sorted(set(probe.missing)))
                raise FormulaError(
                    f"{where}: the bound {bound} is ambiguous: at {index}={value} the network has {have} "
                    f"but not {lack}; write the bound as a number or define {bound} in [definitions]",
                    column=command.column,
                )
            if probe.missing:
                break
            if not probe.found:
                raise FormulaError(
                    f"{where}: no name in the summand uses {index}, so {bound} is unknown; write the bound "
                    f"as a number or define {bound} in [definitions]",
                    column=command.column,
                )
            value += 1
        if value == first:
            lack = ", ".join(sorted(set(probe.missing)))
            raise _Absent(f"{where}: the network has no {lack}", column=command.column)
        self.pos = body
        return value - 1

    def bound(self, read, what: str) -> int:
        column = self.token.column
        parts = read()
        value = _arithmetic(parts[0]) if parts is not None and len(parts) == 1 else None
        if value is None:
            raise FormulaError(f"the {what} of a sum must be an integer", column=column)
        return value

    # -- scripts ---------------------------------------------------------------------
    def plain_script(self) -> list[list[tuple[str, str]]] | None:
        """A script made only of letters, digits, words, `,` `+` `-`: its items, or None."""
        if self.at("{"):
            self.advance()
            return self.script_items()
        token = self.token
        if token.kind in ("number", "letters"):
            return [[self.item(self.first_char())]]
        if token.text[1:] in _GREEK and token.kind == "command":
            self.advance()
            return [[("word", _GREEK[token.text[1:]])]]
        return None

    def script_items(self) -> list[list[tuple[str, str]]] | None:
        parts: list[list[tuple[str, str]]] = [[]]
        while not self.at("}"):
            token = self.token
            name = token.text[1:] if token.kind == "command" else ""
            if token.kind == "letters":
                parts[-1].extend(self.item(Token("letters", c, token.column)) for c in token.text)
            elif token.kind == "number":
                parts[-1].append(("digits", token.text))
            elif self.at(",") or self.at("+") or self.at("-"):
                parts.append([]) if token.text == "," else parts[-1].append(("op", token.text))
            elif name in _GREEK:
                parts[-1].append(("word", _GREEK[name]))
            elif name in _WORDS:
                self.advance()
                parts[-1].append(("word", self.word()))
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
            if any(kind == "op" for kind, _ in part):
                value = _arithmetic(part)
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
        if token.kind == "command" and token.text[1:] in _GREEK:
            return self.bare(self.advance())
        raise self.error("expected '{' or a single character after '^'")

    # -- names -----------------------------------------------------------------------
    def word(self) -> str:
        """The letters and digits of `\\mathrm{out}` and friends (after the command)."""
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
        if command in _GREEK:
            return _GREEK[command], "greek", None
        if command in _WORDS:
            return self.word(), "word", None
        # a decoration: \hat y, \hat{y}, \hat{\theta}, \hat{y_1}
        suffix, inner_sub = _DECORATIONS[command], None
        if not self.at("{"):
            if self.token.kind != "letters" and self.token.text[1:] not in _GREEK:
                raise self.error(f"expected a letter after {token.text}")
            letter = self.advance() if self.token.kind == "command" else self.first_char()
            return _GREEK.get(letter.text[1:], letter.text) + suffix, "word", None
        self.advance()
        inner = self.token
        if inner.kind != "letters" and inner.text[1:] not in _GREEK:
            raise self.error(f"expected a letter after {token.text}{{")
        self.advance()
        if self.at("_"):
            self.advance()
            inner_sub = self.subscript()
        self.expect("}", closing=token.text + "{")
        return _GREEK.get(inner.text[1:], inner.text) + suffix, "word", inner_sub

    def subscript(self) -> list[list[str]]:
        column = self.token.column
        parts = self.plain_script()
        if parts is None:
            raise self.error("expected a subscript of letters and digits such as _1 or _{o1},")
        return self.pieces(parts, column, "subscript", strict=True)

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
        name = _Name(base, kind, first.column)
        base_end = self.pos
        sub_span = None
        while self.at("_") or self.at("^"):
            script = self.advance()
            if script.text == "_":
                if sub is not None:
                    raise FormulaError("double subscript", column=script.column)
                sub_start = self.pos
                sub = self.subscript()
                sub_span = (sub_start - 1, self.pos)
                continue
            if name.sup_span is not None:
                raise FormulaError("double superscript", column=script.column)
            if self.at("'") or self.at(r"\prime"):
                raise self.error("a prime is only understood in \\sigma'(...); expected an exponent")
            name.sup_column = script.column
            sup_start = self.pos
            parts = self.plain_script()
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
        name.sub = sub
        name.typed = self.source(start, self.pos)
        name.typed_without_sup = self.source(start, base_end) + (self.source(*sub_span) if sub_span else "")
        uses = {p.index for p in self.probes} & set(self.index_log[logged:])
        if uses:  # a name indexed by an open sum bound: whether it exists decides the bound
            tried: list[str] = []
            value = self.value(name, tried, [], whole=True)
            shown = str(value) if isinstance(value, sp.Symbol) else (tried[0] if tried else name.typed)
            self.probes[-1].records.append((shown, frozenset(uses), value is not None))
            return (sp.Dummy("absent") if value is None else value), True
        return self.resolve(name), True

    def resolve(self, name: _Name) -> sp.Expr:
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
        elif name.base == "sigma" and name.sub is None:
            message += "; to apply σ write \\sigma(...)"
        elif messages and messages[0] != f"unknown name '{tried[0]}'":
            hint = messages[0]
            prefix = f"unknown name '{tried[0]}'"
            message += " " + hint[len(prefix):].strip() if hint.startswith(prefix) else f": {hint}"
        raise FormulaError(message, column=name.column)

    def value(self, name: _Name, tried: list[str], messages: list[str], whole: bool) -> sp.Expr | None:
        """The name's value following the module's name rules, or None."""
        if whole and (found := self.mapped(name.typed, name.column)) is not None:
            return found
        if name.sub is not None and name.sup is not None and len(name.sup) == 1:
            layered = "_".join(_layer_parts(name.sub))
            bases = _BASE_ALIASES.get(name.base, (name.base,))
            found = self.lookup([b + "".join(name.sup[0]) + "_" + layered for b in bases], tried, messages)
            if found is not None:
                return found
        found = None
        if whole and name.sup_span is not None:
            found = self.mapped(name.typed_without_sup, name.column)
        if found is None and name.kind == "run" and name.base in self.indices and name.sub is None:
            found = sp.Integer(self.indices[name.base])
        if found is None:
            candidates = [c for b in _BASE_ALIASES.get(name.base, (name.base,)) for c in _candidates(b, name.sub)]
            found = self.lookup(candidates, tried, messages)
        if found is None and name.base == "e" and name.sub is None and name.sup_span is not None:
            return self.call("exp", [self.exponent(name)], Token("command", "e^", name.column))
        if found is None and name.kind == "run" and len(name.base) > 1:
            return self.split(name)
        if found is None or name.sup_span is None:
            return found
        return _power(found, self.exponent(name), name.sup_column)

    def split(self, name: _Name) -> sp.Expr | None:
        """`wx` as `w*x`: single letters, the scripts going to the last one."""
        factors = []
        for letter in name.base[:-1]:
            if letter in self.indices:
                factors.append(sp.Integer(self.indices[letter]))
            elif (found := self.lookup([letter], [], [])) is not None:
                factors.append(found)
            else:
                return None
        last = _Name(name.base[-1], "run", name.column, sub=name.sub, sup=name.sup, sup_span=name.sup_span,
                     sup_expr=name.sup_expr, sup_column=name.sup_column)
        found = self.value(last, [], [], whole=False)
        return None if found is None else sp.Mul(*factors, found)

    def exponent(self, name: _Name) -> sp.Expr:
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
        text = _GREEK.get(token.text[1:], token.text) if token.kind == "command" else token.text
        if text in self.indices:
            return sp.Integer(self.indices[text])
        found = self.mapped(token.text, token.column)
        if found is None:
            found = self.lookup([text], [], [])
        if found is None:
            raise FormulaError(f"unknown name '{text}'", column=token.column)
        return found

    def mapped(self, typed: str, column: int) -> sp.Expr | None:
        target = self.latex_names.get(_normal(typed))
        if target is None:
            return None
        try:
            return self.vocabulary.name(target)
        except LookupError as exc:
            raise FormulaError(f"latex_names maps '{typed}' to '{target}': {_message(exc)}", column=column) from None

    def lookup(self, candidates: list[str], tried: list[str], messages: list[str]) -> sp.Expr | None:
        for candidate in candidates:
            if candidate in tried:
                continue
            tried.append(candidate)
            try:
                return self.vocabulary.name(candidate)
            except LookupError as exc:
                messages.append(_message(exc))
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


def _arithmetic(part: list[tuple[str, str]]) -> int | None:
    """`k+1`, `-2`, `12`: integers (digits or sum indices) joined by + and -, else None."""
    total, sign, want_value = 0, 1, True
    for kind, text in part:
        if kind == "op":
            sign = (sign if want_value else 1) * (-1 if text == "-" else 1)
            want_value = True
        elif kind in ("digits", "index") and want_value and text.lstrip("-").isdigit():
            if len(text) > MAX_INDEX_DIGITS:
                return None
            total += sign * int(text)
            sign, want_value = 1, False
        else:
            return None
    return None if want_value else total


def _bounded(value: sp.Expr, column: int) -> sp.Expr:
    """Refuse a product whose number would be huge (9^{64} 9^{64} ...), as `_power` does for powers."""
    number = value.as_coeff_Mul()[0]
    if number.is_Rational and max(abs(number.p), number.q).bit_length() > MAX_EXACT_DIGITS * 3.33:
        raise FormulaError(f"a number in the formula would have more than {MAX_EXACT_DIGITS:,} digits", column=column)
    return value


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
