"""Independent routes to the same gradients, for tests.

* `torch_gradients`: PyTorch autograd in float64. Layered networks are built
  from their facts (sizes, activations, cost) as matrix code, not from our
  symbolic graph, so the builder is checked too; free-form networks are
  interpreted equation by equation.
* `finite_differences`: central differences of the cost, evaluated forward
  only, in 60-digit arithmetic.
* `sympy_gradient`: plain `sympy.diff` of the fully substituted cost.

Generic functions get the prover's first concrete stand-ins (a rational
polynomial σ and a polynomial cost), so every route computes the same numbers.
"""

from __future__ import annotations

import random
from fractions import Fraction

import mpmath
import sympy as sp
import torch

from derive.graph import functions as fn
from derive.graph.numeric import ApproximateArithmetic, Evaluator
from derive.proof import SIGMA_STAND_INS, SUBSTITUTES

torch.set_default_dtype(torch.float64)


def random_point(network, seed: int) -> dict[sp.Symbol, Fraction]:
    rng = random.Random(seed)
    point = {}
    for s in network.leaves:
        if s in network.constants:
            point[s] = Fraction(rng.randint(1, 9), rng.randint(1, 4))
        elif s in network.targets:  # strictly inside (0, 1): log(1 - a) stays finite in float64
            point[s] = Fraction(rng.randint(1, 9), 10)
        else:
            point[s] = Fraction(rng.randint(-9, 9), rng.randint(3, 9))
    if network.facts.get("cost") == "log_likelihood":
        # one-hot-like targets: nonnegative and summing to 1
        ys = list(network.targets)
        weights = [rng.randint(1, 5) for _ in ys]
        for y, w in zip(ys, weights):
            point[y] = Fraction(w, sum(weights))
    return point


def derived_gradients(derivations, point, ties: str = "refuse") -> dict[sp.Symbol, float]:
    """Our symbolic gradients, evaluated at `point` (60 digits)."""
    evaluate = Evaluator(ApproximateArithmetic(60), point, derivations.definition, SUBSTITUTES, ties=ties)
    d = derivations.cost
    return {p: float(evaluate(d.adjoint(p))) for p in d.parameters()}


def cost_value(network, point, digits: int = 60):
    evaluate = Evaluator(ApproximateArithmetic(digits), point, network.definitions.get, SUBSTITUTES)
    return evaluate(network.cost)


def finite_differences(network, point, parameters=None, h: str = "1e-20") -> dict[sp.Symbol, float]:
    ctx = mpmath.MPContext()
    ctx.dps = 60
    step = ctx.mpf(h)
    grads = {}
    for p in network.parameters if parameters is None else parameters:
        values = {}
        for sign in (1, -1):
            shifted = dict(point)
            evaluate = Evaluator(ApproximateArithmetic(60), {}, network.definitions.get, SUBSTITUTES)
            for s, v in shifted.items():
                evaluate.known[s] = evaluate.arith.lift(Fraction(v))
            evaluate.known[p] = evaluate.known[p] + sign * step
            values[sign] = evaluate(network.cost)
        grads[p] = float((values[1] - values[-1]) / (2 * step))
    return grads


def sympy_gradient(network, parameter) -> sp.Expr:
    return sp.diff(network.substituted(network.cost), parameter)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


def _sigma(t):
    """The prover's first stand-in for a generic σ, read from its coefficients."""
    return sum(float(c) * t**k for k, c in enumerate(SIGMA_STAND_INS[0].coefficients))


def _generic_cost(outputs):
    total = sum(outputs)
    value = total**2 / 7
    for i, a in enumerate(outputs, start=1):
        value = value + a**3 * i / (3 * (i + 2))
    return value


TORCH_ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softplus": torch.nn.functional.softplus,
    "identity": lambda z: z,
    "sigma": _sigma,
}


def torch_gradients(network, point) -> dict[sp.Symbol, float]:
    if network.kind == "layered":
        return _torch_layered(network, point)
    return _torch_free_form(network, point)


def _value(point, s) -> float:
    return float(point[s])


def _torch_layered(network, point) -> dict[sp.Symbol, float]:
    facts, families = network.facts, network.families
    sizes, L = facts["sizes"], facts["L"]
    x = torch.tensor([_value(point, families["x"][(k,)]) for k in range(1, sizes[0] + 1)])
    weights, biases = {}, {}
    for l in range(2, L + 1):
        weights[l] = torch.tensor(
            [[_value(point, families["w"][(l, j, k)]) for k in range(1, sizes[l - 2] + 1)] for j in range(1, sizes[l - 1] + 1)],
            requires_grad=True,
        )
        biases[l] = torch.tensor([_value(point, families["b"][(l, j)]) for j in range(1, sizes[l - 1] + 1)], requires_grad=True)
    a = x
    for l in range(2, L + 1):
        z = weights[l] @ a + biases[l]  # Nielsen: z^l = w^l a^{l-1} + b^l
        act = facts["activations"][l - 2]
        a = torch.softmax(z, dim=0) if act == "softmax" else TORCH_ACTIVATIONS[act](z)
    cost = facts["cost"]
    if cost == "generic":
        loss = _generic_cost(list(a))
    else:
        y = torch.tensor([_value(point, families["y"][(j,)]) for j in range(1, sizes[-1] + 1)])
        if cost == "quadratic":
            loss = ((y - a) ** 2).sum() / 2
        elif cost == "cross_entropy":
            loss = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum()
        else:
            loss = -(y * torch.log(a)).sum()
    if facts["regularization"] == "l2":
        lmbda, n = (_value(point, s) for s in network.constants)
        loss = loss + lmbda / (2 * n) * sum((w**2).sum() for w in weights.values())
    loss.backward()
    grads = {}
    for (l, j, k), s in families["w"].items():
        grads[s] = float(weights[l].grad[j - 1, k - 1])
    for (l, j), s in families["b"].items():
        grads[s] = float(biases[l].grad[j - 1])
    return grads


