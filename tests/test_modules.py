"""Module layers (issue 13): one layer over a batch with any downstream loss, as course assignments state it.

Batch normalisation first: its simplified dx, dgamma and dbeta proven; dx without the mean's or the
variance's path refuted and named; gradients equal PyTorch's batch_norm (float64).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sympy as sp
import torch

from derive.claims.check import check, without_defined_zeros
from derive.claims.claimsfile import load_claims
from derive.derivation import Derivations
from derive.errors import InputError
from derive.graph.spec import parse_spec
from derive.proof import prove
from derive.proof.formulas import builtin_sets
from oracles import _generic_cost, derived_gradients, random_point


def _spec(rows: int, features: int, kind: str = "batchnorm") -> str:
    return f"[network]\nname = \"m\"\nbatch = {rows}\ninput = {features}\n\n[[layer]]\ntype = \"{kind}\"\n"


BN_CLAIMS = textwrap.dedent(r"""
    network = "net.toml"
    syntax = "latex"

    [[claim]]
    name = "dx, simplified"
    formula = 'dx = \frac{1}{N} \gamma (\sigma^2 + \epsilon)^{-1/2} (N\, dout - np.sum(dout, axis=0) - \hat{x} * np.sum(dout * \hat{x}, axis=0))'

    [[claim]]
    name = "dgamma"
    formula = 'd\gamma = np.sum(dout * \hat{x}, axis=0)'

    [[claim]]
    name = "dbeta"
    formula = 'd\beta = np.sum(dout, axis=0)'

    [[claim]]
    name = "without the mean's path"
    formula = 'dx = \gamma (\sigma^2 + \epsilon)^{-1/2} (dout - \frac{1}{N} \hat{x} * np.sum(dout * \hat{x}, axis=0))'

    [[claim]]
    name = "without the variance's path"
    formula = 'dx = \frac{1}{N} \gamma (\sigma^2 + \epsilon)^{-1/2} (N\, dout - np.sum(dout, axis=0))'
    """)


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "batchnorm-homework.toml"


@pytest.fixture(scope="module")
def batchnorm_claims(tmp_path_factory):
    """The README's batch-norm homework (examples/batchnorm-homework.toml, graded there on 2×2 by test_check and
    the golden outputs), here on 2 examples of 1 feature: the cheapest batch where every mistake shows."""
    folder = tmp_path_factory.mktemp("bn")
    (folder / "net.toml").write_text(_spec(2, 1))
    (folder / "hw.toml").write_text(EXAMPLE.read_text().replace('"batchnorm-2x2.toml"', '"net.toml"'))
    result = check(load_claims(folder / "hw.toml"), budget=5.0)
    return result, {r.claim.name: r for r in result.results}


def test_the_batchnorm_homework_is_graded(batchnorm_claims):
    _, results = batchnorm_claims
    for name in ("dx, simplified", "dgamma", "dbeta"):
        assert results[name].verdict.status == "proven", (name, results[name].verdict.method)
    for name, through in (("dx without the mean's path", "mu1"), ("dx without the variance's path", "var1")):
        result = results[name]
        assert result.verdict.status == "refuted" and result.diagnosis.id == "missing-path", name
        assert through in result.diagnosis.message, (name, result.diagnosis.message)


def test_the_correct_formula_has_no_term_that_is_zero_by_the_mean(batchnorm_claims):
    result, results = batchnorm_claims
    network = result.claims_file.network
    expected = results["dx without the mean's path"].expected
    mean = {s: d for s, d in network.definitions.items() if s.name == "mu1"}
    for node in sp.preorder_traversal(expected):
        if node.is_Add and any(s.name == "mu1" for s in node.free_symbols):
            assert sp.expand(node.xreplace(mean)) != 0, node
    x = [network.by_name[f"x{n}_1"] for n in (1, 2)]
    mu = network.by_name["mu1"]
    zero = 2 * mu - x[0] - x[1]
    assert without_defined_zeros(sp.Symbol("a") * zero + sp.Symbol("b"), network) == sp.Symbol("b")


def test_the_batchnorm_formula_set_is_proven_for_the_declared_sizes():
    network = parse_spec(_spec(2, 1))
    report = prove(network, [builtin_sets()["batchnorm"]], budget=5.0)
    assert report.all_proven and {r.formula for r in report.results} == {"dbeta", "dgamma", "dxhat", "dvar", "dmu",
                                                                            "dx"}


def test_batchnorm_gradients_equal_pytorch():
    rows, features = 4, 3
    network = parse_spec(_spec(rows, features))
    point = random_point(network, seed=3)
    point[network.by_name["eps"]] = sp.Rational(1, 100)
    derived = derived_gradients(Derivations(network), point)
    value = lambda name: float(point[network.by_name[name]])  # noqa: E731
    x = torch.tensor([[value(f"x{n}_{d}") for d in range(1, features + 1)] for n in range(1, rows + 1)],
                     dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor([value(f"gamma{d}") for d in range(1, features + 1)], dtype=torch.float64,
                         requires_grad=True)
    beta = torch.tensor([value(f"beta{d}") for d in range(1, features + 1)], dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=0.01)
    _generic_cost(list(out.reshape(-1))).backward()
    for d in range(features):
        assert derived[network.by_name[f"gamma{d + 1}"]] == pytest.approx(float(gamma.grad[d]), rel=1e-9)
        assert derived[network.by_name[f"beta{d + 1}"]] == pytest.approx(float(beta.grad[d]), rel=1e-9)


@pytest.mark.parametrize("text, message", [
    ("[network]\nname = \"m\"\nbatch = 0\ninput = 2\n[[layer]]\ntype = \"batchnorm\"\n", "from 1 to"),
    ("[network]\nname = \"m\"\nbatch = 2\ninput = 99\n[[layer]]\ntype = \"batchnorm\"\n", "from 1 to"),
    ("[network]\nname = \"m\"\nbatch = 2\ninput = 2\n[[layer]]\ntype = \"conv\"\n", "unknown type"),
    ("[network]\nname = \"m\"\nbatch = 2\ninput = 2\n[[layer]]\ntype = \"batchnorm\"\n[[layer]]\ntype = \"batchnorm\"\n",
     "one \\[\\[layer\\]\\]"),
    ("[network]\nname = \"m\"\nbatch = 2\ninput = 2\n[[layer]]\ntype = \"batchnorm\"\nmomentum = 0.9\n", "unknown key"),
])
def test_bad_module_specs_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_spec(text)


def test_the_batchnorm_set_is_proven_for_every_size():
    from derive.proof.general.report import prove_general
    report = prove_general([builtin_sets()["batchnorm"]])
    assert [e.result.status for e in report.entries] == ["proven"] * 6
    dx = next(e for e in report.entries if e.formula.id == "dx")
    assert any("through mu" in step.text for step in dx.result.lhs_steps)


BN_PLANTED = [  # rhs of D(L, x[n, d]): each is wrong for some N, D
    "gamma[d] / sqrt(var[d] + eps) * (D(L, out[n, d]) - xhat[n, d] * sum(D(L, out[k, d]) * xhat[k, d], k, 1, N) / N)",
    "gamma[d] / (N * sqrt(var[d] + eps)) * (N * D(L, out[n, d]) - sum(D(L, out[k, d]), k, 1, N))",
    "gamma[d] / sqrt(var[d] + eps) * D(L, out[n, d])",
    "gamma[d] / (N * sqrt(var[d] + eps)) * (N * D(L, out[n, d]) - sum(D(L, out[k, d]), k, 1, N)"
    " + xhat[n, d] * sum(D(L, out[k, d]) * xhat[k, d], k, 1, N))",
    "1 / (N * sqrt(var[d] + eps)) * (N * D(L, out[n, d]) - sum(D(L, out[k, d]), k, 1, N)"
    " - xhat[n, d] * sum(D(L, out[k, d]) * xhat[k, d], k, 1, N))",
]


@pytest.mark.parametrize("rhs", BN_PLANTED)
def test_a_wrong_batchnorm_dx_is_never_proven_in_general(rhs):
    from derive.proof.formulas import parse_set
    from derive.proof.general.prove import prove_identity
    formula = parse_set({"id": "t", "title": "t", "source": "test", "formula": [
        {"id": "dx", "lhs": "D(L, x[n, d])", "rhs": rhs, "for": {"n": "1..N", "d": "1..D"},
         "when": {"kind": "module", "layer": "batchnorm"}}]}, where="test").formulas[0]
    result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when)
    assert result.status == "unproven" and result.difference != 0


def test_the_batchnorm_homework_for_every_size(tmp_path):
    from derive.claims.general_check import general_verdicts
    (tmp_path / "net.toml").write_text(_spec(2, 1))
    (tmp_path / "hw.toml").write_text(BN_CLAIMS)
    result = check(load_claims(tmp_path / "hw.toml"), budget=5.0)
    general_verdicts(result, 5.0)
    results = {r.claim.name: r for r in result.results}
    for name in ("dx, simplified", "dgamma", "dbeta"):
        assert results[name].general["status"] == "proven", (name, results[name].general)
    missing = results["without the mean's path"].general
    assert missing["status"] == "refuted" and missing["diagnosis"] == "missing-path"
