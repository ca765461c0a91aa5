"""Generated kernels against the symbolic gradients they come from (1e-12) and against PyTorch (1e-10)."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch

from conftest import SYMBOLIC_BUILTINS
from derive import Derivations, layered, load
from derive.graph.registry import safe_sigmoid
from derive.kernels import KernelError, compile_kernel
from derive.graph.convolutional import convolutional
from derive.graph.numeric import ApproximateArithmetic, Evaluator

CONCRETE = [n for n in SYMBOLIC_BUILTINS if not n.startswith("generic")]
CNN_CONFIGS = {
    "avgpool-tanh": ([6, 6], [{"type": "conv", "filters": 2, "kernel": 3, "activation": "tanh"},
                              {"type": "avgpool", "size": 2}, {"type": "dense", "units": 3}], "quadratic"),
    "l2pool-channels-stride": ([2, 7, 7], [{"type": "conv", "filters": 2, "kernel": 3, "stride": 2, "padding": 1},
                                           {"type": "l2pool", "size": 2, "stride": 1},
                                           {"type": "dense", "units": 3, "activation": "softmax"}], "log_likelihood"),
    "two-convs-relu": ([6, 6], [{"type": "conv", "filters": 2, "kernel": 3, "activation": "relu", "padding": "same"},
                                {"type": "conv", "filters": 2, "kernel": 2, "activation": "tanh"},
                                {"type": "maxpool", "size": 2, "stride": 1},
                                {"type": "dense", "units": 4, "activation": "sigmoid"},
                                {"type": "dense", "units": 2}], "quadratic"),
}


def networks():
    found = {name: load(name) for name in CONCRETE}
    for name, (shape, layers, cost) in CNN_CONFIGS.items():
        found[name] = convolutional(shape, layers, cost, name=name)
    return found


NETWORKS = networks()


def batch_for(network, m, rng):
    n_out = len(network.targets)
    if network.kind == "cnn":
        x = rng.standard_normal((m, *network.facts["input_shape"])) * 0.8
    else:
        x = rng.standard_normal((m, len(network.inputs)))
    if network.facts.get("output") == "coupled":
        y = np.eye(n_out)[rng.integers(0, n_out, m)]
    else:
        y = rng.uniform(0.05, 0.95, (m, n_out))
    return x, y


def symbolic_mean_gradient(network, kernel, params, x, y):
    """The derivation's gradient, evaluated in 40-digit arithmetic example by example, averaged."""
    derivations = Derivations(network)
    d = derivations.cost
    values = kernel.to_values(params)
    total = {p: 0.0 for p in network.parameters}
    loss = 0.0
    inputs = list(network.inputs)
    for row, target in zip(x.reshape(len(x), -1), y):
        point = {s: Fraction(float(v)) for s, v in values.items()}
        point.update({s: Fraction(float(v)) for s, v in zip(inputs, row)})
        point.update({s: Fraction(float(v)) for s, v in zip(network.targets, target)})
        for c in network.constants:
            point[c] = Fraction(kernel.constants[c.name])
        evaluate = Evaluator(ApproximateArithmetic(40), point, derivations.definition, ties="first")
        loss += float(evaluate(network.cost))
        for p in network.parameters:
            total[p] += float(evaluate(d.adjoint(p)))
    return loss / len(x), {p: v / len(x) for p, v in total.items()}


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("m", [1, 5])
def test_kernel_equals_the_symbolic_gradient(name, m):
    network = NETWORKS[name]
    kernel = compile_kernel(network)
    if network.constants:
        kernel.constants.update(lmbda=0.7, n=13.0)
    rng = np.random.default_rng(7)
    params = kernel.init(3)
    x, y = batch_for(network, m, rng)
    loss, grad = kernel.value_and_grad(params, x, y)
    expected_loss, expected = symbolic_mean_gradient(network, kernel, params, x, y)
    assert abs(loss - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    ours = kernel.to_values(grad)
    scale = max(abs(v) for v in expected.values())
    for p, value in expected.items():
        assert abs(ours[p] - value) <= 1e-12 * max(abs(value), 1e-3 * scale), (p, ours[p], value)


def test_free_form_kernel_can_serve_a_layered_network():
    network = load("book-12-3-2")
    layered_kernel = compile_kernel(network)
    free = compile_kernel(network, backend="free-form")
    rng = np.random.default_rng(1)
    x, y = batch_for(network, 4, rng)
    params = layered_kernel.init(0)
    reordered = free.from_values(layered_kernel.to_values(params))
    loss_a, grad_a = layered_kernel.value_and_grad(params, x, y)
    loss_b, grad_b = free.value_and_grad(reordered, x, y)
    assert abs(loss_a - loss_b) < 1e-12
    a, b = layered_kernel.to_values(grad_a), free.to_values(grad_b)
    assert all(abs(a[s] - b[s]) < 1e-12 for s in a)


def test_float32_kernels_stay_float32_and_agree():
    network = load("softmax-4-5-3")
    k64, k32 = compile_kernel(network), compile_kernel(network, dtype="float32")
    x, y = batch_for(network, 16, np.random.default_rng(2))
    params = k64.init(0)
    _, g64 = k64.value_and_grad(params, x, y)
    loss, g32 = k32.value_and_grad(params.astype(np.float32), x, y)
    assert g32.dtype == np.float32
    assert np.allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_kernels_agree_with_pytorch_on_a_large_batch():
    network = layered([20, 15, 5], activation=["tanh", "softmax"], cost="log_likelihood", name="t")
    kernel = compile_kernel(network)
    params = kernel.init(4)
    x, y = batch_for(network, 256, np.random.default_rng(5))
    loss, grad = kernel.value_and_grad(params, x, y)
    views = {k: torch.tensor(v, requires_grad=True) for k, v in kernel.views(params).items()}
    h = torch.tanh(torch.tensor(x) @ views["W2"].T + views["b2"])
    logits = h @ views["W3"].T + views["b3"]
    torch_loss = -(torch.tensor(y) * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) < 1e-12
    for name, view in kernel.views(grad).items():
        assert np.allclose(view, views[name].grad.numpy(), rtol=1e-10, atol=1e-14), name


def test_no_overflow_warnings_at_extreme_inputs():
    network = load("cross-entropy-l2-4-5-3")
    kernel = compile_kernel(network)
    params = kernel.init(0) * 400  # saturate everything
    x = np.full((3, 4), 50.0)
    y = np.array([[1.0, 0.0, 1.0]] * 3)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is harmless
        loss, grad = kernel.value_and_grad(params, x, y)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        assert safe_sigmoid(np.array([-1e4, 0.0, 1e4])).tolist() == [0.0, 0.5, 1.0]


def test_generic_networks_have_no_numbers():
    with pytest.raises(KernelError, match="generic"):
        compile_kernel(load("generic-2-3-2"))


def test_user_symbol_names_never_reach_generated_source():
    from derive import free_form

    network = free_form(
        {"lambda_": "w*inp + b", "C": "(sigmoid(lambda_) - y)**2"},
        cost="C", inputs=["inp"], targets=["y"],
    )
    kernel = compile_kernel(network)
    import inspect

    source = inspect.getsource(kernel._means.function)
    assert "lambda_" not in source and "inp" not in source and "_s0" in source


@pytest.mark.parametrize(
    "cost, x",
    [
        ("(y - 1/u)**2", 1.0),  # u = 0: the math module raises ZeroDivisionError
        ("exp(u) - y", 1001.0),  # exp(1000): OverflowError
        ("y*log(u)", 0.5),  # log(−0.5): ValueError (math domain error)
        ("(u - y)**2", 1e200),  # u² overflows: OverflowError from float power
    ],
)
def test_kernels_return_inf_or_nan_instead_of_raising_or_warning(cost, x):
    from derive import free_form

    network = free_form({"u": "w*x + b", "C": cost}, cost="C", inputs=["x"], targets=["y"])
    kernel = compile_kernel(network)
    params = kernel.from_values({s: {"w": 1.0, "b": -1.0}[s.name] for s in network.parameters})  # u = x − 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here
        loss, grad = kernel.value_and_grad(params, np.array([[x]]), np.array([[0.5]]))  # batch 1: math module
        twice = kernel.value_and_grad(params, np.array([[x], [x]]), np.array([[0.5], [0.5]]))  # numpy
    assert not (math.isfinite(loss) and np.all(np.isfinite(grad)))
    np.testing.assert_array_equal([loss, *grad], [twice[0], *twice[1]])  # the same inf and nan either way


def test_layered_kernels_overflow_quietly():
    network = load("digits-64-30-10")
    kernel = compile_kernel(network)
    params = kernel.init(0) * 1e306
    x, y = batch_for(network, 4, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = kernel.value_and_grad(params, x * 1e6, y)
        kernel.predict(params, x * 1e6)
    assert not (math.isfinite(loss) and np.all(np.isfinite(grad)))


def test_free_form_batch_means_with_parameter_factors_and_batch_free_terms():
    """Gradient terms with a parameter factor (∂C/∂w ∋ v·x1) and terms free of the batch (λw², ab)."""
    from derive import free_form

    network = free_form(
        {"u": "w*x1 + v*x2 + b", "C": "(y - sigmoid(a*u))**2/2 + v*w*x1 + lam*w**2 + a*b"},
        cost="C", inputs=["x1", "x2"], targets=["y"], constants=["lam"],
    )
    kernel = compile_kernel(network)
    kernel.constants.update(lam=0.3)
    assert kernel._means.coefficients is None and kernel._means.constants  # the paths under test
    params = kernel.init(5)
    x, y = batch_for(network, 6, np.random.default_rng(3))
    loss, grad = kernel.value_and_grad(params, x, y)
    expected_loss, expected = symbolic_mean_gradient(network, kernel, params, x, y)
    assert abs(loss - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    ours = kernel.to_values(grad)
    for p, value in expected.items():
        assert abs(ours[p] - value) <= 1e-12 * max(1.0, abs(value)), (p, ours[p], value)


@pytest.mark.parametrize("name", ["book-cnn", "avgpool-tanh", "l2pool-channels-stride"])
def test_pool_routing_comes_from_the_derivations_local_partials(name, monkeypatch):
    """Scale ∂(pool unit)/∂(window element) by 3 in the derivation: the gradients below the pooling
    layer (the conv layer's) scale by 3 in the kernel, those above it do not."""
    from derive.graph.network import Network

    shape, layers, cost = CNN_CONFIGS.get(name, (None, None, None))
    build = (lambda: load(name)) if shape is None else (lambda: convolutional(shape, layers, cost, name=name))
    network = build()
    kernel = compile_kernel(network)
    params = kernel.init(2)
    x, y = batch_for(network, 4, np.random.default_rng(4))
    _, grad = kernel.value_and_grad(params, x, y)

    original = Network.local_partials

    def tripled(self, node):
        partials = original(self, node)
        if node.name.startswith("aP"):
            return {v: 3 * d for v, d in partials.items()}
        return partials

    monkeypatch.setattr(Network, "local_partials", tripled)
    changed = compile_kernel(build())
    _, grad3 = changed.value_and_grad(params, x, y)
    views, views3 = kernel.views(grad), changed.views(grad3)
    for block in kernel.blocks:
        below = block.name.endswith("F")  # the conv layer's WF, bF; above the pool: WO, bO
        assert np.allclose(views3[block.name], (3 if below else 1) * views[block.name], rtol=1e-12, atol=1e-15), block.name


def test_free_form_kernel_finds_the_layers_matrix_form():
    """12-3-2 as a free-form graph: the hidden layer's 36 products become one matrix product, and each
    layer's units one packed array formula, not one array operation per unit."""
    import inspect

    kernel = compile_kernel(load("book-12-3-2"), backend="free-form")
    source = inspect.getsource(kernel._means.function)
    assert source.count("_linear") == 1 and source.count("_pack") >= 4
    assert "sigmoid" not in source  # every σ is evaluated inside a pack, over all units of a layer at once


def test_free_form_cost_that_ignores_the_data():
    """No gradient term varies over the batch: the means are the expressions themselves."""
    from derive import free_form

    network = free_form({"C": "w**2 + 3*b"}, cost="C", inputs=["x"], targets=["y"])
    kernel = compile_kernel(network)
    params = kernel.from_values({s: {"w": 0.5, "b": 2.0}[s.name] for s in network.parameters})
    for m in (1, 4):
        loss, grad = kernel.value_and_grad(params, np.ones((m, 1)), np.ones((m, 1)))
        assert loss == 6.25 and kernel.to_values(grad) == {s: {"w": 1.0, "b": 3.0}[s.name] for s in network.parameters}


def _unit_by_unit_net():
    """A 4-3-2 tanh/sigmoid network written unit by unit, and a relu net with a shared weight and an exp/log cost."""
    eq = {}
    for j in range(1, 4):
        eq[f"z{j}"] = " + ".join(f"w{j}{k}*x{k}" for k in range(1, 5)) + f" + b{j}"
        eq[f"h{j}"] = f"tanh(z{j})"
    for o in range(1, 3):
        eq[f"u{o}"] = " + ".join(f"v{o}{j}*h{j}" for j in range(1, 4)) + f" + c{o}"
        eq[f"o{o}"] = f"sigmoid(u{o})"
    eq["C"] = "(y1 - o1)**2/2 + (y2 - o2)**2/2"
    shared = {"a1": "relu(w*x1 + v*x2 + b)", "a2": "relu(w*x2 + v*x1 + b)", "a3": "relu(w*x1 - v*x2 + c)",
              "s": "exp(p*a1) + exp(p*a2) + exp(q*a3)", "C": "log(s) - y1*p*a1 - y2*p*a2"}
    return [(eq, ["x1", "x2", "x3", "x4"]), (shared, ["x1", "x2"])]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
def test_free_form_batch_kernel_equals_the_mean_of_single_examples(index, dtype, tolerance):
    """The batched kernel (matrix products, packed units) against the batch-1 math kernel, example by example."""
    from derive import free_form

    equations, inputs = _unit_by_unit_net()[index]
    kernel = compile_kernel(free_form(equations, cost="C", inputs=inputs, targets=["y1", "y2"]), dtype=dtype)
    params = kernel.init(3)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, len(inputs))), rng.uniform(0, 1, (7, 2))
    loss, grad = kernel.value_and_grad(params, x, y)
    single = [kernel.value_and_grad(params, x[i : i + 1], y[i : i + 1]) for i in range(7)]
    expected = np.mean([g for _, g in single], axis=0)
    assert abs(loss - np.mean([v for v, _ in single])) <= tolerance * max(1.0, abs(loss))
    assert np.abs(grad - expected).max() <= tolerance * np.abs(expected).max()
