"""The free-form backend: the loss and every gradient in one lambdified function, vectorised over the batch.

Common subexpressions are eliminated once (`cse`); weighted sums sharing their operands become
one matrix product, statements applying one formula to a layer's units one formula of
(units × batch) arrays (see codegen), and the batch means of all gradients one matrix product
of stacked factors (see _BatchMeans). At batch 1 a `math`-module scalar kernel avoids numpy's
per-call overhead; it raises on 1/0, log(0) or exp(1000), and hands such an example to the
numpy kernel, which gives inf or nan for the caller to check.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from derive.derivation import Derivations
from derive.graph import functions as fn
from derive.graph.network import Network
from derive.kernels.base import Block, Kernel
from derive.kernels.codegen import LINEAR_FUNCTIONS, linear_forms, packs
from derive.kernels.elementwise import MATH_FUNCTIONS, NUMPY_FUNCTIONS, KernelError, quiet


class _BatchMeans:
    """The batch means of several expressions, all the reductions done by one matrix product.

    After common subexpressions are eliminated, each expression is a sum of terms c·Π f: the
    numbers and batch-constant factors (parameters, constants) make the coefficient c, and of
    the factors that vary over the batch, the one computed last (typically a δ) is the term's
    right factor R, the product of the others (an input, an activation, or 1) its left factor L.
    The mean of c·L·R over the batch is c·(L·R)/m, and all those dot products are entries of
    one matrix product of the stacked L rows with the stacked R rows: for a layered graph that
    is BP4's δᵀa, found in the derivation's own expressions. The rows themselves, and the
    coefficients, come from one lambdified function over the batch (cse'd, as before).
    """

    def __init__(self, expressions: list[sp.Expr], batch: list[sp.Symbol], scalars: list[sp.Symbol]):
        self.ones = sp.Symbol("_ones", real=True)  # an array of m ones: the L of a term with one batch factor
        replacements, reduced = sp.cse(expressions, symbols=sp.numbered_symbols("_c"), list=True)
        replacements = linear_forms(replacements, set(batch))
        self.theta, self.matrix = sp.Symbol("_theta", real=True), sp.Symbol("_batch", real=True)
        replacements, pack_functions = packs(replacements, list(batch), list(scalars), self.theta, self.matrix)
        varying = {*batch, self.ones, self.matrix}
        rank = {s: -1 for s in batch}
        rank[self.ones] = -2
        for index, (symbol, value) in enumerate(replacements):
            if value.free_symbols & varying:
                varying.add(symbol)
                rank[symbol] = index
        lefts, rights, coefficients, terms, constants = {}, {}, [], [], []
        for output, expression in enumerate(reduced):
            constant = sp.S.Zero
            for term in sp.Add.make_args(expression):
                factors, coefficient = [], sp.S.One
                for factor in sp.Mul.make_args(term):
                    if not factor.free_symbols & varying:
                        coefficient *= factor
                    elif factor.is_Pow and factor.exp == 2:
                        factors += [factor.base, factor.base]
                    else:
                        factors.append(factor)
                if not factors:
                    constant += coefficient
                    continue
                last = max(range(len(factors)), key=lambda i: max(rank.get(s, -1) for s in factors[i].free_symbols))
                right = factors.pop(last)
                left = sp.Mul(*factors) if factors else self.ones
                terms.append((output, lefts.setdefault(left, len(lefts)), rights.setdefault(right, len(rights))))
                coefficients.append(coefficient)
            constants.append(constant)
        self.outputs = len(reduced)
        self.lefts, self.rights = len(lefts), len(rights)
        owners = np.array([t[0] for t in terms], dtype=np.intp)
        self.pairs = np.array([t[1] * len(rights) + t[2] for t in terms], dtype=np.intp)
        self.owners = None if np.array_equal(owners, np.arange(self.outputs)) else owners
        numeric = all(c.is_Number for c in coefficients)
        self.coefficients = np.array([float(c) for c in coefficients]) if numeric else None
        # small graphs: gather, weigh and sum the terms by one matrix-vector product
        self.summation = None
        if numeric and self.outputs * self.lefts * self.rights <= 100_000:
            self.summation = np.zeros((self.outputs, self.lefts * self.rights))
            np.add.at(self.summation, (owners, self.pairs), self.coefficients)
        self.constants = [i for i, c in enumerate(constants) if c != 0]
        rows = [*lefts, *rights, *([] if numeric else coefficients), *(constants[i] for i in self.constants)]
        self.function = sp.lambdify(
            [self.theta, self.matrix, *batch, self.ones, *scalars], rows,
            modules=[pack_functions, LINEAR_FUNCTIONS, NUMPY_FUNCTIONS, "numpy"],
            cse=lambda exprs: (replacements, exprs),
        )

    @quiet
    def __call__(self, theta, batch_matrix, ones, scalar_values) -> np.ndarray:
        """The mean of every expression over the batch (float64).

        theta: the constants and parameters as an array, scalar_values the same as floats;
        batch_matrix: one row per batch symbol (inputs, then targets)."""
        rows = self.function(theta, batch_matrix, *batch_matrix, ones, *scalar_values)
        p, q = self.lefts, self.rights
        products = (np.array(rows[:p]) @ np.array(rows[p : p + q]).T).ravel() if p else np.zeros(0)
        at = p + q
        if self.summation is not None:
            means = self.summation @ products
            means *= 1.0 / len(ones)
            for index, value in zip(self.constants, rows[at:]):
                means[index] += value
            return means
        if self.coefficients is None:
            coefficients = np.array(rows[at : at + len(self.pairs)], dtype=np.float64)
            at += len(self.pairs)
        else:
            coefficients = self.coefficients
        terms = products[self.pairs] * coefficients
        if self.owners is None:
            means = terms / len(ones)
        else:
            means = np.bincount(self.owners, weights=terms, minlength=self.outputs) / len(ones)
        for index, value in zip(self.constants, rows[at:]):
            means[index] += value
        return means


def _cse_inlining_sigmoid(expressions):
    replacements, reduced = sp.cse(expressions, list=True)
    inline = lambda e: e.replace(fn.sigmoid, lambda u: (1 + sp.tanh(u / 2)) / 2)  # noqa: E731
    return [(s, inline(v)) for s, v in replacements], [inline(e) for e in reduced]


class FreeFormKernel(Kernel):
    """All gradients in one lambdified function over renamed symbols, cse'd; vectorised over the batch."""

    backend = "free-form"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        parameters = list(network.parameters)
        blocks = []
        for index, p in enumerate(parameters):
            blocks.append(Block(p.name, (), index, np.array(p, dtype=object), fan_in=self._fan_in(network, p)))
        super().__init__(network, dtype, blocks)
        self.inputs = list(network.inputs)
        self.targets = list(network.targets)
        self.constant_symbols = list(network.constants)
        d = derivations.cost
        outputs = [network.substituted(network.cost)] + [network.substituted(d.closed_form(p)) for p in parameters]
        arguments = [*self.inputs, *self.targets, *self.constant_symbols, *parameters]
        safe = [sp.Symbol(f"_s{i}", real=True) for i in range(len(arguments))]
        renamed = [e.xreplace(dict(zip(arguments, safe))) for e in outputs]
        if any(e.atoms(*fn.GENERIC_FUNCTIONS) for e in renamed):
            raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
        batch = len(self.inputs) + len(self.targets)
        self._means = _BatchMeans(renamed, safe[:batch], safe[batch:])
        # batch 1: after cse, σ(u) is written (1 + tanh(u/2))/2 so that the generated code calls
        # math.tanh directly instead of a Python-level sigmoid per unit
        self._scalar = sp.lambdify(safe, renamed, modules=[MATH_FUNCTIONS, "math"], cse=_cse_inlining_sigmoid)
        self.output_nodes = self._outputs(network)
        self._predict = quiet(sp.lambdify(
            safe[: len(self.inputs)] + safe[len(self.inputs) + len(self.targets):],
            [network.substituted(o).xreplace(dict(zip(arguments, safe))) for o in self.output_nodes],
            modules=[NUMPY_FUNCTIONS, "numpy"],
            cse=True,
        )) if self.output_nodes else None
        self.constants = {c.name: 1.0 for c in self.constant_symbols}

    @staticmethod
    def _fan_in(network, p) -> int:
        users = network.consumers.get(p, ())
        return max((len(network.definitions[u].free_symbols) - 1 for u in users), default=1) or 1

    @staticmethod
    def _outputs(network) -> list[sp.Symbol]:
        """The nodes the cost compares with targets: those the cost uses directly (in order)."""
        used = network.definitions[network.cost].free_symbols
        return [n for n in network.order if n in used]

    def _constants(self):
        return [self.constants.get(c.name, 1.0) for c in self.constant_symbols]

    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        m = x.shape[0]
        constants = self._constants() if self.constant_symbols else ()
        if m == 1:  # one example: plain floats through the math module
            try:
                result = self._scalar(*x[0].tolist(), *y[0].tolist(), *constants, *params.tolist())
                return float(result[0]), np.array(result[1:], dtype=self.dtype)
            except (ArithmeticError, ValueError, TypeError):  # 1/0, exp(1000), log(0), (-1)**0.5 (complex):
                pass  # numpy's inf and nan below instead
        theta = np.concatenate((constants, params)) if constants else params
        # numpy scalars, not Python floats: w**2 of a huge w gives inf (not OverflowError), (-1)**0.5 nan
        scalars = [np.float64(v) for v in (*constants, *params.tolist())]
        means = self._means(theta, np.concatenate((x.T, y.T)), self.ones(m), scalars)
        return float(means[0]), means[1:].astype(self.dtype)

    def predict(self, params, x):
        if self._predict is None:
            raise KernelError("the cost uses no node to compare with targets")
        x = self._cast(x)
        out = self._predict(*x.T, *self._constants(), *params)
        return np.stack([np.broadcast_to(o, x.shape[:1]) for o in out], axis=1)
