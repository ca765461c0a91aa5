"""derive check: verdicts, correct formulas and diagnoses for claims, and hostile claims files."""

import json
import re
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp

from derive.claims.check import check
from derive.claims.mistakes import DIAGNOSES
from derive.claims.claimsfile import load_claims
from derive.cli import main
from derive.errors import InputError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*homework*.toml"))


@pytest.fixture(scope="module")
def checked():
    return {name: check(load_claims(EXAMPLES / name)) for name in EXAMPLE_FILES}


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_claim_gets_the_recorded_verdict_and_diagnosis(name, checked):
    result = checked[name]
    assert result.results
    for r in result.results:
        assert r.claim.expect is not None, f"{r.claim.name} records no expectation"
        found = r.diagnosis.id if r.diagnosis else None
        assert r.expect_matched, f"{r.claim.name}: {r.verdict.status}/{found}, file expects {r.claim.expect}/{r.claim.expect_diagnosis}: {r.verdict.method}"
    assert result.passed


def test_every_mistake_class_is_exercised_by_the_examples(checked):
    found = {r.diagnosis.id for result in checked.values() for r in result.results if r.diagnosis}
    assert set(DIAGNOSES) - found <= {"wrong-unit"}
    assert len(found) >= 9


def test_refutations_carry_a_counterexample_and_the_correct_formula(checked):
    result = checked["two-two-two-homework.toml"]
    by_name = {r.claim.name: r for r in result.results}
    shared = by_name["dE/db2 (shared bias counted once)"]
    assert shared.verdict.counterexample is not None
    assert shared.expected_text == "delta_o1 + delta_o2"
    assert "b2 feeds neto1, neto2" in shared.diagnosis.message
    weight = by_name["dE/dw3 (wrong weight)"]
    assert "w5 does not connect those units; w6 does" in weight.diagnosis.message
    assert weight.expected_text == "outh2*x1*(1 - outh2)*(delta_o1*w6 + delta_o2*w8)"
    path = by_name["dE/dw2 (one path)"]
    assert "neto2" in path.diagnosis.message
    at_values = by_name["dE/dw2 (true at the [values] point only)"]
    assert at_values.verdict.status == "refuted" and at_values.diagnosis is None


def test_correct_claims_in_three_styles_are_proven(tmp_path):
    (tmp_path / "claims.toml").write_text(
        textwrap.dedent(
            r"""
            network = "zhou-2-2-2"
            [definitions]
            g1 = "yhat1*(1 - yhat1)*(y1 - yhat1)"
            g2 = "yhat2*(1 - yhat2)*(y2 - yhat2)"
            [[claim]]
            name = "sympy"
            kind = "update"
            wrt = "w12"
            rate = "eta"
            formula = "eta*yhat2*(1 - yhat2)*(y2 - yhat2)*b1"
            [[claim]]
            name = "latex"
            kind = "update"
            wrt = "w12"
            rate = "eta"
            syntax = "latex"
            formula = '\eta\,\hat{y}_2\left(1-\hat{y}_2\right)\left(y_2-\hat{y}_2\right) b_1'
            [[claim]]
            name = "zhou g/e style"
            kind = "update"
            wrt = "w12"
            rate = "eta"
            formula = "eta*g2*b1"
            """
        )
    )
    result = check(load_claims(tmp_path / "claims.toml"))
    assert [r.verdict.status for r in result.results] == ["proven"] * 3


