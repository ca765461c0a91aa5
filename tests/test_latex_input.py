r"""The LaTeX reader: the notation students type, the names it builds, and its refusals and bounds."""

import ast
import time
from pathlib import Path

import pytest
import sympy as sp

from derive.graph import functions as fn
from derive.errors import FormulaError
from derive.claims.latex import parse_latex
from derive.graph.parser import MAX_LENGTH, Vocabulary

NAMES = (
    "x1 x2 x3 y1 y2 w1 w2 w3 w4 w5 w6 w7 w8 b1 b2 outh1 outh2 outo1 outo2 neto1 neto2"
    " eta theta1 gamma1 yhat1 delta_o1 g1 e1 w2_1_3 a2_1 z2_1 a1_3 delta2_1 E"
).split()
S = {name: sp.Symbol(name, real=True) for name in NAMES}
D = sp.Function("D")
VOCABULARY = Vocabulary(S, extra_functions={"D": lambda args: D(*args)})

x1, x2, x3, y1, w1, w2, w3, w5, b1 = (S[n] for n in "x1 x2 x3 y1 w1 w2 w3 w5 b1".split())
outo1, E = S["outo1"], S["E"]


def parse(text, **kwargs):
    return parse_latex(text, VOCABULARY, **kwargs)


@pytest.mark.parametrize(
    "text, expected",
    [
        # the examples
        (r"(out_{o1} - y_1)\, out_{o1} (1 - out_{o1})", (outo1 - y1) * outo1 * (1 - outo1)),
        (r"\frac{\partial E}{\partial w_5}", D(E, w5)),
        (r"\dfrac{\partial E}{\partial w_5} + \tfrac{\partial E}{\partial w_1}", D(E, w5) + D(E, w1)),
        (r"\partial E / \partial w_5", D(E, w5)),
        (r"\frac{\partial}{\partial w_5} E", D(E, w5)),
        (r"\eta\, g_1 b_1", S["eta"] * S["g1"] * b1),
        (r"\sum_{k=1}^{2} w_k x_k", w1 * x1 + w2 * x2),
        (r"\sigma'(z^2_1)", fn.sigma_prime(S["z2_1"])),
        (r"e^{-x_1}", sp.exp(-x1)),
        (r"\frac{1}{1+e^{-x_1}}", 1 / (1 + sp.exp(-x1))),
        (r"w^2_{13} a^{1}_{3}", S["w2_1_3"] * S["a1_3"]),
        # operators and numbers
        (r"x_1 \cdot x_2 \times x_3 * 2 / y_1", x1 * x2 * x3 * 2 / y1),
        (r"x_1 / 2 x_2", x1 / 2 * x2),  # `/` is left-associative, as in SymPy
        (r"-x_1^2", -(x1**2)),
        (r"-x_1 \cdot -x_2", x1 * x2),
        (r"0.5 x_1 + 0.05", x1 / 2 + sp.Rational(1, 20)),  # exact
        (r"\frac{1}{2} x_1 + \frac12 x_2", x1 / 2 + x2 / 2),
        (r"{x_1 + x_2}^2", (x1 + x2) ** 2),
        (r"x_1^{2} + x_{1}^2 + x_1^2", 3 * x1**2),
        (r"x^2_1", x1**2),  # x2_1 is not a name: the superscript is a power
        (r"2^{10}", sp.Integer(1024)),
        # implicit products and brackets
        (r"2 x_1", 2 * x1),
        (r"w_5 \delta_{o1}", w5 * S["delta_o1"]),
        (r"(x_1)(x_2)", x1 * x2),
        (r"x_1(1-x_1)", x1 * (1 - x1)),
        (r"\left[ x_1 + 2 \right] \left( x_2 \right)", (x1 + 2) * x2),
        (r"\bigl( x_1 \bigr) \Big( x_2 \Big) \biggl[ x_3 \biggr] \Bigg( y_1 \Bigg)", x1 * x2 * x3 * y1),
        (r"[x_1 - x_2]", x1 - x2),
        (r"x_1 \, \; \: \! \quad \qquad ~ x_2", x1 * x2),
        # names
        (r"\eta", S["eta"]),
        (r"\theta_1 \gamma_1", S["theta1"] * S["gamma1"]),
        (r"\delta_{o1}", S["delta_o1"]),
        (r"\hat{y}_1", S["yhat1"]),
        (r"\hat{y_1}", S["yhat1"]),
        (r"\hat y_1", S["yhat1"]),
        (r"out_{h1} + out_{h2} + net_{o2}", S["outh1"] + S["outh2"] + S["neto2"]),
        (r"\mathrm{out}_{o1} + \text{out}_{o1}", 2 * outo1),
        (r"outo1", outo1),  # letters and digits typed together: the name if it exists
        (r"e_1", S["e1"]),
        (r"w_{13}^{2}", S["w2_1_3"]),
        (r"w^{2}_{1,3}", S["w2_1_3"]),
        (r"\delta^2_1 + \delta^{2}_{1}", 2 * S["delta2_1"]),
        (r"a^{2}_{1} z^2_1", S["a2_1"] * S["z2_1"]),
        # functions
        (r"\sigma(x_1)", fn.sigma(x1)),
        (r"\sigma^{\prime}(x_1) + \sigma^\prime\left(x_2\right)", fn.sigma_prime(x1) + fn.sigma_prime(x2)),
        (r"\sigma(x_1)(1 - \sigma(x_1))", fn.sigma(x1) * (1 - fn.sigma(x1))),
        (r"\exp(x_1) + \ln(x_2) + \log\left(x_3\right)", sp.exp(x1) + sp.log(x2) + sp.log(x3)),
        (r"1 - \tanh^2(x_1)", 1 - sp.tanh(x1) ** 2),
        (r"\sqrt{x_1} + \sqrt2", sp.sqrt(x1) + sp.sqrt(2)),
        (r"\max(x_1, 0) + \min\bigl(x_1, x_2\bigr)", sp.Max(x1, 0) + sp.Min(x1, x2)),
        (r"relu(x_1) + \operatorname{sigmoid}(x_2)", fn.relu(x1) + fn.sigmoid(x2)),
        # sums
        (r"\sum_{k=1}^{3} w_k x_k", w1 * x1 + w2 * x2 + w3 * x3),
        (r"\sum_{k=1}^{2} w_k x_k + b_1", w1 * x1 + w2 * x2 + b1),  # the sum binds the product
        (r"2 \sum_{k=1}^{2} x_k", 2 * (x1 + x2)),
        (r"\sum^{2}_{k=1} x_k", x1 + x2),
        (r"\sum\limits_{k=1}^{2} x_k", x1 + x2),
        (r"\sum_{j=1}^{2} \sum_{k=1}^{2} w_j x_k", w1 * x1 + w1 * x2 + w2 * x1 + w2 * x2),
        (r"\sum_{k=3}^{3} w^{2}_{1k}", S["w2_1_3"]),
        (r"\sum_{k=1}^{2} w_{k+1}", w2 + w3),
        (r"\sum_{k=1}^{3} k x_k", x1 + 2 * x2 + 3 * x3),
    ],
)
def test_accepts_the_notation_students_type(text, expected):
    assert parse(text) == expected


