"""Hostile formulas reach numeric evaluation: each gets a clean verdict or error, fast, and nothing crashes.

The parser bounds what a formula may say; these formulas are all legal and
still too large to evaluate (towers, exp of exp of exp, powers of powers) or
undefined at every point. The evaluator's magnitude guards and the prover's
wall clock must turn each into an honest `undecided` (or a certain
refutation) within the budget.
"""

import json
import time
from fractions import Fraction

import pytest
import sympy as sp

from derive import Derivations, load
from derive.graph import functions as fn
from derive.cli import main
from derive.graph.numeric import (
    MAGNITUDE_BITS,
    ApproximateArithmetic,
    Evaluator,
    ExactArithmetic,
    ExactTooLarge,
    Indeterminate,
    IntervalArithmetic,
    NotExact,
    OutOfTime,
    TooLarge,
)
from derive.proof import Prover

w = sp.Symbol("w", real=True)

# formula ↦ the verdicts it may get, and a phrase its undecided message must hold
HOSTILE = {
    "exp(exp(exp(w5*100)))": ({"refuted", "undecided"}, None),
    "w5**w5**w5**w5**w5**w5**w5**w5": ({"refuted", "undecided"}, None),
    "w5**w5**w5**w5**w5**w5**w5**w5**w5**w5**w5**w5**w5**w5**w5": ({"refuted", "undecided"}, None),
    "((w5**64)**64)**64": ({"undecided"}, "too large to evaluate"),
    "((w1 + w2 + w3)**64)**64": ({"refuted", "undecided"}, None),
    "(w1 + w2 + w3 + w4 + w5 + x1 + x2)**64": ({"refuted", "undecided"}, None),
    "exp(w5*300)**64": ({"refuted", "undecided"}, None),
    "sqrt(-1)*w5": ({"undecided"}, "sqrt(-1)"),
    "log(0)*w5": ({"undecided"}, "log(0)"),
    "log(-w5**2 - 1)*w5": ({"undecided"}, "could not be evaluated at any"),
}


def claims_file(tmp_path, formula: str, syntax: str = "sympy") -> str:
    path = tmp_path / "hostile.toml"
    path.write_text(
        'network = "two-two-two"\n[[claim]]\nname = "hostile"\nwrt = "w5"\n'
        f'syntax = "{syntax}"\nformula = """{formula}"""\n'
    )
    return str(path)


def check_json(capsys, path: str, budget: str = "0.5"):
    start = time.perf_counter()
    code = main(["check", path, "--budget", budget, "--json"])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    return code, out, err, seconds


@pytest.mark.parametrize("formula", list(HOSTILE))
def test_hostile_formulas_get_a_clean_verdict_fast(tmp_path, capsys, formula):
    verdicts, phrase = HOSTILE[formula]
    code, out, err, seconds = check_json(capsys, claims_file(tmp_path, formula))
    assert code == 1, err  # neither bad input nor an internal error
    claim = json.loads(out)["claims"][0]
    assert claim["verdict"] in verdicts, claim
    if claim["verdict"] == "undecided" and phrase:
        assert phrase in claim["method"], claim["method"]
    if claim["verdict"] == "refuted":
        assert claim["counterexample"]["point"]
    assert seconds < 10  # the point is that it does not hang (it takes about a second)


def test_a_common_denominator_too_large_to_form_in_process_is_left_to_the_child(tmp_path, capsys):
    fractions = " + ".join(f"1/(w1 + w2 + w3 + w4 + w5 + x1 + x2 + {k})" for k in range(1, 21))
    path = tmp_path / "together.toml"
    path.write_text(
        'network = "two-two-two"\n[[claim]]\nname = "together"\nkind = "identity"\n'
        f'lhs = "{fractions}"\nrhs = "w1"\n'
    )
    code, out, err, seconds = check_json(capsys, str(path))
    assert code == 1, err
    assert json.loads(out)["claims"][0]["verdict"] == "refuted"
    assert seconds < 10  # together() in the main process took minutes


def test_the_latex_tower_gets_a_clean_verdict_fast(tmp_path, capsys):
    tower = "w_5"
    for _ in range(7):
        tower = "w_5^{" + tower + "}"
    code, out, err, seconds = check_json(capsys, claims_file(tmp_path, tower, syntax="latex"))
    assert code == 1, err
    assert json.loads(out)["claims"][0]["verdict"] in {"refuted", "undecided"}
    assert seconds < 10


def test_the_budget_bounds_a_hostile_decision():
    network = load("two-two-two")
    derivations = Derivations(network)
    s = network.by_name
    lhs = derivations.cost.adjoint(s["w5"])
    w5 = s["w5"]
    tower = w5
    for _ in range(14):
        tower = w5**tower
    for rhs in (tower, sp.exp(sp.exp(sp.exp(100 * w5))), ((w5**64) ** 64) ** 64):
        start = time.perf_counter()
        verdict = Prover(derivations, budget=0.3).decide(lhs, rhs)
        assert verdict.status in ("refuted", "undecided")
        assert time.perf_counter() - start < 5


def test_a_deadline_stops_the_decision():
    network = load("two-two-two")
    derivations = Derivations(network)
    s = network.by_name
    total = sum(s[n] for n in ("w1", "w2", "w3", "w4", "w5", "x1", "x2"))
    start = time.perf_counter()
    verdict = Prover(derivations, budget=60).decide(sp.expand(total**8), total**8, deadline=time.perf_counter() + 0.2)
    assert verdict.status == "undecided"
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------------------
# The evaluator's guards
# ---------------------------------------------------------------------------

