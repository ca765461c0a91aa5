"""User text into TeX, safely: escaping, and which math a user may write.

Three kinds of text enter a report, and each has one way in:

* `escape(text)`: any string from a user (a name, a title, a claim as typed,
  a file name) becomes TeX that prints it literally. One character at a time,
  so that `\\` → `\\textbackslash{}` is never re-escaped by a later rule.
* `Tex`: a `str` that is already TeX, made only by our code (SymPy's printer
  over validated names, our templates' own macros). Templates print it as is;
  everything else is escaped (see `finalize` in report/render.py).
* `math_or_text(tex)`: TeX a user wrote for math (a `[latex]` name, a formula
  set's display form): kept when `is_safe_math` accepts it, otherwise shown as
  escaped typewriter text.

Which math a user may write in LaTeX (a `[latex]` name, a formula set's display form).

`is_safe_math(tex)` accepts a string only when it is *safe* (every command on
a whitelist of math commands that the report preamble defines, nothing that
reads files, defines macros or changes catcodes) and *compiles* in math mode:
braces balanced, `\\left`/`\\right` paired in the same group, `\\middle` only
between them, `\\big` and friends followed by a delimiter, no double
superscript or subscript (a prime `'` is a superscript), no `^` or `_` or
command without its argument, an unbraced argument only a character or a
command TeX accepts there, `\\text{…}` holding plain text only. Anything it
rejects is shown as literal text instead (see `math_or_text`).

It is a small recursive-descent parser over the string, never TeX itself.
With `name=True` (a symbol's name) the string must also take a superscript
after it, as SymPy prints `x**2` as `<name>^{2}` (SymPy brackets a name that
holds a `^` itself).
"""

from __future__ import annotations

import re
import unicodedata

MAX_MATH = 500

GREEK = frozenset(
    """
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi varpi
    rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma
    Upsilon Phi Psi Omega
    """.split()
)
# Single math characters (\mathchar or \delimiter): also valid as an unbraced argument, x^\alpha.
MATH_CHARS = GREEK | frozenset(
    """
    partial nabla prime ell infty cdot times odot otimes circ pm mp leq geq le ge approx equiv sim to in
    subset cup cap top intercal
    """.split()
)
# Symbols defined as macros: fine on their own, not as an unbraced argument (x^\neq fails).
MACRO_SYMBOLS = frozenset("cdots ldots dots vdots ddots neq ne mapsto notin".split())
LARGE_OPERATORS = frozenset("sum prod int".split())
OPERATOR_NAMES = frozenset("exp log ln max min tanh sin cos".split())
SPACES = frozenset("quad qquad".split())
ONE_ARGUMENT = frozenset(
    """
    hat bar tilde vec dot ddot breve check widehat widetilde overline underline
    mathrm mathbf mathit mathsf mathtt mathcal mathbb boldsymbol
    """.split()
)
TWO_ARGUMENTS = frozenset("frac dfrac tfrac".split())
TEXT_ARGUMENT = frozenset("text textrm textit textbf operatorname".split())
SIZED = frozenset("big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr".split())
DELIMITER_COMMANDS = frozenset("langle rangle lfloor rfloor lceil rceil lvert rvert lVert rVert vert Vert".split())
DELIMITER_CHARS = frozenset("()[]./|")
# Every command a user's math may hold (for the record; the parser checks each group).
MATH_COMMANDS = (
    MATH_CHARS | MACRO_SYMBOLS | LARGE_OPERATORS | OPERATOR_NAMES | SPACES | ONE_ARGUMENT | TWO_ARGUMENTS
    | TEXT_ARGUMENT | SIZED | DELIMITER_COMMANDS | frozenset("sqrt left right middle".split())
)

_FORBIDDEN = set("$%#&~")
# characters that are one math atom; also an unbraced argument (x^+, \hat x)
_ATOM_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-*/=<>()[]|.,;:!?@\"`")
_TEXT = re.compile(r"\{[A-Za-z0-9 .,:;()!?+=*/-]*\}")
_NAME_TEXT = re.compile(r"\{[A-Za-z0-9 -]*\}")
_SQRT_INDEX = re.compile(r"\[[A-Za-z0-9+\- ]*\]")
_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.S)


class _Reject(Exception):
    pass


class _Nucleus:
    """The scripts already attached to the current atom."""

    __slots__ = ("sup", "sub", "primes")

    def __init__(self):
        self.sup = self.sub = self.primes = False