def test_letter_runs_are_split_only_when_unknown_as_a_whole():
    w, x, y, wy = sp.symbols("w x y wy")
    vocabulary = Vocabulary({"w": w, "x": x, "y": y, "wy": wy, "x1": x1})
    assert parse_latex("wx", vocabulary) == w * x
    assert parse_latex("wy", vocabulary) == wy
    assert parse_latex("wx_1", vocabulary) == w * x1  # the subscript goes to the last letter
    assert parse_latex("wx^2", vocabulary) == w * x**2
    with pytest.raises(FormulaError, match=r"unknown name 'wz' \(tried wz\)"):
        parse_latex("wz", vocabulary)


def test_latex_names_come_first():
    names = {"t_{1}": "y1", r"E_{\text{total}}": "E", "y_{ pred }": "yhat1"}
    assert parse(r"t_1 - y_{pred}", latex_names=names) == y1 - S["yhat1"]
    assert parse(r"\frac{\partial E_{\text{total}}}{\partial w_5}", latex_names=names) == D(E, w5)
    assert parse(r"t_{1}^2", latex_names=names) == y1**2
    with pytest.raises(FormulaError, match="maps 'q' to 'nothing'"):
        parse("q", latex_names={"q": "nothing"})


def test_lambda_tries_sympys_spelling():
    lmbda = sp.Symbol("lmbda")
    assert parse_latex(r"\frac{\lambda}{2}", Vocabulary({"lmbda": lmbda})) == lmbda / 2


def test_e_is_a_name_when_the_vocabulary_has_one():
    e = sp.Symbol("e")
    assert parse_latex("e^{x_1}", Vocabulary({"e": e, "x1": x1})) == e**x1


