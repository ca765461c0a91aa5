r"""Claims with free indices and symbolic layers, and chained derivations (issue 11, items 1, 2 and 4).

The formulas are the textbooks' own, from /work/shared/reference/backprop-formulas.md:
Nielsen's BP1–BP4 in index form, his proof of BP1 as a chain, Zhou's g_j and
Δw_{hj}; and planted wrong variants that must be refuted at a named instance
or link.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.cli.text import check_text

BUDGET = 5.0


def run(tmp_path: Path, body: str, name: str = "claims.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    result = check(load_claims(path), budget=BUDGET)
    return {r.claim.name: r for r in result.results}, result


NIELSEN = r"""
    network = "{network}"
    syntax = "latex"

    [[claim]]
    name = "BP1"
    formula = '''\delta^L_j = \frac{{\partial C}}{{\partial a^L_j}} \sigma'(z^L_j)'''

    [[claim]]
    name = "BP2"
    formula = '''\delta^l_j = \left(\sum_{{k=1}}^{{n}} w^{{l+1}}_{{kj}} \delta^{{l+1}}_k\right) \sigma'(z^l_j)'''

    [[claim]]
    name = "BP3"
    formula = '\frac{{\partial C}}{{\partial b^l_j}} = \delta^l_j'

    [[claim]]
    name = "BP4"
    formula = '\frac{{\partial C}}{{\partial w^l_{{jk}}}} = a^{{l-1}}_k \delta^l_j'
"""


@pytest.mark.parametrize("network, counts", [
    ("book-12-3-2", {"BP1": 2, "BP3": 5, "BP4": 3 * 12 + 2 * 3}),
    ("generic-3-4-4-2", {"BP1": 2, "BP3": 4 + 4 + 2, "BP4": 4 * 3 + 4 * 4 + 2 * 4}),
])
def test_nielsen_bp1_to_bp4_in_index_form_are_proven_at_every_instance(tmp_path, network, counts):
    results, _ = run(tmp_path, NIELSEN.format(network=network))
    for name in ("BP1", "BP3", "BP4"):
        r = results[name]
        assert r.verdict.status == "proven", (name, r.verdict.method)
        assert r.claim.generic.instances == counts[name]
        assert r.to_dict()["instances"] == counts[name]
    # BP2 on the hidden layers: its sum's bound n is found per instance (the next layer's size)
    bp2 = results["BP2"]
    assert bp2.verdict.status in ("proven", "undecided")
    assert bp2.claim.generic.letters == ("l", "j")


def test_planted_transposed_index_is_refuted_at_its_first_instance(tmp_path):
    results, result = run(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"

        [[claim]]
        name = "BP4 transposed"
        formula = '\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_j \delta^l_k'
        where = 'k \neq j'
    """)
    r = results["BP4 transposed"]
    assert r.verdict.status == "refuted"
    entry = r.to_dict()
    assert entry["instance"] == {"l": 2, "j": 1, "k": 2}
    assert entry["link"] == 1 and entry["links"] == 1
    assert entry["counterexample"] is not None
    assert r.diagnosis is not None and r.diagnosis.id == "transposed-index"
    # every name must exist (δ^l_k needs k ≤ the size of layer l) and k ≠ j: 3·2 + 2·1 instances
    assert entry["instances"] == 3 * 2 + 2 * 1
    text = check_text(result)
    assert "instance l=2, j=1, k=2 (of 8 instances)" in text


def test_nielsen_proof_of_bp1_as_a_chain(tmp_path):
    results, result = run(tmp_path, r"""
        network = "generic-3-4-4-2"
        syntax = "latex"

        [[claim]]
        name = "proof of BP1"
        formula = '\delta^L_j = \frac{\partial C}{\partial z^L_j} = \sum_{k=1}^{2} \frac{\partial C}{\partial a^L_k} \frac{\partial a^L_k}{\partial z^L_j} = \frac{\partial C}{\partial a^L_j} \sigma^{\prime}(z^L_j)'

        [[claim]]
        name = "proof of BP1, last step wrong"
        formula = '\delta^L_j = \frac{\partial C}{\partial z^L_j} = \sum_{k=1}^{2} \frac{\partial C}{\partial a^L_k} \frac{\partial a^L_k}{\partial z^L_j} = \frac{\partial C}{\partial a^L_j} \sigma(z^L_j)'
    """)
    good, bad = results["proof of BP1"], results["proof of BP1, last step wrong"]
    assert good.verdict.status == "proven", good.verdict.method
    assert good.to_dict()["links"] == 3 and good.to_dict()["instances"] == 2
    assert bad.verdict.status == "refuted"
    entry = bad.to_dict()
    assert entry["link"] == 3 and entry["links"] == 3 and entry["instance"] == {"j": 1}
    assert entry["false_link"].endswith(r"≠ \frac{\partial C}{\partial a^L_j} \sigma(z^L_j)")
    assert "link 3 of 3 is false:" in check_text(result)


