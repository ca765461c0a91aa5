"""Sequence modules (issue 13): one head of scaled dot-product attention, and a vanilla RNN through time.

Attention: dV = Pᵀ dout, dP = dout Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS K / √d, dK = dSᵀ Q / √d proven;
dQ without 1/√d refuted (named a constant factor where 1/√d is rational); gradients equal PyTorch's.
RNN: BPTT's dWhh = (dh ⊙ (1 − h²))ᵀ hprev and the rest proven; BPTT truncated to one step refuted and named
(a missing path; a shared parameter where only the last step's term is kept); gradients equal torch.nn.RNN's.
"""

from __future__ import annotations

import textwrap

import pytest
import sympy as sp
import torch

from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.derivation import Derivations
from derive.errors import InputError
from derive.graph.numeric import ApproximateArithmetic, Evaluator
from derive.graph.spec import parse_spec
from derive.layers.modules import MODULES
from derive.proof import SUBSTITUTES, prove
from derive.proof.formulas import builtin_sets
from oracles import _generic_cost, random_point


def _spec(rows: int, features: int, kind: str) -> str:
    return f"[network]\nname = \"m\"\nbatch = {rows}\ninput = {features}\n\n[[layer]]\ntype = \"{kind}\"\n"


def _graded(folder, spec: str, claims: str) -> dict:
    (folder / "net.toml").write_text(spec)
    (folder / "hw.toml").write_text(textwrap.dedent(claims))
    result = check(load_claims(folder / "hw.toml"), budget=5.0)
    return {r.claim.name: r for r in result.results} | {u.name: u for u in result.unparsed}


def _gradients(network, point, names) -> dict[str, float]:
    """∂L/∂v for the named leaves (inputs as well as parameters), our symbolic gradients at `point`."""
    derivations = Derivations(network)
    evaluate = Evaluator(ApproximateArithmetic(60), point, derivations.definition, SUBSTITUTES)
    return {name: float(evaluate(derivations.cost.adjoint(network.by_name[name]))) for name in names}


def _tensor(point, network, fmt: str, rows: int, cols: int) -> torch.Tensor:
    values = [[float(point[network.by_name[fmt.format(r=r, c=c)]]) for c in range(1, cols + 1)]
              for r in range(1, rows + 1)]
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def _assert_equal(ours: dict[str, float], fmt: str, grad: torch.Tensor) -> None:
    rows, cols = grad.shape
    for r in range(rows):
        for c in range(cols):
            name = fmt.format(r=r + 1, c=c + 1)
            assert ours[name] == pytest.approx(float(grad[r, c]), rel=1e-9, abs=1e-12), name


def _names(fmt: str, rows: int, cols: int) -> list[str]:
    return [fmt.format(r=r, c=c) for r in range(1, rows + 1) for c in range(1, cols + 1)]


# -- attention ------------------------------------------------------------------------------------------
ATTENTION_CLAIMS = r"""
    network = "net.toml"
    syntax = "latex"

    [[claim]]
    name = "dV"
    formula = 'dV = P^T dout'

    [[claim]]
    name = "dP"
    formula = 'dP = dout V^T'

    [[claim]]
    name = "dS"
    formula = 'dS = P * (dP - np.sum(dP * P, axis=1, keepdims=True))'

    [[claim]]
    name = "dS, odot"
    formula = 'dS = P \odot (dP - np.sum(dP \odot P, axis=1, keepdims=True))'

    [[claim]]
    name = "dQ"
    formula = 'dQ = \frac{1}{\sqrt{d}} dS K'

    [[claim]]
    name = "dQ, divided"
    formula = 'dQ = dS K / \sqrt{d}'

    [[claim]]
    name = "dK"
    formula = 'dK = \frac{1}{\sqrt{d}} dS^T Q'

    [[claim]]
    name = "forward"
    formula = 'S = \frac{1}{\sqrt{d}} Q K^T'

    [[claim]]
    name = "dQ without the scale"
    formula = 'dQ = dS K'

    [[claim]]
    name = "dK untransposed"
    formula = 'dK = \frac{1}{\sqrt{d}} dS Q'

    [[claim]]
    name = "dS without the row sum"
    formula = 'dS = P * dP'
    """


@pytest.fixture(scope="module")
def attention_claims(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("attention"), _spec(2, 4, "attention"), ATTENTION_CLAIMS)


def test_the_attention_homework_is_graded(attention_claims):
    for name in ("dV", "dP", "dS", "dS, odot", "dQ", "dQ, divided", "dK", "forward"):
        assert attention_claims[name].verdict.status == "proven", (name, attention_claims[name].verdict.method)
    for name in ("dQ without the scale", "dK untransposed", "dS without the row sum"):
        assert attention_claims[name].verdict.status == "refuted", name


def test_the_forgotten_scale_is_named_a_constant_factor(attention_claims):
    forgotten = attention_claims["dQ without the scale"]
    assert forgotten.diagnosis.id == "constant-factor"
    assert "1/2 × the claim" in forgotten.diagnosis.message  # d = 4: 1/√d = 1/2


