"""Matrix and vector claims in SymPy syntax: Nielsen's four equations with NumPy's operators.

BP1 delta[L] = D(C, a[L]) * sigma_prime(z[L]), BP2 delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l]),
BP3 D(C, b[l]) = delta[l], BP4 D(C, w[l]) = delta[l] @ a[l-1].T are read into the LaTeX reader's tree
(derive.claims.matrix_sympy) and proven component by component at every layer value; a missing
transpose is refuted by its shapes (diagnosis `shape`, with the transpose that conforms).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.claims.matrix_read import MAX_NODES
from derive.claims.matrix_sympy import SympyMatrixParser, whole_layers
from derive.cli.text import check_text
from derive.errors import FormulaError

BUDGET = 5.0

NIELSEN = """
network = "{network}"

[[claim]]
name = "BP1"
formula = "delta[L] = D(C, a[L]) * sigma_prime(z[L])"

[[claim]]
name = "BP2"
formula = "delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l])"

[[claim]]
name = "BP3"
formula = "D(C, b[l]) = delta[l]"

[[claim]]
name = "BP4"
formula = "D(C, w[l]) = delta[l] @ a[l-1].T"

[[claim]]
name = "BP2 without the transpose"
formula = "delta[l] = (w[l+1] @ delta[l+1]) * sigma_prime(z[l])"

[[claim]]
name = "BP4 in the wrong order"
formula = "D(C, w[l]) = a[l-1].T @ delta[l]"

[[claim]]
name = "BP4 transposed"
formula = "D(C, w[l]) = (delta[l] @ a[l-1].T).T"
where = "l = L"