def test_chain_in_sympy_syntax_and_identity_implied(tmp_path):
    results, _ = run(tmp_path, """
        network = "two-two-two"

        [[claim]]
        name = "dE/dw5 step by step"
        formula = "D(E, w5) = D(E, neto1)*outh1 = (outo1 - y1)*outo1*(1 - outo1)*outh1"

        [[claim]]
        name = "second step wrong"
        formula = "D(E, w5) = D(E, neto1)*outh1 = (outo1 - y1)*outh1"

        [[claim]]
        name = "gradient claim with a chain"
        wrt = "w5"
        formula = "D(E, neto1)*outh1 = (outo1 - y1)*outo1*(1 - outo1)*outh1"
    """)
    assert results["dE/dw5 step by step"].verdict.status == "proven"
    assert results["dE/dw5 step by step"].claim.kind == "identity"
    wrong = results["second step wrong"].to_dict()
    assert wrong["verdict"] == "refuted" and wrong["link"] == 2 and wrong["links"] == 2
    assert wrong["instance"] == {}
    chained = results["gradient claim with a chain"]
    assert chained.verdict.status == "proven" and chained.to_dict()["links"] == 2


def test_sympy_indexed_form_of_the_formula_sets(tmp_path):
    results, _ = run(tmp_path, """
        network = "book-12-3-2"

        [[claim]]
        name = "BP3"
        formula = "D(C, b[l, j]) = delta[l, j]"

        [[claim]]
        name = "BP2"
        formula = "delta[l, j] = sum(w[l+1, k, j]*delta[l+1, k], k, 1, size[l+1]) * sigma_prime(z[l, j])"
        indices = { l = "2..L-1" }

        [[claim]]
        name = "BP4 wrong"
        formula = "D(C, w[l, j, k]) = a[l-1, j]*delta[l, k]"
    """)
    assert results["BP3"].verdict.status == "proven"
    assert results["BP3"].to_dict()["instances"] == 5
    assert results["BP2"].verdict.status == "proven"
    assert results["BP2"].to_dict()["instances"] == 3
    wrong = results["BP4 wrong"].to_dict()
    assert wrong["verdict"] == "refuted" and wrong["instance"] == {"l": 2, "j": 1, "k": 2}


def test_zhou_g_and_delta_w_with_free_indices(tmp_path):
    results, _ = run(tmp_path, r"""
        network = "zhou-2-2-2"
        syntax = "latex"

        [[claim]]
        name = "g_j"
        formula = '-\frac{\partial E}{\partial \beta_j} = \hat{y}_j (1 - \hat{y}_j)(y_j - \hat{y}_j)'

        [[claim]]
        name = "Delta w_hj"
        formula = '-\frac{\partial E}{\partial w_{hj}} = \hat{y}_j (1 - \hat{y}_j)(y_j - \hat{y}_j) b_h'

        [[claim]]
        name = "Delta w_hj, indices swapped"
        formula = '-\frac{\partial E}{\partial w_{hj}} = \hat{y}_h (1 - \hat{y}_h)(y_h - \hat{y}_h) b_j'
    """)
    assert results["g_j"].verdict.status == "proven"
    assert results["g_j"].to_dict()["instances"] == 2
    assert results["Delta w_hj"].verdict.status == "proven"
    assert results["Delta w_hj"].to_dict()["instances"] == 4
    swapped = results["Delta w_hj, indices swapped"].to_dict()
    assert swapped["verdict"] == "refuted" and swapped["instance"] == {"h": 1, "j": 2}