def test_the_forgotten_scale_is_named_where_it_is_irrational(tmp_path):
    results = _graded(tmp_path, _spec(2, 2, "attention"), ATTENTION_CLAIMS)
    assert results["dQ"].verdict.status == "proven"
    forgotten = results["dQ without the scale"]
    assert forgotten.verdict.status == "refuted" and forgotten.diagnosis.id == "constant-factor"
    assert "sqrt(2)/2 × the claim" in forgotten.diagnosis.message  # d = 2: 1/√2, proven as the correction


@pytest.mark.parametrize("rows, width", [(2, 2), (3, 1)])
def test_the_attention_formula_set_is_proven(rows, width):
    report = prove(parse_spec(_spec(rows, width, "attention")), [builtin_sets()["attention"]], budget=5.0)
    assert report.all_proven and {r.formula for r in report.results} == {"dV", "dP", "dS", "dQ", "dK"}


def test_attention_gradients_equal_pytorch():
    rows, width = 3, 2
    network = parse_spec(_spec(rows, width, "attention"))
    point = random_point(network, seed=5)
    q, k, v = (_tensor(point, network, name + "{r}_{c}", rows, width) for name in ("Q", "K", "V"))
    p = torch.softmax(q @ k.T / width ** 0.5, dim=1)
    _generic_cost(list((p @ v).reshape(-1))).backward()
    names = [n for name in ("Q", "K", "V") for n in _names(name + "{r}_{c}", rows, width)]
    ours = _gradients(network, point, names)
    for name, tensor in (("Q", q), ("K", k), ("V", v)):
        _assert_equal(ours, name + "{r}_{c}", tensor.grad)


# -- RNN ------------------------------------------------------------------------------------------------
RNN_CLAIMS = r"""
    network = "net.toml"
    syntax = "latex"

    [[claim]]
    name = "dWhh"
    formula = 'dWhh = (dh * (1 - h * h))^T hprev'

    [[claim]]
    name = "dWxh"
    formula = 'dWxh = (dh \odot (1 - h \odot h))^T x'

    [[claim]]
    name = "db"
    formula = 'db = np.sum(dh * (1 - (h)^2), axis=0)'

    [[claim]]
    name = "dhprev"
    formula = 'dhprev = (dh * (1 - h * h)) Whh'

    [[claim]]
    name = "dx"
    formula = 'dx = (dh * (1 - h * h)) Wxh'

    [[claim]]
    name = "dWhh through h"
    wrt = "Whh1_1"
    syntax = "sympy"
    formula = 'D(L, h2_1)*(1 - h2_1**2)*h1_1 + D(L, h1_1)*(1 - h1_1**2)*h0_1'

    [[claim]]
    name = "truncated to one step"
    formula = 'dWhh = (dout * (1 - h * h))^T hprev'

    [[claim]]
    name = "the last step's term only"
    wrt = "Whh1_1"
    syntax = "sympy"
    formula = 'D(L, h2_1)*(1 - h2_1**2)*h1_1'

    [[claim]]
    name = "dWhh untransposed"
    formula = 'dWhh = (dh * (1 - h * h)) hprev'
    """


@pytest.fixture(scope="module")
def rnn_claims(tmp_path_factory):
    return _graded(tmp_path_factory.mktemp("rnn"), _spec(2, 1, "rnn"), RNN_CLAIMS)


def test_the_rnn_homework_is_graded(rnn_claims):
    for name in ("dWhh", "dWxh", "db", "dhprev", "dx", "dWhh through h"):
        assert rnn_claims[name].verdict.status == "proven", (name, rnn_claims[name].verdict.method)
    assert rnn_claims["dWhh untransposed"].diagnosis.id == "shape"


def test_bptt_truncated_to_one_step_is_named(rnn_claims):
    truncated = rnn_claims["truncated to one step"]
    assert truncated.verdict.status == "refuted" and truncated.diagnosis.id == "missing-path"
    assert "h1_1 → hprev2_1 → h2_1 → out2_1" in truncated.diagnosis.message
    last = rnn_claims["the last step's term only"]
    assert last.verdict.status == "refuted" and last.diagnosis.id == "shared-parameter"
    assert "counts only the term through h2_1" in last.diagnosis.message


def test_the_rnn_claims_hold_for_a_wider_state(tmp_path):
    claims = r"""
        network = "net.toml"
        syntax = "latex"

        [[claim]]
        name = "dWhh"
        formula = 'dWhh = (dh - dh * h * h)^T hprev'

        [[claim]]
        name = "dx"
        formula = 'dx = (dh - dh * h * h) Wxh'

        [[claim]]
        name = "db"
        formula = 'db = np.sum(dh - dh * h * h, axis=0)'

        [[claim]]
        name = "truncated to one step"
        formula = 'dWhh = (dout - dout * h * h)^T hprev'
        """
    results = _graded(tmp_path, _spec(2, 2, "rnn"), claims)
    for name in ("dWhh", "dx", "db"):
        assert results[name].verdict.status == "proven", (name, results[name].verdict.method)
    assert results["truncated to one step"].verdict.status == "refuted"


