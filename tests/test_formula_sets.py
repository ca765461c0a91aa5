"""Which formula sets apply to which networks: Mazur's set by structure, Zhou's set on d-q-l networks."""

import json
from pathlib import Path

import pytest

from derive import load, load_set, prove
from derive.cli import main
from derive.proof.formulas import parse_set
from derive.errors import InputError
from derive.graph.zhou import zhou
from derive.graph.spec import parse_spec

NETWORKS = Path(__file__).resolve().parent.parent / "derive" / "networks"


def test_mazurs_set_applies_to_a_renamed_copy_of_the_2_2_2_network(tmp_path, capsys):
    text = (NETWORKS / "two-two-two.toml").read_text().replace('name = "two-two-two"', 'name = "my-homework-net"')
    (tmp_path / "copy.toml").write_text(text)
    assert main(["prove", str(tmp_path / "copy.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["network"] == "my-homework-net"
    assert data["summary"] == {"proven": 12, "refuted": 0, "undecided": 0, "total": 12}


def test_mazurs_set_does_not_apply_to_another_network_of_that_name(tmp_path, capsys):
    (tmp_path / "other.toml").write_text(
        '[network]\nname = "two-two-two"\ninputs = ["x"]\ntargets = ["y"]\ncost = "C"\n'
        '[equations]\nz = "w*x + b"\na = "sigmoid(z)"\nC = "(a - y)**2/2"\n'
    )
    assert main(["prove", str(tmp_path / "other.toml")]) == 2
    err = capsys.readouterr().err
    assert "no formula of" in err and "applies to the network 'two-two-two'" in err
    assert "no quantity named" not in err and err.count("\n") == 1


def test_mazurs_set_needs_the_roles_not_only_the_names():
    network = load("zhou-2-2-2")  # x1, y1, E and b1 exist there, b1 as a node: no formula of the set applies
    assert load_set(Path(__file__).resolve().parent.parent / "formulas" / "mazur-2-2-2.toml").applicable(network) == []


def test_mazurs_names_on_other_equations_are_refuted_not_proven():
    """The set applies by names and roles; whether the equations are Mazur's is for the proofs."""
    text = (NETWORKS / "two-two-two.toml").read_text().replace(
        'neto1 = "w5*outh1 + w6*outh2 + b2"', 'neto1 = "w5*outh1 + w6*outh2 + 2*b2"'
    )
    network = parse_spec(text, where="changed")
    report = prove(network, ["mazur-2-2-2"])
    verdicts = {r.formula: r.verdict.status for r in report.results}
    assert verdicts["dE/db2"] == "refuted" and verdicts["dE/dw5"] == "proven"


def test_zhous_set_is_proven_on_the_builtin_network(capsys):
    assert main(["prove", "zhou-2-2-2"]) == 0
    out = capsys.readouterr().out
    for family in ("g_j", "e_h", "Δw_hj", "Δθ_j", "Δv_ih", "Δγ_h"):
        assert family in out
    assert "16 proven, 0 refuted, 0 undecided" in out


@pytest.mark.parametrize("sizes", [(3, 4, 2), (2, 11, 3), (1, 1, 1)])
def test_zhous_set_on_any_d_q_l_network(sizes):
    d, q, l = sizes
    report = prove(zhou(d, q, l), ["zhou"])
    assert report.all_proven
    assert report.summary()["total"] == l + q + q * l + l + d * q + q


def test_zhous_set_in_a_spec_file(tmp_path, capsys):
    (tmp_path / "z.toml").write_text('[network]\nname = "mine"\nzhou = [3, 2, 1]\n')
    assert main(["prove", str(tmp_path / "z.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["total"] == 1 + 2 + 2 + 1 + 6 + 2 and data["summary"]["proven"] == data["summary"]["total"]
    rules = {r["formula"]: r for r in data["results"] if r["indices"] == {"i": 3, "h": 2}}
    assert "eta" in rules["delta-v"]["rhs"] and "x3" in rules["delta-v"]["rhs"]


def test_a_planted_error_in_zhous_notation_is_refuted():
    planted = parse_set(
        {
            "id": "zhou-planted",
            "title": "planted",
            "source": "tests",
            "free": ["eta"],
            "formula": [
                {"id": "theta-sign", "when": {"kind": "threshold"}, "for": {"j": "1..l"},
                 "lhs": "-eta * D(E, theta[j])", "rhs": "eta * yhat[j]*(1 - yhat[j])*(y[j] - yhat[j])"},
                {"id": "v-index-order", "when": {"kind": "threshold"}, "for": {"i": "1..d", "h": "1..q"},
                 "lhs": "-eta * D(E, v[i, h])",
                 "rhs": "eta * b[i]*(1 - b[i]) * sum(w[i, j] * yhat[j]*(1 - yhat[j])*(y[j] - yhat[j]), j, 1, l) * x[h]"},
            ],
        },
        where="planted",
    )
    report = prove(load("zhou-2-2-2"), [planted])
    statuses = [(r.formula, r.indices, r.verdict.status) for r in report.results]
    assert all(s == "refuted" for f, idx, s in statuses if f == "theta-sign")
    assert {s for f, idx, s in statuses if f == "v-index-order" and idx["i"] != idx["h"]} == {"refuted"}


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"roles": {"x1": "leaf"}}, "[roles] must map names to one of"),
        ({"free": "eta"}, "'free' must be a list of names"),
    ],
)
def test_malformed_roles_and_free_names(data, fragment):
    base = {"id": "s", "title": "t", "source": "s", "formula": [{"id": "f", "lhs": "x1", "rhs": "x1"}]}
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_set({**base, **data}, where="s")
