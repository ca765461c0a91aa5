"""Convolution for every size (issue 12, item 5): the book's CNN formulas and the general ones, proven with
symbolic image, kernel, pool and output sizes; planted mistakes never proven; the verdicts agree with the
per-instance proofs on the built-in book-cnn network and on other convolutional networks."""

from __future__ import annotations

import pytest
import sympy as sp

from derive.graph.convolutional import convolutional
from derive.graph.spec import load
from derive.proof import prove
from derive.proof.formulas import builtin_sets, parse_set
from derive.proof.general.prove import prove_identity
from derive.proof.general.report import prove_general
from derive.proof.general.windows import normal, rho
from derive.proof.sets import applicable_sets

BOOK = {"kind": "cnn", "architecture": "conv-maxpool-dense", "pool_size": 2, "pool_stride": 2, "conv_stride": 1,
        "padding": 0, "channels": 1}
MAX = {"kind": "cnn", "architecture": "conv-maxpool-dense"}
AVERAGE = {"kind": "cnn", "architecture": "conv-avgpool-dense"}
L2 = {"kind": "cnn", "architecture": "conv-l2pool-dense"}
FEATURE = {"k": "1..K", "i": "1..rowsF", "j": "1..colsF"}
BOOK_ERROR = ("sum(deltaO[n] * wO[n, k, floor((i+1)/2), floor((j+1)/2)], n, 1, N) "
              "* ismax(aF[k, i, j], aP[k, floor((i+1)/2), floor((j+1)/2)]) * sigma_prime(zF[k, i, j])")


@pytest.fixture(scope="module")
def general():
    return prove_general([builtin_sets()[s] for s in ("book-cnn", "cnn")])


def test_every_book_and_general_cnn_formula_is_proven_for_every_size(general):
    proven = {(e.set_id, e.formula.id) for e in general.entries if e.result.status == "proven"}
    assert proven == {("book-cnn", f) for f in ("output-error", "output-weight", "output-bias", "conv-error",
                                               "conv-weight", "conv-bias")} | {
        ("cnn", f) for f in ("conv-weight", "conv-bias", "pool-error", "conv-error-max", "conv-error-average",
                             "conv-error-l2", "output-weight", "output-error-quadratic", "output-error-softmax")}
    for entry in general.entries:
        assert entry.result.difference == 0
        assert len(entry.result.lhs_steps) + len(entry.result.rhs_steps) >= 2


def test_the_books_delta_goes_through_the_one_window_that_holds_the_unit(general):
    entry = next(e for e in general.entries if e.set_id == "book-cnn" and e.formula.id == "conv-error")
    reasons = [s.text for s in entry.result.lhs_steps[1:]]
    assert [r.split(";")[0] for r in reasons] == [
        "chain rule: C depends on zF[k, i, j] only through aF[·, ·, ·]",
        "chain rule: C depends on aF[k, i, j] only through aP[·, ·, ·]",
        "chain rule: C depends on aP[k, floor(i/2+1/2), floor(j/2+1/2)] only through zO[·]"]
    said = " ".join(entry.result.assumptions)
    assert "no pooling window has a tie" in said and "tile the feature map" in said
    assert "one input channel, stride 1 and no padding" in said


def test_max_pooling_states_the_no_tie_assumption(general):
    for entry in general.entries:
        ties = any("no pooling window has a tie" in a for a in entry.result.assumptions)
        assert ties == (entry.formula.when.get("architecture") == "conv-maxpool-dense"), entry.formula.id


def test_window_rows():
    i = sp.Symbol("i", integer=True)
    assert rho(i, 2) == normal(sp.floor((i + 1) / 2)) == normal(sp.floor((i - 1) / 2) + 1)
    assert rho(i, 2) != normal(sp.floor(i / 2))
    assert [rho(sp.Integer(v), 2) for v in range(1, 7)] == [1, 1, 2, 2, 3, 3]
    assert [rho(sp.Integer(v), 3) for v in range(1, 7)] == [1, 1, 1, 2, 2, 2]


