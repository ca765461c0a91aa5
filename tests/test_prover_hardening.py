"""Issue 9: spelled-out activations proven, the JSON of many results written in linear time, and formula
sets whose sums (or index arithmetic) would expand without bound refused before any work, or bounded by the budget."""

import json
import random
import time
from pathlib import Path

import pytest
import sympy as sp

import derive
from derive.graph import functions as fn
from derive import load, load_set, prove
from derive.cli import main
from derive.proof.formulas import parse_set
from derive.jsontext import json_text
from derive.proof import shared_text
from derive.proof.algebra import _cancels, _exp_generators, _surely_nonzero

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = ROOT / "derive" / "networks"
MAZUR = ROOT / "formulas" / "mazur-2-2-2.toml"


def spelled_two_two_two(tmp_path: Path) -> Path:
    """Mazur's 2-2-2 network with the logistic function written out instead of sigmoid()."""
    text = (NETWORKS / "two-two-two.toml").read_text().replace('name = "two-two-two"', 'name = "spelled"')
    for unit in ("h1", "h2", "o1", "o2"):
        old = f'out{unit} = "sigmoid(net{unit})"'
        assert old in text
        text = text.replace(old, f'out{unit} = "1/(1 + exp(-net{unit}))"')
    path = tmp_path / "spelled.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------
# 1. Spelled-out logistic, tanh and softmax
# ---------------------------------------------------------------------------


def test_the_spelled_out_2_2_2_network_is_proven_completely_and_quickly(tmp_path):
    network = load(spelled_two_two_two(tmp_path))
    assert "exp" in str(network.definitions[network.by_name["outh1"]])  # really spelled out, no sigmoid
    report = prove(network, [load_set(MAZUR)])
    print(f"\nspelled-out 2-2-2: {report.summary()} in {report.seconds:.2f} s")
    assert report.summary() == {"proven": 12, "refuted": 0, "undecided": 0, "total": 12}
    b1 = next(r for r in report.results if r.formula == "dE/db1")
    print(f"dE/db1: {b1.verdict.seconds:.3f} s, {b1.verdict.method}")
    assert "written out" in b1.verdict.method
    assert b1.verdict.seconds < 4  # was undecided after the whole 5 s budget (0.3 s on a quiet machine)


def test_a_wrong_shared_bias_formula_on_the_spelled_out_network_is_refuted(tmp_path):
    network = load(spelled_two_two_two(tmp_path))
    data = {"id": "w", "title": "w", "source": "w", "roles": {"b1": "parameter", "E": "cost"}}
    right = load_set(MAZUR).formulas[-1].rhs_text
    data["formula"] = [
        {"id": "one-term-only", "lhs": "D(E, b1)",
         "rhs": "(w5*(outo1 - y1)*outo1*(1 - outo1) + w7*(outo2 - y2)*outo2*(1 - outo2))*outh1*(1 - outh1)"},
        {"id": "sign", "lhs": "D(E, b1)", "rhs": f"-({right})"},
        {"id": "right", "lhs": "D(E, b1)", "rhs": right},
    ]
    report = prove(network, [parse_set(data, where="test")])
    verdicts = {r.formula: r.verdict.status for r in report.results}
    assert verdicts == {"one-term-only": "refuted", "sign": "refuted", "right": "proven"}


