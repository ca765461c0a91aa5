"""Mini-batches (issue 12, item 2): the deeplearning.ai course's vectorised formulas on a batch network.

dZ^{[L]} = A^{[L]} − Y, dW^{[l]} = (1/m) dZ^{[l]} A^{[l−1]T}, db^{[l]} = (1/m) Σ_i dZ^{[l](i)}
(np.sum(dZ, axis=1, keepdims=True)), dZ^{[l]} = W^{[l+1]T} dZ^{[l+1]} * g'(Z^{[l]})
(/work/shared/reference/backprop-formulas.md §7), proven per instance and for every size;
the missing 1/m refuted, true only for m = 1.
"""

from __future__ import annotations

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
from derive.graph.batch import batch
from derive.graph.spec import parse_spec
from oracles import derived_gradients, random_point

SPEC = textwrap.dedent("""\
    [network]
    name = "dlai-2-3-1-m3"
    layers = [2, 3, 1]
    batch = 3
    activation = "sigmoid"
    cost = "cross_entropy"
    """)

CLAIMS = textwrap.dedent(r"""
    network = "net.toml"
    syntax = "latex"

    [[claim]]
    name = "dZ output"
    formula = 'dZ^{[L]} = A^{[L]} - Y'

    [[claim]]
    name = "dW"
    formula = 'dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}'

    [[claim]]
    name = "db numpy"
    formula = 'db^{[l]} = \frac{1}{m} np.sum(dZ^{[l]}, axis=1, keepdims=True)'

    [[claim]]
    name = "db sum"
    formula = 'db^{[l]} = \frac{1}{m} \sum_{i=1}^{m} dZ^{[l](i)}'

    [[claim]]
    name = "dZ hidden"
    formula = '''dZ^{[l]} = W^{[l+1]T} dZ^{[l+1]} * g^{[l]\prime}(Z^{[l]})'''

    [[claim]]
    name = "Nielsen's sum over examples"
    formula = 'dW^{[l]} = \frac{1}{m} \sum_i dZ^{[l](i)} (A^{[l-1](i)})^T'

    [[claim]]
    name = "dW without 1/m"
    formula = 'dW^{[l]} = dZ^{[l]} A^{[l-1]T}'

    [[claim]]
    name = "dW transposed"
    formula = 'dW^{[l]} = \frac{1}{m} A^{[l-1]} dZ^{[l]T}'

    [[claim]]
    name = "dZ hidden without g'"
    formula = 'dZ^{[l]} = W^{[l+1]T} dZ^{[l+1]}'

    [[claim]]
    name = "Nielsen's mini-batch gradient"
    formula = '\frac{\partial C}{\partial w^l} = \frac{1}{m} \sum_x \delta^{x,l} (a^{x,l-1})^T'

    [[claim]]
    name = "Nielsen's BP2 for each example"
    formula = '''\delta^{x,l} = ((w^{l+1})^T \delta^{x,l+1}) \odot \sigma'(z^{x,l})'''

    [[claim]]
    name = "np.mean"
    formula = 'db^{[l]} = np.mean(dZ^{[l]}, axis=1)'
    """)

RIGHT = ("dZ output", "dW", "db numpy", "db sum", "dZ hidden", "Nielsen's sum over examples",
         "Nielsen's mini-batch gradient", "Nielsen's BP2 for each example")


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    (folder / "net.toml").write_text(SPEC)
    (folder / "hw.toml").write_text(CLAIMS)
    result = check(load_claims(folder / "hw.toml"), budget=5.0)
    general_verdicts(result, 5.0)
    return folder, result, {r.claim.name: r for r in result.results}


def test_the_course_formulas_are_proven_per_instance_and_for_every_size(checked):
    _, _, results = checked
    for name in RIGHT:
        assert results[name].verdict.status == "proven", (name, results[name].verdict.method)
        assert results[name].general["status"] == "proven", (name, results[name].general)


def test_the_missing_one_over_m_holds_only_for_one_example(checked):
    _, _, results = checked
    missing = results["dW without 1/m"]
    assert missing.verdict.status == "refuted" and missing.diagnosis.id == "constant-factor"
    general = missing.general
    assert general["status"] == "refuted" and general["network"] == "1-1 (m=2)"
    assert "1-1 (m=1)" in general["held"] and general["counterexample"]["point"]