WINDOWS_2 = {"pool_size": 2, "pool_stride": 2}
ROUTED = {  # the general forms of cnn.toml, and the book's form for each pooling, under the book's 2 × 2 windows
    "max": ("sum(sum(D(C, aP[k, r, s]) * ismax(aF[k, i, j], aP[k, r, s]), s, 1, colsP), r, 1, rowsP)",
            "D(C, aP[k, floor((i+1)/2), floor((j+1)/2)]) * ismax(aF[k, i, j], aP[k, floor((i+1)/2), floor((j+1)/2)])"),
    "average": ("sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]), s, 1, colsP), r, 1, rowsP) / (pr*pc)",
                "D(C, aP[k, floor((i+1)/2), floor((j+1)/2)]) / 4"),
    "l2": ("sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]) * aF[k, i, j] / aP[k, r, s], s, 1, colsP),"
           " r, 1, rowsP)",
           "D(C, aP[k, floor((i+1)/2), floor((j+1)/2)]) * aF[k, i, j] / aP[k, floor((i+1)/2), floor((j+1)/2)]"),
}


@pytest.mark.parametrize("pool, when", [("max", MAX), ("average", AVERAGE), ("l2", L2)])
def test_each_pooling_routes_the_error_under_explicit_windows(pool, when):
    for rhs in ROUTED[pool]:
        formula = _formula("deltaF[k, i, j]", rhs + " * sigma_prime(zF[k, i, j])", FEATURE, {**when, **WINDOWS_2})
        result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)
        assert result.status == "proven", (pool, rhs, result.reason, result.difference)


def _formula(lhs: str, rhs: str, ranges: dict, when: dict):
    data = {"id": "t", "title": "t", "source": "test",
            "formula": [{"id": "f", "lhs": lhs, "rhs": rhs, "for": ranges, "when": when}]}
    return parse_set(data, where="test").formulas[0]


