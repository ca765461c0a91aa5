r"""The sources' notation (issue 11, item 3): each form as a textbook writes it, read on a real network.

Every formula below is copied from /work/shared/reference/backprop-formulas.md
(Nielsen, 深度学习的数学 and its CNN, Zhou Zhihua, the worked 2-2-2 post,
deeplearning.ai's course notes), read with a claims file's vocabulary over a
built-in network, and compared with the SymPy it must mean; some are also
proven in a claims file, the way `derive check` reads them.
"""

import textwrap

import pytest
import sympy as sp

import derive
from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.claims.latex import parse_latex_counted
from derive.claims.vocabulary import ClaimVocabulary
from derive.derivation import Derivations
from derive.errors import FormulaError

_NETWORKS: dict = {}


def vocabulary(network: str) -> ClaimVocabulary:
    if network not in _NETWORKS:
        net = derive.layered([2, 3, 2]) if network == "2-3-2" else derive.load(network)
        _NETWORKS[network] = ClaimVocabulary(net, Derivations(net))
    return _NETWORKS[network]


def read(network, text, latex_names=None, **indices):
    return parse_latex_counted(text, vocabulary(network), latex_names or {}, indices=indices)[0]


def names(network, *wanted):
    by_name = vocabulary(network).network.by_name
    return [by_name[n] for n in wanted]


def delta(network, name):
    vocab = vocabulary(network)
    return vocab.derivations.cost.adjoint(vocab.network.by_name[name])


def sigma_prime(a):  # the sigmoid's derivative at the unit whose output is a
    return a * (1 - a)