def test_transposition_and_a_dropped_derivative_are_named(checked):
    _, _, results = checked
    assert results["dW transposed"].diagnosis.id == "shape"
    assert results["dW transposed"].general["diagnosis"] == "shape"
    dropped = results["dZ hidden without g'"]
    assert dropped.verdict.status == "refuted" and dropped.general["status"] == "refuted"


def test_other_numpy_calls_are_unparsed_with_a_reason(checked):
    _, result, _ = checked
    unparsed = {u.name: u.message for u in result.unparsed}
    assert "np.mean" in unparsed and "np.sum(M, axis=1, keepdims=True)" in unparsed["np.mean"]


def test_cli_check_general_json_exit_code(checked):
    folder, _, _ = checked
    run = subprocess.run([sys.executable, "-m", "derive", "check", "--general", str(folder / "hw.toml"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    import json
    claims = {c["name"]: c for c in json.loads(run.stdout)["claims"]}
    assert claims["dW"]["general"]["status"] == "proven" and claims["dW"]["verdict"] == "proven"
    assert claims["dW without 1/m"]["verdict"] == "refuted"
    assert claims["dW"]["general"]["steps"][0]["lhs"][0]["reason"] == "as written"


@pytest.mark.parametrize("cost, activation", [("cross_entropy", "sigmoid"), ("quadratic", "tanh"), ("generic", "sigma")])
def test_batch_gradients_equal_pytorch_autograd(cost, activation):
    """J = (1/m) Σ_i 𝓛^{(i)} differentiated symbolically, against torch on the vectorised forward pass."""
    sizes, m = [2, 3, 2], 3
    network = batch(sizes, m, activation=activation, cost=cost)
    point = random_point(network, seed=5)
    derived = derived_gradients(Derivations(network), point)
    value = lambda name: float(point[network.by_name[name]])  # noqa: E731
    X = torch.tensor([[value(f"X{k}_{i}") for i in range(1, m + 1)] for k in range(1, sizes[0] + 1)],
                     dtype=torch.float64)
    Y = torch.tensor([[value(f"Y{j}_{i}") for i in range(1, m + 1)] for j in range(1, sizes[-1] + 1)],
                     dtype=torch.float64)
    Ws, bs, A = {}, {}, X
    for l in range(1, len(sizes)):
        Ws[l] = torch.tensor([[value(f"W{l}_{j}_{k}") for k in range(1, sizes[l - 1] + 1)]
                              for j in range(1, sizes[l] + 1)], dtype=torch.float64, requires_grad=True)
        bs[l] = torch.tensor([[value(f"b{l}_{j}")] for j in range(1, sizes[l] + 1)], dtype=torch.float64,
                             requires_grad=True)
        Z = Ws[l] @ A + bs[l]
        A = {"sigmoid": torch.sigmoid, "tanh": torch.tanh,
             "sigma": lambda t: t ** 2 / 7 + t / 2 + 1.0 / 3}[activation](Z)
    if cost == "cross_entropy":
        losses = -(Y * torch.log(A) + (1 - Y) * torch.log(1 - A)).sum(dim=0)
    elif cost == "quadratic":
        losses = ((A - Y) ** 2).sum(dim=0) / 2
    else:
        from oracles import _generic_cost
        losses = torch.stack([_generic_cost(list(A[:, i])) for i in range(m)])
    losses.mean().backward()
    for l in Ws:
        for j in range(sizes[l]):
            assert derived[network.by_name[f"b{l}_{j + 1}"]] == pytest.approx(float(bs[l].grad[j, 0]), rel=1e-9,
                                                                               abs=1e-12)
            for k in range(sizes[l - 1]):
                name = f"W{l}_{j + 1}_{k + 1}"
                assert derived[network.by_name[name]] == pytest.approx(float(Ws[l].grad[j, k]), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("text, message", [
    ("layers = [2, 1]\nbatch = 0", "from 1 to 64"),
    ("layers = [2, 1]\nbatch = 100", "from 1 to 64"),
    ("layers = [2, 1]\nbatch = \"3\"", "from 1 to 64"),
    ("layers = [2, 1]\nbatch = 2\ncost = \"log_likelihood\"", "unknown cost"),
    ("layers = [2, 1]\nbatch = 2\nregularization = \"l2\"", "no regularization"),
])
def test_bad_batch_specs_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_spec("[network]\nname = \"b\"\n" + text)
