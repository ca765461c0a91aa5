"""Module layers for every size (issue 13 with issue 12's general proofs): batch and layer norm, dropout,
a residual block, one head of attention, softmax with cross-entropy. The standard backward formulas are proven for every
N, D (T, d, C); the mistakes students make are never proven."""

from __future__ import annotations

import pytest

from derive.proof.formulas import parse_set
from derive.proof.general.prove import prove_identity


def _decided(layer: str, lhs: str, rhs: str, ranges: dict, assume: dict | None = None):
    entry = {"id": "f", "lhs": lhs, "rhs": rhs, "for": ranges, "when": {"kind": "module", "layer": layer}}
    if assume:
        entry["assume"] = assume
    formula = parse_set({"id": "t", "title": "t", "source": "test", "formula": [entry]}, where="test").formulas[0]
    return prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume)


ROW = {"n": "1..N", "d": "1..D"}
ONE_HOT = {"lhs": "sum(y[n, k], k, 1, C)", "rhs": "1", "text": "each row of y is one-hot"}
RIGHT = [
    ("layernorm", "D(L, x[n, d])", "1 / (D * sqrt(var[n] + eps)) * (D * D(L, xhat[n, d]) - sum(D(L, xhat[n, k]), k, 1, D)"
     " - xhat[n, d] * sum(D(L, xhat[n, k]) * xhat[n, k], k, 1, D))", ROW, None),
    ("layernorm", "D(L, gamma[d])", "sum(D(L, out[k, d]) * xhat[k, d], k, 1, N)", {"d": "1..D"}, None),
    ("dropout", "D(L, x[n, d])", "D(L, out[n, d]) * mask[n, d] / p", ROW, None),
    ("attention", "D(L, V[c, i])", "sum(P[k, c] * D(L, out[k, i]), k, 1, T)", {"c": "1..T", "i": "1..d"}, None),
    ("attention", "D(L, S[t, c])", "P[t, c] * (D(L, P[t, c]) - sum(D(L, P[t, k]) * P[t, k], k, 1, T))",
     {"t": "1..T", "c": "1..T"}, None),
    ("attention", "D(L, Q[t, i])", "sum(D(L, S[t, k]) * K[k, i], k, 1, T) / sqrt(d)", {"t": "1..T", "i": "1..d"},
     None),
    ("attention", "D(L, K[c, i])", "sum(D(L, S[k, c]) * Q[k, i], k, 1, T) / sqrt(d)", {"c": "1..T", "i": "1..d"},
     None),
    ("softmax_cross_entropy", "D(L, x[n, c])", "(p[n, c] - y[n, c]) / N", {"n": "1..N", "c": "1..C"}, ONE_HOT),
    ("residual", "D(L, x[n, d])", "D(L, out[n, d]) + sum(D(L, out[n, k]) * sigma_prime(z[n, k]) * W[d, k], k, 1, D)",
     ROW, None),
    ("residual", "D(L, W[j, d])", "sum(x[k, j] * D(L, out[k, d]) * sigma_prime(z[k, d]), k, 1, N)",
     {"j": "1..D", "d": "1..D"}, None),
]
WRONG = [
    ("layernorm without the mean's path", "layernorm", "D(L, x[n, d])",
     "1 / sqrt(var[n] + eps) * (D(L, xhat[n, d]) - xhat[n, d] * sum(D(L, xhat[n, k]) * xhat[n, k], k, 1, D) / D)",
     ROW, None),
    ("dropout without 1/p", "dropout", "D(L, x[n, d])", "D(L, out[n, d]) * mask[n, d]", ROW, None),
    ("attention's scale forgotten", "attention", "D(L, Q[t, i])", "sum(D(L, S[t, k]) * K[k, i], k, 1, T)",
     {"t": "1..T", "i": "1..d"}, None),
    ("softmax's Jacobian used as diagonal", "attention", "D(L, S[t, c])", "P[t, c] * (1 - P[t, c]) * D(L, P[t, c])",
     {"t": "1..T", "c": "1..T"}, None),
    ("dV without the transpose", "attention", "D(L, V[c, i])", "sum(P[c, k] * D(L, out[k, i]), k, 1, T)",
     {"c": "1..T", "i": "1..d"}, None),
    ("dK with dS untransposed", "attention", "D(L, K[c, i])", "sum(D(L, S[c, k]) * Q[k, i], k, 1, T) / sqrt(d)",
     {"c": "1..T", "i": "1..d"}, None),
    ("softmax cross-entropy without 1/N", "softmax_cross_entropy", "D(L, x[n, c])", "p[n, c] - y[n, c]",
     {"n": "1..N", "c": "1..C"}, ONE_HOT),
    ("the residual's skip branch dropped", "residual", "D(L, x[n, d])",
     "sum(D(L, out[n, k]) * sigma_prime(z[n, k]) * W[d, k], k, 1, D)", ROW, None),
    ("the residual's W untransposed", "residual", "D(L, x[n, d])",
     "D(L, out[n, d]) + sum(D(L, out[n, k]) * sigma_prime(z[n, k]) * W[k, d], k, 1, D)", ROW, None),
    ("softmax cross-entropy without one-hot targets", "softmax_cross_entropy", "D(L, x[n, c])",
     "(p[n, c] - y[n, c]) / N", {"n": "1..N", "c": "1..C"}, None),
]


@pytest.mark.parametrize("layer, lhs, rhs, ranges, assume", RIGHT, ids=[f"{r[0]}:{r[1]}" for r in RIGHT])
def test_the_standard_backward_formulas_hold_for_every_size(layer, lhs, rhs, ranges, assume):
    result = _decided(layer, lhs, rhs, ranges, assume)
    assert result.status == "proven", result.reason
    assert len(result.lhs_steps) >= 2


@pytest.mark.parametrize("what, layer, lhs, rhs, ranges, assume", WRONG, ids=[w[0] for w in WRONG])
def test_a_students_mistake_is_never_proven(what, layer, lhs, rhs, ranges, assume):
    result = _decided(layer, lhs, rhs, ranges, assume)
    assert result.status == "unproven" and result.difference != 0, what