[[claim]]
name = "BP1 with sigma"
formula = "delta[L] = D(C, a[L]) * sigma(z[L])"
"""


def run(tmp_path: Path, body: str):
    path = tmp_path / "claims.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    claims_file = load_claims(path)
    result = check(claims_file, budget=BUDGET)
    return {r.claim.name: r for r in result.results}, {u.name: u for u in claims_file.unparsed}, result


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return run(tmp_path_factory.mktemp("book"), NIELSEN.format(network="book-12-3-2"))


def test_nielsen_matrix_equations_are_proven_at_every_component(book):
    results, unparsed, result = book
    assert not {"BP1", "BP2", "BP3", "BP4"} & set(unparsed), {k: u.message for k, u in unparsed.items()}
    counts = {"BP1": 2, "BP2": 3, "BP3": 3 + 2, "BP4": 3 * 12 + 2 * 3}
    for name, count in counts.items():
        r = results[name]
        assert r.verdict.status == "proven", (name, r.verdict.method)
        assert r.claim.syntax == "sympy" and r.claim.generic.instances == count
        assert r.to_dict()["parts_decided"] == count
    assert results["BP2"].claim.generic.letters == ("l", "row", "column")
    assert results["BP1"].claim.generic.letters == ("row", "column")
    assert "(42 instances)" in check_text(result)


def test_nielsen_on_a_second_network(tmp_path):
    results, unparsed, _ = run(tmp_path, NIELSEN.format(network="generic-2-3-2"))
    assert all(results[name].verdict.status == "proven" for name in ("BP1", "BP2", "BP3", "BP4"))
    assert results["BP4"].claim.generic.instances == 3 * 2 + 2 * 3


def test_a_missing_transpose_is_refuted_by_its_shapes_with_the_suggestion(book):
    results, unparsed, _ = book
    r = results["BP2 without the transpose"]
    assert r.verdict.status == "refuted" and r.verdict.counterexample is None
    assert r.diagnosis.id == "shape"
    assert r.diagnosis.message == "at l=2, w[3] @ delta[3]: (2×3)·(2×1) does not conform; w[3].T @ delta[3] does"
    assert r.to_dict()["diagnosis_detail"]["corrected"] is None
    wrong_order = results["BP4 in the wrong order"].diagnosis
    assert wrong_order.id == "shape"
    assert wrong_order.message == ("at l=2, a[1].T @ delta[2]: (1×12)·(3×1) does not conform; "
                                   "delta[2] @ a[1].T does")
    transposed = results["BP4 transposed"].diagnosis
    assert transposed.message == ("at l=3, the sides of '=' differ: D(C, w[3]) is (2×3), "
                                  "(delta[3] @ a[2].T).T is (3×2)")


def test_sigma_for_sigma_prime_is_refuted_at_a_component(book):
    results, _, result = book
    r = results["BP1 with sigma"]
    assert r.verdict.status == "refuted" and r.diagnosis.id == "sigma-for-sigma-prime"
    entry = r.to_dict()
    assert entry["counterexample"] is not None and entry["instance"] == {"row": 1, "column": 1}


def test_scalars_definitions_and_narrowed_layers(tmp_path):
    results, unparsed, _ = run(tmp_path, """
        network = "generic-3-4-4-2"

        [definitions]
        half = "1/2"

        [[claim]]
        name = "scaled"
        formula = "2*delta[l] - delta[l] = D(C, z[l]) = half*delta[l] + delta[l]/2 = (delta[l].T).T"
        where = 'l = 3'

        [[claim]]
        name = "elementwise functions"
        formula = "-(-delta[l]) + 0*tanh(z[l])**2 = delta[l]"

        [[claim]]
        name = "elementwise power"
        formula = "tanh(z[l])**2 * delta[l] = D(C, z[l]) * tanh(z[l]) * tanh(z[l])"

        [[claim]]
        name = "a scalar plus a matrix"
        formula = "(1 - tanh(z[l])**2) * delta[l] = delta[l]"

        [[claim]]
        name = "wrong sum"
        formula = "delta[l] = delta[l] + b[l]"

        [[claim]]
        name = "vector plus matrix"
        formula = "delta[l] = delta[l] + w[l]"
    """)
    assert not unparsed, {k: u.message for k, u in unparsed.items()}
    scaled = results["scaled"]
    assert scaled.verdict.status == "proven" and scaled.claim.generic.instances == 4
    assert scaled.to_dict()["links"] == 3
    assert results["elementwise functions"].verdict.status == "proven"
    assert results["elementwise power"].verdict.status == "proven"
    assert results["a scalar plus a matrix"].diagnosis.message == \
        "at l=2, 1 - tanh(z[2])**2: scalar - (4×1) do not have the same shape"  # no broadcasting
    assert results["wrong sum"].verdict.status == "refuted"
    mismatch = results["vector plus matrix"].diagnosis
    assert mismatch.id == "shape" and mismatch.message == \
        "at l=2, delta[2] + w[2]: (4×1) + (4×3) do not have the same shape"


def test_components_keep_their_index_form(tmp_path):
    results, unparsed, _ = run(tmp_path, """
        network = "book-12-3-2"

        [[claim]]
        name = "index form"
        formula = "D(C, w[l, j, k]) = a[l-1, k]*delta[l, j]"

        [[claim]]
        name = "mixed"
        formula = "delta[l] = delta[l, j]"
    """)
    assert results["index form"].verdict.status == "proven"
    assert results["index form"].claim.generic.letters == ("l", "j", "k")
    assert unparsed["mixed"].message.endswith("column 12: delta[l, j] is one component: a matrix claim names "
                                              "whole layers only, delta[l] (write the claim in index form)")


HOSTILE = {
    "__import__('os').system('ls')": "column 23: unexpected character \"'\"",
    "(w[l+1].T @@ delta[l+1])": "column 23: expected a matrix, a vector or a scalar, found '@'",
    "w[l+1].T @ delta[l+1] delta[l]": "column 34: expected an operator or the end of the formula, found 'delta'",
    "w[2*l] @ delta[l]": "column 12: w[…]'s index must name a layer (l, l+1, L, 3)",
    "(w[l+1].T @ delta[l+1]": "column 34: expected ')', found the end of the formula",
    "D(C, delta[l])": "column 17: expected a whole layer (w[l], b[l], z[l], a[l]) as D's second argument",
    "D(w[l], z[l])": "column 14: D's first argument must be a scalar, such as the cost C",
    "exec(z[l])": "column 12: exec(…) is not read in a matrix claim",
    "sum(delta[l], k, 1, 3)": "column 12: sum(…) is not read in a matrix claim",
    "size[l] * delta[l]": "column 12: size[…] is not read in a matrix claim",
    "2**a[l]": "column 15: an exponent must be a scalar",
    "(" * 300 + "delta[l]" + ")" * 300: "column 112: a matrix claim is nested deeper than 100 levels",
    "2**" * 300 + "delta[l]": "a matrix claim is nested deeper than 100 levels",
    "-" * 5000 + "delta[l]": "column 111: a matrix claim is nested deeper than 100 levels",
    "1+" * 1100 + "delta[l]": f"column 2013: a matrix claim's member has more than {MAX_NODES:,} parts",
    "eta * delta[l]": "at l=2, row 1, column 1: unknown name 'eta'",
    "delta[l+9]": "no layer value gives a matrix claim where every layer it names exists",
}


def test_hostile_and_garbled_members_are_unparsed_with_a_column(tmp_path):
    """As in LaTeX: the claim is graded `unparsed` with what was expected where, the file's others still are."""
    body = 'network = "book-12-3-2"\n'
    for number, text in enumerate(HOSTILE):
        body += f"\n[[claim]]\nname = 'c{number}'\nformula = {json.dumps('delta[l] = ' + text)}\n"
    body += '\n[[claim]]\nname = "fine"\nformula = "D(C, b[l]) = delta[l]"\n'
    results, unparsed, _ = run(tmp_path, body)
    assert results["fine"].verdict.status == "proven"
    for number, expected in enumerate(HOSTILE.values()):
        message = unparsed[f"c{number}"].message
        assert message.startswith(f"[[claim]] c{number} formula") and expected in message, (number, message)