def proven(tmp_path, text):
    (tmp_path / "claims.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return [r.verdict.status for r in check(load_claims(tmp_path / "claims.toml")).results]


# -- 1. the two misreadings -------------------------------------------------------------


def test_an_operator_applies_to_the_whole_product_that_follows():
    # Mazur's 2-2-2 post: ∂E_total/∂out_o1 = ∂/∂out_o1 ½(target_o1 − out_o1)² + …
    outo1, y1 = names("two-two-two", "outo1", "y1")
    text = r"\frac{\partial}{\partial out_{o1}} \frac{1}{2}(y_1 - out_{o1})^2"
    assert read("two-two-two", text) == outo1 - y1
    two = text + r" + \frac{\partial}{\partial out_{o1}} \frac{1}{2}(y_2 - out_{o2})^2"
    assert read("two-two-two", two) == outo1 - y1  # up to the top-level +, and no further


def test_a_layer_label_in_brackets_is_never_a_square():
    outh1, = names("two-two-two", "outh1")
    assert read("two-two-two", r"out_{h1}^{(2)}") == outh1  # h1 is in layer 2, counting the inputs as 1
    with pytest.raises(FormulaError, match=r"outh1 is in layer 2"):
        read("two-two-two", r"out_{h1}^{(3)}")
    assert read("two-two-two", r"out_{h1}^2") == outh1**2  # no layered names: a power, as before


def test_the_misreadings_now_prove_true_claims(tmp_path):
    assert proven(tmp_path, r"""
        network = "two-two-two"
        syntax = "latex"
        [[claim]]
        name = "the operator's whole operand"
        wrt = "outo1"
        formula = '\frac{\partial}{\partial out_{o1}} \frac{1}{2}(y_{1} - out_{o1})^2'
        [[claim]]
        name = "a derivative of a bracket"
        wrt = "outo1"
        formula = '\frac{\partial \left(\frac{1}{2}(y_1 - out_{o1})^2\right)}{\partial out_{o1}}'
        """) == ["proven", "proven"]


# -- 2. layer labels ----------------------------------------------------------------------


@pytest.mark.parametrize("text", [r"a^{(2)}_1", r"a^{[2]}_1", r"a^2_1", r"a_1^{(2)}", r"a_{(2)1}"])
def test_layer_labels_name_the_layered_unit(text):
    # Nielsen a^l_j; course notes a^{(l)}_j; deeplearning.ai a^{[l]}
    assert read("2-3-2", text) == names("2-3-2", "a2_1")[0]


def test_a_bound_index_in_a_label():
    # Nielsen BP2 in a course's notation: δ^{(l)}_j = (Σ_k w^{(l+1)}_{kj} δ^{(l+1)}_k) σ'(z^{(l)}_j)
    text = r"\left(\sum_k w^{(l+1)}_{kj} \delta^{(l+1)}_k\right) \sigma'(z^{(l)}_j)"
    w311, w321, a21 = names("2-3-2", "w3_1_1", "w3_2_1", "a2_1")
    expected = (w311 * delta("2-3-2", "z3_1") + w321 * delta("2-3-2", "z3_2")) * sigma_prime(a21)
    assert read("2-3-2", text, l=2, j=1) == expected
    assert read("2-3-2", r"\delta^{[l]}_j", l=3, j=2) == delta("2-3-2", "z3_2")


def test_a_power_of_a_labelled_name_is_written_with_brackets():
    a21, = names("2-3-2", "a2_1")
    assert read("2-3-2", r"(a^{(2)}_1)^2") == a21**2
    with pytest.raises(FormulaError, match=r"after a layer label: for a power of a labelled name write"):
        read("2-3-2", r"a^{(2)}_1^2")
    with pytest.raises(FormulaError, match=r"tried a4_1\); a superscript in brackets is a layer label"):
        read("2-3-2", r"a^{(4)}_1")
    with pytest.raises(FormulaError, match="a layer label needs one layer and a subscript"):
        read("2-3-2", r"a^{(2)}")


def test_a_superscript_where_a_layer_could_be_meant_is_refused():
    # a's names are layered: a^3_3 is not a3_3 (no such unit) and must not silently be (a_3)^3
    vocab = ClaimVocabulary(derive.layered([2, 3, 2]), Derivations(derive.layered([2, 3, 2])))
    vocab.define("a3", sp.Symbol("q"))
    with pytest.raises(FormulaError, match=r"ambiguous: read as a layer, a3_3 is not a name .* as a power"):
        parse_latex_counted(r"a^3_3", vocab)
    assert read("2-3-2", r"a^3_1") == names("2-3-2", "a3_1")[0]  # the layered name first, as before


@pytest.mark.parametrize(
    "text, name, indices",
    [
        (r"z^{F1}_{11}", "zF_1_1_1", {}),  # the book's CNN: filter 1 of the convolution layer F
        (r"a^{F2}_{34}", "aF_2_3_4", {}),
        (r"w^{O1}_{1-11}", "wO_1_1_1_1", {}),  # output 1, from filter 1's pooled unit (1, 1)
        (r"w^{O2}_{3-12}", "wO_2_3_1_2", {}),
        (r"a^{P}_{k,ij}", "aP_1_2_1", {"k": 1, "i": 2, "j": 1}),
        (r"a^{P1}_{12}", "aP_1_1_2", {}),
        (r"w^F_{k,pq}", "wF_3_1_3", {"k": 3, "p": 1, "q": 3}),
        (r"z^O_n", "zO_2", {"n": 2}),
    ],
)
def test_the_books_cnn_labels(text, name, indices):
    assert read("book-cnn", text, **indices) == names("book-cnn", name)[0]


def test_the_books_cnn_formulas_are_proven(tmp_path):
    assert proven(tmp_path, r"""
        network = "book-cnn"
        syntax = "latex"
        [[claim]]
        name = "∂C/∂w^{O1}_{1-11}"
        wrt = "wO_1_1_1_1"
        formula = '\delta^{O}_1 a^{P1}_{11}'
        [[claim]]
        name = "∂C/∂b^F_1, the sum without bounds"
        wrt = "bF_1"
        formula = '\sum_{i,j} \delta^{F1}_{ij}'
        [[claim]]
        name = "output error, t the correct answer"
        wrt = "zO_2"
        formula = '(a^{O}_2 - t_2) f^{\prime}(z^{O}_2)'
        """) == ["proven"] * 3


# -- 3. primes with any letter --------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [r"f'(z^2_1)", r"g'(z^2_1)", r"a'(z^2_1)", r"\sigma'(z^2_1)", r"\dot{\sigma}(z^2_1)", r"\dot\sigma(z^2_1)",
             r"g^{\prime}(z^{[2]}_1)", r"\phi'\left(z^{(2)}_1\right)"],
)
def test_a_primed_letter_applied_is_the_activations_derivative(text):
    a21, = names("2-3-2", "a2_1")
    assert read("2-3-2", text) == sigma_prime(a21)