def test_the_vocabularys_explanation_is_kept():
    def unknown(name):
        raise LookupError(f"unknown name '{name}' (the network's names: x1, x2)")

    with pytest.raises(FormulaError) as info:
        parse_latex("out_{o9}", Vocabulary({}, unknown_name=unknown))
    assert str(info.value) == "column 1: unknown name 'out_{o9}' (tried outo9, out_o9) (the network's names: x1, x2)"


def test_builder_errors_have_a_column():
    def derivative(args):
        raise ValueError("the second argument must be a name of the network")

    vocabulary = Vocabulary(S, extra_functions={"D": derivative})
    with pytest.raises(FormulaError) as info:
        parse_latex(r"x_1 + \frac{\partial E}{\partial x_1}", vocabulary)
    assert info.value.column == 7
    assert "must be a name of the network" in str(info.value)


@pytest.mark.parametrize(
    "text, column, message",
    [
        (r"\frac{1", 8, r"expected '}' to close '\frac{' but found the end of the formula"),
        (r"\frac{x_1}{x_2", 15, r"expected '}' to close '\frac{' but found the end of the formula"),
        (r"{x_1 + x_2", 11, "expected '}' to close '{' but found the end of the formula"),
        (r"(x_1 + x_2", 11, "expected ')' to close '(' but found the end of the formula"),
        (r"\left( x_1 \right]", 12, r"expected '\right)' to close '\left(' but found '\right'"),
        ("out_{o9}", 1, "unknown name 'out_{o9}' (tried outo9, out_o9)"),
        (r"x_1 + \delta_{o9}", 7, "unknown name '\\delta_{o9}' (tried deltao9, delta_o9)"),
        ("w^2_{12}", 1, "unknown name 'w^2_{12}' (tried w2_1_2, w12, w_12)"),
        ("w9", 1, r"unknown name 'w9' (tried w9); write w_9 for a subscript or w \cdot 9 for a product"),
        (r"x_1 + \input{/etc/passwd}", 7, r"unknown command \input"),
        (r"\def\x{1}", 1, r"unknown command \def"),
        (r"\catcode`\^=7", 1, r"unknown command \catcode"),
        (r"\write18{rm -rf /}", 1, r"unknown command \write"),
        (r"x_1 \\ x_2", 5, r"unknown command \\"),
        ("x_1'", 4, r"a prime ' is only understood in \sigma'(...)"),
        ("(x_1)'", 6, r"a prime ' is only understood in \sigma'(...)"),
        (r"\sigma''(x_1)", 8, r"only the first derivative \sigma' is understood"),
        ("x_1 # 2", 5, "unexpected character '#'"),
        ("x_1 % comment", 5, "unexpected character '%' (comments are not allowed)"),
        ("x_1 & x_2", 5, "unexpected character '&'"),
        ("$x_1$", 1, "unexpected character '$' (type the formula without $ delimiters)"),
        ("x_12", 4, "between two numbers but found '2' (write _{12} for a script of several digits)"),
        ("x_1^23", 6, "between two numbers but found '3' (write ^{23} for a script of several digits)"),
        ("2 3", 3, "between two numbers"),
        (r"x_1 +", 6, "expected a name, a number or '(' but found the end of the formula"),
        (r"\cdot x_1", 1, r"expected a name, a number or '(' but found '\cdot'"),
        (r"x_1)", 4, "expected an operator or the end of the formula but found ')'"),
        (r"\frac{x_1}{0}", 11, "division by zero"),
        (r"x_1 / (x_2 - x_2)", 7, "division by zero"),
        (r"\exp x_1", 6, r"expected '(' after \exp but found 'x'"),
        (r"\sqrt[3]{x_1}", 6, r"\sqrt[n]{...} is not supported"),
        (r"\sum_{k=1}^{n-1} x_k", 12, "the upper bound of a sum must be an integer"),
        (r"\sum_{k=1.5}^{3} x_k", 9, "the lower bound of a sum must be an integer"),
        (r"\sum_{k}^{3} x_k", 1, "expected a lower bound with the upper one"),  # \sum_{k} x_k is read (notation)
        (r"\sum x_k", 6, r"expected the bounds of the sum"),
        (r"\sum_{k=3}^{1} x_k", 1, "empty sum"),
        (r"\sum_{k=1}^{2} \sum_{k=1}^{2} x_k", 16, "the index k is already used by an outer sum"),
        (r"\sum_{k=1}^{2000} x_1", 1, "the sums expand to more than 1,000 terms"),
        (r"\sum_{j=1}^{40} \sum_{k=1}^{40} x_1", 17, "the sums expand to more than 1,000 terms"),
        ("2^{2^{2^{2^{2^{2}}}}}", 5, "exponent 65536 is beyond the limit ±64"),
        ("x_1^{100}", 4, "beyond the limit ±64"),
        (r"x_1^2^3", 6, "double superscript"),
        (r"x_{1}_{2}", 6, "double subscript"),
        (r"(x_1)_2", 6, "a subscript must follow a name"),
        (r"\frac{\partial^2 E}{\partial w_1^2}", 15, r"expected a name after '\partial' but found '^'"),
        (r"\sigma", 1, r"to apply σ write \sigma(...)"),
        (r"|x_1|", 1, "unexpected character '|'"),
        ("x_1 ≤ 2", 5, "unexpected character '≤'"),
        ("__import__('os').system('ls')", 17, "unexpected character '.'"),
        ("__import__('os')", 1, "expected a name, a number or '(' but found '_'"),
    ],
)
def test_refuses_with_a_column(text, column, message):
    with pytest.raises(FormulaError) as info:
        parse(text)
    assert info.value.column == column, str(info.value)
    assert message in str(info.value)