def test_the_reader_and_the_detector():
    def known(name):
        return name == "half"
    assert whole_layers("delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l])", known)
    assert whole_layers("D(C, a[L])", known)
    assert not whole_layers("D(C, w[l, j, k]) = a[l-1, k]*delta[l, j]", known)
    assert not whole_layers("x[k] + size[l]", known)
    tree = SympyMatrixParser("D(C, w[l]) - 2*delta[l] @ a[l-1].T / half ** -1", known).parse()
    assert tree.kind == "sub" and tree.args[0].kind == "grad" and tree.args[0].text == "C"
    product = tree.args[1]  # `*`, `@` and `/` bind left to right, as in Python
    assert product.kind == "div" and product.args[0].kind == "mul" and product.args[0].args[0].kind == "had"
    assert product.args[1].kind == "pow" and product.args[1].script == "-1"
    assert product.args[0].args[1].kind == "T" and product.args[0].args[1].args[0].script == "l-1"
    with pytest.raises(FormulaError) as caught:
        SympyMatrixParser("delta[l] + $", known).parse()
    assert caught.value.column == 12


def test_cli_json_for_one_claim(tmp_path):
    path = tmp_path / "bp2.toml"
    path.write_text(textwrap.dedent("""
        network = "book-12-3-2"

        [[claim]]
        name = "BP2 without the transpose"
        formula = "delta[l] = (w[l+1] @ delta[l+1]) * sigma_prime(z[l])"
        expect_diagnosis = "shape"
    """), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "derive", "check", str(path), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (claim,) = json.loads(done.stdout)["claims"]
    assert claim["syntax"] == "sympy" and claim["verdict"] == "refuted" and claim["diagnosis"] == "shape"
    assert claim["diagnosis_detail"]["message"] == \
        "at l=2, w[3] @ delta[3]: (2×3)·(2×1) does not conform; w[3].T @ delta[3] does"
    assert claim["formula"] == "delta[l] = (w[l+1] @ delta[l+1]) * sigma_prime(z[l])"