def test_f_and_g_are_the_activation_where_they_name_nothing():
    # Zhou: ŷ_j = f(β_j − θ_j), f'(β_j − θ_j); the 2-2-2 post's f'(net_j)
    beta1, theta1 = names("zhou-2-2-2", "beta1", "theta1")
    value = read("zhou-2-2-2", r"f(\beta_1 - \theta_1)")
    assert str(value) == "sigmoid(beta1 - theta1)"
    assert sp.simplify(read("zhou-2-2-2", r"f'(\beta_1 - \theta_1)") - value * (1 - value)) == 0
    outo1, = names("two-two-two", "outo1")
    assert read("two-two-two", r"f'(net_{o1})") == sigma_prime(outo1)
    assert read("2-3-2", r"g(z^2_1)") == names("2-3-2", "a2_1")[0]
    with pytest.raises(FormulaError, match="only the first derivative f' is understood"):
        read("2-3-2", r"f''(z^2_1)")
    with pytest.raises(FormulaError, match=r"\\dot is understood only as the activation's derivative"):
        read("2-3-2", r"\dot{x}(z^2_1)")


def test_zhou_with_f_prime_is_proven(tmp_path):
    assert proven(tmp_path, r"""
        network = "zhou-2-2-2"
        syntax = "latex"
        [[claim]]
        name = "∂E/∂w_{11} = −g_1 b_1"
        wrt = "w11"
        formula = '''-(y_1 - \hat{y}_1) f'(\beta_1 - \theta_1) b_1'''
        """) == ["proven"]


# -- 4. operators and names ---------------------------------------------------------------------


@pytest.mark.parametrize("operator", [r"\odot", r"\circ", r"\bullet", r"\cdot", r"\times"])
def test_product_operators(operator):
    # Nielsen BP1: δ^L = ∇_a C ⊙ σ'(z^L), one component
    a31, = names("2-3-2", "a3_1")
    text = rf"\frac{{\partial C}}{{\partial a^{{3}}_1}} {operator} \sigma'(z^3_1)"
    assert read("2-3-2", text) == read("2-3-2", r"\frac{\partial C}{\partial a^3_1}") * sigma_prime(a31)


@pytest.mark.parametrize("text", [r"\mathcal{C}", r"{\cal C}", r"\mathcal C"])
def test_calligraphic_names(text):
    assert read("2-3-2", text) == names("2-3-2", "C")[0]


def test_derivatives_of_bracketed_expressions():
    a31, y1 = names("2-3-2", "a3_1", "y1")
    half = r"\frac{1}{2}(y_1 - a^3_1)^2"
    assert read("2-3-2", rf"\partial \left({half}\right) / \partial a^3_1") == a31 - y1
    assert read("2-3-2", rf"\frac{{\partial ({half})}}{{\partial a^{{3}}_1}}") == a31 - y1
    assert read("2-3-2", r"\frac{\partial (\mathcal{C})}{\partial a^3_1}") == read("2-3-2", r"\frac{\partial C}{\partial a^3_1}")


