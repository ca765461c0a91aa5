"""Convolutional networks: the book's CNN and the general layers, proven and checked against PyTorch."""

import json
import time
from fractions import Fraction

import pytest
import sympy as sp

from derive import Derivations, load, load_set, prove
from derive.claims.check import check
from derive.claims.claimsfile import parse_claims
from derive.cli import main
from derive.graph.convolutional import convolutional
from oracles import derived_gradients, random_point, torch_cnn_gradients

from conftest import DATA

BOOK_LAYERS = [
    {"type": "conv", "filters": 3, "kernel": 3, "activation": "sigmoid"},
    {"type": "maxpool", "size": 2},
    {"type": "dense", "units": 3, "activation": "sigmoid"},
]

CONFIGURATIONS = {
    "book": ([6, 6], BOOK_LAYERS, "quadratic"),
    "average": ([6, 6], [dict(BOOK_LAYERS[0]), {"type": "avgpool", "size": 2}, dict(BOOK_LAYERS[2])], "quadratic"),
    "l2": ([6, 6], [dict(BOOK_LAYERS[0]), {"type": "l2pool", "size": 2}, dict(BOOK_LAYERS[2])], "quadratic"),
    "strided-padded-channels": (
        [2, 5, 5],
        [
            {"type": "conv", "filters": 2, "kernel": 3, "stride": 2, "padding": 1, "activation": "tanh"},
            {"type": "maxpool", "size": 2, "stride": 1},  # overlapping windows
            {"type": "flatten"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "log_likelihood",
    ),
    "same-padding-relu": (
        [5, 5],
        [
            # relu with max pooling: L2 pooling after relu can meet an all-zero window,
            # where sqrt has no derivative (PyTorch returns nan there)
            {"type": "conv", "filters": 2, "kernel": 3, "padding": "same", "activation": "relu"},
            {"type": "maxpool", "size": 2, "stride": 1},
            {"type": "dense", "units": 2, "activation": "sigmoid"},
        ],
        # not cross-entropy: relu sums saturate the sigmoid to 1.0 in PyTorch's float64,
        # where log(1 - a) is -inf
        "quadratic",
    ),
}


@pytest.fixture(scope="module")
def networks():
    return {name: convolutional(shape, layers, cost, name=name) for name, (shape, layers, cost) in CONFIGURATIONS.items()}


def test_the_book_cnn_has_69_parameters_and_the_books_names():
    network = load("book-cnn")
    assert len(network.parameters) == 3 * 9 + 3 + 3 * 12 + 3 == 69
    s = network.by_name
    assert s["wF_1_11"] is s["wF_1_1_1"] and s["aP_1_12"] is s["aP_1_1_2"] and s["x_23"] is s["x_2_3"]
    assert network.latex_names[s["wO_2_3_1_2"]] == "w^{O}_{2,3,12}"
    z = s["zF_1_2_3"]
    expected = sum(s[f"wF_1_{p}_{q}"] * s[f"x_{2 + p - 1}_{3 + q - 1}"] for p in (1, 2, 3) for q in (1, 2, 3)) + s["bF_1"]
    assert network.definitions[z] == expected


def test_max_pool_routes_by_an_indicator_not_heavisides():
    network = load("book-cnn")
    d = Derivations(network).cost
    definition = d.definition(network.by_name["aF_1_2_2"])
    assert "is_max(4, aF_1_1_1, aF_1_1_2, aF_1_2_1, aF_1_2_2)" in str(definition)
    assert not definition.atoms(sp.Heaviside)


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_applicable_cnn_formula_is_proven(name, networks):
    report = prove(networks[name], ["book-cnn", "cnn"])
    assert report.summary()["total"] > 0
    assert report.all_proven, [r.to_dict() for r in report.results if r.verdict.status != "proven"][:2]
    families = {row["family"] for row in report.families()}
    assert {"filter weights", "filter biases", "convolution errors"} <= families


def test_the_book_cnn_is_proven_with_the_tie_condition_stated():
    start = time.perf_counter()
    report = prove(load("book-cnn"), ["book-cnn"])
    assert report.all_proven and report.summary()["total"] == 3 + 36 + 3 + 48 + 27 + 3
    conv = [r for r in report.results if r.formula == "conv-error"]
    assert all("where no pooling window has a tie" in r.verdict.assumptions for r in conv)
    assert time.perf_counter() - start < 60  # the 10 s target is measured by the benchmark


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
@pytest.mark.parametrize("seed", [1, 2])
def test_gradients_equal_pytorch(name, seed, networks):
    network = networks[name]
    point = random_point(network, seed)
    # relu zeros tie whole windows at 0: numbers use the documented first-maximum convention
    ours = derived_gradients(Derivations(network), point, ties="first")
    theirs = torch_cnn_gradients(network, CONFIGURATIONS[name][1], point)
    assert ours.keys() == theirs.keys()
    for p in ours:
        assert abs(ours[p] - theirs[p]) <= 1e-10 * max(abs(theirs[p]), 1e-3), (p, ours[p], theirs[p])


def test_ties_follow_pytorchs_convention():
    """With identity activations and equal inputs, windows tie; the first maximum gets the gradient, as in PyTorch."""
    layers = [
        {"type": "conv", "filters": 1, "kernel": 1, "activation": "identity"},
        {"type": "maxpool", "size": 2},
        {"type": "dense", "units": 2, "activation": "sigmoid"},
    ]
    network = convolutional([4, 4], layers, "quadratic", name="ties")
    point = random_point(network, 5)
    for i in (1, 2):
        for j in (1, 2):  # the top-left window: all four inputs equal
            point[network.by_name[f"x_{i}_{j}"]] = Fraction(1, 2)
    point[network.by_name["x_3_4"]] = point[network.by_name["x_4_3"]] = Fraction(7, 3)  # a tie in another window
    ours = derived_gradients(Derivations(network), point, ties="first")
    theirs = torch_cnn_gradients(network, layers, point)
    for p in ours:
        assert abs(ours[p] - theirs[p]) <= 1e-10 * max(abs(theirs[p]), 1e-3), (p, ours[p], theirs[p])


def test_planted_cnn_errors_are_refuted_with_counterexamples():
    report = prove(load("book-cnn"), [load_set(DATA / "planted-cnn.toml")])
    assert report.results
    by_formula = {}
    for r in report.results:
        by_formula.setdefault(r.formula, []).append(r)
        if r.formula == "kernel-flipped" and r.indices["p"] == 2 and r.indices["q"] == 2:
            assert r.verdict.status == "proven"  # the centre tap is its own mirror image
            continue
        assert r.verdict.status == "refuted", (r.formula, r.indices, r.verdict.method)
        assert r.verdict.counterexample.point
    assert set(by_formula) == {"indicator-dropped", "window-offset", "kernel-flipped"}


def test_check_reads_cnn_claims_in_the_books_latex(tmp_path):
    claims = {
        "network": "book-cnn",
        "claim": [
            {
                "name": "dC/dw^F_{1,11}",
                "wrt": "wF_1_11",
                "syntax": "latex",
                "formula": r"\sum_{i=1}^{4}\sum_{j=1}^{4} \delta^F_{1,ij}\, x_{ij}",
                "expect": "proven",
            },
            {
                "name": "dC/dw^F_{1,11} flipped",
                "wrt": "wF_1_1_1",
                "formula": "+".join(f"deltaF_1_{i}_{j}*x_{5 - i}_{5 - j}" for i in range(1, 5) for j in range(1, 5)),
                "expect": "refuted",
            },
            {
                "name": "delta^O_2",
                "wrt": "zO_2",
                "syntax": "latex",
                "formula": r"(a^O_2 - t_2)\, a^O_2 (1 - a^O_2)",
                "expect": "proven",
            },
        ],
    }
    result = check(parse_claims(claims, base=tmp_path))
    assert [r.verdict.status for r in result.results] == ["proven", "refuted", "proven"]
    assert result.passed


def test_cli_prove_book_cnn(capsys):
    assert main(["prove", "book-cnn", "--formulas", "book-cnn", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"proven": 120, "refuted": 0, "undecided": 0, "total": 120}


# ---------------------------------------------------------------------------
# Claims with the max-pool indicator
# ---------------------------------------------------------------------------


def _book_delta_f(k: int, i: int, j: int, indicator: str) -> str:
    """The book's δ^F_{k,ij} in SymPy syntax, with the given indicator factor ('' to drop it)."""
    window = f"{(i + 1) // 2}_{(j + 1) // 2}"
    routed = " + ".join(f"deltaO_{n}*wO_{n}_{k}_{window}" for n in (1, 2, 3))
    return f"({routed})" + (f"*{indicator}" if indicator else "") + f"*aF_{k}_{i}_{j}*(1 - aF_{k}_{i}_{j})"


def test_the_books_conv_error_is_proven_as_a_claim_and_refuted_without_its_indicator(tmp_path, capsys):
    claims = {
        "network": "book-cnn",
        "claim": [
            {"name": "deltaF_1_11", "wrt": "zF_1_1_1", "formula": _book_delta_f(1, 1, 1, "ismax(aF_1_1_1)")},
            {"name": "deltaF_2_23 pool named", "wrt": "zF_2_2_3",
             "formula": _book_delta_f(2, 2, 3, "ismax(aF_2_2_3, aP_2_1_2)")},
            {"name": "deltaF_3_44 is_max", "wrt": "zF_3_4_4",
             "formula": _book_delta_f(3, 4, 4, "is_max(4, aF_3_3_3, aF_3_3_4, aF_3_4_3, aF_3_4_4)")},
            {"name": "deltaF_1_23 LaTeX", "wrt": "zF_1_2_3", "syntax": "latex",
             "formula": r"\Big(\sum_{n=1}^{3} \delta^O_n w^O_{n,1,12}\Big) [a^F_{1,23} = \max]\, \sigma^{\prime}(z^F_{1,23})"},
            {"name": "deltaF_1_32 \\left[", "wrt": "zF_1_3_2", "syntax": "latex",
             "formula": r"\left(\sum_{n=1}^{N} \delta^O_n w^O_{n,1,21}\right) \left[ a^F_{1,32} = \max \right] a^F_{1,32}(1 - a^F_{1,32})"},
            {"name": "indicator dropped", "wrt": "zF_1_2_2", "formula": _book_delta_f(1, 2, 2, ""), "expect": "refuted"},
            {"name": "indicator dropped (LaTeX)", "wrt": "zF_1_2_3", "syntax": "latex",
             "formula": r"\Big(\sum_{n=1}^{3} \delta^O_n w^O_{n,1,12}\Big) \sigma^{\prime}(z^F_{1,23})", "expect": "refuted"},
            {"name": "wrong window", "wrt": "zF_1_2_3", "formula": _book_delta_f(1, 2, 3, "ismax(aF_1_2_3, aP_1_1_1)"),
             "expect": "refuted"},
        ],
    }
    result = check(parse_claims(claims, base=tmp_path))
    statuses = {r.claim.name: r.verdict.status for r in result.results}
    assert [s for s in statuses.values()] == ["proven"] * 5 + ["refuted"] * 3, statuses
    by_name = {r.claim.name: r for r in result.results}
    dropped = by_name["indicator dropped"]
    assert dropped.verdict.counterexample is not None
    # the correct formula in the claim's names and syntax, readable back (and proven)
    assert dropped.expected_text == "aF_1_2_2*(1 - aF_1_2_2)*(deltaO_1*wO_1_1_1_1 + deltaO_2*wO_2_1_1_1 + deltaO_3*wO_3_1_1_1)*ismax(aF_1_2_2)"
    latex = by_name["indicator dropped (LaTeX)"].expected_latex
    assert r"\left[a^{F}_{1,23} = \max\right]" in latex and r"\delta^{O}_{1}" in latex, latex
    assert "deltaO_1" in by_name["wrong window"].expected_text
    back = {
        "network": "book-cnn",
        "claim": [
            {"name": "text", "wrt": "zF_1_2_2", "formula": dropped.expected_text},
            {"name": "latex", "wrt": "zF_1_2_3", "syntax": "latex", "formula": latex},
        ],
    }
    assert [r.verdict.status for r in check(parse_claims(back, base=tmp_path)).results] == ["proven", "proven"]
    assert result.assumptions == ["where no pooling window has a tie"]
    path = tmp_path / "cnn.toml"
    path.write_text('network = "book-cnn"\n[[claim]]\nname = "dropped"\nwrt = "zF_1_1_1"\n'
                    f'formula = "{_book_delta_f(1, 1, 1, "")}"\n')
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "correct:  aF_1_1_1*(1 - aF_1_1_1)*(deltaO_1*" in out and "*ismax(aF_1_1_1)" in out and "D(C" not in out
    assert "assuming: where no pooling window has a tie" in out


def test_overlapping_windows_need_the_pool_unit_named(tmp_path, capsys):
    spec = tmp_path / "overlap.toml"
    spec.write_text(
        '[network]\nname = "overlap"\ninput = [3, 3]\ncost = "quadratic"\n'
        '[[layer]]\ntype = "conv"\nfilters = 1\nkernel = 1\nactivation = "sigmoid"\n'
        '[[layer]]\ntype = "maxpool"\nsize = 2\nstride = 1\n'
        '[[layer]]\ntype = "dense"\nunits = 1\nactivation = "sigmoid"\n'
    )

    def claims(indicator: str) -> dict:
        routed = " + ".join(f"wO_1_1_{i}_{j}*ismax(aF_1_2_2, aP_1_{i}_{j})" for i in (1, 2) for j in (1, 2))
        return {"network": "overlap.toml", "claim": [{"name": "dC/daF_1_2_2", "wrt": "aF_1_2_2",
                                                      "formula": f"deltaO_1*({routed}){indicator}"}]}

    assert check(parse_claims(claims(""), base=tmp_path)).results[0].verdict.status == "proven"
    path = tmp_path / "claims.toml"
    path.write_text('network = "overlap.toml"\n[[claim]]\nwrt = "aF_1_2_2"\nformula = "deltaO_1*wO_1_1_1_1*ismax(aF_1_2_2)"\n')
    assert main(["check", str(path)]) == 1  # the claim is unparsed, with the reason
    out, err = capsys.readouterr()
    assert "aF_1_2_2 lies in the windows of aP_1_1_1, aP_1_1_2, aP_1_2_1, aP_1_2_2: name the pooling unit" in out
    assert "! unparsed" in out and "Traceback" not in out + err and not err
    for formula, message in [
        ("ismax(x_1_1)", "x_1_1 is not in any max-pooling window"),
        ("ismax(aF_1_1_1, aF_1_2_2)", "aF_1_2_2 is not a max-pooling unit"),
        ("ismax(2)", "the first argument must be a unit of the network"),
        ("is_max(1, aF_1_1_1, aF_1_2_2)", "not a max-pooling window of the network"),
    ]:
        path.write_text(f'network = "overlap.toml"\n[[claim]]\nwrt = "aF_1_2_2"\nformula = "{formula}"\n')
        assert main(["check", str(path)]) == 1
        out, err = capsys.readouterr()
        assert message in out and "! unparsed" in out and "Traceback" not in out + err, out + err


def test_convolutional_is_part_of_the_package_api():
    import derive

    assert "convolutional" in derive.__all__
    net = derive.convolutional([6, 6], BOOK_LAYERS, "quadratic", name="book-cnn")
    assert len(net.parameters) == 69 and derive.prove(net, ["book-cnn"]).all_proven


def test_derive_states_the_tie_condition_where_max_pooling_is_derived(capsys):
    from derive.cli import main

    assert main(["derive", "book-cnn"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("assuming: where no pooling window has a tie")
    assert main(["derive", "two-two-two"]) == 0
    assert "assuming" not in capsys.readouterr().out