PLANTED = [  # (what is wrong, lhs, rhs, ranges, when)
    ("wrong window row floor(i/2)", "deltaF[k, i, j]", BOOK_ERROR.replace("floor((i+1)/2)", "floor(i/2)"),
     FEATURE, BOOK),
    ("wrong window row in wO only", "deltaF[k, i, j]",
     BOOK_ERROR.replace("wO[n, k, floor((i+1)/2)", "wO[n, k, floor((i+2)/2)"), FEATURE, BOOK),
    ("window rows and columns swapped", "deltaF[k, i, j]",
     BOOK_ERROR.replace("floor((i+1)/2), floor((j+1)/2)", "floor((j+1)/2), floor((i+1)/2)"), FEATURE, BOOK),
    ("windows of 3 with the book's rows of 2", "deltaF[k, i, j]", BOOK_ERROR, FEATURE,
     {**BOOK, "pool_size": 3, "pool_stride": 3}),
    ("the max-pool indicator missing", "deltaF[k, i, j]",
     "sum(deltaO[n] * wO[n, k, floor((i+1)/2), floor((j+1)/2)], n, 1, N) * sigma_prime(zF[k, i, j])", FEATURE, BOOK),
    ("σ' missing", "deltaF[k, i, j]", BOOK_ERROR.replace(" * sigma_prime(zF[k, i, j])", ""), FEATURE, BOOK),
    ("the sum over the filters instead of the outputs", "deltaF[k, i, j]", BOOK_ERROR.replace("n, 1, N", "n, 1, K"),
     FEATURE, BOOK),
    ("the book's δ for feature rows past the map", "deltaF[k, i, j]", BOOK_ERROR,
     {"k": "1..K", "i": "1..rowsF+1", "j": "1..colsF"}, BOOK),
    ("the max-pool indicator of the next filter", "deltaF[k, i, j]",
     BOOK_ERROR.replace("ismax(aF[k, i, j], aP[k,", "ismax(aF[k, i, j], aP[k+1,"), FEATURE, BOOK),
    ("max pooling summed over the wrong range", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * ismax(aF[k, i, j], aP[k, r, s]), s, 1, colsP), r, 1, rowsP-1)"
     " * sigma_prime(zF[k, i, j])", FEATURE, MAX),
    ("max pooling with the window instead of the indicator", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]), s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, MAX),
    ("average pooling without 1/(pr*pc)", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]), s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, AVERAGE),
    ("average pooling with 1/pr only", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]), s, 1, colsP), r, 1, rowsP) / pr"
     " * sigma_prime(zF[k, i, j])", FEATURE, AVERAGE),
    ("average pooling without the window", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]), s, 1, colsP), r, 1, rowsP) / (pr*pc) * sigma_prime(zF[k, i, j])", FEATURE, AVERAGE),
    ("average pooling routed like max pooling", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * ismax(aF[k, i, j], aP[k, r, s]), s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, AVERAGE),
    ("L2 pooling under 2 × 2 windows dividing by the wrong window", "deltaF[k, i, j]",
     ROUTED["l2"][1].replace("/ aP[k, floor((i+1)/2)", "/ aP[k, floor(i/2)") + " * sigma_prime(zF[k, i, j])", FEATURE,
     {**L2, **WINDOWS_2}),
    ("average pooling under 2 × 2 windows without 1/4", "deltaF[k, i, j]",
     "D(C, aP[k, floor((i+1)/2), floor((j+1)/2)]) * sigma_prime(zF[k, i, j])", FEATURE, {**AVERAGE, **WINDOWS_2}),
    ("L2 pooling without 1/aP", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * window(aP[k, r, s], aF[k, i, j]) * aF[k, i, j], s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, L2),
    ("the book's filter gradient with x[i+p, j+q]", "D(C, wF[k, p, q])",
     "sum(sum(deltaF[k, i, j] * x[i+p, j+q], j, 1, colsF), i, 1, rowsF)",
     {"k": "1..K", "p": "1..kr", "q": "1..kc"}, BOOK),
    ("the filter gradient summed over the pooled map", "D(C, wF[k, p, q])",
     "sum(sum(deltaF[k, i, j] * x[i+p-1, j+q-1], j, 1, colsP), i, 1, rowsP)",
     {"k": "1..K", "p": "1..kr", "q": "1..kc"}, BOOK),
    ("the filter gradient without the stride", "D(C, wF[k, c, p, q])",
     "sum(sum(deltaF[k, i, j] * xpad[c, i-1 + p - padr, j-1 + q - padc], j, 1, colsF), i, 1, rowsF)",
     {"k": "1..K", "c": "1..Cin", "p": "1..kr", "q": "1..kc"}, {"kind": "cnn"}),
    ("the filter bias summed over one row", "D(C, bF[k])", "sum(deltaF[k, 1, j], j, 1, colsF)", {"k": "1..K"},
     {"kind": "cnn"}),
    ("the pool error with wO transposed", "D(C, aP[k, i, j])", "sum(deltaO[n] * wO[n, k, j, i], n, 1, N)",
     {"k": "1..K", "i": "1..rowsP", "j": "1..colsP"}, MAX),
    ("the output error with t − a", "deltaO[n]", "(t[n] - aO[n]) * sigma_prime(zO[n])", {"n": "1..N"},
     {"kind": "cnn", "output": "elementwise", "cost": "quadratic"}),
    ("softmax without one-hot targets", "deltaO[n]", "aO[n] - t[n]", {"n": "1..N"},
     {"kind": "cnn", "cost": "log_likelihood", "output_activation": "softmax"}),
    ("the output weight gradient with aP of the next filter", "D(C, wO[n, k, i, j])", "deltaO[n] * aP[k+1, i, j]",
     {"n": "1..N", "k": "1..K", "i": "1..rowsP", "j": "1..colsP"}, MAX),
]