def test_mazurs_names(tmp_path):
    # E_total through [latex_names]; E_{o_1} through [definitions]
    e, outo1 = names("two-two-two", "E", "outo1")
    total = read("two-two-two", r"\frac{\partial E_{total}}{\partial out_{o1}}", {"E_{total}": "E"})
    assert total == read("two-two-two", r"\frac{\partial E}{\partial out_{o1}}")
    assert proven(tmp_path, r"""
        network = "two-two-two"
        syntax = "latex"
        [latex_names]
        "E_{total}" = "E"
        [definitions]
        E_o1 = '\frac{1}{2}(y_1 - out_{o1})^2'
        [[claim]]
        name = "E_{o_1}"
        wrt = "outo1"
        formula = '\frac{\partial E_{o_1}}{\partial out_{o1}}'
        [[claim]]
        name = "E written E"
        wrt = "w5"
        formula = '\frac{\partial E}{\partial out_{o1}} \cdot out_{o1}(1 - out_{o1}) \cdot out_{h1}'
        """) == ["proven", "proven"]
    # E_{total} in a claims file: the file's index letters (derive/claims/indices.py) take t, o, a, l for indices
    # before [latex_names] is consulted; the reader itself maps it, as above


def test_targets_t_or_y():
    # the book writes t_j for the correct answer; Nielsen y_j: both are the network's target
    a31, y1 = names("2-3-2", "a3_1", "y1")
    assert read("2-3-2", r"a^3_1 - t_1") == read("2-3-2", r"a^3_1 - y_1") == a31 - y1
    t1, = names("book-cnn", "t1")
    assert read("book-cnn", r"t_1") == t1  # the CNN names its targets t: t is t


def test_left_right():
    a21, = names("2-3-2", "a2_1")
    assert read("2-3-2", r"\left( 1 - a^2_1 \right) a^2_1") == sigma_prime(a21)


# -- 5. sums without bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("text", [r"\sum_k \delta^3_k w^3_{k1}", r"\sum_{k} \delta^{3}_{k} w^{3}_{k1}"])
def test_a_sum_without_bounds_runs_as_far_as_the_names_exist(text):
    # 深度学习的数学: δ^l_i = (Σ_j δ^{l+1}_j w^{l+1}_{ji}) σ'(z^l_i)
    w311, w321 = names("book-12-3-2", "w3_1_1", "w3_2_1")
    expected = delta("book-12-3-2", "z3_1") * w311 + delta("book-12-3-2", "z3_2") * w321
    assert read("book-12-3-2", text) == expected


def test_a_sum_over_two_indices_without_bounds():
    # the book's CNN: ∂C/∂b^F_k = Σ_{i,j} δ^F_{k,ij}
    expected = sum(delta("book-cnn", f"zF_2_{i}_{j}") for i in range(1, 5) for j in range(1, 5))
    assert read("book-cnn", r"\sum_{i,j} \delta^F_{k,ij}", k=2) == expected
    assert read("book-cnn", r"\sum_n \delta^O_n w^O_{n,1,12}") == sum(
        delta("book-cnn", f"zO_{n}") * names("book-cnn", f"wO_{n}_1_1_2")[0] for n in (1, 2, 3))


def test_a_sum_without_bounds_is_refused_when_its_range_is_unclear():
    with pytest.raises(FormulaError, match=r"the range of k is ambiguous: at k=3 the network has w3_1_3 but not x3"):
        read("2-3-2", r"\sum_k w^3_{1k} x_k")
    with pytest.raises(FormulaError, match="no name in the summand uses k"):
        read("2-3-2", r"\sum_k 2")


def test_bp2_with_sums_without_bounds_is_proven(tmp_path):
    assert proven(tmp_path, r"""
        network = "book-12-3-2"
        syntax = "latex"
        [[claim]]
        name = "δ^2_1"
        wrt = "z2_1"
        formula = '\left(\sum_k \delta^{(3)}_k w^{(3)}_{k1}\right) \sigma^{\prime}(z^{(2)}_1)'
        [[claim]]
        name = "∂C/∂w^2_{1,12}"
        wrt = "w2_1_12"
        formula = '\delta^{[2]}_1 a^{[1]}_{12}'
        """) == ["proven", "proven"]