@pytest.mark.parametrize("steps, width", [(2, 2), (3, 1)])
def test_the_rnn_formula_set_is_proven(steps, width):
    report = prove(parse_spec(_spec(steps, width, "rnn")), [builtin_sets()["rnn"]], budget=5.0)
    assert report.all_proven and {r.formula for r in report.results} == {
        "dh-last", "dhprev", "bptt", "dh0", "dx", "dWhh", "dWxh", "db"}


def test_rnn_gradients_equal_pytorch():
    steps, width = 3, 2
    network = parse_spec(_spec(steps, width, "rnn"))
    point = random_point(network, seed=7)
    whh, wxh = _tensor(point, network, "Whh{r}_{c}", width, width), _tensor(point, network, "Wxh{r}_{c}", width, width)
    b = _tensor(point, network, "b{c}", 1, width)
    x, h0 = _tensor(point, network, "x{r}_{c}", steps, width), _tensor(point, network, "h0_{c}", 1, width)
    rnn = torch.nn.RNN(width, width, nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(whh)
        rnn.weight_ih_l0.copy_(wxh)
        rnn.bias_ih_l0.copy_(b[0])
        rnn.bias_hh_l0.zero_()
    out, _ = rnn(x.unsqueeze(1), h0.unsqueeze(1))  # (steps, batch 1, width): every h_t
    _generic_cost(list(out.reshape(-1))).backward()
    names = [*_names("Whh{r}_{c}", width, width), *_names("Wxh{r}_{c}", width, width),
             *_names("x{r}_{c}", steps, width), *[f"b{i}" for i in range(1, width + 1)],
             *[f"h0_{i}" for i in range(1, width + 1)]]
    ours = _gradients(network, point, names)
    _assert_equal(ours, "Whh{r}_{c}", rnn.weight_hh_l0.grad)
    _assert_equal(ours, "Wxh{r}_{c}", rnn.weight_ih_l0.grad)
    _assert_equal(ours, "x{r}_{c}", x.grad)
    _assert_equal(ours, "b{c}", rnn.bias_ih_l0.grad.unsqueeze(0))
    _assert_equal(ours, "h0_{c}", h0.grad)


def test_rnn_gradients_equal_a_hand_unrolled_loop():
    steps, width = 2, 2
    network = parse_spec(_spec(steps, width, "rnn"))
    point = random_point(network, seed=11)
    whh, wxh = _tensor(point, network, "Whh{r}_{c}", width, width), _tensor(point, network, "Wxh{r}_{c}", width, width)
    b, h = _tensor(point, network, "b{c}", 1, width), _tensor(point, network, "h0_{c}", 1, width)
    x = _tensor(point, network, "x{r}_{c}", steps, width)
    states = []
    for t in range(steps):
        h = torch.tanh(h @ whh.T + x[t:t + 1] @ wxh.T + b)
        states.append(h)
    _generic_cost(list(torch.cat(states).reshape(-1))).backward()
    ours = _gradients(network, point, _names("Whh{r}_{c}", width, width))
    _assert_equal(ours, "Whh{r}_{c}", whh.grad)


# -- both -----------------------------------------------------------------------------------------------
def test_both_are_registered():
    assert MODULES["attention"].products == "matrix" and MODULES["rnn"].products == "matrix"
    network = parse_spec(_spec(2, 3, "rnn"))
    assert network.facts["integers"] == {"N": 2, "D": 3, "T": 2, "H": 3}
    assert {"h", "hprev", "x", "out", "Whh", "Wxh", "b"} == set(network.facts["matrices"])
    assert parse_spec(_spec(2, 3, "attention")).facts["integers"]["d"] == 3


def test_an_unread_scalar_is_still_refused(tmp_path):
    claims = """
        network = "net.toml"
        syntax = "latex"

        [[claim]]
        name = "q"
        formula = 'dQ = \\frac{1}{\\sqrt{q}} dS K'
        """
    result = _graded(tmp_path, _spec(2, 1, "attention"), claims)["q"]
    assert "the scalar q is not read" in result.message


@pytest.mark.parametrize("kind", ["attention", "rnn"])
def test_bad_sequence_specs_are_refused(kind):
    with pytest.raises(InputError, match="unknown key"):
        parse_spec(_spec(2, 2, kind) + "heads = 2\n")
    with pytest.raises(InputError, match="from 1 to"):
        parse_spec(_spec(0, 2, kind))


def test_a_square_reads_entrywise_and_a_digit_glued_to_a_name_is_refused(tmp_path):
    claims = textwrap.dedent(r"""
        network = "net.toml"
        syntax = "latex"

        [[claim]]
        name = "squared"
        formula = 'dWhh = (dh * (1 - h^2))^T hprev'

        [[claim]]
        name = "dh0"
        formula = 'dh0 = dhprev'
        """)
    (tmp_path / "net.toml").write_text(_spec(2, 1, "rnn"))
    (tmp_path / "hw.toml").write_text(claims)
    result = check(load_claims(tmp_path / "hw.toml"), budget=5.0)
    assert {r.claim.name: r.verdict.status for r in result.results} == {"squared": "proven"}
    assert "dh0 is not a name" in result.unparsed[0].message
