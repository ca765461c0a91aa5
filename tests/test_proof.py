"""The proof engine: what it proves, what it refutes (with checked counterexamples), what it leaves undecided."""

import pytest
import sympy as sp

from derive import Derivations, builtin_sets, layered, load, load_set, prove
from derive.graph import functions as fn
from derive.proof.formulas import Instantiator
from derive.proof import SIGMA_STAND_INS, Prover

from conftest import DATA

LAYERED = ["book-12-3-2", "cross-entropy-l2-4-5-3", "generic-2-3-2", "generic-3-4-4-2", "softmax-4-5-3"]


@pytest.mark.parametrize("name", LAYERED)
def test_every_nielsen_instance_is_proven(name, builtin_networks):
    network = builtin_networks[name]
    report = prove(network, ["nielsen"])
    summary = report.summary()
    assert summary["total"] > 0 and summary["proven"] == summary["total"], report.to_dict()["summary"]
    families = {row["family"] for row in report.families()}
    assert {"BP1", "BP2", "BP3", "BP4"} <= families
    expected_bp4 = sum(a * b for a, b in zip(network.facts["sizes"], network.facts["sizes"][1:]))
    bp4 = next(row for row in report.families() if row["family"] == "BP4")
    assert bp4["total"] == expected_bp4


def test_the_books_formulas_on_its_12_3_2_network(builtin_networks):
    report = prove(builtin_networks["book-12-3-2"], ["book-fc"])
    assert report.all_proven
    assert {r["family"] for r in report.families()} == {
        "output error", "backward recurrence", "weight gradient", "bias gradient"
    }
    assert report.summary()["total"] == 2 + 3 + (12 * 3 + 3 * 2) + 5


def test_the_worked_2_2_2_gradients(builtin_networks):
    report = prove(builtin_networks["two-two-two"], ["mazur-2-2-2"])
    assert report.all_proven and report.summary()["total"] == 12


def test_softmax_proof_states_its_assumption(builtin_networks):
    report = prove(builtin_networks["softmax-4-5-3"], ["nielsen"])
    softmax = [r for r in report.results if r.formula == "BP1-softmax"]
    assert softmax and all(r.verdict.assumptions == ("y is one-hot: its entries sum to 1",) for r in softmax)


def test_softmax_bp1_without_the_one_hot_assumption_is_refuted():
    network = load("softmax-4-5-3")
    derivations = Derivations(network)
    s = network.by_name
    verdict = Prover(derivations).decide(derivations.cost.adjoint(s["z3_1"]), s["a3_1"] - s["y1"])
    assert verdict.status == "refuted"


# ---------------------------------------------------------------------------
# Planted errors: refuted instance by instance, counterexamples re-checked independently
# ---------------------------------------------------------------------------

def independent_value(network, derivations, expr, point, sigma_text=None):
    """Evaluate through SymPy alone: closed forms, full substitution, exact leaves, 60 digits."""
    # the exact point goes in first: σ is then applied to numbers, not to symbolic arguments
    # (the same exact value, a third of the time)
    full = network.substituted(derivations.closed_form(expr)).xreplace(point)
    if sigma_text is not None:
        t = sp.Symbol("t")
        sigma = sp.sympify(sigma_text, locals={"t": t})  # our own stand-in's text, not user input
        full = full.replace(fn.sigma, sp.Lambda(t, sigma)).replace(fn.sigma_prime, sp.Lambda(t, sp.diff(sigma, t)))
    return sp.N(full.rewrite(sp.exp), 60)


PLANTED_ON = {
    "generic-3-4-4-2": layered([3, 4, 4, 2], activation="sigma", cost="quadratic", name="generic-quadratic"),
    "book-12-3-2": load("book-12-3-2"),
    "cross-entropy": layered([4, 5, 3], activation="sigmoid", cost="cross_entropy", name="ce"),
}


@pytest.mark.parametrize("name", list(PLANTED_ON))
def test_planted_errors_are_refuted_with_checkable_counterexamples(name):
    network = PLANTED_ON[name]
    report = prove(network, [load_set(DATA / "planted.toml")])
    derivations = report.derivations
    assert report.results
    checked = 0
    for r in report.results:
        if r.formula == "BP4-swapped" and r.indices["j"] == r.indices["k"]:
            assert r.verdict.status == "proven"  # the swap changes nothing there: never refute a right formula
            continue
        assert r.verdict.status == "refuted", (r.formula, r.indices, r.verdict)
        cx = r.verdict.counterexample
        point = {network.by_name[k]: sp.Rational(v) for k, v in cx.point.items()}
        sigma_text = None
        if network.facts["activations"][0] == "sigma":
            assert set(cx.functions) == {"sigma(t)"}
            sigma_text = cx.functions["sigma(t)"]
            assert sigma_text in {p.text for p in SIGMA_STAND_INS}
            assert cx.certified_by == "exact rational arithmetic"
        lhs = independent_value(network, derivations, r.lhs, point, sigma_text)
        rhs = independent_value(network, derivations, r.rhs, point, sigma_text)
        assert abs(lhs - rhs) > 1e-40 * max(1, abs(lhs)), (r.formula, lhs, rhs)
        assert abs(lhs - sp.Float(cx.lhs, 60)) <= 1e-12 * max(1, abs(lhs))
        assert abs(rhs - sp.Float(cx.rhs, 60)) <= 1e-12 * max(1, abs(rhs))
        checked += 1
    assert checked >= 5


