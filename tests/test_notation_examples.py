r"""Per-example scripts, the cost's usual names and layer labels on free-form units (issue 11, item 3).

The forms are copied from /work/shared/reference/backprop-formulas.md: Nielsen's
per-example `a^{x,l}_j`, `\delta^{x,l}_j` and `C_x`; deeplearning.ai's
`a^{[l](i)}_j` and `y^{(i)}`; Zhou Zhihua's `E_k`; the worked 2-2-2 post's
`E_{total}`; Nielsen's `C_0`. Each is read on a built-in network with a claims
file's vocabulary, and checked in a claims file the way `derive check` reads it.
A claims file declares its example index with `example = "x"` (top level, or
per claim); without it these forms are refused, saying so.
"""

import textwrap

import pytest

import derive
from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.claims.latex import parse_latex_counted
from derive.claims.vocabulary import ClaimVocabulary
from derive.derivation import Derivations
from derive.errors import FormulaError, InputError

_VOCABULARIES: dict = {}


def vocabulary(network: str) -> ClaimVocabulary:
    if network not in _VOCABULARIES:
        net = derive.load(network)
        _VOCABULARIES[network] = ClaimVocabulary(net, Derivations(net))
    return _VOCABULARIES[network]


def read(network, text, example=None, latex_names=None, **indices):
    return parse_latex_counted(text, vocabulary(network), latex_names or {}, indices=indices, example=example)[0]


def name(network, wanted):
    return vocabulary(network).network.by_name[wanted]


def delta(network, wanted):
    vocab = vocabulary(network)
    return vocab.derivations.cost.adjoint(vocab.network.by_name[wanted])