def test_cli_grades_a_file_and_flags_expect_mismatches(tmp_path, capsys):
    (tmp_path / "hw.toml").write_text(
        textwrap.dedent(
            """
            network = "two-two-two"
            [[claim]]
            name = "right"
            wrt = "w5"
            formula = "(outo1 - y1)*outo1*(1 - outo1)*outh1"
            [[claim]]
            name = "wrong but expected proven"
            wrt = "w6"
            formula = "(outo1 - y1)*outh2"
            expect = "proven"
            """
        )
    )
    assert main(["check", str(tmp_path / "hw.toml")]) == 1
    out = capsys.readouterr().out
    assert "1/2 claims proven" in out and "(expected proven!)" in out and "missing-sigma-prime" in out
    assert main(["check", str(tmp_path / "hw.toml"), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    entries = {c["name"]: c for c in data["claims"]}
    assert entries["wrong but expected proven"]["expect_matched"] is False
    assert entries["wrong but expected proven"]["diagnosis"] == "missing-sigma-prime"
    assert entries["right"]["verdict"] == "proven" and entries["right"]["counterexample"] is None
    for key in ("name", "verdict", "diagnosis", "counterexample", "expected"):
        assert key in entries["right"]
    assert data["summary"]["proven"] == 1


def test_many_files_give_one_class_table(tmp_path, capsys):
    files = [str(EXAMPLES / "two-two-two-homework.toml"), str(EXAMPLES / "zhou-homework.toml")]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert "Class summary:" in out and out.count("yes") == 2
    assert main(["check", *files, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["files"]) == 2 and data["summary"]["files"] == 2


# ---------------------------------------------------------------------------
# Untrusted input
# ---------------------------------------------------------------------------

HOSTILE_FORMULAS = [
    "__import__('os').system('touch /tmp/derive-pwned')",
    "outh1.__class__.__mro__",
    "lambda: 0",
    "f'{outh1}'",
    "'%s' % outh1",
    "9**9**9**9",
    "factorial(100000)",
    "100000!",
    "(" * 10_000 + "outh1" + ")" * 10_000,
    "outh1*" * 200_000 + "1",
]
HOSTILE_LATEX = [
    r"\input{/etc/passwd}",
    r"\write18{touch /tmp/derive-pwned}",
    r"\def\x{1}\x",
    r"\catcode`\^=7",
    "2^{2^{2^{2^{2^{2^{2}}}}}}",
    r"\left(" * 10_000 + "x_1" + r"\right)" * 10_000,
    "x_1" * 400_000,
]


def _claims_file(tmp_path, formula: str, syntax: str = "sympy") -> Path:
    path = tmp_path / "attack.toml"
    escaped = formula.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(f'network = "two-two-two"\n[[claim]]\nname = "x"\nwrt = "w5"\nsyntax = "{syntax}"\nformula = "{escaped}"\n')
    return path


@pytest.mark.parametrize("formula", HOSTILE_FORMULAS, ids=range(len(HOSTILE_FORMULAS)))
def test_hostile_sympy_formulas_fail_fast_and_clean(formula, tmp_path, capsys):
    _hostile(tmp_path, formula, "sympy", capsys)


@pytest.mark.parametrize("formula", HOSTILE_LATEX, ids=range(len(HOSTILE_LATEX)))
def test_hostile_latex_formulas_fail_fast_and_clean(formula, tmp_path, capsys):
    _hostile(tmp_path, formula, "latex", capsys)


def _hostile(tmp_path, formula, syntax, capsys):
    marker = Path("/tmp/derive-pwned")
    marker.unlink(missing_ok=True)
    path = _claims_file(tmp_path, formula, syntax)
    start = time.perf_counter()
    code = main(["check", str(path)])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    # the claim's fault, not the file's: it is graded unparsed (exit 1) with the reason, nothing runs
    assert code == 1 and not err and "! unparsed" in out, out + err
    assert "Traceback" not in out + err
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("network = \n", "TOML syntax error"),
        ('network = "two-two-two"\n[[claim]]\nname = "a"\n[[claim]\n', "TOML syntax error"),
        ('network = "nowhere.toml"\n[[claim]]\nwrt="w1"\nformula="1"\n', "no spec file 'nowhere.toml'"),
        ('network = "two-two-two"\n', "has no [[claim]]"),
        ("\x00\x01", "TOML syntax error"),
    ],
)
def test_malformed_claims_files(content, fragment, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_claims(path)
    assert fragment in str(info.value)
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ('wrt = "w9"\nformula = "1"\n', "'w9' is not a name of the network"),
        ('wrt = "w1"\nformula = "q"\n', "unknown name 'q'"),
        ('wrt = "w1"\nformula = "1"\nkind = "guess"\n', "must be one of gradient"),
        ('wrt = "w1"\nformula = "1"\nbogus = 1\n', "unknown key 'bogus'"),
        ('kind = "update"\nwrt = "w1"\nformula = "1"\n', "'rate'"),
        ('wrt = "w5"\nformula = "ismax(outo1)"\n', "ismax(): the network has no max-pooling layer"),
    ],
)
def test_a_malformed_claim_is_unparsed_and_the_others_are_graded(entry, fragment, tmp_path, capsys):
    good = '[[claim]]\nname = "good"\nwrt = "w5"\nformula = "(outo1 - y1)*outo1*(1 - outo1)*outh1"\n'
    path = tmp_path / "bad.toml"
    path.write_text('network = "two-two-two"\n' + good + '[[claim]]\nname = "bad"\n' + entry + good.replace("good", "after"))
    cf = load_claims(path)
    assert [c.name for c in cf.claims] == ["good", "after"] and [u.name for u in cf.unparsed] == ["bad"]
    assert fragment in cf.unparsed[0].message
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert not err and re.search(r"^  bad +! unparsed", out, re.M), out
    assert fragment in out and "1/3 claims proven" not in out and "2/3 claims proven" in out
    assert main(["check", str(path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["verdict"] for c in data["claims"]] == ["proven", "unparsed", "proven"]
    assert fragment in data["claims"][1]["message"] and data["summary"]["unparsed"] == 1


# ---------------------------------------------------------------------------
# Assumptions (a one-hot target), the max-pool indicator, symbolic sum bounds, the terminal table
# ---------------------------------------------------------------------------


def test_a_claims_file_states_the_one_hot_assumption_and_check_agrees_with_prove(tmp_path, capsys):
    from derive import load, prove

    report = prove(load("softmax-4-5-3"), ["nielsen"])
    bp1 = [r for r in report.results if r.formula == "BP1-softmax"]
    assert bp1 and all(r.verdict.status == "proven" for r in bp1)
    path = tmp_path / "softmax.toml"
    claim = '[[claim]]\nname = "delta^L_1"\nwrt = "z3_1"\nformula = "a3_1 - y1"\n'
    path.write_text('network = "softmax-4-5-3"\nassume = { lhs = "y1 + y2 + y3", rhs = "1", text = "y is one-hot" }\n'
                    + claim)
    assert main(["check", str(path)]) == 0
    assert "assuming: y is one-hot\n1/1 claims proven" in capsys.readouterr().out
    path.write_text('network = "softmax-4-5-3"\n' + claim)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "one-hot" in out and "the targets sum to" in out and "not 1" in out
    assert main(["check", str(path), "--json"]) == 1
    entry = json.loads(capsys.readouterr().out)["claims"][0]
    assert entry["diagnosis"] == "one-hot" and entry["assumptions"] == []
    point = entry["counterexample"]["point"]
    assert sum(Fraction(point[y]) for y in ("y1", "y2", "y3")) != 1


@pytest.mark.parametrize(
    "assume, fragment",
    [
        ('"one-hot"', "must be { lhs"),
        ('{ lhs = "y1 + y2 + y3" }', "must be { lhs"),
        ('{ lhs = "y1*y2 + y3*y3", rhs = "1" }', "must be linear in its last symbol (y3)"),
        ('{ lhs = "a3_1 + y1", rhs = "1" }', "inputs, targets, parameters and constants only, not a3_1"),
        ('[{ lhs = "y1", rhs = "1" }, { lhs = "y1", rhs = "2" }]', "the assumptions contradict each other"),
        ('{ lhs = "y1 + q", rhs = "1" }', "unknown name 'q'"),
    ],
)
def test_malformed_assumptions(assume, fragment, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(f'network = "softmax-4-5-3"\nassume = {assume}\n[[claim]]\nwrt = "z3_1"\nformula = "a3_1 - y1"\n')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1, err


def test_a_sum_up_to_n_in_a_claim(tmp_path):
    (tmp_path / "claims.toml").write_text(
        textwrap.dedent(
            r"""
            network = "two-two-two"
            syntax = "latex"
            [definitions]
            m = "2"
            [[claim]]
            name = "the cost, n = the outputs"
            kind = "identity"
            lhs = "E"
            rhs = '\frac{1}{2}\sum_{k=1}^{n} (y_k - out_{ok})^2'
            [[claim]]
            name = "the cost, m defined"
            kind = "identity"
            lhs = "E"
            rhs = '\frac{1}{2}\sum_{k=1}^{m} (y_k - out_{ok})^2'
            """
        )
    )
    result = check(load_claims(tmp_path / "claims.toml"))
    assert [r.verdict.status for r in result.results] == ["proven", "proven"]


def test_the_table_names_the_expected_diagnosis_and_latex_claims_get_latex(tmp_path, capsys):
    (tmp_path / "hw.toml").write_text(
        textwrap.dedent(
            r"""
            network = "two-two-two"
            [definitions]
            delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"
            [[claim]]
            name = "refuted, another diagnosis expected"
            wrt = "w6"
            formula = "-delta_o1*outh2"
            expect_diagnosis = "constant-factor"
            [[claim]]
            name = "latex"
            wrt = "w5"
            syntax = "latex"
            formula = 'w_5 \delta_{o1} out_{h1}'
            """
        )
    )
    assert main(["check", str(tmp_path / "hw.toml")]) == 1
    out = capsys.readouterr().out
    assert "sign  (expected diagnosis constant-factor!)" not in out  # the mark follows the verdict
    assert "✗ refuted  (expected diagnosis constant-factor!)  sign" in out
    assert "(expected refuted!)" not in out
    assert r"correct:  \delta_{o1} out_{h1}" in out


def test_the_correct_latex_reads_back(tmp_path):
    """Every LaTeX claim's correct formula, printed in LaTeX, parses back to a proven claim."""
    result = check(load_claims(EXAMPLES / "two-two-two-homework.toml"))
    latex = [r for r in result.results if r.claim.syntax == "latex" and r.claim.kind != "identity"]
    assert latex
    claims = {
        "network": "two-two-two",
        "definitions": {name: str(value) for name, value in result.claims_file.definitions.items()},
        "claim": [
            {"name": r.claim.name, "wrt": r.claim.wrt.name, "syntax": "latex", "formula": r.expected_latex}
            for r in latex
        ],
    }
    from derive.claims.claimsfile import parse_claims

    back = check(parse_claims(claims, base=tmp_path))
    assert all(r.verdict.status == "proven" for r in back.results)


# ---------------------------------------------------------------------------
# Folding written-out node definitions back into the nodes
# ---------------------------------------------------------------------------

WRITTEN_OUT = """
network = "two-two-two"
[definitions]
h1 = "sigmoid(w1*x1 + w2*x2 + b1)"
h2 = "1/(1 + exp(-(w3*x1 + w4*x2 + b1)))"
o1 = "sigmoid(w5*h1 + w6*h2 + b2)"
o2 = "sigmoid(b2 + w8*h2 + w7*h1)"
[[claim]]
name = "dE/dw1"
wrt = "w1"
formula = "(w5*(o1 - y1)*o1*(1 - o1) + w7*(o2 - y2)*o2*(1 - o2))*h1*(1 - h1)*x1"
[[claim]]
name = "dE/dw3 in LaTeX"
wrt = "w3"
syntax = "latex"
formula = '\\left(w_6 (o_1 - y_1) o_1 (1 - o_1) + w_8 (o_2 - y_2) o_2 (1 - o_2)\\right) h_2 (1 - h_2) x_1'
[[claim]]
name = "dE/dw1, wrong weight"
wrt = "w1"
formula = "(w5*(o1 - y1)*o1*(1 - o1) + w8*(o2 - y2)*o2*(1 - o2))*h1*(1 - h1)*x1"
"""


def test_written_out_claims_are_folded_into_the_nodes_and_proven_fast(tmp_path):
    (tmp_path / "claims.toml").write_text(WRITTEN_OUT)
    start = time.perf_counter()
    result = check(load_claims(tmp_path / "claims.toml"))  # the default 5 s budget
    assert [r.verdict.status for r in result.results] == ["proven", "proven", "refuted"]
    assert all(r.verdict.seconds < 1 for r in result.results[:2]), [r.verdict.seconds for r in result.results]
    wrong = result.results[2]
    assert wrong.diagnosis.id == "wrong-weight"
    # the correct formula in the file's own names
    assert wrong.expected_text == "h1*x1*(1 - h1)*(o1*w5*(1 - o1)*(o1 - y1) + o2*w7*(1 - o2)*(o2 - y2))"
    assert time.perf_counter() - start < 10


def test_the_folder_substitutes_equals_only():
    from derive import load
    from derive.claims.vocabulary import NodeFolder
    from derive.graph.parser import Vocabulary, parse_formula

    network = load("two-two-two")
    fold = NodeFolder(network)
    s = network.by_name
    vocabulary = Vocabulary(dict(s))

    def folded(text):
        return fold(parse_formula(text, vocabulary))

    assert folded("w1*x1 + w2*x2 + b1") == s["neth1"]
    assert folded("b1 + w2*x2 + w1*x1 + 1") == s["neth1"] + 1
    assert folded("-w1*x1 - w2*x2 - b1") == -s["neth1"]
    assert folded("2*w1*x1 + 2*w2*x2 + 2*b1 + x1") == 2 * s["neth1"] + s["x1"]
    assert folded("sigmoid(w1*x1 + w2*x2 + b1)") == s["outh1"]
    assert folded("1/(1 + exp(-w1*x1 - w2*x2 - b1))") == s["outh1"]
    assert folded("sigmoid(w5*sigmoid(w1*x1 + w2*x2 + b1) + w6*sigmoid(w3*x1 + w4*x2 + b1) + b2)") == s["outo1"]
    assert folded("(y1 - outo1)**2/2 + (y2 - outo2)**2/2") == s["E"]
    assert folded("w1*x1 + w2*x2") == s["w1"] * s["x1"] + s["w2"] * s["x2"]  # not a definition: unchanged
    assert folded("tanh(w1*x1 + w2*x2 + b1)") == sp.tanh(s["neth1"])
    for text in ("w1*x1 + w2*x2 + b1 + 1", "1/(1 + exp(-w1*x1 - w2*x2 - b1))", "sigmoid(w3*x1 + w4*x2 + b1)*x1 + 3"):
        original = parse_formula(text, vocabulary)
        difference = (network.substituted(fold(original)) - original).rewrite(sp.exp)
        assert sp.simplify(difference) == 0
