"""Feedback a student can read (issue 11, item 6).

The claim is shown as its author wrote it, never as parsed (folded into nodes,
`beta1 = w11*b1 + w21*b2 - theta1` would read β1 ?= β1); the correct formula is
written at the claim's level: a node's definition rather than the node's name,
and on a convolutional network the sum of the layer's δs rather than kilobytes
of their expansion.
"""

from pathlib import Path

import pytest

from derive.claims.check import check
from derive.claims.claimsfile import parse_claims
from derive.cli.text import check_text
from derive.report import claims_context, render
from derive.report.format import breakable

# measured: the correct formula of ∂C/∂b^F_1 on book-cnn was 2,649 characters of text
# (5,513 of LaTeX) expanded; through the δ^F it is 249 (329 of LaTeX)
POOLED_TEXT_MAX = 400
POOLED_LATEX_MAX = 500


def _check(tmp_path: Path, claims: dict):
    return check(parse_claims(claims, base=tmp_path))


@pytest.fixture(scope="module")
def two_two_two(tmp_path_factory):
    claims = {
        "network": "two-two-two",
        "claim": [
            {"name": "net_h1 folded", "kind": "identity", "lhs": "neth1", "rhs": "w1*x1 + w2*x2 + b1"},
            {"name": "net_h1 without its bias", "kind": "identity", "lhs": "neth1", "rhs": "w1*x1 + w2*x2"},
            {"name": "dE/dw5 latex", "wrt": "w5", "syntax": "latex",
             "formula": r"(out_{o1} - y_1)\, out_{o1}\, out_{h1}"},
            {"name": "dE/dw6 sympy", "wrt": "w6", "formula": "(outo1 - y1)*outh2"},
        ],
    }
    return _check(tmp_path_factory.mktemp("two"), claims)


def by_name(result, name):
    return next(r for r in result.results if r.claim.name == name)


def test_the_text_output_shows_each_formula_as_typed(two_two_two):
    text = check_text(two_two_two)
    for name in ("net_h1 without its bias", "dE/dw5 latex", "dE/dw6 sympy"):
        r = by_name(two_two_two, name)
        assert r.verdict.status == "refuted"
        assert f"  claimed:  {r.claim.text}\n" in text
    assert "  claimed:  neth1 = w1*x1 + w2*x2\n" in text
    assert r"  claimed:  (out_{o1} - y_1)\, out_{o1}\, out_{h1}" in text


def test_the_report_shows_each_formula_as_typed_not_as_parsed(two_two_two):
    context = claims_context(two_two_two)
    tex = render("claims", context)
    for r in two_two_two.results:
        if r.claim.syntax == "latex":
            assert r.claim.text in tex  # typeset as the student wrote it
        else:
            assert breakable(r.claim.text) in tex
    # the folded sides (net_h1 ?= net_h1) are nowhere
    assert r"net_{h1} &\overset{?}{=}" not in tex
    assert r"\overset{?}{=} net_{h1}" not in tex
    # a gradient claim says what it is a formula for
    assert r"\frac{\partial E_{total}}{\partial w_{5}} \overset{?}{=} (out_{o1} - y_1)" in tex


def test_latex_the_report_cannot_typeset_safely_is_shown_as_escaped_text(tmp_path):
    typed = r"\displaystyle out_{o1}\, out_{h1}"  # \displaystyle is on no whitelist
    claims = {"network": "two-two-two", "claim": [{"name": "unsafe", "wrt": "w5", "syntax": "latex", "formula": typed}]}
    result = _check(tmp_path, claims)
    entry = claims_context(result)["claims"]["list"][0]
    assert entry["typed_math"] == "" and entry["typed"] == breakable(typed)
    tex = render("claims", claims_context(result))
    assert breakable(typed) in tex and typed not in tex