def checked(tmp_path, text):
    """{claim name: verdict} for the claims read, and {claim name: message} for those refused."""
    (tmp_path / "claims.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    claims = load_claims(tmp_path / "claims.toml")
    verdicts = {r.claim.name: r.verdict.status for r in check(claims).results} if claims.claims else {}
    return verdicts, {u.name: u.message for u in claims.unparsed}


# -- Nielsen: a^{x,l}_j, δ^{x,l}_j, C_x ------------------------------------------------------------


def test_nielsens_per_example_superscript_is_the_layer():
    assert read("generic-3-4-4-2", r"\delta^{x,l}_j", "x", l=2, j=1) == delta("generic-3-4-4-2", "z2_1")
    assert read("generic-3-4-4-2", r"a^{x,l-1}_k", "x", l=3, k=2) == name("generic-3-4-4-2", "a2_2")
    assert read("generic-3-4-4-2", r"a^{x,3}_4", "x") == name("generic-3-4-4-2", "a3_4")
    assert read("book-12-3-2", r"C_x", "x") == name("book-12-3-2", "C")
    assert read("book-12-3-2", r"\mathcal{C}_{x}", "x") == name("book-12-3-2", "C")
    # the layer of a^{x,l} is a label, never a power
    with pytest.raises(FormulaError, match="superscript after a layer label"):
        read("generic-3-4-4-2", r"a^{x,2}_1^2", "x")


def test_nielsen_per_example_bp1_bp3_bp4_are_proven_and_a_transposed_index_refuted(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"
        example = "x"
        [[claim]]
        name = "BP1"
        formula = '''\delta^{x,L}_j = (a^{x,L}_j - y_j) \sigma'(z^{x,L}_j)'''
        [[claim]]
        name = "BP3"
        formula = '''\frac{\partial C_x}{\partial b^l_j} = \delta^{x,l}_j'''
        [[claim]]
        name = "BP4"
        formula = '''\frac{\partial C_x}{\partial w^l_{jk}} = a^{x,l-1}_k \delta^{x,l}_j'''
        [[claim]]
        name = "BP4 transposed"
        formula = '''\frac{\partial C_x}{\partial w^l_{jk}} = a^{x,l-1}_j \delta^{x,l}_k'''
        """)
    assert refused == {}
    assert verdicts == {"BP1": "proven", "BP3": "proven", "BP4": "proven", "BP4 transposed": "refuted"}


def test_the_example_index_may_be_declared_per_claim(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"
        [[claim]]
        name = "declared"
        example = "x"
        formula = '''\frac{\partial C_x}{\partial b^l_j} = \delta^{x,l}_j'''
        [[claim]]
        name = "not declared"
        formula = '''\frac{\partial C_x}{\partial b^l_j} = \delta^{x,l}_j'''
        """)
    assert verdicts == {"declared": "proven"}
    assert 'declare the example index in the claims file, example = "x"' in refused["not declared"]


# -- deeplearning.ai: a^{[l](i)}_j, y^{(i)} -----------------------------------------------------------


def test_deeplearning_ai_layer_and_example_labels():
    net = "cross-entropy-l2-4-5-3"
    assert read(net, r"a^{[l](i)}_j", "i", l=3, j=1) == name(net, "a3_1")
    assert read(net, r"a^{(i)[l]}_j", "i", l=2, j=5) == name(net, "a2_5")
    assert read(net, r"y^{(i)}_2", "i") == name(net, "y2")
    assert read(net, r"y_2^{(i)}", "i") == name(net, "y2")
    # with example = "i", (2) and (l) stay layer labels
    assert read(net, r"a^{(2)}_1", "i") == name(net, "a2_1")
    assert read(net, r"z^{(l)}_j", "i", l=3, j=2) == name(net, "z3_2")


def test_deeplearning_ai_scalar_forms_are_proven(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "cross-entropy-l2-4-5-3"
        syntax = "latex"
        example = "i"
        [[claim]]
        name = "dz^[L](i) = a^[L](i) - y^(i)"
        formula = '''\frac{\partial C}{\partial z^{[L](i)}_j} = a^{[L](i)}_j - y^{(i)}_j'''
        [[claim]]
        name = "forward"
        formula = '''z^{[l](i)}_j = \sum_k w^{[l]}_{jk} a^{[l-1](i)}_k + b^{[l]}_j'''
        [[claim]]
        name = "sign flipped"
        formula = '''\frac{\partial C}{\partial z^{[L](i)}_j} = y^{(i)}_j - a^{[L](i)}_j'''
        """)
    assert refused == {}
    assert verdicts == {"dz^[L](i) = a^[L](i) - y^(i)": "proven", "forward": "proven", "sign flipped": "refuted"}


# -- Zhou: E_k --------------------------------------------------------------------------------------


def test_zhou_per_example_error(tmp_path):
    assert read("zhou-2-2-2", r"E_k", "k") == name("zhou-2-2-2", "E")
    verdicts, refused = checked(tmp_path, r"""
        network = "zhou-2-2-2"
        syntax = "latex"
        example = "k"
        [[claim]]
        name = "∂E_k/∂w_hj = −g_j b_h"
        formula = '''\frac{\partial E_k}{\partial w_{hj}} = -\hat{y}_j (1 - \hat{y}_j)(y_j - \hat{y}_j) b_h'''
        [[claim]]
        name = "sign"
        formula = '''\frac{\partial E_k}{\partial w_{hj}} = \hat{y}_j (1 - \hat{y}_j)(y_j - \hat{y}_j) b_h'''
        """)
    assert refused == {}
    assert verdicts == {"∂E_k/∂w_hj = −g_j b_h": "proven", "sign": "refuted"}


# -- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("network, text, letter", [
    ("generic-3-4-4-2", r"\delta^{x,2}_1", "x"),
    ("cross-entropy-l2-4-5-3", r"a^{[2](i)}_1", "i"),
    ("cross-entropy-l2-4-5-3", r"y_1^{(i)}", "i"),
    ("book-12-3-2", r"C_x", "x"),
    ("zhou-2-2-2", r"E_k", "k"),
])
def test_without_the_declaration_the_forms_are_refused(network, text, letter):
    with pytest.raises(FormulaError, match=f'declare the example index in the claims file, example = "{letter}"'):
        read(network, text)


def test_undeclared_forms_in_a_claims_file_are_refused_with_the_hint(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "zhou-2-2-2"
        syntax = "latex"
        [[claim]]
        name = "Zhou"
        formula = '''\frac{\partial E_k}{\partial w_{hj}} = -\hat{y}_j (1 - \hat{y}_j)(y_j - \hat{y}_j) b_h'''
        """)
    assert verdicts == {}
    assert 'example = "k"' in refused["Zhou"]


def test_the_example_letter_is_never_an_index_elsewhere():
    with pytest.raises(FormulaError, match='k is the example index'):
        read("zhou-2-2-2", r"x_k", "k")
    with pytest.raises(FormulaError, match="a sum over the example index k is a sum over the training set"):
        read("zhou-2-2-2", r"\sum_k E_k", "k")
    with pytest.raises(FormulaError, match="not one of them is the example index x"):
        read("generic-3-4-4-2", r"a^{2,3}_1", "x")
    with pytest.raises(FormulaError, match="not exactly one of them is the example index"):
        read("generic-3-4-4-2", r"a^{[2](3)}_1", "i")
    with pytest.raises(FormulaError, match="i is the example index"):
        read("generic-3-4-4-2", r"a^{[i]}_1", "i")


@pytest.mark.parametrize("value, message", [('"xy"', "must be one letter"), ('"E"', "is a name of the network")])
def test_the_example_key_is_one_free_letter(tmp_path, value, message):
    (tmp_path / "claims.toml").write_text(textwrap.dedent(f"""
        network = "zhou-2-2-2"
        example = {value}
        [[claim]]
        wrt = "w11"
        formula = "0"
        """), encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_claims(tmp_path / "claims.toml")


# -- the cost's usual names ---------------------------------------------------------------------------


def test_e_total_and_c_0_name_the_cost():
    assert read("two-two-two", r"E_{total}") == name("two-two-two", "E")
    assert read("two-two-two", r"E_{\text{total}}") == name("two-two-two", "E")
    assert read("book-12-3-2", r"C_0") == name("book-12-3-2", "C")  # no regularization: C = C_0
    assert read("cross-entropy-l2-4-5-3", r"C_0") == name("cross-entropy-l2-4-5-3", "C0")  # its own C0
    # [latex_names] is consulted first
    assert read("two-two-two", r"E_{total}", latex_names={"E_{total}": "outo1"}) == name("two-two-two", "outo1")


def test_the_worked_posts_e_total_is_proven(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "two-two-two"
        syntax = "latex"
        [[claim]]
        name = "∂E_total/∂w5"
        formula = '''\frac{\partial E_{total}}{\partial w_5} = (out_{o1} - y_1) out_{o1}(1 - out_{o1}) out_{h1}'''
        [[claim]]
        name = "Nielsen's C_0"
        formula = '''\frac{\partial C_0}{\partial b^3_1} = \delta^3_1'''
        """)
    assert refused.keys() == {"Nielsen's C_0"}  # two-two-two has no C: C_0 is not its cost
    assert verdicts == {"∂E_total/∂w5": "proven"}


# -- a layer label on a named unit of a free-form network ------------------------------------------------


def test_a_layer_label_on_a_free_form_unit_is_checked_against_the_graph():
    assert read("two-two-two", r"out_{h1}^{(2)}") == name("two-two-two", "outh1")
    assert read("two-two-two", r"net_{o1}^{[3]}") == name("two-two-two", "neto1")
    assert read("zhou-2-2-2", r"b_1^{(2)}") == name("zhou-2-2-2", "b1")  # b_h = f(α_h − γ_h): still layer 2
    assert read("zhou-2-2-2", r"\hat{y}_2^{(3)}") == name("zhou-2-2-2", "yhat2")
    with pytest.raises(FormulaError, match=r"outh1 is in layer 2 \(counting the inputs as layer 1.*not 3"):
        read("two-two-two", r"out_{h1}^{(3)}")
    with pytest.raises(FormulaError, match="outo2 is in layer 3"):
        read("two-two-two", r"out_{o2}^{(2)}")
    outh1 = name("two-two-two", "outh1")
    assert read("two-two-two", r"out_{h1}^2") == outh1**2  # no label: a power, as before


def test_a_labelled_free_form_claim_is_proven(tmp_path):
    verdicts, refused = checked(tmp_path, r"""
        network = "two-two-two"
        syntax = "latex"
        [[claim]]
        name = "labelled"
        formula = '''\frac{\partial E}{\partial out_{o1}^{(3)}} = out_{o1}^{(3)} - y_1'''
        [[claim]]
        name = "wrong layer"
        formula = '''\frac{\partial E}{\partial out_{o1}^{(2)}} = out_{o1} - y_1'''
        """)
    assert verdicts == {"labelled": "proven"}
    assert "outo1 is in layer 3" in refused["wrong layer"]