def _nested(opening, closing, n, middle="x_1"):
    return opening * n + middle + closing * n


@pytest.mark.parametrize(
    "text",
    [
        _nested("(", ")", 10_000),
        _nested("{", "}", 10_000),
        _nested(r"\left(", r"\right)", 10_000),
        _nested("(", "", 10_000),  # never closed
        _nested("(", ")", 300),
        _nested("{", "}", 300),
        _nested(r"\left[", r"\right]", 300),
        _nested(r"\bigl(", r"\bigr)", 300),
        _nested(r"\frac{1}{x_1 + ", "}", 300),
        _nested(r"\frac{", "}{2}", 300),
        _nested(r"\sqrt{", "}", 300),
        _nested(r"\exp(", ")", 300),
        _nested(r"\sigma'(", ")", 300),
        _nested("relu(", ")", 300),
        _nested("x_1^{", "}", 300),
        _nested("(x_1 + 1)^{", "}", 300),
        _nested("e^{", "}", 300),
        r"\frac{\partial}{\partial w_1}" * 300 + "E",
        "x" * 1_000_000,
        "(" * 1_000_000,
        r"\sum_{k=1}^{1000} (" + " + ".join(["x_1 x_2"] * 1500) + ")",  # 100,000 tokens read
        r" \cdot ".join(["9^{64}"] * 20),
    ],
)
def test_bounds_fail_fast_and_cleanly(text):
    start = time.perf_counter()
    with pytest.raises(FormulaError):
        parse(text)
    assert time.perf_counter() - start < 2


def test_a_sum_is_bounded_by_the_tokens_it_reads():
    body = " + ".join(["x_1 x_2"] * 1500)
    with pytest.raises(FormulaError, match="expands to more than 100,000 tokens"):
        parse(r"\sum_{k=1}^{1000} (" + body + ")")
    assert parse(r"\sum_{k=1}^{5} (" + body + ")") == 7500 * x1 * x2


def test_the_length_limit_is_the_parsers():
    with pytest.raises(FormulaError, match=f"the limit is {MAX_LENGTH:,}"):
        parse("x" * (MAX_LENGTH + 1))


def test_accepted_nesting_is_still_fast():
    for text in (
        _nested("(", ")", 60),
        _nested(r"\frac{1}{x_1 + ", "}", 40),
        _nested("(x_1 + 1)^{", "}", 8),
        r"\sum_{k=1}^{1000} (x_1 + x_2)",
    ):
        start = time.perf_counter()
        parse(text)
        assert time.perf_counter() - start < 2


