"""gradcheck: a kernel's gradient against two independent routes, at random points.

1. Central finite differences of the kernel's own loss, in float64:
   (C(θ + h) − C(θ − h)) / 2h with h = 1e-5·max(1, |θ|) (about ε^(1/3), where
   truncation and rounding errors balance); a component's error is taken
   relative to itself or to 0.1 % of the largest component, whichever is larger,
   since rounding swamps differences of near-zero components.
2. The symbolic derivation, evaluated in 40-digit arithmetic example by
   example: the kernel must reproduce it to rounding (1e-10).

Both references are computed in float64 or better at the point the kernel
sees (a float32 kernel's parameters and batch rounded to float32 first), so
what remains is the kernel's own arithmetic. In float32 that rounding
dominates both comparisons: backpropagation sums products layer by layer,
and its errors grow to a few tens of ε₃₂ = 2⁻²³ times the largest gradient
component (the built-in networks measure up to about 40 ε₃₂). A float32
kernel is therefore held to 2¹³ ε₃₂ ≈ 1e-3 relative (float32 keeps about
seven digits; a few layers of sums may cost three), and components smaller
than 1.2 % of the largest are judged against 1.2 % of it: there the allowed
error is 100 ε₃₂ of the largest component. A wrong formula (a 1 % error on
any component above that floor) fails at either precision. float64 keeps
its strict tolerances.

A random point may lie outside the network's domain (log of a negative
number, a fractional power of one, a division by zero) or overflow
(exp(exp(exp(w)))): there the derivation has no value to compare with, so
the point is drawn again, up to MAX_DRAWS times. When no draw is usable the
network cannot be checked by random sampling, which is an input error
(InputError, exit 2, naming the node and the reason), not a failed check:
nothing showed the kernel wrong. Where the derivation is finite but the
kernel's float64 gradient is not, the kernel is wrong at that point: the
error is infinite and the check fails (exit 1).

PyTorch autograd is a third route in the test suite; the package itself
does not depend on PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from derive.derivation import Derivations
from derive.errors import InputError
from derive.kernels import compile_kernel
from derive.graph.network import Network, undefined_node
from derive.graph.numeric import ApproximateArithmetic, Evaluator, Indeterminate

FD_TOLERANCE = 1e-6  # float64 (see Tolerances.of for float32)
SYMBOLIC_TOLERANCE = 1e-10
ROUNDING_RELATIVE = 2**13  # lower precisions: relative error allowed, in ε of the dtype
ROUNDING_GROWTH = 100  # … and absolute error on the smallest components, in ε times the largest component
MAX_CHECKED = 400  # parameters checked per point on large networks (a random sample)
MAX_DRAWS = 20  # random draws per point before a network is declared uncheckable by sampling
MAX_POINTS = 1_000  # --points
MAX_BATCH = 4_096  # --batch: every example is also evaluated in 40-digit arithmetic


class _Unusable(Exception):
    """The drawn point is outside the network's domain or overflows: draw another."""


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerances, and the floors below which an error is taken relative to the largest component.

    An error is |kernel − reference| / max(|reference|, floor · largest |component|).
    """

    finite_differences: float
    finite_differences_floor: float
    symbolic: float
    symbolic_floor: float

    @classmethod
    def of(cls, dtype: str) -> "Tolerances":
        if dtype == "float64":
            return cls(FD_TOLERANCE, 1e-3, SYMBOLIC_TOLERANCE, 1e-6)
        eps = float(np.finfo(dtype).eps)
        relative = ROUNDING_RELATIVE * eps  # 9.8e-4 in float32: the kernel's rounding dominates both routes
        floor = ROUNDING_GROWTH * eps / relative  # 1.2 %: there, ROUNDING_GROWTH·ε of the largest is allowed
        return cls(relative, floor, relative, floor)


@dataclass
class GroupError:
    group: str
    parameters: int
    finite_differences: float = 0.0
    symbolic: float | None = 0.0  # None: no per-example symbolic graph (a stack network)
    worst: str = ""


@dataclass
class GradcheckResult:
    network: str
    dtype: str
    points: int
    batch: int
    groups: list[GroupError] = field(default_factory=list)

    @property
    def tolerances(self) -> Tolerances:
        return Tolerances.of(self.dtype)

    @property
    def passed(self) -> bool:
        t = self.tolerances
        return all(g.finite_differences <= t.finite_differences and (g.symbolic is None or g.symbolic <= t.symbolic)
                   for g in self.groups)

    def to_dict(self) -> dict:
        t = self.tolerances
        return {
            "network": self.network,
            "dtype": self.dtype,
            "points": self.points,
            "batch": self.batch,
            "tolerance": {"finite_differences": t.finite_differences, "symbolic": t.symbolic},
            "floor": {"finite_differences": t.finite_differences_floor, "symbolic": t.symbolic_floor},
            "groups": [dict(g.__dict__) for g in self.groups],  # an infinite error is written null by emit_json
            "passed": self.passed,
        }

    def header(self) -> str:
        """The first line of the text output, with the tolerances this dtype is held to."""
        t = self.tolerances
        return (
            f"{self.network}: {self.dtype} kernel at {self.points} random points, batch {self.batch}; "
            f"worst relative error per group (tolerance: finite differences {t.finite_differences:.2g}, "
            f"symbolic {t.symbolic:.2g})"
        )

    def text(self) -> str:
        lines = [self.header(), f"  {'group':<8} {'parameters':>10}  {'finite diff.':>12}  {'symbolic':>10}"]
        for g in self.groups:
            symbolic = "n/a" if g.symbolic is None else f"{g.symbolic:.2e}"
            lines.append(f"  {g.group:<8} {g.parameters:>10}  {g.finite_differences:>12.2e}  {symbolic:>10}")
        if any(g.symbolic is None for g in self.groups):
            lines.append("  symbolic n/a: a stack network has no per-example graph; its layers' formulas are proven "
                         "for every size (derive prove NAME)")
        lines.append("passed" if self.passed else "FAILED: above tolerance")
        return "\n".join(lines)


def _relative(a: float, b: float, floor: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf  # a non-finite gradient against a finite reference: wrong, never silently passed
    return abs(a - b) / max(abs(a), abs(b), floor)


def gradcheck(network: Network, *, points: int = 2, batch: int = 4, seed: int = 0, dtype: str = "float64") -> GradcheckResult:
    kernel = compile_kernel(network, dtype=dtype)
    reference = compile_kernel(network, dtype="float64") if dtype != "float64" else kernel
    for k in {kernel, reference}:
        if hasattr(k, "mask_seed"):  # dropout: the same masks at every evaluation, or differences mean nothing
            k.mask_seed = seed
    if "n" in kernel.constants:
        for k in {kernel, reference}:
            k.constants.update(lmbda=0.5, n=10.0)
    stack = network.kind == "stack"  # no per-example graph: finite differences only
    derivations = None if stack else Derivations(network)
    d = None if stack else derivations.cost
    rng = np.random.default_rng(seed)
    groups = {b.name: GroupError(b.name, b.size, symbolic=None if stack else 0.0) for b in kernel.blocks}
    block_of = np.empty(kernel.size, dtype=object)
    for block in kernel.blocks:
        block_of[block.offset : block.offset + block.size] = block.name
    symbols = np.empty(kernel.size, dtype=object)
    for block in kernel.blocks:
        symbols[block.offset : block.offset + block.size] = block.symbols.reshape(-1)
    tolerances = Tolerances.of(dtype)
    for number in range(1, points + 1):
        for _ in range(MAX_DRAWS):
            params = reference.init(int(rng.integers(2**31)))
            x, y = _random_batch(network, batch, rng)
            # the point the kernel sees, exactly: the references start from the same (rounded) numbers
            params, x, y = (_at(a, kernel.dtype) for a in (params, x, y))
            checked = np.arange(kernel.size)
            if kernel.size > MAX_CHECKED:
                checked = np.sort(rng.choice(kernel.size, MAX_CHECKED, replace=False))
            try:
                symbolic = [] if stack else _symbolic_mean(network, derivations, d, reference, params, x, y,
                                                           [symbols[i] for i in checked])
                grad, differences = _kernel_and_differences(kernel, reference, params, x, y, checked)
                break
            except _Unusable as exc:
                reason = str(exc)
        else:
            raise InputError(
                f"cannot gradcheck {network.name}: none of {MAX_DRAWS} random points drawn for point {number} "
                f"is usable (the last: {reason}); gradcheck draws parameters and inputs from a standard normal, "
                "and this network is undefined or overflows there"
            )
        finite = np.isfinite(grad)
        scale = float(np.max(np.abs(grad[finite]))) if finite.any() else 1.0
        scale = scale or 1.0
        for index, difference in zip(checked, differences):
            error = _relative(grad[index], difference, tolerances.finite_differences_floor * scale)
            group = groups[block_of[index]]
            if error > group.finite_differences:
                group.finite_differences = error
                group.worst = symbols[index].name
        for index, value in zip(checked, symbolic):
            group = groups[block_of[index]]
            group.symbolic = max(group.symbolic, _relative(grad[index], value, tolerances.symbolic_floor * scale))
    return GradcheckResult(network.name, dtype, points, batch, list(groups.values()))


def _kernel_and_differences(kernel, reference, params, x, y, checked):
    """The kernel's gradient and the reference's central differences at `checked`.

    A non-finite kernel gradient is kept (the comparison fails) when the float64
    reference is finite there too; a float32 kernel beyond float32's range, or a
    step that leaves the domain, makes the point unusable.
    """
    with np.errstate(all="ignore"):
        loss, grad = kernel.value_and_grad(params.astype(kernel.dtype), x, y)
        grad = grad.astype(np.float64)
        if kernel is not reference and not (math.isfinite(loss) and np.isfinite(grad).all()):
            loss64, grad64 = reference.value_and_grad(params, x, y)
            if math.isfinite(loss64) and np.isfinite(grad64).all():
                raise _Unusable(f"the loss or gradient is beyond the range of {kernel.dtype.name}")
        differences = []
        for index in checked:
            h = 1e-5 * max(1.0, abs(params[index]))
            plus, minus = params.copy(), params.copy()
            plus[index] += h
            minus[index] -= h
            above, below = reference.value_and_grad(plus, x, y)[0], reference.value_and_grad(minus, x, y)[0]
            if not (math.isfinite(above) and math.isfinite(below)):
                raise _Unusable(f"the loss is not finite a step of {h:.1g} away in the parameter {index}")
            differences.append((above - below) / (2 * h))
    return grad, differences


def _at(array: np.ndarray, dtype) -> np.ndarray:
    """`array` rounded to `dtype` and held in float64."""
    return np.asarray(array).astype(dtype).astype(np.float64)


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
        problem = undefined_node(network, evaluate)  # names the node, if one has no value here
        if problem is not None:
            raise _Unusable(f"node {problem[0].name} has no finite value: {problem[1]}")
        for i, adjoint in enumerate(adjoints):
            try:
                totals[i] += float(evaluate(adjoint))
            except (Indeterminate, ArithmeticError, ValueError) as exc:
                raise _Unusable(f"∂{network.cost.name}/∂{wanted[i].name} has no finite value: {exc}") from None
    return [t / len(x) for t in totals]
