"""Stack networks (batch norm, attention): kernels compiled from formula sets proven for every size,
checked against PyTorch float64 autograd and central finite differences, and trained."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from derive.errors import InputError
from derive.graph.spec import load, parse_spec
from derive.kernels import KernelError, compile_kernel
from derive.kernels import stages
from derive.train.training import load_data, train

SEQUENCE = """
[network]
name = "seq"
input = [5, 6]
[[layer]]
type = "layernorm"
[[layer]]
type = "attention"
width = 4
[[layer]]
type = "activation"
function = "tanh"
[[layer]]
type = "residual"
function = "softplus"
[[layer]]
type = "affine"
units = 3
[[layer]]
type = "batchnorm"
[[layer]]
type = "activation"
function = "sigmoid"
[[layer]]
type = "readout"
position = "mean"
[[layer]]
type = "softmax_cross_entropy"
"""


def torch_stack(network, views: dict, x: np.ndarray, y: np.ndarray):
    """The same stack written with PyTorch's own layers: the loss, and the tensors whose gradients count."""
    tensors = {name: torch.tensor(np.array(value), requires_grad=True) for name, value in views.items()}
    a = torch.tensor(x).reshape(len(x), *network.facts["input_shape"])
    for layer in network.facts["layers"][:-1]:
        k = layer.number
        if layer.kind == "affine":
            a = a @ tensors[f"w{k}"] + tensors[f"b{k}"]
        elif layer.kind == "activation":
            a = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[layer.options["function"]](a)
        elif layer.kind == "residual":
            a = a + torch.nn.functional.softplus(a @ tensors[f"W{k}"] + tensors[f"b{k}"])
        elif layer.kind == "batchnorm":
            flat = a.reshape(-1, a.shape[-1])
            a = torch.nn.functional.batch_norm(flat, None, None, tensors[f"gamma{k}"], tensors[f"beta{k}"],
                                               training=True, eps=1e-5).reshape(a.shape)
        elif layer.kind == "layernorm":
            a = torch.nn.functional.layer_norm(a, (a.shape[-1],), tensors[f"gamma{k}"], tensors[f"beta{k}"], eps=1e-5)
        elif layer.kind == "attention":
            q, kk, v = (a @ tensors[f"w{p}{k}"] + tensors[f"b{p}{k}"] for p in "qkv")
            scores = q @ kk.transpose(1, 2) / np.sqrt(q.shape[-1])
            a = torch.softmax(scores, -1) @ v
        elif layer.kind == "readout":
            a = a[:, -1, :] if layer.options["position"] == "last" else a.mean(1)
    loss = -(torch.tensor(y) * torch.log_softmax(a, 1)).sum() / len(x)
    loss.backward()
    return loss.item(), {name: t.grad.numpy() for name, t in tensors.items()}