def test_never_executes_or_delegates_parsing():
    sources = sorted((Path(__file__).parents[1] / "derive" / "claims").glob("latex*.py"))
    assert len(sources) >= 2
    builtins = {"eval", "exec", "compile", "__import__", "getattr"}
    for node in (n for source in sources for n in ast.walk(ast.parse(source.read_text()))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in builtins | {"sympify", "parse_expr"}, f"line {node.lineno}"
            elif isinstance(func, ast.Attribute):  # re.compile is fine, sp.sympify is not
                assert func.attr not in {"sympify", "parse_expr", "parse_latex", "eval", "exec"}, f"line {node.lineno}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = getattr(node, "module", None) or ""
            names = [alias.name for alias in node.names]
            assert "parsing" not in module and not any("parsing" in n for n in names)


# ---------------------------------------------------------------------------
# A symbolic upper bound, and the max-pool indicator
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\sum_{k=1}^{n} x_k", x1 + x2 + x3),  # x_1, x_2, x_3 exist, x_4 does not
        (r"\frac{1}{2}\sum_{k=1}^{n} (y_k - out_{ok})^2", ((y1 - outo1) ** 2 + (S["y2"] - S["outo2"]) ** 2) / 2),
        (r"\sum_{k=1}^{N} x_k", x1 + x2 + x3),  # any name the vocabulary does not know
        (r"\sum_{k=2}^{n} x_k \cdot 2", 2 * x2 + 2 * x3),
    ],
)
def test_a_symbolic_upper_bound_counts_the_units_the_names_exist_for(text, expected):
    assert sp.expand(parse(text) - expected) == 0


def test_nested_symbolic_bounds_and_absent_names_inside_derivatives():
    v = {f"v{i}{h}": sp.Symbol(f"v{i}{h}", real=True) for i in (1, 2) for h in (1, 2, 3)}
    vocabulary = Vocabulary({**{k: s for k, s in S.items() if k != "x3"}, **v})
    assert parse_latex(r"\sum_{i=1}^{d}\sum_{h=1}^{q} v_{ih} x_i", vocabulary) == sp.expand(
        sum(v[f"v{i}{h}"] * S[f"x{i}"] for i in (1, 2) for h in (1, 2, 3))
    )
    with pytest.raises(FormulaError, match="ambiguous: at i=3 the network has x3 but not v31"):
        parse_latex(r"\sum_{i=1}^{d}\sum_{h=1}^{q} v_{ih} x_i", Vocabulary({**S, **v}))
    # w6, w7, w8 exist and w9 does not: D(E, <absent>) ends the sum instead of failing it
    assert parse(r"\sum_{k=1}^{n} \frac{\partial E}{\partial w_{k+5}}") == D(E, S["w6"]) + D(E, S["w7"]) + D(E, S["w8"])


def test_a_symbolic_upper_bound_can_be_a_defined_integer():
    vocabulary = Vocabulary({**S, "n": sp.Integer(2)})
    assert parse_latex(r"\sum_{k=1}^{n} x_k", vocabulary) == x1 + x2
    half = Vocabulary({**S, "n": sp.Rational(1, 2)})
    with pytest.raises(FormulaError, match="upper bound n of a sum is 1/2, not a whole number"):
        parse_latex(r"\sum_{k=1}^{n} x_k", half)


@pytest.mark.parametrize(
    "text, message",
    [
        (r"\sum_{k=1}^{n} w_k x_k", "the bound n is ambiguous: at k=4 the network has w4 but not x4"),
        (r"\sum_{k=1}^{n} 2", "no name in the summand uses k, so n is unknown"),
        (r"\sum_{k=5}^{n} x_k", "the network has no x5"),
    ],
)
def test_a_symbolic_upper_bound_is_refused_when_ambiguous(text, message):
    with pytest.raises(FormulaError, match=message):
        parse(text)


def _indicator(args):
    return sp.Function("ismax")(*args)


POOL = Vocabulary({**S, "aP": sp.Symbol("aP", real=True)}, extra_functions={"ismax": _indicator})


@pytest.mark.parametrize(
    "text, args",
    [
        (r"[x_1 = \max]", (x1,)),
        (r"\left[ x_1 = \max \right]", (x1,)),
        (r"\bigl[x_1 = \max\bigr]", (x1,)),
        (r"[x_1 = aP]", (x1, sp.Symbol("aP", real=True))),
    ],
)
def test_the_iverson_bracket_is_the_max_pool_indicator(text, args):
    assert parse_latex(text + r" x_2", POOL) == sp.Function("ismax")(*args) * x2


@pytest.mark.parametrize(
    "text, message",
    [
        (r"[x_1 = 2]", r"expected \\max \(as in \[a\^F_\{1,11\} = \\max\]\) after '='"),
        (r"[x_1 = \max", r"expected '\]' to close '\['"),
        (r"(x_1 = \max)", r"expected '\)' to close '\('"),
    ],
)
def test_the_iverson_bracket_refusals(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_latex(text, POOL)
    with pytest.raises(FormulaError, match="unknown function 'ismax'"):
        parse(r"[x_1 = \max]")
