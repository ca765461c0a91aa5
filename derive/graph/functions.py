"""The functions a network may use, as SymPy classes, with their derivatives.

Derivatives are written in terms of the function itself (σ' = σ(1 − σ),
tanh' = 1 − tanh²) so that a node defined as `a = σ(z)` gets the local
derivative `a(1 − a)`: the form the textbooks print and students write.

The generic activation `sigma` and the generic cost `cost` are undefined
functions whose derivatives are again plain function applications
(`sigma_prime(z)`), not `Subs(Derivative(...))`: that keeps derivations
readable and lets the prover treat them as opaque atoms, which is exactly
what "for every σ" means.

Every named elementwise function (sigmoid, tanh, relu, softplus, exp, log)
has one entry in registry.py holding all its parts: evaluation, kernels,
labels, whether it is an activation. Add a new one there, not here.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import ArgumentIndexError


class sigmoid(sp.Function):
    """The logistic function σ(x) = 1 / (1 + e^{-x})."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
        if x.is_Float:
            return 1 / (1 + sp.exp(-x))
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    def _latex(self, printer, exp=None):
        return _applied(r"\sigma", printer, self.args, exp)


class relu(sp.Function):
    """max(0, x); its derivative at 0 is taken as 0, the convention PyTorch uses."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_comparable:
            return sp.Max(0, x)
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sp.Heaviside(self.args[0], 0)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(0, x)

    def _latex(self, printer, exp=None):
        return _applied(r"\operatorname{relu}", printer, self.args, exp)


class sigma(sp.Function):
    """The generic activation σ: any differentiable function."""

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sigma_prime(self.args[0])

    def _latex(self, printer, exp=None):
        return _applied(r"\sigma", printer, self.args, exp)


class sigma_prime(sp.Function):
    """σ', the derivative of the generic activation."""

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sigma_second(self.args[0])

    def _latex(self, printer, exp=None):
        return _applied(r"\sigma'", printer, self.args, exp)


class sigma_second(sp.Function):
    """σ'', the second derivative of the generic activation."""

    nargs = 1

    def _latex(self, printer, exp=None):
        return _applied(r"\sigma''", printer, self.args, exp)


class cost(sp.Function):
    """A generic cost C(a^L_1, …, a^L_n) of the output activations (Nielsen's assumption 2)."""

    def fdiff(self, argindex=1):
        return cost_partial(sp.Integer(argindex), *self.args)

    def _latex(self, printer, exp=None):
        return _applied("C", printer, self.args, exp)


class cost_partial(sp.Function):
    """∂C/∂(argument i) of the generic cost, the index i first."""

    def _latex(self, printer, exp=None):
        index, *args = self.args
        return _applied(r"\partial_{%s} C" % printer._print(index), printer, args, exp)


class softmax(sp.Function):
    """softmax(i, z_1, …, z_n) = e^{z_i} / Σ_k e^{z_k}: output i of a softmax layer.

    Its partials `softmax_i (δ_ik − softmax_k)` couple the outputs, which is why
    BP1's component form does not apply to a softmax layer as written.
    """

    @classmethod
    def eval(cls, i, *zs):
        if not (i.is_Integer and 1 <= int(i) <= len(zs)):
            raise ValueError("softmax(i, z_1, ..., z_n) needs an integer 1 <= i <= n")
        return None

    def fdiff(self, argindex=1):
        if argindex == 1:
            raise ArgumentIndexError(self, argindex)
        i, *zs = self.args
        k = argindex - 1
        return self * (sp.KroneckerDelta(i, k) - softmax(sp.Integer(k), *zs))

    def _eval_rewrite_as_exp(self, i, *zs, **kwargs):
        return sp.exp(zs[int(i) - 1]) / sp.Add(*[sp.exp(z) for z in zs])

    def _latex(self, printer, exp=None):
        i, *zs = self.args
        return _applied(r"\operatorname{softmax}_{%s}" % printer._print(i), printer, zs, exp)


class maxpool(sp.Function):
    """The maximum of a pooling window.

    Its partial with respect to element i is the indicator `is_max(i, window)`,
    the book's [a_i is the maximum of its window], rather than SymPy's product
    of Heavisides (1,440 terms and 50 s for the book's CNN). max has no
    derivative at a tie: results that use `is_max` hold where no window has one.
    """

    @classmethod
    def eval(cls, *elements):
        if not elements:
            raise ValueError("maxpool needs at least one element")
        if all(e.is_number and e.is_comparable for e in elements):
            return sp.Max(*elements)
        return None

    def fdiff(self, argindex=1):
        return is_max(sp.Integer(argindex), *self.args)

    def _eval_rewrite_as_Max(self, *elements, **kwargs):
        return sp.Max(*elements)

    def _latex(self, printer, exp=None):
        return _applied(r"\max", printer, self.args, exp)


class is_max(sp.Function):
    """is_max(i, a_1, …, a_m): 1 where a_i is the strict maximum of the a's, 0 where another is.

    Undefined at a tie. For numbers at a tie, derive follows PyTorch's
    max_pool2d: the first maximal element in the window's row-major order
    gets the whole gradient.
    """

    @classmethod
    def eval(cls, i, *elements):
        if not (i.is_Integer and 1 <= int(i) <= len(elements)):
            raise ValueError("is_max(i, a_1, ..., a_m) needs an integer 1 <= i <= m")
        return None

    def _latex(self, printer, exp=None):
        i, *elements = self.args
        element = printer._print(elements[int(i) - 1])
        head = rf"\left[{element} = \max\right]"
        return head if exp is None else rf"{head}^{{{exp}}}"


def _applied(name: str, printer, args, exp) -> str:
    inner = ", ".join(printer._print(a) for a in args)
    head = name if exp is None else f"{name}^{{{exp}}}"
    return rf"{head}\left({inner}\right)"


# Undefined functions: a proof must hold whatever they are; a counterexample
# replaces them by concrete polynomials.
GENERIC_FUNCTIONS = (sigma, sigma_prime, sigma_second, cost, cost_partial)

# Pooling: the routing of ∂C/∂(pool unit) to the elements of its window.
POOLINGS = ("max", "average", "l2")


def __getattr__(name: str):
    """FORMULA_FUNCTIONS, ACTIVATIONS and the registry's own classes (softplus) live in registry.py."""
    from derive.graph import registry

    if name in ("FORMULA_FUNCTIONS", "ACTIVATIONS"):
        return getattr(registry, name)
    entry = registry.BY_NAME.get(name)
    if entry is not None:
        return entry.function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
