r"""Matrix and vector claims in layered networks (issue 12, item 1): Nielsen's four equations in matrix form.

BP1 δ^L = ∇_a C ⊙ σ'(z^L), BP2 δ^l = ((w^{l+1})^T δ^{l+1}) ⊙ σ'(z^l), BP3 ∂C/∂b^l = δ^l,
BP4 ∂C/∂w^l = δ^l (a^{l-1})^T (/work/shared/reference/backprop-formulas.md §1, §7) are
proven component by component at every layer value; the planted mistakes are refused
by their shapes (diagnosis `shape`) or at a named component.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.claims.matrix import MAX_COMPONENTS, names_whole_layer
from derive.cli.text import check_text

BUDGET = 5.0

NIELSEN = """
network = "{network}"
syntax = "latex"

[[claim]]
name = "BP1"
formula = '''\\delta^L = \\nabla_a C \\odot \\sigma'(z^L)'''

[[claim]]
name = "BP2"
formula = '''\\delta^l = ((w^{{l+1}})^T \\delta^{{l+1}}) \\odot \\sigma'(z^l)'''

[[claim]]
name = "BP3"
formula = '''\\frac{{\\partial C}}{{\\partial b^l}} = \\delta^l'''

[[claim]]
name = "BP4"
formula = '''\\frac{{\\partial C}}{{\\partial w^l}} = \\delta^l (a^{{l-1}})^T'''

[[claim]]
name = "BP2 without the transpose"
formula = '''\\delta^l = (w^{{l+1}} \\delta^{{l+1}}) \\odot \\sigma'(z^l)'''

[[claim]]
name = "BP4 in the wrong order"
formula = '''\\frac{{\\partial C}}{{\\partial w^l}} = (a^{{l-1}})^T \\delta^l'''

[[claim]]
name = "BP4 with a^l"
formula = '''\\frac{{\\partial C}}{{\\partial w^l}} = \\delta^l (a^{{l}})^\\top'''

