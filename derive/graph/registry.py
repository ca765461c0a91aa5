"""One entry per named elementwise function: every part of it in one place.

In the manner of autograd's one `defvjp` line per primitive, each `Entry`
holds everything the modules need to know about a function such as the
sigmoid, and every module reads these entries instead of keeping a table
of its own:

* `function`: its SymPy class (the derivative is the class's `fdiff`), what
  the parser builds from a formula and the network module from a spec;
* `evaluate`: exact, interval and approximate evaluation (numeric.py), a
  handler `(evaluator, arithmetic, args) -> value`;
* `numpy` and `math`: float implementations (kernels.py lambdifies with them);
* `emit`: the buffered array-formula code (kernels.py's `_ArrayFormula`), a
  function `(formula, argument_name) -> result_name` writing through
  `formula._op(ufunc, …)`, or None (then that formula falls back to lambdify);
  `packable`: whether a layer's units using it may be evaluated together as
  one formula of stacked arrays (numpy implementation elementwise);
* `tex` (how SymPy prints it, checked by the tests) and `label` (the edge
  label of a drawing);
* `activation`: whether a layered spec may name it and the σ of a claim may
  stand for it;
* `exp_form`: its rewrite through exp for the prover, or None.

tests/test_registry.py checks that no entry lacks a part and that the parts
agree numerically with each other. To add an activation, add its class and
its entry here (plus its tests and the README's list of activations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp
from sympy.core.function import ArgumentIndexError

from derive.graph import functions as fn


@dataclass(frozen=True)
class Entry:
    name: str
    function: type
    evaluate: Callable
    numpy: Callable
    math: Callable
    emit: Callable | None
    packable: bool
    tex: str
    label: str
    activation: bool
    exp_form: Callable[[sp.Expr], sp.Expr] | None


# -- helpers for the evaluation handlers -----------------------------------------------


def _negative(x) -> bool:
    """Whether a value (an interval: its midpoint) is below 0."""
    mid = getattr(x, "mid", None)
    return (mid if mid is not None else x) < 0


# -- sigmoid ---------------------------------------------------------------------------


def _eval_sigmoid(ev, arith, args):
    x = ev._eval(args[0])
    if arith.name != "exact" and _negative(x):  # e^x / (1 + e^x): no overflow for x ≪ 0
        e = arith.exp(x)
        return e * arith.inverse(1 + e)
    return arith.inverse(1 + arith.exp(-x))


def safe_sigmoid(z):
    """σ(z) = (1 + tanh(z/2))/2: no overflow for any z, in the input's dtype."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _math_sigmoid(z):
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def _emit_sigmoid(formula, x: str) -> str:  # (1 + tanh(z/2))/2: no overflow for any z
    value = formula._op("multiply", x, "0.5")
    value = formula._op("tanh", value)
    value = formula._op("add", value, "1.0")
    return formula._op("multiply", value, "0.5")


# -- tanh ------------------------------------------------------------------------------


def _eval_tanh(ev, arith, args):
    x = ev._eval(args[0])
    if arith.name != "exact" and not _negative(x):  # tanh(x) = −tanh(−x): exp of a negative number
        e2 = arith.exp(-2 * x)
        return (1 - e2) * arith.inverse(1 + e2)
    e2 = arith.exp(2 * x)
    return (e2 - 1) * arith.inverse(e2 + 1)


# -- relu ------------------------------------------------------------------------------


def _eval_relu(ev, arith, args):
    x = ev._eval(args[0])
    return arith.choose([x * 0, x], True)


def _numpy_relu(z):
    return np.maximum(z, 0)


# -- softplus --------------------------------------------------------------------------