def is_safe_math(tex: str, *, name: bool = False) -> bool:
    if not isinstance(tex, str) or not tex.strip() or len(tex) > MAX_MATH or "^^" in tex:
        return False
    if any(ch in _FORBIDDEN or not " " <= ch <= "~" for ch in tex):
        return False
    parser = _Parser(tex)
    try:
        last = parser.items(None)
    except (_Reject, RecursionError):
        return False
    if name and "^" not in tex and last.sup and not last.primes:
        return False  # x'_1 then ^{2}: a double superscript
    return True


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.i = 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def command(self) -> str:
        match = _COMMAND.match(self.text, self.i)
        if match is None:
            raise _Reject
        self.i = match.end()
        return match.group(1)

    def items(self, closer: str | None) -> _Nucleus:
        """A math list up to `closer` ("}" or "right", consumed) or the end (None)."""
        atom = _Nucleus()
        while True:
            self.skip_spaces()
            ch = self.peek()
            if not ch:
                if closer is not None:
                    raise _Reject
                return atom
            if ch == "}":
                if closer != "}":
                    raise _Reject
                self.i += 1
                return atom
            if ch in "^_":
                self.i += 1
                self.script(atom, ch)
                self.argument()
                continue
            if ch == "'":
                self.i += 1
                if not atom.primes:
                    if atom.sup:
                        raise _Reject
                    atom.sup = atom.primes = True
                continue
            atom.primes = False
            if ch == "{":
                self.i += 1
                self.items("}")
                atom = _Nucleus()
                continue
            if ch == "\\":
                word = self.command()
                if word == "right":
                    if closer != "right":
                        raise _Reject
                    self.delimiter()
                    return atom
                atom = self.command_body(word, closer)
                continue
            if ch in _ATOM_CHARS:
                self.i += 1
                atom = _Nucleus()
                continue
            raise _Reject

    def script(self, atom: _Nucleus, ch: str) -> None:
        if ch == "^":
            if atom.sup and not atom.primes:
                raise _Reject  # x^a^b (x'^a is one superscript)
            atom.sup = True
        else:
            if atom.sub:
                raise _Reject
            atom.sub = True
        atom.primes = False

    def argument(self) -> None:
        """One argument: a group, a character or a math character command (x^\\alpha)."""
        self.skip_spaces()
        ch = self.peek()
        if ch == "{":
            self.i += 1
            self.items("}")
        elif ch == "\\":
            if self.command() not in MATH_CHARS:
                raise _Reject
        elif ch in _ATOM_CHARS:
            self.i += 1
        else:
            raise _Reject

    def delimiter(self) -> None:
        self.skip_spaces()
        ch = self.peek()
        if ch == "\\":
            word = self.command()
            if word not in DELIMITER_COMMANDS and word not in ("{", "}", "|"):
                raise _Reject
        elif ch in DELIMITER_CHARS:
            self.i += 1
        else:
            raise _Reject

    def braced_text(self, pattern: re.Pattern) -> None:
        self.skip_spaces()
        match = pattern.match(self.text, self.i)
        if match is None:
            raise _Reject
        self.i = match.end()

    def command_body(self, word: str, closer: str | None) -> _Nucleus:
        """What follows `\\word`; a fresh atom (scripts after it attach to it)."""
        if word in (",", ";", ":", "!") or word in SPACES:
            return _Nucleus()
        if word in ("{", "}", "|", "_") or word in MATH_CHARS or word in MACRO_SYMBOLS:
            return _Nucleus()
        if word in LARGE_OPERATORS or word in OPERATOR_NAMES or word in DELIMITER_COMMANDS:
            return _Nucleus()
        if word in ONE_ARGUMENT:
            self.argument()
        elif word in TWO_ARGUMENTS:
            self.argument()
            self.argument()
        elif word == "sqrt":
            self.skip_spaces()
            if self.peek() == "[":
                match = _SQRT_INDEX.match(self.text, self.i)
                if match is None:
                    raise _Reject
                self.i = match.end()
            self.argument()
        elif word in TEXT_ARGUMENT:
            self.braced_text(_NAME_TEXT if word == "operatorname" else _TEXT)
        elif word in SIZED:
            self.delimiter()
        elif word == "left":
            self.delimiter()
            self.items("right")
        elif word == "middle":
            if closer != "right":
                raise _Reject
            self.delimiter()
        else:
            raise _Reject
        return _Nucleus()


def symbol_latex(name: str) -> str:
    """How a free-form name without a `[latex]` entry prints: SymPy's spelling (`alpha` → \\alpha,
    `what` → \\hat{w}, `w_1` → w_{1}), with the primes SymPy writes before a subscript
    (`wprime_1` → {w}'_{1}) spelled as a superscript ^{\\prime}, merged with one that follows:
    SymPy then brackets the name in a power, where `{w}'_{1}^{2}` is a double superscript."""
    import sympy as sp

    tex = sp.latex(sp.Symbol(name))
    out, i = [], 0
    while i < len(tex):
        if tex[i] != "'":
            out.append(tex[i])
            i += 1
            continue
        j = i
        while j < len(tex) and tex[j] == "'":
            j += 1
        primes = r"\prime" * (j - i)
        if tex.startswith("^{", j):
            depth, k = 0, j + 1
            while k < len(tex):
                depth += {"{": 1, "}": -1}.get(tex[k], 0)
                if depth == 0:
                    break
                k += 1
            out.append(f"^{{{primes} {tex[j + 2 : k]}}}")
            i = k + 1
        else:
            out.append(f"^{{{primes}}}")
            i = j
    return "".join(out)