[[claim]]
name = "BP1 with sigma"
formula = '''\\delta^L = \\nabla_a C \\odot \\sigma(z^L)'''
"""


def run(tmp_path: Path, body: str):
    path = tmp_path / "claims.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    claims_file = load_claims(path)
    result = check(claims_file, budget=BUDGET)
    return {r.claim.name: r for r in result.results}, {u.name: u for u in claims_file.unparsed}, result


@pytest.mark.parametrize("network, counts", [
    ("book-12-3-2", {"BP1": 2, "BP2": 3, "BP3": 3 + 2, "BP4": 3 * 12 + 2 * 3}),
    ("generic-3-4-4-2", {"BP1": 2, "BP2": 4 + 4, "BP3": 4 + 4 + 2, "BP4": 4 * 3 + 4 * 4 + 2 * 4}),
])
def test_nielsen_matrix_equations_are_proven_at_every_component(tmp_path, network, counts):
    results, unparsed, result = run(tmp_path, NIELSEN.format(network=network))
    for name, count in counts.items():
        r = results[name]
        assert r.verdict.status == "proven", (name, r.verdict.method)
        assert r.claim.generic.instances == count
        entry = r.to_dict()
        assert entry["instances"] == count and entry["parts_decided"] == count
    assert results["BP2"].claim.generic.letters == ("l", "row", "column")
    assert results["BP1"].claim.generic.letters == ("row", "column")
    assert f"({counts['BP4']} instances)" in check_text(result)


@pytest.mark.parametrize("network, at, message", [
    ("book-12-3-2", "l=2", "w^{3} δ^{3}: (2×3)·(2×1) does not conform; (w^{3})^T δ^{3} does"),
    # 4-4 conforms at l=2; the output layer does not
    ("generic-3-4-4-2", "l=3", "w^{4} δ^{4}: (2×4)·(2×1) does not conform; (w^{4})^T δ^{4} does"),
])
def test_bp2_without_the_transpose_is_refuted_by_its_shapes(tmp_path, network, at, message):
    results, unparsed, _ = run(tmp_path, NIELSEN.format(network=network))
    r = results["BP2 without the transpose"]  # false as written: no numbers make the product exist
    assert r.verdict.status == "refuted" and r.verdict.counterexample is None
    assert r.diagnosis.id == "shape" and r.diagnosis.message == f"at {at}, {message}"
    assert r.to_dict()["diagnosis_detail"]["corrected"] is None


def test_bp4_planted_shapes(tmp_path):
    results, unparsed, _ = run(tmp_path, NIELSEN.format(network="book-12-3-2"))
    wrong_order = results["BP4 in the wrong order"].diagnosis
    assert wrong_order.message == "at l=2, (a^{1})^T δ^{2}: (1×12)·(3×1) does not conform; δ^{2} (a^{1})^T does"
    with_al = results["BP4 with a^l"].diagnosis
    assert with_al.message == "at l=2, the sides of '=' differ: ∂C/∂w^{2} is (3×12), δ^{2} (a^{2})^T is (3×3)"
    assert {wrong_order.id, with_al.id} == {"shape"} and not {"BP4 in the wrong order", "BP4 with a^l"} & set(unparsed)


@pytest.mark.parametrize("network", ["book-12-3-2", "generic-3-4-4-2"])
def test_bp1_with_sigma_for_sigma_prime_is_refuted_at_a_component(tmp_path, network):
    results, _, result = run(tmp_path, NIELSEN.format(network=network))
    r = results["BP1 with sigma"]
    assert r.verdict.status == "refuted"
    entry = r.to_dict()
    assert entry["counterexample"] is not None
    assert entry["instance"] == {"row": 1, "column": 1}
    assert "instance row=1, column=1 (of 2 instances)" in check_text(result)


def test_scalars_sums_and_narrowed_layers(tmp_path):
    results, unparsed, _ = run(tmp_path, """
        network = "generic-3-4-4-2"
        syntax = "latex"

        [[claim]]
        name = "scaled"
        formula = '''2 \\delta^l - \\delta^l = \\frac{\\partial C}{\\partial z^l}'''
        where = 'l = 3'

        [[claim]]
        name = "wrong sum"
        formula = '''\\delta^l = \\delta^l + b^l'''

        [[claim]]
        name = "vector plus matrix"
        formula = '''\\delta^l = \\delta^l + w^l'''
    """)
    assert results["scaled"].verdict.status == "proven"
    assert results["scaled"].claim.generic.instances == 4
    assert results["wrong sum"].verdict.status == "refuted"
    mismatch = results["vector plus matrix"]
    assert mismatch.diagnosis.id == "shape" and "do not have the same shape" in mismatch.diagnosis.message


def test_only_whole_layers_are_read_as_matrices(tmp_path):
    results, unparsed, _ = run(tmp_path, """
        network = "book-12-3-2"
        syntax = "latex"

        [[claim]]
        name = "index form"
        formula = '''\\frac{\\partial C}{\\partial w^l_{jk}} = a^{l-1}_k \\delta^l_j'''

        [[claim]]
        name = "mixed"
        formula = '''\\delta^l = \\delta^l_j'''
    """)
    index_form = results["index form"]
    assert index_form.verdict.status == "proven"
    assert index_form.claim.generic.letters == ("l", "j", "k")
    assert "one component" in unparsed["mixed"].message and "proven" not in unparsed["mixed"].message


def test_matrix_detection_and_bounds():
    from derive.claims.matrix_read import whole_layers
    from derive.claims.matrix import _bound

    def known(name):
        return False
    assert whole_layers(r"\delta^l = ((w^{l+1})^T \delta^{l+1}) \odot \sigma'(z^l)", known)
    assert whole_layers(r"\nabla_a C", known)
    assert not whole_layers(r"\delta^l_j = a^{l-1}_k", known)
    assert not whole_layers(r"e^{x} + x^2", known)
    assert not whole_layers(r"\sigma^{\prime}(z^L_j)", known)
    with pytest.raises(Exception, match="more than a matrix claim reads"):
        _bound(MAX_COMPONENTS + 1, 1)
    assert names_whole_layer is not None


def test_other_spellings_of_bp2_and_bp4(tmp_path):
    results, unparsed, _ = run(tmp_path, """
        network = "generic-3-4-4-2"
        syntax = "latex"

        [[claim]]
        name = "BP2 left right top circ"
        formula = '''\\delta^l = \\left( (w^{l+1})^{\\top} \\cdot \\delta^{l+1} \\right) \\circ \\sigma^{\\prime}(z^l)'''

        [[claim]]
        name = "BP4 chain"
        formula = '''\\frac{\\partial C}{\\partial w^l} = \\delta^l \\cdot (a^{l-1})^T = \\bigl(a^{l-1} (\\delta^l)^T\\bigr)^T'''
    """)
    assert not unparsed, {k: u.message for k, u in unparsed.items()}
    assert results["BP2 left right top circ"].verdict.status == "proven"
    chain = results["BP4 chain"]
    assert chain.verdict.status == "proven" and chain.to_dict()["links"] == 2