def test_literal_names_stay_literal_and_ambiguity_is_refused(tmp_path):
    results, _ = run(tmp_path, r"""
        network = "two-two-two"
        syntax = "latex"

        [[claim]]
        name = "out_{h1} is the name outh1"
        wrt = "w5"
        formula = '(out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h1}'
    """)
    r = results["out_{h1} is the name outh1"]
    assert r.verdict.status == "proven" and r.claim.generic is None
    # h_1 on a network with names h1 and a letter h that would also index: refused, naming both readings
    path = tmp_path / "ambiguous.toml"
    path.write_text(textwrap.dedent(r"""
        network = "two-two-two"
        syntax = "latex"
        [definitions]
        wk = "w5"
        [[claim]]
        name = "ambiguous"
        formula = 'w_k = w_5'
    """), encoding="utf-8")
    (unparsed,) = load_claims(path).unparsed  # the claim's fault: graded unparsed, with both readings
    assert unparsed.name == "ambiguous" and re.search("ambiguous: read as written", unparsed.message)


def test_indices_table_and_conditions(tmp_path):
    results, _ = run(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"
        [indices]
        l = "L"

        [[claim]]
        name = "BP3 on the output layer"
        formula = '\frac{\partial C}{\partial b^l_j} = \delta^l_j'

        [[claim]]
        name = "BP4 for k up to 3"
        formula = '\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_k \delta^l_j'
        indices = { l = "2", j = "layer l", k = "1..3" }

        [[claim]]
        name = "BP3 where l = L"
        formula = '\frac{\partial C}{\partial b^m_j} = \delta^m_j'
        where = 'm = L'
    """)
    assert results["BP3 on the output layer"].to_dict()["instances"] == 2
    assert results["BP4 for k up to 3"].to_dict()["instances"] == 9
    assert results["BP3 where l = L"].to_dict()["instances"] == 2
    assert all(r.verdict.status == "proven" for r in results.values())


def test_a_claim_without_instances_is_an_error_with_its_place(tmp_path):
    path = tmp_path / "none.toml"
    path.write_text(textwrap.dedent(r"""
        network = "book-12-3-2"
        syntax = "latex"
        [[claim]]
        name = "no such weight"
        formula = '\frac{\partial C}{\partial q^l_{jk}} = a^{l-1}_k \delta^l_j'
    """), encoding="utf-8")
    (unparsed,) = load_claims(path).unparsed
    assert re.search("no such weight.*no values of the index letters l, j, k", unparsed.message)


def test_show_correct_false_hides_the_correct_formula_and_answer_key(tmp_path):
    results, result = run(tmp_path, """
        network = "two-two-two"
        show_correct = false

        [[claim]]
        name = "dE/dw6 (sign)"
        wrt = "w6"
        formula = "-(outo2 - y2)*outo2*(1 - outo2)*outh1"
        expect = "refuted"
    """)
    entry = results["dE/dw6 (sign)"].to_dict()
    assert entry["verdict"] == "refuted"
    for key in ("expected", "expected_latex", "expect", "expect_matched"):
        assert key not in entry
    assert "corrected" not in (entry["diagnosis_detail"] or {})
    text = check_text(result)
    assert "correct:" not in text and "expected" not in text
    assert json.dumps(result.to_dict())  # still JSON


def test_the_claims_report_states_the_instance_and_link(tmp_path):
    from derive.report import claims_context, render

    _, result = run(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"
        show_correct = false

        [[claim]]
        name = "BP4 transposed"
        formula = '\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_j \delta^l_k'
        expect = "refuted"
    """)
    for lang in ("en", "zh"):
        context = claims_context(result, lang=lang)
        (claim,) = context["claims"]["list"]
        assert claim["expected"] == [] and claim["expect"] is None
        tex = render("claims", context)
        assert "l=2," in tex and "k=2" in tex


