"""More module layers (issue 13): layer normalisation, inverted dropout, a residual block, softmax with cross-entropy.

For each: the claims a student hands in graded (the right formula proven, the named mistake refuted and
diagnosed), its formula set proven for the declared sizes, its gradients equal to PyTorch's (float64), and
bad tables refused. Small sizes throughout: the prover is slow on sqrt-heavy formulas at larger ones.
"""

from __future__ import annotations

import dataclasses
import textwrap

import pytest
import sympy as sp
import torch

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.derivation import Derivations
from derive.errors import InputError
from derive.graph.numeric import ApproximateArithmetic, Evaluator
from derive.graph.spec import parse_spec
from derive.proof import SUBSTITUTES, prove
from derive.proof.formulas import builtin_sets
from oracles import _generic_cost, random_point

F = torch.nn.functional


def _spec(rows: int, features: int, kind: str, extra: str = "") -> str:
    return (f"[network]\nname = \"m\"\nbatch = {rows}\ninput = {features}\n\n[[layer]]\ntype = \"{kind}\"\n"
            + extra)


def _graded(folder, spec: str, claims: str):
    (folder / "net.toml").write_text(spec)
    (folder / "hw.toml").write_text('network = "net.toml"\nsyntax = "latex"\n' + textwrap.dedent(claims))
    result = check(load_claims(folder / "hw.toml"), budget=5.0)
    return {r.claim.name: r for r in result.results}


def _assert_graded(results, proven, refuted):
    for name in proven:
        assert results[name].verdict.status == "proven", (name, results[name].verdict.method)
    for name, diagnosis in refuted.items():
        result = results[name]
        assert result.verdict.status == "refuted", name
        found = result.diagnosis.id if result.diagnosis is not None else None
        assert found == diagnosis, (name, found)


def _gradients(network, point, names):
    """Our symbolic gradients ∂L/∂v of the named leaves, evaluated at `point` (60 digits)."""
    derivations = Derivations(network)
    evaluate = Evaluator(ApproximateArithmetic(60), point, derivations.definition, SUBSTITUTES)
    return {name: float(evaluate(derivations.cost.adjoint(network.by_name[name]))) for name in names}