def random_point(kernel, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    params = kernel.init(seed)
    params += 0.3 * rng.standard_normal(kernel.size)  # scales ≠ 1, shifts ≠ 0: every term of the formulas counts
    x = rng.standard_normal((batch, len(kernel.network.inputs)))
    y = rng.uniform(0.05, 0.95, (batch, len(kernel.network.targets)))  # any targets: dx = (p·Σy − y)/N
    return params, x, y


NETWORKS = {"digits-batchnorm": lambda: load("digits-batchnorm"), "lookup-attention": lambda: load("lookup-attention"),
            "sequence": lambda: parse_spec(SEQUENCE)}


@pytest.mark.parametrize("batch", [1, 2, 7])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_kernel_equals_pytorch_autograd(name, batch):
    network = NETWORKS[name]()
    kernel = compile_kernel(network)
    if name == "digits-batchnorm" and batch == 1:
        batch = 3  # one example has no batch variance: the normalised value is 0/sqrt(eps)
    params, x, y = random_point(kernel, batch, seed=batch)
    loss, grad = kernel.value_and_grad(params, x, y)
    torch_loss, torch_grads = torch_stack(network, kernel.views(params), x, y)
    assert loss == pytest.approx(torch_loss, rel=1e-12, abs=1e-12)
    for block in kernel.blocks:
        theirs = torch_grads[block.name]
        scale = max(1.0, float(np.abs(theirs).max()))
        assert np.abs(block.view(grad) - theirs).max() <= 1e-10 * scale, block.name


def test_kernel_equals_central_finite_differences():
    network = parse_spec(SEQUENCE)
    kernel = compile_kernel(network)
    params, x, y = random_point(kernel, 4, seed=11)
    _, grad = kernel.value_and_grad(params, x, y)
    for index in np.random.default_rng(0).choice(kernel.size, 40, replace=False):
        h = 1e-5
        plus, minus = params.copy(), params.copy()
        plus[index] += h
        minus[index] -= h
        difference = (kernel.value_and_grad(plus, x, y)[0] - kernel.value_and_grad(minus, x, y)[0]) / (2 * h)
        assert abs(grad[index] - difference) <= 1e-6 * max(1.0, abs(difference))


def test_float32_kernel_stays_float32_and_close():
    network = load("digits-batchnorm")
    k64, k32 = compile_kernel(network), compile_kernel(network, dtype="float32")
    params, x, y = random_point(k64, 16, seed=3)
    loss64, grad64 = k64.value_and_grad(params, x, y)
    loss32, grad32 = k32.value_and_grad(params.astype(np.float32), x, y)
    assert grad32.dtype == np.float32
    assert abs(loss32 - loss64) <= 1e-5 * abs(loss64)
    assert np.abs(grad32 - grad64).max() <= 1e-4 * np.abs(grad64).max()


def test_a_wrong_formula_makes_no_kernel(monkeypatch):
    """The kernel compiles a formula only after proving it for every size: a planted error is refused."""
    from derive.proof.formulas import builtin_sets

    real = builtin_sets()
    wrong = {**real}
    batchnorm = real["batchnorm"]
    planted = tuple(f if f.id != "dx" else type(f)(**{**f.__dict__, "rhs": f.rhs * 2}) for f in batchnorm.formulas)
    wrong["batchnorm"] = type(batchnorm)(**{**batchnorm.__dict__, "formulas": planted})
    stages.proven.cache_clear()
    monkeypatch.setattr(stages, "builtin_sets", lambda: wrong)
    try:
        with pytest.raises(KernelError, match="batchnorm dx is not proven"):
            compile_kernel(load("digits-batchnorm"))
    finally:
        stages.proven.cache_clear()


def test_the_batchnorm_mlp_learns_the_digits():
    network = load("digits-batchnorm")
    result = train(network, load_data("digits", network), epochs=30, batch=16, lr=0.1, momentum=0.5, seed=0)
    assert result.test_accuracy >= 0.97


def test_attention_learns_the_lookup_that_averaging_cannot():
    attention = load("lookup-attention")
    data = load_data("lookup", attention)
    with_attention = train(attention, data, epochs=15, batch=32, lr=0.2, momentum=0.9, seed=0)
    assert with_attention.test_accuracy >= 0.95
    without = load("examples/lookup-without-attention.toml")
    plain = train(without, load_data("lookup", without), epochs=15, batch=32, lr=0.2, momentum=0.9, seed=0)
    assert plain.test_accuracy <= 0.25  # chance is 1/7


@pytest.mark.parametrize("text, message", [
    ('input = 4\n[[layer]]\ntype = "batchnorm"\n', "ends with a softmax_cross_entropy"),
    ('input = 4\n[[layer]]\ntype = "softmax_cross_entropy"\n[[layer]]\ntype = "affine"\nunits = 2\n',
     "must be the last layer"),
    ('input = 4\n[[layer]]\ntype = "attention"\nwidth = 2\n[[layer]]\ntype = "softmax_cross_entropy"\n',
     "attention needs a sequence"),
    ('input = [3, 4]\n[[layer]]\ntype = "attention"\nwidth = 2\nheads = 2\n', "heads = 1"),
    ('input = 4\n[[layer]]\ntype = "affine"\nunits = 0\n', "units = a whole number"),
    ('input = 4\n[[layer]]\ntype = "affine"\nunits = 4096\n[[layer]]\ntype = "affine"\nunits = 4096\n'
     '[[layer]]\ntype = "softmax_cross_entropy"\n', "more than 100,000 parameters"),
    ('input = 4\n[[layer]]\ntype = "activation"\nfunction = "sigma"\n', "function = one of"),
    ('input = 4\n[[layer]]\ntype = "batchnorm"\neps = 1\n', "unknown key 'eps'"),
    ('input = 4\n[[layer]]\ntype = "conv"\n[[layer]]\ntype = "batchnorm"\n', "unknown type 'conv'"),
    ('input = 4\n[[layer]]\ntype = "affine"\nunits = 1\n[[layer]]\ntype = "softmax_cross_entropy"\n',
     "at least two classes"),
])
def test_bad_stack_specs_are_input_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_spec('[network]\nname = "s"\n' + text)


def run(*argv):
    return subprocess.run([sys.executable, "-m", "derive", *argv], capture_output=True, text=True, timeout=300)


def test_cli_proves_what_the_kernel_uses_and_refuses_a_derivation():
    proof = run("prove", "lookup-attention", "--json")
    assert proof.returncode == 0, proof.stderr
    data = json.loads(proof.stdout)
    assert data["general"] and data["all_proven"]
    assert {f["set"] for f in data["formulas"]} == {"affine", "attention", "softmax_cross_entropy"}
    refused = run("derive", "digits-batchnorm")
    assert refused.returncode == 2 and "stack network" in refused.stderr and "Traceback" not in refused.stderr
    check = run("gradcheck", "digits-batchnorm", "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["passed"]


def test_a_specs_train_table_sets_what_the_command_line_does_not():
    network = parse_spec(SEQUENCE + "[train]\nlr = 0.05\nepochs = 3\n")
    from derive.train.training import settings_for

    assert settings_for("digits", network) == {"epochs": 3, "batch": 16, "lr": 0.05, "momentum": 0.5}
    for bad, message in (("lr = -1", "--lr a finite number"), ("epochs = 1.5", "whole number"),
                         ("rate = 1", "unknown key 'rate'"), ("momentum = true", "must be a number")):
        with pytest.raises(InputError, match=message):
            parse_spec(SEQUENCE + f"[train]\n{bad}\n")


DROPOUT = """
[network]
name = "dropout-mlp"
input = 6
[[layer]]
type = "affine"
units = 8
[[layer]]
type = "activation"
function = "relu"
[[layer]]
type = "dropout"
keep = 0.7
[[layer]]
type = "affine"
units = 3
[[layer]]
type = "softmax_cross_entropy"
"""


def test_dropout_trains_with_the_masks_it_draws_and_predicts_without_them():
    network = parse_spec(DROPOUT)
    kernel = compile_kernel(network)
    params, x, y = random_point(kernel, 5, seed=4)
    kernel.mask_seed = 9
    loss, grad = kernel.value_and_grad(params, x, y)
    mask = np.random.default_rng(9).random((5, 8)) < 0.7  # the one draw of the one dropout layer
    tensors = {b.name: torch.tensor(np.array(b.view(params)), requires_grad=True) for b in kernel.blocks}
    hidden = torch.relu(torch.tensor(x) @ tensors["w1"] + tensors["b1"]) * torch.tensor(mask) / 0.7
    scores = hidden @ tensors["w4"] + tensors["b4"]
    expected = -(torch.tensor(y) * torch.log_softmax(scores, 1)).sum() / 5
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for block in kernel.blocks:
        assert np.allclose(block.view(grad), tensors[block.name].grad.numpy(), rtol=1e-10, atol=1e-12), block.name
    plain = torch.softmax(torch.relu(torch.tensor(x) @ tensors["w1"] + tensors["b1"]) @ tensors["w4"] + tensors["b4"], 1)
    assert np.allclose(kernel.predict(params, x), plain.detach().numpy(), rtol=1e-12)
    kernel.mask_seed = None  # training: a fresh mask each step
    assert kernel.value_and_grad(params, x, y)[0] != kernel.value_and_grad(params, x, y)[0]
    from derive.train.gradcheck import gradcheck

    assert gradcheck(network, points=1, batch=4).passed