def test_a_claim_true_only_at_the_values_point_is_refuted():
    network = load("two-two-two")  # its [values] have x2 = 2·x1
    derivations = Derivations(network)
    d, s = derivations.cost, network.by_name
    lhs, rhs = d.adjoint(s["w2"]), 2 * d.adjoint(s["w1"])
    from derive.graph.numeric import ApproximateArithmetic, Evaluator

    at_values = Evaluator(ApproximateArithmetic(), network.values, derivations.definition)
    assert abs(at_values(lhs) - at_values(rhs)) < 1e-40  # it holds at the spec's point …
    verdict = Prover(derivations).decide(lhs, rhs)
    assert verdict.status == "refuted"  # … but not in general
    point = verdict.counterexample.point
    assert sp.Rational(point["x2"]) != 2 * sp.Rational(point["x1"])


def test_generic_sigma_proofs_hold_for_every_sigma():
    network = load("generic-2-3-2")
    derivations = Derivations(network)
    d, s = derivations.cost, network.by_name
    prover = Prover(derivations)
    # δ^2_1 = (Σ_k w^3_{k1} δ^3_k) σ'(z^2_1) is proven with σ' left as an opaque function …
    rhs = (s["w3_1_1"] * d.adjoint(s["z3_1"]) + s["w3_2_1"] * d.adjoint(s["z3_2"])) * fn.sigma_prime(s["z2_1"])
    assert prover.decide(d.adjoint(s["z2_1"]), rhs).status == "proven"
    # … and the sigmoid-specific form is not a theorem about every σ
    sigmoid_form = (s["w3_1_1"] * d.adjoint(s["z3_1"]) + s["w3_2_1"] * d.adjoint(s["z3_2"])) * s["a2_1"] * (1 - s["a2_1"])
    verdict = prover.decide(d.adjoint(s["z2_1"]), sigmoid_form)
    assert verdict.status == "refuted" and "sigma(t)" in verdict.counterexample.functions


def test_cross_entropy_proof_needs_algebra_and_says_so():
    network = load("cross-entropy-l2-4-5-3")
    report = prove(network, ["nielsen"])
    ce = [r for r in report.results if r.formula == "BP1-cross-entropy"]
    assert ce and all(r.verdict.status == "proven" and "cancel" in r.verdict.method for r in ce)


def test_undecided_within_budget_reports_evidence_not_proof():
    network = load("two-two-two")
    derivations = Derivations(network)
    s = network.by_name
    total = sum(s[n] for n in ("w1", "w2", "w3", "w4", "w5", "x1", "x2"))
    lhs, rhs = sp.expand(total**8), total**8  # true, but too big to settle in 1 ms
    verdict = Prover(derivations, budget=0.001).decide(lhs, rhs)
    assert verdict.status == "undecided"
    assert "budget of 0.001 s" in verdict.method
    assert verdict.seconds < 5  # the budget bounds the evaluation of points too

    class NoAlgebra(Prover):  # as if the algebra ran out of time: the points are the only evidence
        def _algebraic(self, lhs, rhs, assume, budget):
            return f"undecided within the budget of {self.budget:g} s"

    verdict = NoAlgebra(derivations, budget=20).decide(lhs, rhs)
    assert verdict.status == "undecided"
    assert verdict.agreeing_points >= 10
    assert "evidence, not a proof" in verdict.method
    assert Prover(derivations, budget=20).decide(lhs, rhs).status == "proven"


def test_instances_use_the_networks_own_symbols():
    network = load("book-12-3-2")
    derivations = Derivations(network)
    bp4 = next(f for f in builtin_sets()["nielsen"].formulas if f.id == "BP4")
    first = next(Instantiator(network, derivations).instances(bp4))
    s = network.by_name
    assert first.indices == {"l": 2, "j": 1, "k": 1}
    assert first.lhs == derivations.cost.adjoint(s["w2_1_1"])
    assert first.rhs == s["x1"] * derivations.cost.adjoint(s["z2_1"])