def test_a_bound_written_as_a_layers_width_is_accepted_when_it_names_that_layer():
    """Course notes bound BP2's sum by the next layer's width: n_{l+1}, s_{l+1}; a wrong layer is refused."""
    from derive import layered
    from derive.claims.latex import parse_latex_counted
    from derive.claims.vocabulary import ClaimVocabulary
    from derive.derivation import Derivations

    net = layered([2, 3, 2])
    vocabulary = ClaimVocabulary(net, Derivations(net))
    s = net.by_name

    def read(text):
        return parse_latex_counted(text, vocabulary, indices={"l": 2, "j": 1, "L": 3})[0]

    assert read(r"\sum_{k=1}^{n_{l+1}} w^{l+1}_{kj}") == s["w3_1_1"] + s["w3_2_1"]
    assert read(r"\sum_{k=1}^{s_{l-1}} w^{l}_{jk}") == s["w2_1_1"] + s["w2_1_2"]
    with pytest.raises(FormulaError, match=r"n_\{2\} is 3, the width of layer 2, but the summand's names run to k=2"):
        read(r"\sum_{k=1}^{n_l} w^{l+1}_{kj}")
    with pytest.raises(FormulaError, match="layer 7, which the network does not have"):
        read(r"\sum_{k=1}^{n_{7}} w^{l}_{jk}")


def test_course_notes_W_the_loss_and_the_books_window_arithmetic():
    """deeplearning.ai's W^{[l]} and 𝓛, and the book's pooling window a^F_{k,2i-1,2j} (2i: a coefficient)."""
    w, c = names("book-12-3-2", "w2_1_3", "C")
    assert read("book-12-3-2", r"W^{[2]}_{13}") == w  # no W in the network: the weights are w
    assert read("book-12-3-2", r"\mathcal{L}") == c and read("book-12-3-2", r"J") == c
    cell, = names("book-cnn", "aF_1_3_4")
    assert read("book-cnn", r"a^F_{k,2i-1,2j}", k=1, i=2, j=2) == cell
    assert read("book-cnn", r"a^F_{1,3,4}") == cell


def test_the_books_max_pool_written_with_max_is_its_pooling_unit(tmp_path):
    """a^P = max(window) as the book prints it folds into the pooling unit; a wrong window is refuted."""
    from derive.claims.check import check
    from derive.claims.claimsfile import load_claims

    window = r"a^F_{1,11}, a^F_{1,12}, a^F_{1,21}"
    path = tmp_path / "pool.toml"
    path.write_text('network = "book-cnn"\nsyntax = "latex"\n'
                    f"[[claim]]\nname = \"right\"\nformula = '''a^P_{{1,11}} = \\max({window}, a^F_{{1,22}})'''\n"
                    f"[[claim]]\nname = \"wrong\"\nformula = '''a^P_{{1,11}} = \\max({window}, a^F_{{1,23}})'''\n",
                    encoding="utf-8")
    verdicts = {r.claim.name: r.verdict.status for r in check(load_claims(path), budget=2).results}
    assert verdicts == {"right": "proven", "wrong": "refuted"}


def test_kroneckers_delta_with_two_index_letters():
    """Nielsen ch. 3's softmax derivative ∂a^L_j/∂z^L_k = a^L_j(δ_jk − a^L_k); δ_{12} with numbers stays a name."""
    a1, a2 = names("softmax-4-5-3", "a3_1", "a3_2")
    text = r"a^L_j (\delta_{jk} - a^L_k)"
    assert read("softmax-4-5-3", text, L=3, j=1, k=2) == -a1 * a2
    assert read("softmax-4-5-3", text, L=3, j=2, k=2) == a2 * (1 - a2)
    with pytest.raises(FormulaError, match="unknown name"):
        read("softmax-4-5-3", r"\delta_{12}")
