r"""Read the LaTeX students type for gradient formulas, by whitelist.

Nothing here calls `eval`, `exec`, `sympify`, `parse_expr` or SymPy's
`parse_latex`: a hand-written tokenizer and recursive-descent parser accept a
fixed set of commands and refuse everything else with a `FormulaError` that
gives the 1-based column. Numbers, exponents and nesting are bounded as in
`derive.parser`; sums are expanded and bounded too.

The reader is split by idea: `latex_tokens` (the whitelist of commands, the
tokenizer, the depth and step budgets), `latex_names` (names and scripts),
`latex_sums` (sums and their bounds) and `latex_grammar` (the parser of the
grammar below); this module holds the entry points.

Grammar (spaces, `~`, `\, \; \: \! \> \quad \qquad \displaystyle`, `\limits`
and the font switch `\cal` are ignored; `*`, `\cdot`, `\times` and the elementwise
`\odot`, `\circ`, `\bullet` are the same operator, a product in a scalar formula):

    expression := ('+'|'-')* product (('+'|'-') ('+'|'-')* product)*
    product    := factor ((op | '/') ('+'|'-')* factor | factor)*   (a factor
                  after a factor is an implicit product; `/` is left-associative)
    factor     := atom ('^' script)?
    script     := '{' expression '}' | one digit | one letter | one Greek command
    atom       := NUMBER | name | '(' expression ')' | '[' expression ']'
                | '\left(' expression '\right)' | '\bigl(' ... '\bigr)' (any size)
                | '[' expression '=' '\max' ']' | '[' expression '=' name ']'  (also with
                  '\left[' ... '\right]': the max-pool indicator, the vocabulary's `ismax`)
                | '{' expression '}' | '\frac' arg arg (also \dfrac, \tfrac)
                | function | derivative | sum
    op         := '*' | '\cdot' | '\times' | '\odot' | '\circ' | '\bullet'
    function   := ('\exp'|'\ln'|'\log'|'\tanh'|'\max'|'\min'|'\sigma') ('^' n)?
                  bracketed-arguments | "\sigma'" (...) | '\sigma^{\prime}' (...)
                | letter ("'" | '^\prime' | '^{\prime}') (...)   (any letter or Greek
                  command: f'(z), g^{\prime}(z), a'(z), \phi'(z): the activation's derivative)
                | '\dot{\sigma}' (...) | ('f'|'g') (...)   (f, g: when not a name)
                | '\sqrt' arg
    derivative := '\frac{\partial' operand '}{\partial' name '}'
                | '\frac{\partial}{\partial' name '}' product   (the whole product
                  that follows, up to the next top-level + or -)
                | '\partial' operand '/' '\partial' name
    operand    := name | bracketed expression ('^' script)?    (\partial (t - a)^2)
    sum        := '\sum_{k=' int '}^{' (int | name) '}' product     (either script first)
                | '\sum_' letter product | '\sum_{' letter (',' letter)* '}' product
                  (no bounds: each index from 1, as far as the names go; `\sum_{i,j}`
                  is `\sum_i \sum_j`)

`\frac12`, `x^2` and `w_1` take a single character, as TeX does, so `x^23`
and `w_12` are refused (two numbers in a row): write `x^{23}`, `w_{12}`.
`a / 2 b` is `(a/2)*b`, as in SymPy. Derivatives map to the vocabulary's
function `D`, `\sigma'`, `f'`, `\dot{\sigma}` and `\sigma^{\prime}` to `sigma_prime`, `\tanh^2(z)` to
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
  optional subscript and an optional superscript, in either order. A subscript
  may hold a subscript of its own (`E_{o_1}` is `Eo1` or `E_o1`).
* `\mathcal{C}`, `\mathcal C` and `{\cal C}` are the name C.
* `latex_names` is consulted first: its keys are compared with the name as
  typed after removing whitespace and the braces of one-character scripts
  (`x_{1}` matches `x_1`).
* With a subscript and a superscript (`w^2_{13}`, `w_{1,3}^{2}`,
  `\delta^2_1`) the first candidate is the layered name base + sup + '_' +
  the subscript's parts joined by '_': `w2_1_3`. The parts are the
  comma-separated pieces (`12,3` gives `12_3`) or, for a subscript of digits
  only, each digit (`13` gives `1_3`).
* A superscript of letters then digits is a lettered layer and a number, the
  book's CNN labels: `z^{F1}_{11}` tries zF1_1_1, then zF_1_1_1; with such a
  layer a subscript `1-11` may be the book's separator (`w^{O1}_{1-11}` is
  wO_1_1_11), tried after the minus (1 − 11); both existing is refused. A
  subscript of digits tries each digit (`a^1_{12}` is a1_1_2) and then the
  whole number (a1_12); both existing, differently, is refused.
* A layer label, `^{(l)}`, `^{[l]}`, `^{(2)}` or `_{(l)}` (`a_{(2)1}`), is only
  ever a layer: `a^{(2)}_1` and `a^{[2]}_1` are the layered name a2_1, as
  `a^2_1` is; the label may use bound indices (`^{(l+1)}`). No layered name,
  no subscript, or another superscript besides the label is refused: the
  power of a labelled name is `(a^{(l)}_j)^2`.
* Where the network has no layered name for the base (a free-form network), a
  label on a named unit (`out_{h1}^{(2)}`) is checked against the unit's layer
  in the graph (inputs layer 1, each weighted sum one layer deeper): the unit
  when they agree, refused with its layer when not (`latex_examples`).
* The example index (a claims file's `example = "x"`): `a^{x,l}_j` is `a^l_j`
  (the layer a label), `a^{[l](i)}_j` is `a^{[l]}_j`, `y^{(i)}_j` is `y_j`, and
  `C_x`, `E_k` are the cost. Undeclared, these are refused saying to declare
  it; declared, the letter anywhere else (`x_k`, `\sum_k`) is refused.
* `E_{total}` is the cost named E, and `C_0` the cost named C, where no such
  name exists (after `latex_names`).
* Otherwise, or if the vocabulary knows no layered name, the superscript is a
  power of the subscripted name (`x_1^2` is `x1**2`), whose candidates are
  base + sub and base + '_' + sub (`\delta_{o1}`: `deltao1`, `delta_o1`);
  with commas (`w_{12,3}`) base + parts joined by '_' (`w12_3`), base + '_' +
  that (`w_12_3`) and, if every part is one character, the parts run together.
  But where the base names layered units (the vocabulary has a2_1 or aF_1_11
  for `a`), a layer could be meant: the power is refused with both readings.
* `t` is tried as `y` where the vocabulary has no `t` name: the book's target.
* A letter run the vocabulary does not know as a whole is split into single
  letters, each a known name, the scripts attaching to the last one: `wx`
  is `w*x`. Letters typed right before digits (`w5`) must be a known name as
  a whole: `w5` is refused unless `w5` is a name (write `w_5` or `w \cdot 5`).
* A letter run (or `\operatorname{}` word) of two letters or more that names a
  vocabulary function and is followed by a bracket is a call: `relu(z_1)`,
  `\operatorname{sigmoid}(z)`. A single letter before a bracket is a
  product: `x(1-x)`, except `f` and `g` where the vocabulary knows no such
  name: `f(z)` is the activation. `\sigma` followed by a bracket, `'` or
  `^{\prime}` is the activation; otherwise it is the name `sigma`.
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
* `\sum_k`, `\sum_{k}` and `\sum_{i,j}` have no bounds: each index runs from
  1 as far as the summand's names exist, measured as for `\sum_{k=1}^{n}`,
  and refused in the same cases.
* `'` is only understood right after a letter applied to a bracket (`f'(z)`).

Refused on purpose: `\sqrt[n]{}`, `\ln x` without brackets, second
derivatives, `|x|`, `\{ \}`, unicode symbols, `$`, `%`, `#`, `&` and every
command not listed here.
"""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.errors import FormulaError
from derive.graph.parser import Vocabulary
from derive.claims.latex_grammar import FormulaParser
from derive.claims.latex_tokens import MAX_STEPS, NormalNames, tokenize

