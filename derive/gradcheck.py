"""gradcheck: a kernel's gradient against two independent routes, at random points.

1. Central finite differences of the kernel's own loss, in float64:
   (C(θ + h) − C(θ − h)) / 2h with h = 1e-5·max(1, |θ|) (about ε^(1/3), where
   truncation and rounding errors balance); a component's error is taken
   relative to itself or to 0.1 % of the largest component, whichever is larger,
   since rounding swamps differences of near-zero components.
2. The symbolic derivation, evaluated in 40-digit arithmetic example by
   example: the kernel must reproduce it to rounding (1e-10).

PyTorch autograd is a third route in the test suite; the package itself
does not depend on PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .derivation import Derivations
from .kernels import compile_kernel
from .network import Network
from .numeric import ApproximateArithmetic, Evaluator

FD_TOLERANCE = 1e-6
SYMBOLIC_TOLERANCE = 1e-10
MAX_CHECKED = 400  # parameters checked per point on large networks (a random sample)


@dataclass
class GroupError:
    group: str
    parameters: int
    finite_differences: float = 0.0
    symbolic: float = 0.0
    worst: str = ""


@dataclass
class GradcheckResult:
    network: str
    dtype: str
    points: int
    batch: int
    groups: list[GroupError] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        scale = 1e4 if self.dtype == "float32" else 1.0
        return all(
            g.finite_differences <= FD_TOLERANCE * scale and g.symbolic <= SYMBOLIC_TOLERANCE * scale
            for g in self.groups
        )

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "dtype": self.dtype,
            "points": self.points,
            "batch": self.batch,
            "tolerance": {"finite_differences": FD_TOLERANCE, "symbolic": SYMBOLIC_TOLERANCE},
            "groups": [g.__dict__ for g in self.groups],
            "passed": self.passed,
        }


def _relative(a: float, b: float, floor: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), floor)


def gradcheck(network: Network, *, points: int = 2, batch: int = 4, seed: int = 0, dtype: str = "float64") -> GradcheckResult:
    kernel = compile_kernel(network, dtype=dtype)
    reference = compile_kernel(network, dtype="float64") if dtype != "float64" else kernel
    if "n" in kernel.constants:
        for k in {kernel, reference}:
            k.constants.update(lmbda=0.5, n=10.0)
    derivations = Derivations(network)
    d = derivations.cost
    rng = np.random.default_rng(seed)
    groups = {b.name: GroupError(b.name, b.size) for b in kernel.blocks}
    block_of = np.empty(kernel.size, dtype=object)
    for block in kernel.blocks:
        block_of[block.offset : block.offset + block.size] = block.name
    symbols = np.empty(kernel.size, dtype=object)
    for block in kernel.blocks:
        symbols[block.offset : block.offset + block.size] = block.symbols.reshape(-1)
    for _ in range(points):
        params = reference.init(int(rng.integers(2**31)))
        x, y = _random_batch(network, batch, rng)
        _, grad = kernel.value_and_grad(params.astype(kernel.dtype), x, y)
        grad = grad.astype(np.float64)
        scale = float(np.max(np.abs(grad))) or 1.0
        checked = np.arange(kernel.size)
        if kernel.size > MAX_CHECKED:
            checked = np.sort(rng.choice(kernel.size, MAX_CHECKED, replace=False))
        for index in checked:
            h = 1e-5 * max(1.0, abs(params[index]))
            plus, minus = params.copy(), params.copy()
            plus[index] += h
            minus[index] -= h
            difference = (reference.value_and_grad(plus, x, y)[0] - reference.value_and_grad(minus, x, y)[0]) / (2 * h)
            error = _relative(grad[index], difference, 1e-3 * scale)
            group = groups[block_of[index]]
            if error > group.finite_differences:
                group.finite_differences = error
                group.worst = symbols[index].name
        symbolic = _symbolic_mean(network, derivations, d, reference, params, x, y, [symbols[i] for i in checked])
        for index, value in zip(checked, symbolic):
            group = groups[block_of[index]]
            group.symbolic = max(group.symbolic, _relative(grad[index], value, 1e-6 * scale))
    return GradcheckResult(network.name, dtype, points, batch, list(groups.values()))


def _random_batch(network: Network, m: int, rng):
    if network.kind == "cnn":
        x = rng.standard_normal((m, *network.facts["input_shape"])) * 0.8
    else:
        x = rng.standard_normal((m, len(network.inputs)))
    n_out = len(network.targets)
    if network.facts.get("output") == "coupled":
        y = np.eye(n_out)[rng.integers(0, n_out, m)]
    else:
        y = rng.uniform(0.05, 0.95, (m, n_out))
    return x, y


def _symbolic_mean(network, derivations, d, kernel, params, x, y, wanted) -> list[float]:
    values = kernel.to_values(params)
    totals = [0.0] * len(wanted)
    adjoints = [d.adjoint(s) for s in wanted]
    for row, target in zip(x.reshape(len(x), -1), y):
        point = {s: Fraction(float(v)) for s, v in values.items()}
        point.update({s: Fraction(float(v)) for s, v in zip(network.inputs, row)})
        point.update({s: Fraction(float(v)) for s, v in zip(network.targets, target)})
        for c in network.constants:
            point[c] = Fraction(kernel.constants[c.name])
        evaluate = Evaluator(ApproximateArithmetic(40), point, derivations.definition, ties="first")
        for i, adjoint in enumerate(adjoints):
            totals[i] += float(evaluate(adjoint))
    return [t / len(x) for t in totals]