class softplus(sp.Function):
    """log(1 + e^x), a smooth relu; its derivative is the sigmoid σ(x)."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        if x.is_Float:
            return sp.log(1 + sp.exp(x))
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return fn.sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        return fn._applied(r"\operatorname{softplus}", printer, self.args, exp)


def _eval_softplus(ev, arith, args):
    x = ev._eval(args[0])
    if arith.name != "exact" and not _negative(x):  # x + log(1 + e^−x): no overflow for x ≫ 0
        return x + arith.log(1 + arith.exp(-x))
    return arith.log(1 + arith.exp(x))


def _numpy_softplus(z):
    return np.logaddexp(z * 0, z)  # z·0, not 0: keeps the input's dtype


def _math_softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _emit_softplus(formula, x: str) -> str:
    return formula._op("logaddexp", x, "0.0")


# -- the registry ----------------------------------------------------------------------


def _sympy_builtin(function: type) -> bool:
    return function.__module__.startswith("sympy")


def _unary(ufunc: str) -> Callable:
    return lambda formula, x: formula._op(ufunc, x)


ENTRIES: tuple[Entry, ...] = (
    Entry("sigmoid", fn.sigmoid, _eval_sigmoid, safe_sigmoid, _math_sigmoid, _emit_sigmoid, True,
          r"\sigma", r"\sigma", True, lambda e: e.rewrite(sp.exp)),
    Entry("tanh", sp.tanh, _eval_tanh, np.tanh, math.tanh, _unary("tanh"), True,
          r"\tanh", r"\tanh", True, lambda e: e.rewrite(sp.exp)),
    Entry("relu", fn.relu, _eval_relu, _numpy_relu, lambda z: max(z, 0.0), lambda f, x: f._op("maximum", x, "0.0"), True,
          r"\operatorname{relu}", r"\mathrm{relu}", True, None),
    Entry("softplus", softplus, _eval_softplus, _numpy_softplus, _math_softplus, _emit_softplus, True,
          r"\operatorname{softplus}", r"\mathrm{softplus}", True, lambda e: e.rewrite(sp.exp)),
    Entry("exp", sp.exp, lambda ev, arith, args: arith.exp(ev._eval(args[0])), np.exp, math.exp, _unary("exp"), True,
          r"e^", r"\exp", False, None),
    Entry("log", sp.log, lambda ev, arith, args: arith.log(ev._eval(args[0])), np.log, math.log, _unary("log"), True,
          r"\log", r"\log", False, None),
)

BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
BY_CLASS: dict[type, Entry] = {e.function: e for e in ENTRIES}

# Functions a formula string may name, with their arity (None: any number ≥ 1).
# `sigma` is the generic activation; the others are concrete.
FORMULA_FUNCTIONS: dict[str, tuple[object, int | None]] = {
    **{e.name: (e.function, 1) for e in ENTRIES},
    "ln": (sp.log, 1),
    "sqrt": (sp.sqrt, 1),
    "max": (sp.Max, None),
    "min": (sp.Min, None),
    "sigma": (fn.sigma, 1),
    "sigma_prime": (fn.sigma_prime, 1),
}

# Activations a layered network may name, as z ↦ a. Softmax is a layer-wide
# function and is built by the network module.
ACTIVATIONS: dict[str, object] = {
    **{e.name: e.function for e in ENTRIES if e.activation},
    "identity": lambda z: z,
    "sigma": fn.sigma,
}

# The classes of a node `a = f(z)` that is an activation: the concrete ones and the generic σ.
ACTIVATION_CLASSES: tuple[type, ...] = (*(e.function for e in ENTRIES if e.activation), fn.sigma)

# Rewritten through exp by the prover (softmax, a layer-wide function, too).
EXP_FORMS: dict[type, Callable] = {
    **{e.function: e.exp_form for e in ENTRIES if e.exp_form is not None},
    fn.softmax: lambda e: e.rewrite(sp.exp),
}

# float implementations by the name lambdify prints, for the functions SymPy does not know:
# on numpy arrays, and on `math` floats.
NUMPY_FUNCTIONS: dict[str, Callable] = {e.name: e.numpy for e in ENTRIES if not _sympy_builtin(e.function)}
MATH_FUNCTIONS: dict[str, Callable] = {e.name: e.math for e in ENTRIES if not _sympy_builtin(e.function)}

# Functions a layer's units may be evaluated with together, as one formula of stacked arrays.
PACKABLE_CLASSES: tuple[type, ...] = tuple(e.function for e in ENTRIES if e.packable)

# The evaluation handlers (numeric.py) and array-formula emitters (kernels.py) by class.
EVALUATORS: dict[type, Callable] = {e.function: e.evaluate for e in ENTRIES}
EMITTERS: dict[type, Callable] = {e.function: e.emit for e in ENTRIES if e.emit is not None}

# Edge labels of a drawing, by class name.
LABELS: dict[str, str] = {e.function.__name__: e.label for e in ENTRIES}