__all__ = ["NormalNames", "parse_latex", "parse_latex_counted"]


def parse_latex(text: str, vocabulary: Vocabulary, latex_names: Mapping[str, str] | None = None) -> sp.Expr:
    """Parse a LaTeX formula into a SymPy expression over `vocabulary`'s names, or raise FormulaError."""
    return parse_latex_counted(text, vocabulary, latex_names)[0]


def parse_latex_counted(
    text: str,
    vocabulary: Vocabulary,
    latex_names: Mapping[str, str] | None = None,
    *,
    max_steps: int = MAX_STEPS,
    indices: Mapping[str, int] | None = None,
    example: str | None = None,
) -> tuple[sp.Expr, int]:
    """parse_latex, reading at most `max_steps` tokens, and how many it read (a caller's running allowance).

    `indices` binds free index letters to values, as an enclosing sum binds its
    index (`\\delta^l_j` with l=2, j=1 is `delta2_1`): one instance of a claim
    written for every index. `example` is the claims file's example index
    (`derive.claims.latex_examples`): `a^{x,l}_j` is `a^l_j`, `C_x` the cost.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, not {type(text).__name__}")
    if not text.strip():
        raise FormulaError("empty formula")
    parser = FormulaParser(text, tokenize(text), vocabulary, latex_names or {}, max_steps=min(max_steps, MAX_STEPS))
    parser.indices.bind_free(indices or {})
    parser.example = example
    try:
        return parser.parse(), parser.steps
    except RecursionError:
        # Backstop only: the depth limit stops our own recursion first, but SymPy's
        # assumption queries on a deep expression recurse on their own.
        raise FormulaError("formula is nested too deeply", column=parser.token.column) from None