def test_claims_on_the_spelled_out_network_are_checked(tmp_path, capsys):
    spelled_two_two_two(tmp_path)
    (tmp_path / "claims.toml").write_text(
        'network = "spelled.toml"\n'
        '[definitions]\n'
        'delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"\n'
        'delta_o2 = "(outo2 - y2)*outo2*(1 - outo2)"\n'
        '[[claim]]\nname = "b1"\nwrt = "b1"\nexpect = "proven"\n'
        'formula = "(w5*delta_o1 + w7*delta_o2)*outh1*(1 - outh1) + (w6*delta_o1 + w8*delta_o2)*outh2*(1 - outh2)"\n'
        '[[claim]]\nname = "x1"\nwrt = "x1"\nexpect = "proven"\n'
        'formula = "(w5*delta_o1 + w7*delta_o2)*outh1*(1 - outh1)*w1 + (w6*delta_o1 + w8*delta_o2)*outh2*(1 - outh2)*w3"\n'
        '[[claim]]\nname = "x1 wrong"\nwrt = "x1"\nexpect = "refuted"\n'
        'formula = "(w5*delta_o1 + w7*delta_o2)*outh1*(1 - outh1)*w1 + (w6*delta_o1 + w8*delta_o2)*outh2*(1 - outh2)*w4"\n'
    )
    start = time.perf_counter()
    assert main(["check", str(tmp_path / "claims.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["verdict"] for c in data["claims"]} == {"b1": "proven", "x1": "proven", "x1 wrong": "refuted"}
    assert all(c["expect_matched"] for c in data["claims"])
    assert time.perf_counter() - start < 15  # b1 and x1 were undecided after 5 s each


TANH = """
[network]
name = "tanh-spelled"
inputs = ["x1", "x2"]
targets = ["y1", "y2"]
parameters = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"]
cost = "E"
[equations]
neth1 = "w1*x1 + w2*x2 + b1"
neth2 = "w3*x1 + w4*x2 + b1"
outh1 = "(exp(neth1) - exp(-neth1))/(exp(neth1) + exp(-neth1))"
outh2 = "(1 - exp(-2*neth2))/(1 + exp(-2*neth2))"
neto1 = "w5*outh1 + w6*outh2 + b2"
neto2 = "w7*outh1 + w8*outh2 + b2"
outo1 = "tanh(neto1)"
outo2 = "(exp(2*neto2) - 1)/(exp(2*neto2) + 1)"
E = "(y1 - outo1)**2/2 + (y2 - outo2)**2/2"
"""
TANH_B1 = ("(w5*(outo1 - y1)*(1 - outo1**2) + w7*(outo2 - y2)*(1 - outo2**2))*(1 - outh1**2)"
           " + (w6*(outo1 - y1)*(1 - outo1**2) + w8*(outo2 - y2)*(1 - outo2**2))*(1 - outh2**2)")

SOFTMAX = """
[network]
name = "softmax-spelled"
inputs = ["x1", "x2"]
targets = ["y1", "y2", "y3"]
parameters = ["w1", "w2", "w3", "w4", "w5", "w6", "b1", "b2", "b3"]
cost = "E"
[equations]
z1 = "w1*x1 + w2*x2 + b1"
z2 = "w3*x1 + w4*x2 + b2"
z3 = "w5*x1 + w6*x2 + b3"
a1 = "exp(z1)/(exp(z1) + exp(z2) + exp(z3))"
a2 = "exp(z2)/(exp(z1) + exp(z2) + exp(z3))"
a3 = "exp(z3)/(exp(z1) + exp(z2) + exp(z3))"
E = "-(y1*log(a1) + y2*log(a2) + y3*log(a3))"
"""


@pytest.mark.parametrize(
    "spec, formulas",
    [
        (TANH, {"b1": (TANH_B1, "proven"), "b1-squared-wrongly": (TANH_B1.replace("(1 - outh2**2)", "(1 - outh2)**2"), "refuted")}),
        (SOFTMAX, {"b1": ("a1*(y1 + y2 + y3) - y1", "proven"), "w1": ("(a1*(y1 + y2 + y3) - y1)*x1", "proven"),
                   "b1-assumes-one-hot": ("a1 - y1", "refuted")}),
    ],
    ids=["tanh", "softmax"],
)
def test_spelled_out_tanh_and_softmax_are_proven_and_wrong_formulas_refuted(spec, formulas):
    network = derive.parse_spec(spec)
    wrt = {"b1": "b1", "w1": "w1"}
    data = {"id": "s", "title": "s", "source": "s", "roles": {"E": "cost"}, "formula": [
        {"id": fid, "lhs": f"D(E, {wrt[fid.split('-')[0]]})", "rhs": rhs} for fid, (rhs, _) in formulas.items()
    ]}
    report = prove(network, [parse_set(data, where="test")])
    got = {r.formula: r.verdict.status for r in report.results}
    assert got == {fid: expected for fid, (_, expected) in formulas.items()}
    assert report.seconds < 20


def test_the_nonzero_filter_never_blocks_a_true_identity():
    rng = random.Random(1)
    g, h, x = sp.Symbol("g", positive=True), sp.Symbol("h", positive=True), sp.Symbol("x", real=True)
    k = sp.Symbol("k", integer=True)
    identities = [
        g / (1 + g) ** 2 - (1 / (1 + g)) * (1 - 1 / (1 + g)),
        (g - 1 / g) / (g + 1 / g) - (g**2 - 1) / (g**2 + 1),
        x * (x + 1) - x**2 - x,
        (-1) ** (2 * k) - 1,
        sp.sqrt(g**2) - g,
    ]
    for identity in identities:
        assert not _surely_nonzero(_exp_generators(identity)), identity
        assert _cancels(identity, {})
    for _ in range(20):  # a nonzero rational function is recognised at once
        a, b = rng.randint(1, 5), rng.randint(1, 5)
        assert _surely_nonzero(g**a / (1 + h) ** b - g**a / (1 + h) ** b + 1 / (g + a))
    y = sp.Symbol("y", real=True)  # an opaque σ value says nothing: cancel decides
    assert not _surely_nonzero(fn.sigma(x * (y + 1)) - fn.sigma(x * y + x))
    assert _cancels(fn.sigma(x * (y + 1)) - fn.sigma(x * y + x), {})


# ---------------------------------------------------------------------------
# 2. JSON of many results
# ---------------------------------------------------------------------------


def reference_json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str)


def test_json_text_matches_the_standard_encoder_byte_for_byte():
    odd = {
        "ünïcode → δ": ["a\"b\\c\n\t\u2028", 1, -2.5, 1e-300, 10**30, True, False, None],
        "empty": [{}, [], ()],
        "nested": {"k": [{"x": (1, 2)}, [[]]], 3: "int key", 1.5: "float key", None: "none", True: "bool"},
        "default": [sp.Symbol("x") + 1, Path("a/b")],
    }
    assert json_text(odd) == reference_json(odd)
    assert json_text([]) == "[]" and json_text("s") == '"s"'
    with pytest.raises(ValueError):
        json_text({"nan": float("nan")})


@pytest.mark.parametrize("name", ["two-two-two", "book-12-3-2", "generic-3-4-4-2"])
def test_prove_json_is_what_the_standard_encoder_writes(name, capsys):
    report = prove(load(name))
    assert json_text(report.to_dict()) == reference_json(report.to_dict())
    text = shared_text()
    assert all(text(e) == str(e) for r in report.results for e in (r.lhs, r.rhs))
    main(["prove", name, "--json"])
    out = capsys.readouterr().out
    assert out == reference_json(json.loads(out)) + "\n"


def test_prove_json_of_thousands_of_instances_is_cheap(tmp_path, capsys):
    (tmp_path / "net.toml").write_text('[network]\nname = "64-30-10"\nlayers = [64, 30, 10]\n')
    report = prove(load(tmp_path / "net.toml"))
    assert report.summary()["total"] > 4000 and report.all_proven
    start = time.process_time()
    old = reference_json({**report.to_dict(), "results": [r.to_dict() for r in report.results]})
    standard = time.process_time() - start
    start = time.process_time()
    new = json_text(report.to_dict())
    ours = time.process_time() - start
    print(f"\n{report.summary()['total']} instances: json.dumps(str) {standard:.2f} s, json_text {ours:.2f} s (CPU)")
    assert new == old
    assert ours < standard


# ---------------------------------------------------------------------------
# 3, 4. Hostile formula sets: bounded before expanding, and by the budget
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_network(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wide") / "784-30-10.toml"
    path.write_text('[network]\nname = "784-30-10"\nlayers = [784, 30, 10]\n')
    return path


def hostile(tmp_path: Path, for_: str, lhs: str, rhs: str, name: str = "bad") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'id = "{name}"\ntitle = "hostile"\nsource = "a test"\n'
        f'[[formula]]\nid = "F"\nwhen = {{ kind = "layered" }}\nfor = {{ {for_} }}\nlhs = "{lhs}"\nrhs = "{rhs}"\n'
    )
    return path


def run_timed(args, capsys) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main(args)
    seconds = time.perf_counter() - start
    return code, capsys.readouterr().err, seconds


NESTED = "sum(sum(sum(sum(w[2, j, k]*w[3, i, j]*delta[3, i], i, 1, size[3]), k, 1, size[1]), m, 1, size[2]), n, 1, size[1])"


@pytest.mark.parametrize(
    "for_, rhs, limit",
    [
        ('j = "1..size[2]"', NESTED, "20,000"),  # 4 nested sums: 784·30·784·10 terms per instance
        ('j = "1..size[2]"', "sum(sum(w[3, 1, j], i, 1, 10**9), k, 1, 10**9)", "20,000"),  # huge bounds
        ('j = "1..size[2]", k = "1..size[1]"',  # 23,520 instances of 30·10 terms each
         "sum(sum(w[3, i, j]*delta[3, i], i, 1, size[3]), m, 1, size[2])*a[1, k]", "500,000"),
    ],
    ids=["nested", "huge-bounds", "instances-times-terms"],
)
def test_sums_that_would_expand_without_bound_are_refused_first(tmp_path, wide_network, capsys, for_, rhs, limit):
    bad = hostile(tmp_path, for_, "delta[2, j]", rhs)
    code, err, seconds = run_timed(["prove", str(wide_network), "--formulas", str(bad), "--budget", "1"], capsys)
    print(f"\n{seconds:.2f} s: {err.strip()}")
    assert code == 2
    assert "formula 'F'" in err and limit in err and "terms" in err
    assert seconds < 15  # was killed after 120 s, or a MemoryError after 45 s


def test_index_arithmetic_that_makes_huge_numbers_is_refused(tmp_path, wide_network, capsys):
    bad = hostile(tmp_path, 'j = "1..(((size[1]**64)**64)**64)**64"', "delta[2, j]", "delta[2, j]")
    code, err, seconds = run_timed(["prove", str(wide_network), "--formulas", str(bad), "--budget", "1"], capsys)
    assert code == 2 and "too large for an index" in err
    assert seconds < 15


def test_wide_sums_under_the_limits_end_within_the_budget(tmp_path, wide_network, capsys):
    rhs = "sum(sum(w[3, i, j]*delta[3, i]*a[1, k], i, 1, size[3]), k, 1, size[1])*sigma_prime(z[2, j])"
    bad = hostile(tmp_path, 'j = "1..2"', "delta[2, j]", rhs)  # 7,840 terms per instance: allowed
    network = load(wide_network)
    start = time.perf_counter()
    report = prove(network, [load_set(bad)], budget=1.0)
    seconds = time.perf_counter() - start
    print(f"\n{[r.verdict.method[:90] for r in report.results]} in {seconds:.2f} s")
    assert [r.verdict.status for r in report.results] in (["undecided"] * 2, ["refuted"] * 2)
    assert seconds < 20  # two instances of 1 s each; before the bound, building one took minutes (generous: a loaded machine)


def test_sum_terms_counts_from_the_bounds(wide_network):
    from derive.derivation import Derivations
    from derive.proof.formulas import Instantiator, _template

    network = load(wide_network)
    instantiator = Instantiator(network, Derivations(network))
    j, k, i = (sp.Symbol(n, integer=True) for n in "jki")
    template = _template("sum(sum(w[2, j, k], k, 1, i), i, 1, size[1])", {"j": j}, "test")
    assert instantiator.sum_terms(template, {j: 1}, 10**9) == 784 * 785 // 2  # a triangle: the bound uses i
    assert instantiator.sum_terms(_template(NESTED, {"j": j}, "test"), {j: 1}, 10**12) == 784 * 30 * 784 * 10
    huge = _template("sum(sum(w[3, 1, j], i, 1, 10**9), k, 1, 10**9)", {"j": j}, "test")
    start = time.perf_counter()
    assert instantiator.sum_terms(huge, {j: 1}, 1000) == 1001  # capped, and at once
    assert time.perf_counter() - start < 3  # at once (a few ms), with room for a loaded machine
    assert instantiator.sum_terms(_template("w[2, j, 1]", {"j": j}, "test"), {j: 1}, 5) == 1


def test_api_prove_uses_the_same_bounds(tmp_path, wide_network):
    bad = hostile(tmp_path, 'j = "1..size[2]"', "delta[2, j]", NESTED)
    with pytest.raises(derive.InputError, match="20,000"):
        derive.prove(load(wide_network), [str(bad)], budget=1)