def _matrix(point, network, entry: str, rows: int, cols: int) -> torch.Tensor:
    values = [[float(point[network.by_name[entry.format(r=r, c=c)]]) for c in range(1, cols + 1)]
              for r in range(1, rows + 1)]
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _assert_equal(derived, entry: str, grad: torch.Tensor):
    for r, row in enumerate(grad.reshape(grad.shape[0], -1).tolist(), start=1):
        for c, value in enumerate(row, start=1):
            name = entry.format(r=r, c=c)
            assert derived[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def _names(entry: str, rows: int, cols: int) -> list[str]:
    return [entry.format(r=r, c=c) for r in range(1, rows + 1) for c in range(1, cols + 1)]


# -- layer normalisation ---------------------------------------------------------------------------------------

LN_CLAIMS = r"""
    [[claim]]
    name = "dx, simplified"
    formula = 'dx = \frac{1}{2} (\sigma^2 + \epsilon)^{-1/2} (2\, d\hat{x} - np.sum(d\hat{x}, axis=1) - \hat{x} * np.sum(d\hat{x} * \hat{x}, axis=1))'

    [[claim]]
    name = "dxhat"
    formula = 'd\hat{x} = dout * \gamma'

    [[claim]]
    name = "dgamma"
    formula = 'd\gamma = np.sum(dout * \hat{x}, axis=0)'

    [[claim]]
    name = "dbeta"
    formula = 'd\beta = np.sum(dout, axis=0)'

    [[claim]]
    name = "without the mean's path"
    formula = 'dx = (\sigma^2 + \epsilon)^{-1/2} (d\hat{x} - \frac{1}{2} \hat{x} * np.sum(d\hat{x} * \hat{x}, axis=1))'
    """


def test_the_layernorm_homework_is_graded(tmp_path):
    # D = 2 written as the number: a batch claim reads N and m, not D
    results = _graded(tmp_path, _spec(2, 2, "layernorm"), LN_CLAIMS)
    _assert_graded(results, ("dx, simplified", "dxhat", "dgamma", "dbeta"), {"without the mean's path": "missing-path"})
    assert "mu1" in results["without the mean's path"].diagnosis.message


def test_layernorm_gradients_equal_pytorch():
    rows, features = 3, 2
    network = parse_spec(_spec(rows, features, "layernorm"))
    point = random_point(network, seed=5)
    point[network.by_name["eps"]] = sp.Rational(1, 100)
    derived = _gradients(network, point, _names("x{r}_{c}", rows, features) + _names("gamma{c}", 1, features)
                         + _names("beta{c}", 1, features))
    x = _matrix(point, network, "x{r}_{c}", rows, features)
    gamma = _matrix(point, network, "gamma{c}", 1, features)
    beta = _matrix(point, network, "beta{c}", 1, features)
    out = F.layer_norm(x, (features,), gamma.reshape(-1), beta.reshape(-1), eps=0.01)
    _generic_cost(list(out.reshape(-1))).backward()
    _assert_equal(derived, "x{r}_{c}", x.grad)
    _assert_equal(derived, "gamma{c}", gamma.grad)
    _assert_equal(derived, "beta{c}", beta.grad)


# -- dropout ---------------------------------------------------------------------------------------------------

DROPOUT_CLAIMS = r"""
    [[claim]]
    name = "dx"
    formula = 'dx = 2\, dout * mask'

    [[claim]]
    name = "the 1/p forgotten"
    formula = 'dx = dout * mask'

    [[claim]]
    name = "dx, one entry"
    syntax = "sympy"
    wrt = "x2_1"
    formula = 'D(L, out2_1)*mask2_1/p'
    """


def test_the_dropout_homework_is_graded(tmp_path):
    results = _graded(tmp_path, _spec(2, 2, "dropout", "keep = 0.5\n"), DROPOUT_CLAIMS)
    _assert_graded(results, ("dx", "dx, one entry"), {"the 1/p forgotten": "constant-factor"})
    assert "2 × the claim" in results["the 1/p forgotten"].diagnosis.message


def test_dropout_with_any_keep_probability(tmp_path):
    """Without `keep`, p is a constant of any value: the claims hold for every p (p itself is not read in a
    LaTeX batch claim, so they are written per entry)."""
    claims = """
        [[claim]]
        name = "dx"
        syntax = "sympy"
        wrt = "x1_2"
        formula = 'D(L, out1_2)*mask1_2/p'

        [[claim]]
        name = "the 1/p forgotten"
        syntax = "sympy"
        wrt = "x1_2"
        formula = 'D(L, out1_2)*mask1_2'
        """
    results = _graded(tmp_path, _spec(2, 2, "dropout"), claims)
    assert results["dx"].verdict.status == "proven"
    assert results["the 1/p forgotten"].verdict.status == "refuted"  # off by 1/p, not by a number


@pytest.mark.parametrize("keep", ["", "keep = 0.8\n"])
def test_dropout_gradients_equal_pytorch(keep):
    rows, features = 3, 2
    network = parse_spec(_spec(rows, features, "dropout", keep))
    point = random_point(network, seed=7)
    for i, name in enumerate(_names("mask{r}_{c}", rows, features)):  # the data's 0/1 draw
        point[network.by_name[name]] = sp.Integer(i % 3 != 1)
    p = 0.8 if keep else float(point[network.by_name["p"]])
    derived = _gradients(network, point, _names("x{r}_{c}", rows, features))
    x = _matrix(point, network, "x{r}_{c}", rows, features)
    mask = _matrix(point, network, "mask{r}_{c}", rows, features).detach()
    _generic_cost(list((x * mask / p).reshape(-1))).backward()
    _assert_equal(derived, "x{r}_{c}", x.grad)


# -- residual block --------------------------------------------------------------------------------------------

RESIDUAL_CLAIMS = r"""
    [[claim]]
    name = "dx"
    formula = '''dx = dout + (dout * g'(z)) W^T'''

    [[claim]]
    name = "dW"
    formula = '''dW = x^T (dout * g'(z))'''

    [[claim]]
    name = "db"
    formula = '''db = np.sum(dout * g'(z), axis=0)'''

    [[claim]]
    name = "the skip branch dropped"
    formula = '''dx = (dout * g'(z)) W^T'''
    """


def test_the_residual_homework_is_graded(tmp_path):
    results = _graded(tmp_path, _spec(2, 2, "residual"), RESIDUAL_CLAIMS)
    _assert_graded(results, ("dx", "dW", "db"), {"the skip branch dropped": "missing-path"})
    assert "out1_1" in results["the skip branch dropped"].diagnosis.message  # the skip: out = x + h


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_residual_gradients_equal_pytorch(activation):
    rows, features = 3, 2
    network = parse_spec(_spec(rows, features, "residual", f'activation = "{activation}"\n'))
    point = random_point(network, seed=11)
    derived = _gradients(network, point, _names("x{r}_{c}", rows, features) + _names("W{r}_{c}", features, features)
                         + _names("b{c}", 1, features))
    x = _matrix(point, network, "x{r}_{c}", rows, features)
    w = _matrix(point, network, "W{r}_{c}", features, features)
    b = _matrix(point, network, "b{c}", 1, features)
    out = x + getattr(torch, activation)(x @ w + b)
    _generic_cost(list(out.reshape(-1))).backward()
    _assert_equal(derived, "x{r}_{c}", x.grad)
    _assert_equal(derived, "W{r}_{c}", w.grad)
    _assert_equal(derived, "b{c}", b.grad)


# -- softmax with cross-entropy --------------------------------------------------------------------------------

def _softmax_claims(rows: int, classes: int) -> str:
    rows_sum = ", ".join(f'{{ lhs = "{" + ".join(f"y{n}_{c}" for c in range(1, classes + 1))}", rhs = "1", '
                         f'text = "row {n} of y is one-hot" }}' for n in range(1, rows + 1))
    return f"assume = [{rows_sum}]\n" + r"""
    [[claim]]
    name = "dx"
    formula = 'dx = \frac{1}{N} (p - y)'

    [[claim]]
    name = "dp"
    formula = 'dp = -\frac{1}{N} y * (p)^{-1}'

    [[claim]]
    name = "the Jacobian taken as diagonal"
    formula = 'dx = dp * p - dp * p * p'

    [[claim]]
    name = "the 1/N forgotten"
    formula = 'dx = p - y'
    """


def test_the_softmax_cross_entropy_homework_is_graded(tmp_path):
    results = _graded(tmp_path, _spec(2, 3, "softmax_cross_entropy"), _softmax_claims(2, 3))
    # the diagonal Jacobian keeps the path through p[n, c] only: the paths through the row's other
    # probabilities are missing, and the diagnosis says which
    _assert_graded(results, ("dx", "dp"), {"the 1/N forgotten": "constant-factor",
                                           "the Jacobian taken as diagonal": "missing-path"})
    assert "only the path through p1_1 is counted" in results["the Jacobian taken as diagonal"].diagnosis.message


def test_softmax_cross_entropy_gradients_equal_pytorch():
    rows, classes = 3, 3
    network = parse_spec(_spec(rows, classes, "softmax_cross_entropy"))
    point = random_point(network, seed=13)
    labels = [2, 0, 1]
    for n in range(1, rows + 1):
        for c in range(1, classes + 1):
            point[network.by_name[f"y{n}_{c}"]] = sp.Integer(c - 1 == labels[n - 1])
    derived = _gradients(network, point, _names("x{r}_{c}", rows, classes))
    x = _matrix(point, network, "x{r}_{c}", rows, classes)
    F.cross_entropy(x, torch.tensor(labels), reduction="mean").backward()
    _assert_equal(derived, "x{r}_{c}", x.grad)


# -- the formula sets, and bad tables ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, rows, features, extra, formulas", [
    ("layernorm", 2, 2, "", {"dbeta", "dgamma", "dxhat", "dvar", "dmu", "dx"}),
    ("dropout", 2, 2, "", {"dx"}),
    ("dropout", 2, 2, "keep = 0.5\n", {"dx"}),
    ("residual", 2, 2, "", {"dz", "dx", "dW", "db"}),
    ("residual", 2, 2, 'activation = "sigmoid"\n', {"dz", "dx", "dW", "db"}),
    ("softmax_cross_entropy", 2, 3, "", {"dp", "dx-general", "dx"}),
])
def test_the_formula_sets_are_proven_for_the_declared_sizes(kind, rows, features, extra, formulas):
    network = parse_spec(_spec(rows, features, kind, extra))
    report = prove(network, [builtin_sets()[kind]], budget=5.0)
    assert report.all_proven and {r.formula for r in report.results} == formulas


def test_the_softmax_dx_needs_the_one_hot_assumption():
    network = parse_spec(_spec(2, 2, "softmax_cross_entropy"))
    formula_set = builtin_sets()["softmax_cross_entropy"]
    dx = [dataclasses.replace(f, assume=None) for f in formula_set.formulas if f.id == "dx"]
    report = prove(network, [dataclasses.replace(formula_set, formulas=tuple(dx))], budget=5.0)
    assert {r.verdict.status for r in report.results} == {"refuted"}


@pytest.mark.parametrize("extra, message", [
    ('activation = "softmax"\n', "unknown activation"),
    ('activation = "swish"\n', "unknown activation"),
    ("keep = 0\n", "greater than 0"),
    ("keep = 1.5\n", "greater than 0"),
    ('keep = "half"\n', "greater than 0"),
    ("momentum = 0.9\n", "unknown key"),
])
def test_bad_module_tables_are_refused(extra, message):
    kind = "residual" if "activation" in extra else "dropout"
    with pytest.raises(InputError, match=message):
        parse_spec(_spec(2, 2, kind, extra))