# ---------------------------------------------------------------------------
# Escaping: every user string printed literally
# ---------------------------------------------------------------------------

class Tex(str):
    """A string that is already TeX, from our own code: printed without escaping."""

    __slots__ = ()


_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    # Characters TeX's fonts turn into other glyphs, alone or as ligatures
    # (`` '' -- --- ,, !` ?`): spelled so that each prints as typed.
    "`": r"\textasciigrave{}",
    "'": r"\textquotesingle{}",
    "-": "-{}",
    ",": ",{}",
    "\n": " ",
    "\t": " ",
    # Symbols users type in names and notes; each becomes TeX any engine reads.
    "−": r"\ensuremath{-}",
    "×": r"\ensuremath{\times}",
    "·": r"\ensuremath{\cdot}",
    "⋅": r"\ensuremath{\cdot}",
    "∂": r"\ensuremath{\partial}",
    "∑": r"\ensuremath{\sum}",
    "Σ": r"\ensuremath{\Sigma}",
    "Δ": r"\ensuremath{\Delta}",
    "∇": r"\ensuremath{\nabla}",
    "⊙": r"\ensuremath{\odot}",
    "→": r"\ensuremath{\to}",
    "←": r"\ensuremath{\leftarrow}",
    "↦": r"\ensuremath{\mapsto}",
    "≤": r"\ensuremath{\le}",
    "≥": r"\ensuremath{\ge}",
    "≠": r"\ensuremath{\ne}",
    "≈": r"\ensuremath{\approx}",
    "±": r"\ensuremath{\pm}",
    "√": r"\ensuremath{\surd}",
    "∞": r"\ensuremath{\infty}",
    "′": r"\ensuremath{'}",
    "ᵀ": r"\ensuremath{^{\mathsf{T}}}",
    "²": r"\ensuremath{^2}",
    "³": r"\ensuremath{^3}",
    "½": r"\ensuremath{\tfrac12}",
    "…": r"\ldots{}",
    "⋮": r"\ensuremath{\vdots}",
    "–": "--",
    "—": "---",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "✓": r"\ensuremath{\checkmark}",
    "✗": r"\ensuremath{\times}",
    "é": r"\'e",
    "è": r"\`e",
    "ü": r"\"u",
    "ö": r"\"o",
    "ä": r"\"a",
}
_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi",
    "ρ": "rho", "σ": "sigma", "ς": "varsigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi",
    "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi",
    "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega",
}
_TEXT_ESCAPES.update({c: rf"\ensuremath{{\{name}}}" for c, name in _GREEK.items()})

MAX_TEXT = 4000  # characters of one user string shown in a report; the rest is elided


def escape(text: object) -> Tex:
    """`text` as TeX that prints it literally, whatever it holds.

    Characters with no TeX spelling here (Chinese, Cyrillic, emoji, …) are kept:
    they make the document need XeLaTeX (see `needs_unicode_engine`), where
    xeCJK and a fallback font print them. Control characters are dropped.
    """
    text = str(text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    out = []
    for ch in text:
        mapped = _TEXT_ESCAPES.get(ch)
        if mapped is not None:
            out.append(mapped)
        elif ch < " " or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return Tex("".join(out))


def needs_unicode_engine(tex: str) -> bool:
    """Whether the document holds characters pdfLaTeX cannot typeset (after escaping)."""
    return any(ord(ch) > 127 for ch in tex)


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFE30 <= code <= 0xFE4F
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FA1F
    )


def wrap_fallback(tex: str) -> Tex:
    """Non-ASCII, non-CJK characters wrapped in the fallback font (XeLaTeX only)."""
    return Tex(re.sub(r"[^\x00-\x7f]+", lambda m: _fallback_run(m.group(0)), tex))


def _fallback_run(run: str) -> str:
    out, pending = [], []
    for ch in run:
        if is_cjk(ch):
            if pending:
                out.append(r"{\fallbackfont " + "".join(pending) + "}")
                pending = []
            out.append(ch)
        else:
            pending.append(ch)
    if pending:
        out.append(r"{\fallbackfont " + "".join(pending) + "}")
    return "".join(out)


# ---------------------------------------------------------------------------
# Math a user wrote: a whitelist of commands, or literal text
# ---------------------------------------------------------------------------

def math_or_text(tex: str, *, name: bool = True) -> Tex:
    """User-written math kept as math when it is safe and compiles, else shown as literal typewriter text.

    The rules are `is_safe_math`'s: every `\\command` on a whitelist of
    math commands the preamble defines, balanced groups, no double scripts, no
    `$ % # & ~`, no `^^`, short. `name`: the text names one symbol (a
    `[latex]` name), so it must also take a superscript (`x**2`); a formula
    set's display form passes `name=False`.
    """
    if is_safe_math(tex, name=name):
        return Tex(tex)
    return Tex(r"\text{\ttfamily " + escape(tex) + "}")