def evaluate(arithmetic, expr, value):
    return Evaluator(arithmetic, {w: Fraction(value)}, lambda s: None)(expr)


def test_exp_of_a_huge_argument_is_too_large_not_slow():
    for arithmetic in (IntervalArithmetic(), ApproximateArithmetic()):
        with pytest.raises(TooLarge):
            evaluate(arithmetic, sp.exp(sp.exp(sp.exp(100 * w))), Fraction(9, 2))


def test_a_power_tower_is_too_large_in_intervals_and_not_exact():
    tower = w
    for _ in range(7):
        tower = w**tower
    with pytest.raises(TooLarge):
        evaluate(IntervalArithmetic(), tower, Fraction(9, 2))
    with pytest.raises(NotExact):
        evaluate(ExactArithmetic(), tower, Fraction(9, 2))
    assert 0 < float(evaluate(IntervalArithmetic(), tower, Fraction(1, 2)).mid) < 1  # it converges below 1


def test_a_giant_exact_value_falls_back_to_intervals():
    with pytest.raises(ExactTooLarge):
        evaluate(ExactArithmetic(), sp.Mul(*[(w + k) ** 64 for k in range(1, 25)]), Fraction(123456789, 987654321))
    assert issubclass(ExactTooLarge, NotExact)  # callers that fall back on NotExact fall back on it too
    with pytest.raises(TooLarge):
        evaluate(ExactArithmetic(), w**262144, 2)


def test_tiny_interval_bounds_widen_soundly():
    arithmetic = IntervalArithmetic()
    tiny = evaluate(arithmetic, sp.exp(-1000 * w), 1)
    assert tiny.a == 0 and 0 < tiny.b <= arithmetic.ctx.ldexp(1, -MAGNITUDE_BITS)
    assert float(evaluate(arithmetic, fn.sigmoid(w), 1000).a) > 0.99  # no exp(1000) on the way
    assert float(evaluate(arithmetic, fn.sigmoid(w), -1000).b) < 1e-100
    assert float(evaluate(arithmetic, sp.tanh(w), 1000).a) > 0.99
    assert float(evaluate(arithmetic, fn.softmax(1, w, 2 * w), 1000).b) < 1e-100


@pytest.mark.parametrize("x", ["-1000", "-400", "-347.5", "-347", "-346.9", "-346.5", "-300", "300", "346.9"])
def test_exp_enclosures_near_the_limits_hold_the_true_value(x):
    import mpmath

    arithmetic = IntervalArithmetic()
    value = Fraction(x)
    enclosure = evaluate(arithmetic, sp.exp(w), value)
    with mpmath.workdps(400):
        true = mpmath.exp(mpmath.mpf(value.numerator) / value.denominator)
        assert mpmath.mpf(enclosure.a) <= true <= mpmath.mpf(enclosure.b)


def test_values_without_a_real_meaning_are_indeterminate():
    for expr in (sp.sqrt(-1) * w, sp.log(0) * w, sp.nan * w):
        for arithmetic in (ExactArithmetic(), IntervalArithmetic(), ApproximateArithmetic()):
            with pytest.raises(Indeterminate):
                evaluate(arithmetic, expr, 2)


def test_an_evaluator_stops_at_its_deadline():
    terms = sp.expand(sum(sp.Symbol(f"v{i}", real=True) for i in range(6)) ** 8)
    leaves = {s: Fraction(i + 2, 3) for i, s in enumerate(sorted(terms.free_symbols, key=str))}
    evaluator = Evaluator(ExactArithmetic(), leaves, lambda s: None)
    evaluator.deadline = time.perf_counter() - 1
    with pytest.raises(OutOfTime):
        evaluator(terms)


# ---------------------------------------------------------------------------
# Diagnosis within a multiple of the budget; formula sets with huge ranges
# ---------------------------------------------------------------------------

def test_diagnosis_time_follows_the_budget(tmp_path, capsys):
    from derive.claims.check import DIAGNOSIS_BUDGETS, check
    from derive.claims.claimsfile import load_claims

    path = claims_file(tmp_path, "((w1 + w2 + w3)**64)**64 + outh1")
    budget = 0.2
    result = check(load_claims(path), budget=budget)
    assert result.seconds < (1 + DIAGNOSIS_BUDGETS) * budget + 5


def test_a_formula_set_with_a_huge_range_is_bad_input(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text(
        'id = "huge"\ntitle = "huge"\nsource = "a test"\n[[formula]]\nid = "big"\ntitle = "big"\n'
        'when = { kind = "layered" }\nfor = { l = "2..10**9", j = "1..3" }\n'
        'lhs = "delta[2, j]"\nrhs = "delta[2, j]"\n'
    )
    start = time.perf_counter()
    code = main(["prove", "book-12-3-2", "--formulas", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "too many instances" in err and "'big'" in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - start < 10


def test_a_formula_set_range_past_the_network_is_bad_input(tmp_path, capsys):
    path = tmp_path / "past.toml"
    path.write_text(
        'id = "past"\ntitle = "past"\nsource = "a test"\n[[formula]]\nid = "past"\ntitle = "past"\n'
        'when = { kind = "layered" }\nfor = { l = "2..5", j = "1..size[l]" }\n'
        'lhs = "delta[l, j]"\nrhs = "delta[l, j]"\n'
    )
    code = main(["prove", "book-12-3-2", "--formulas", str(path)])
    _, err = capsys.readouterr()
    assert code == 2 and "'past'" in err, err