def _torch_free_form(network, point) -> dict[sp.Symbol, float]:
    leaves = {
        s: torch.tensor(_value(point, s), requires_grad=s in network.parameters) for s in network.leaves
    }
    values = dict(leaves)
    for node in network.order:
        values[node] = _interpret(network.definitions[node], values)
    values[network.cost].backward()
    return {p: float(leaves[p].grad) for p in network.parameters}


def _interpret(expr, values):
    if expr in values:
        return values[expr]
    if expr.is_Number:
        return torch.tensor(float(expr))
    args = [_interpret(a, values) for a in expr.args]
    if expr.is_Add:
        return sum(args[1:], args[0])
    if expr.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if expr.is_Pow:
        return args[0] ** args[1]
    table = {
        sp.exp: torch.exp,
        sp.log: torch.log,
        sp.tanh: torch.tanh,
        fn.sigmoid: torch.sigmoid,
        fn.relu: torch.relu,
        fn.sigma: _sigma,
    }
    if type(expr) in table:
        return table[type(expr)](*args)
    if isinstance(expr, (sp.Max, fn.maxpool)):
        return torch.stack(args).max()
    raise TypeError(f"no torch rule for {type(expr).__name__}")


# ---------------------------------------------------------------------------
# PyTorch for convolutional networks, built from the same layer list
# ---------------------------------------------------------------------------


def torch_cnn_gradients(network, layers, point) -> dict[sp.Symbol, float]:
    import torch.nn.functional as F

    fam = network.families
    channels = network.facts["channels"]
    xs = [k for k in fam["x"] if len(k) == 3]
    height, width = max(k[1] for k in xs), max(k[2] for k in xs)
    x = torch.tensor(
        [[[_value(point, fam["x"][(c, i, j)]) for j in range(1, width + 1)] for i in range(1, height + 1)]
         for c in range(1, channels + 1)]
    ).unsqueeze(0)
    leaves = {}
    out = x
    conv_count = dense_count = 0
    dense_total = sum(1 for layer in layers if layer["type"] == "dense")
    for layer in layers:
        kind = layer["type"]
        if kind == "conv":
            conv_count += 1
            label = "F" if conv_count == 1 else f"F{conv_count}"
            k_count = layer["filters"]
            kr = kc = layer["kernel"]
            in_c = out.shape[1]
            w = torch.zeros(k_count, in_c, kr, kc)
            for k in range(1, k_count + 1):
                for c in range(1, in_c + 1):
                    for p in range(1, kr + 1):
                        for q in range(1, kc + 1):
                            key = (k, c, p, q)
                            w[k - 1, c - 1, p - 1, q - 1] = _value(point, fam[f"w{label}"][key])
            b = torch.tensor([_value(point, fam[f"b{label}"][(k,)]) for k in range(1, k_count + 1)])
            w.requires_grad_(True)
            b.requires_grad_(True)
            leaves[label] = (w, b)
            padding = layer.get("padding", "valid")
            out = F.conv2d(out, w, b, stride=layer.get("stride", 1), padding=padding if isinstance(padding, int) else padding)
            out = TORCH_ACTIVATIONS[layer.get("activation", "sigmoid")](out)
        elif kind in ("maxpool", "avgpool", "l2pool"):
            size, stride = layer["size"], layer.get("stride", layer["size"])
            if kind == "maxpool":
                out = F.max_pool2d(out, size, stride)
            elif kind == "avgpool":
                out = F.avg_pool2d(out, size, stride)
            else:
                out = F.lp_pool2d(out, 2, size, stride)
        elif kind == "dense":
            dense_count += 1
            label = "O" if dense_count == dense_total else ("H" if dense_count == 1 else f"H{dense_count}")
            flat = out.reshape(-1)
            units = layer["units"]
            keys = sorted((k for k in fam[f"w{label}"] if k[0] == 1), key=lambda k: k[1:])
            w = torch.tensor([[_value(point, fam[f"w{label}"][(n, *k[1:])]) for k in keys] for n in range(1, units + 1)])
            b = torch.tensor([_value(point, fam[f"b{label}"][(n,)]) for n in range(1, units + 1)])
            w.requires_grad_(True)
            b.requires_grad_(True)
            leaves[label] = (w, b, keys)
            out = w @ flat + b
            act = layer.get("activation", "sigmoid")
            out = torch.softmax(out, dim=0) if act == "softmax" else TORCH_ACTIVATIONS[act](out)
    t = torch.tensor([_value(point, s) for s in network.targets])
    cost = network.facts["cost"]
    if cost == "quadratic":
        loss = ((t - out) ** 2).sum() / 2
    elif cost == "log_likelihood":
        loss = -(t * torch.log(out)).sum()
    else:
        loss = -(t * torch.log(out) + (1 - t) * torch.log(1 - out)).sum()
    loss.backward()
    grads = {}
    for label, tensors in leaves.items():
        if label.startswith("F"):
            w, b = tensors
            for key, s in fam[f"w{label}"].items():
                if len(key) == 4:
                    grads[s] = float(w.grad[tuple(i - 1 for i in key)])
        else:
            w, b, keys = tensors
            for (n, *rest), s in fam[f"w{label}"].items():
                grads[s] = float(w.grad[n - 1, keys.index((1, *rest))])
        for (k,), s in fam[f"b{label}"].items():
            grads[s] = float(b.grad[k - 1])
    return grads