@pytest.mark.parametrize("planted", PLANTED, ids=[p[0] for p in PLANTED])
def test_a_planted_mistake_is_never_proven(planted):
    _, lhs, rhs, ranges, when = planted
    formula = _formula(lhs, rhs, ranges, when)
    result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)
    assert result.status in ("unproven", "not-covered"), result.reason
    if result.status == "unproven":
        assert result.difference != 0


NOT_COVERED = [  # (why, lhs, rhs, ranges, when)
    ("window rows by ⌊·⌋ without a pool size", "deltaF[k, i, j]", BOOK_ERROR, FEATURE, MAX),
    ("the book's single-channel filter under the general convolution", "D(C, wF[k, p, q])",
     "sum(sum(deltaF[k, i, j] * x[i+p-1, j+q-1], j, 1, colsF), i, 1, rowsF)",
     {"k": "1..K", "p": "1..kr", "q": "1..kc"}, {"kind": "cnn"}),
    ("a pooling the formula does not name", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * ismax(aF[k, i, j], aP[k, r, s]), s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, {"kind": "cnn", "architecture": ["conv-maxpool-dense",
                                                                              "conv-avgpool-dense"]}),
    ("ismax with its arguments swapped", "deltaF[k, i, j]",
     "sum(sum(D(C, aP[k, r, s]) * ismax(aP[k, r, s], aF[k, i, j]), s, 1, colsP), r, 1, rowsP)"
     " * sigma_prime(zF[k, i, j])", FEATURE, MAX),
    ("a gradient with respect to the image", "D(C, x[i, j])", "0", {"i": "1..rowsF", "j": "1..colsF"}, BOOK),
    ("an unknown family", "D(C, v[k])", "0", {"k": "1..K"}, MAX),
]


@pytest.mark.parametrize("case", NOT_COVERED, ids=[c[0] for c in NOT_COVERED])
def test_what_the_model_does_not_cover_stays_not_covered(case):
    _, lhs, rhs, ranges, when = case
    formula = _formula(lhs, rhs, ranges, when)
    result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)
    assert result.status == "not-covered" and result.reason.startswith("not covered by the general model: ")


def _agree(network) -> int:
    """Every formula proven in general is proven on every instance of the network; returns how many."""
    sets = applicable_sets(network)
    per_instance = prove(network, sets, budget=5.0)
    statuses: dict = {}
    for r in per_instance.results:
        statuses.setdefault((r.set_id, r.formula), set()).add(r.verdict.status)
    proven = 0
    for formula_set in sets:
        for formula in formula_set.applicable(network):
            general = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)
            assert general.status != "unproven", (network.name, formula.id, general.reason)
            if general.status == "proven":
                assert statuses[(formula_set.id, formula.id)] == {"proven"}, (network.name, formula.id)
                proven += 1
    return proven


def test_general_and_per_instance_verdicts_agree_on_the_book_cnn():
    network = load("book-cnn")
    assert _agree(network) == 12  # all six of the book's set, the six general forms for max pooling and C quadratic


@pytest.mark.parametrize("layers, cost", [
    ([{"type": "conv", "filters": 2, "kernel": 2, "activation": "sigmoid"}, {"type": "avgpool", "size": 2},
      {"type": "dense", "units": 2, "activation": "sigmoid"}], "quadratic"),
    ([{"type": "conv", "filters": 2, "kernel": 2, "activation": "sigmoid"}, {"type": "l2pool", "size": 2},
      {"type": "dense", "units": 2, "activation": "sigmoid"}], "quadratic"),
    ([{"type": "conv", "filters": 2, "kernel": 2, "stride": 2, "padding": 1, "activation": "tanh"},
      {"type": "maxpool", "size": 2, "stride": 1}, {"type": "dense", "units": 2, "activation": "softmax"}],
     "log_likelihood"),
], ids=["average", "l2", "strided-padded-overlapping-softmax"])
def test_general_and_per_instance_verdicts_agree_on_other_cnns(layers, cost):
    network = convolutional([5, 5], layers, cost, name="t")
    assert _agree(network) >= 3
