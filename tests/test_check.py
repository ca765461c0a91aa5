"""derive check: verdicts, correct formulas and diagnoses for claims, and hostile claims files."""

import json
import textwrap
import time
from pathlib import Path

import pytest

from derive.check import DIAGNOSES, check
from derive.claims import load_claims
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
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("derive: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert elapsed < 2, f"took {elapsed:.2f} s"
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("network = \n", "TOML syntax error"),
        ('network = "two-two-two"\n[[claim]]\nname = "a"\n[[claim]\n', "TOML syntax error"),
        ('network = "nowhere.toml"\n[[claim]]\nwrt="w1"\nformula="1"\n', "no spec file 'nowhere.toml'"),
        ('network = "two-two-two"\n', "has no [[claim]]"),
        ('network = "two-two-two"\n[[claim]]\nwrt = "w9"\nformula = "1"\n', "'w9' is not a name of the network"),
        ('network = "two-two-two"\n[[claim]]\nwrt = "w1"\nformula = "q"\n', "unknown name 'q'"),
        ('network = "two-two-two"\n[[claim]]\nwrt = "w1"\nformula = "1"\nkind = "guess"\n', "must be one of gradient"),
        ('network = "two-two-two"\n[[claim]]\nwrt = "w1"\nformula = "1"\nbogus = 1\n', "unknown key 'bogus'"),
        ('network = "two-two-two"\n[[claim]]\nkind = "update"\nwrt = "w1"\nformula = "1"\n', "'rate'"),
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