def test_an_index_letter_is_never_read_as_an_exponent(tmp_path):
    """Zhou's E_k = ½ Σ_j (ŷ^k_j − y^k_j)², k the example: read with k = 2 as a square it was refuted."""
    formula = r"E_k = \frac{1}{2} \sum_{j=1}^{l} (\hat{y}^k_j - y^k_j)^2"
    path = tmp_path / "zhou.toml"
    claim = f"[[claim]]\nname = \"E_k\"\nformula = '''{formula}'''\n"
    path.write_text('network = "zhou-2-2-2"\nsyntax = "latex"\n[latex_names]\n"E_k" = "E"\n' + claim, encoding="utf-8")
    result = check(load_claims(path))
    assert not result.results and len(result.unparsed) == 1  # refused, never refuted
    assert "the index letter k stands in an exponent" in result.unparsed[0].message
    path.write_text('network = "zhou-2-2-2"\nsyntax = "latex"\nexample = "k"\n' + claim, encoding="utf-8")
    (graded,) = check(load_claims(path)).results
    assert graded.verdict.status == "proven"


def test_a_bare_family_letter_stands_for_every_member(tmp_path):
    """Nielsen ch. 3 (86)-(87) write ∂C/∂w and ∂C/∂b for every weight and bias; the book, σ'(z) for every z."""
    path = tmp_path / "family.toml"
    path.write_text(textwrap.dedent(r"""
        network = "cross-entropy-l2-4-5-3"
        syntax = "latex"
        [[claim]]
        name = "(86)"
        formula = '\frac{\partial C}{\partial w} = \frac{\partial C_0}{\partial w} + \frac{\lambda}{n} w'
        [[claim]]
        name = "(87)"
        formula = '\frac{\partial C}{\partial b} = \frac{\partial C_0}{\partial b}'
        [[claim]]
        name = "biases regularised too (wrong)"
        formula = '\frac{\partial C}{\partial b} = \frac{\partial C_0}{\partial b} + \frac{\lambda}{n} b'
        [[claim]]
        name = "the sigmoid's derivative"
        formula = '\sigma^{\prime}(z) = \sigma(z)(1 - \sigma(z))'
    """), encoding="utf-8")
    results = {r.claim.name: r for r in check(load_claims(path)).results}
    assert results["(86)"].verdict.status == "proven" and results["(86)"].claim.generic.instances == 35
    assert results["(87)"].verdict.status == "proven" and results["(87)"].claim.generic.instances == 8
    assert results["the sigmoid's derivative"].verdict.status == "proven"
    wrong = results["biases regularised too (wrong)"]
    assert wrong.verdict.status == "refuted" and wrong.to_dict()["instance"] == {"b": "b2_1"}


HOSTILE_GENERIC = {
    "a chain of 400 links": "formula = '''" + " = ".join([r"\delta^L_j"] * 400) + "'''\n",
    "a range of 10^11 values": "formula = '''\\delta^L_j = \\delta^L_j'''\nindices = { j = \"1..100000000000\" }\n",
    "an index of 23 digits": "formula = '''\\delta^L_j = \\delta^L_j'''\nindices = { j = \"99999999999999999999999\" }\n",
    "unbalanced conditions": "formula = '''\\delta^L_j = \\delta^L_j'''\nwhere = '''j \\neq (((((((((((k'''\n",
    "ten free letters": "formula = '''w^{a}_{bc} = w^{d}_{ef} + w^{g}_{hi} + w^{m}_{no}'''\n",
    "the layer count as the example": "formula = '''a^{x,l}_j = a^{x,l}_j'''\nexample = \"L\"\n",
    "eleven nested open sums": "formula = '''" + "".join("\\sum_{%s}" % c for c in "abcdefghijk") + " w^l_{jk} = 0'''\n",
}


@pytest.mark.parametrize("entry", HOSTILE_GENERIC.values(), ids=HOSTILE_GENERIC.keys())
def test_hostile_index_claims_end_fast_and_cleanly(entry, tmp_path, capsys):
    """Letters, ranges, chains and conditions from a stranger: a verdict or a reason within seconds, never exit 3."""
    import time

    from derive.cli import main

    path = tmp_path / "hostile.toml"
    path.write_text('network = "generic-3-4-4-2"\nsyntax = "latex"\n[[claim]]\nname = "x"\n' + entry, encoding="utf-8")
    start = time.perf_counter()
    code = main(["check", str(path), "--budget", "1"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and not err and "Traceback" not in out, out + err
    assert "✓ proven" in out or "! unparsed" in out
    assert time.perf_counter() - start < 30
