"""The affine layer's backward pass as course assignments write it (issue 12): rows are examples.

out = x w + b; dx = dout wᵀ, dw = xᵀ dout, db = Σ_rows dout (np.sum(dout, axis=0))
(/work/shared/reference/backprop-formulas.md §7), for a generic downstream loss L.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.claims.general_check import general_verdicts
from derive.derivation import Derivations
from derive.errors import InputError
from derive.graph.affine import affine
from derive.graph.spec import parse_spec
from oracles import _generic_cost, derived_gradients, random_point

CLAIMS = textwrap.dedent(r"""
    network = "net.toml"
    syntax = "latex"

    [[claim]]
    name = "dx"
    formula = 'dx = dout \cdot w^T'

    [[claim]]
    name = "dw"
    formula = 'dw = x^T dout'

    [[claim]]
    name = "db"
    formula = 'db = np.sum(dout, axis=0)'

    [[claim]]
    name = "forward"
    formula = 'out = x \cdot w + b'

    [[claim]]
    name = "dx in the wrong order"
    formula = 'dx = w^T \cdot dout'

    [[claim]]
    name = "dw untransposed"
    formula = 'dw = dout^T x'

    [[claim]]
    name = "db over the rows"
    formula = 'db = np.sum(dout, axis=1)'

    [[claim]]
    name = "dx without the transpose"
    formula = 'dx = dout \cdot w'
    """)


def _checked(tmp_path, sizes):
    (tmp_path / "net.toml").write_text(f"[network]\nname = \"layer\"\naffine = {list(sizes)}\n")
    (tmp_path / "hw.toml").write_text(CLAIMS)
    result = check(load_claims(tmp_path / "hw.toml"), budget=5.0)
    general_verdicts(result, 5.0)
    return {r.claim.name: r for r in result.results}


def test_the_assignment_formulas_hold_for_every_size(tmp_path):
    results = _checked(tmp_path, (2, 3, 2))
    for name in ("dx", "dw", "db", "forward"):
        assert results[name].verdict.status == "proven", (name, results[name].verdict.method)
        assert results[name].general["status"] == "proven", (name, results[name].general)
    for name in ("dx in the wrong order", "dw untransposed", "db over the rows", "dx without the transpose"):
        assert results[name].verdict.status == "refuted" and results[name].diagnosis.id == "shape", name
        assert results[name].general["status"] == "refuted", name


def test_on_square_sizes_the_missing_transpose_is_refuted_by_values_and_by_a_size(tmp_path):
    results = _checked(tmp_path, (2, 2, 2))
    missing = results["dx without the transpose"]
    assert missing.verdict.status == "refuted" and missing.verdict.counterexample is not None
    general = missing.general
    assert general["status"] == "refuted" and general["diagnosis"] == "shape"
    assert "unless D = M" in general["method"] or "unless M = D" in general["method"]


def test_cli_json(tmp_path):
    _checked(tmp_path, (1, 2, 2))
    run = subprocess.run([sys.executable, "-m", "derive", "check", "--general", "--json", str(tmp_path / "hw.toml")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    claims = {c["name"]: c for c in json.loads(run.stdout)["claims"]}
    assert claims["dx"]["general"]["status"] == "proven"
    assert claims["db over the rows"]["verdict"] == "refuted"


def test_derived_gradients_equal_pytorch():
    N, D, M = 3, 2, 2
    network = affine(N, D, M)
    point = random_point(network, seed=11)
    derived = derived_gradients(Derivations(network), point)
    value = lambda name: float(point[network.by_name[name]])  # noqa: E731
    x = torch.tensor([[value(f"x{n}_{d}") for d in range(1, D + 1)] for n in range(1, N + 1)], dtype=torch.float64)
    w = torch.tensor([[value(f"w{d}_{m}") for m in range(1, M + 1)] for d in range(1, D + 1)], dtype=torch.float64,
                     requires_grad=True)
    b = torch.tensor([value(f"b{m}") for m in range(1, M + 1)], dtype=torch.float64, requires_grad=True)
    out = x @ w + b
    _generic_cost(list(out.reshape(-1))).backward()
    for d in range(D):
        for m in range(M):
            assert derived[network.by_name[f"w{d + 1}_{m + 1}"]] == pytest.approx(float(w.grad[d, m]), rel=1e-9)
    for m in range(M):
        assert derived[network.by_name[f"b{m + 1}"]] == pytest.approx(float(b.grad[m]), rel=1e-9)


@pytest.mark.parametrize("sizes", ["[2, 3]", "[0, 1, 1]", "[2, 2, 99]", "\"2-2-2\""])
def test_bad_affine_specs_are_refused(sizes):
    with pytest.raises(InputError, match="three sizes"):
        parse_spec(f"[network]\nname = \"a\"\naffine = {sizes}\n")