def test_a_node_claims_correct_formula_is_the_nodes_definition(two_two_two):
    r = by_name(two_two_two, "net_h1 without its bias")
    network = two_two_two.claims_file.network
    neth1 = network.by_name["neth1"]
    assert r.expected == network.definitions[neth1]
    assert r.expected_text != "neth1" and "b1" in r.expected_text and "w1*x1" in r.expected_text
    assert "  correct:  neth1\n" not in check_text(two_two_two)
    entry = next(c for c in claims_context(two_two_two)["claims"]["list"] if c["name"] == r.claim.name)
    assert "b_{1}" in "".join(entry["expected"])


def test_a_layered_node_claim_in_latex_gets_the_sum(tmp_path):
    claims = {"network": "book-12-3-2", "claim": [
        {"name": "z^3_1", "kind": "identity", "syntax": "latex", "lhs": "z^3_1",
         "rhs": r"w^3_{11} a^2_1 + w^3_{12} a^2_2 + w^3_{13} a^2_3"},
    ]}
    (r,) = _check(tmp_path, claims).results
    assert r.verdict.status == "refuted"
    assert "b^{3}_{1}" in r.expected_latex and "w^{3}_{11}" in r.expected_latex.replace("1,1", "11")
    assert r.expected_latex.strip() != "z^{3}_{1}"


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    claims = {"network": "book-cnn", "claim": [
        {"name": "dC/dbF_1", "wrt": "bF_1", "formula": "2*aO_1"},
        {"name": "dC/dbF_1 latex", "wrt": "bF_1", "syntax": "latex", "formula": "a^O_1"},
    ]}
    return _check(tmp_path_factory.mktemp("cnn"), claims)


def test_a_pooled_claims_correct_formula_is_short_and_through_the_deltas(pooled):
    text, latex = pooled.results
    assert text.verdict.status == latex.verdict.status == "refuted"
    assert len(text.expected_text) <= POOLED_TEXT_MAX
    assert len(latex.expected_latex) <= POOLED_LATEX_MAX
    names = {s.strip() for s in text.expected_text.split("+")}
    assert names == {f"deltaF_1_{i}_{j}" for i in range(1, 5) for j in range(1, 5)}
    assert r"\delta^{F}_{1,11}" in latex.expected_latex and r"\delta^{F}_{1,44}" in latex.expected_latex
    line = next(l for l in check_text(pooled).splitlines() if l.startswith("  correct:  deltaF"))
    assert len(line) <= POOLED_TEXT_MAX + 12
    # the report names them δ too, not ∂C/∂z
    entry = claims_context(pooled)["claims"]["list"][0]
    shown = "".join(entry["expected"])
    assert r"\delta^{F}_{1,11}" in shown and r"\partial z" not in shown


def test_a_claim_that_names_its_deltas_keeps_its_level(tmp_path):
    claims = {"network": "book-12-3-2", "claim": [
        {"name": "dC/dw2 through delta3", "wrt": "w2_1_1",
         "formula": "(delta3_1*w3_1_1 + delta3_2*w3_2_1)*x1"},
    ]}
    (r,) = _check(tmp_path, claims).results
    assert r.verdict.status == "refuted"
    assert "delta3_1" in r.expected_text and "delta2_1" not in r.expected_text


def test_a_bias_claim_is_not_answered_by_its_delta_alone(tmp_path):
    claims = {"network": "book-12-3-2", "claim": [{"name": "dC/db3_2", "wrt": "b3_2", "formula": "a3_2"}]}
    (r,) = _check(tmp_path, claims).results
    assert r.expected_text != "delta3_2" and "y2" in r.expected_text


def test_show_correct_false_still_hides_the_correct_formula(tmp_path):
    claims = {"network": "book-cnn", "show_correct": False, "claim": [
        {"name": "dC/dbF_1", "wrt": "bF_1", "formula": "2*aO_1"},
    ]}
    result = _check(tmp_path, claims)
    entry = result.to_dict()["claims"][0]
    assert "expected" not in entry and "expected_latex" not in entry
    assert "correct:" not in check_text(result)
    assert claims_context(result)["claims"]["list"][0]["expected"] == []
