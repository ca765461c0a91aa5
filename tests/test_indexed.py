"""Array code from index formulas (derive/kernels/indexed.py) against the formulas evaluated entry by entry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from derive.kernels import KernelError
from derive.kernels.indexed import Input, Program
from derive.proof.formulas import _D, builtin_sets

SIZES = {"N": 3, "D": 2, "M": 4, "C": 3, "T": 3, "d": 2}


def size_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def entry_by_entry(formula, values: dict, sizes: dict) -> np.ndarray:
    """The formula's right side at every index of its left side, expanded by SymPy (no array code)."""
    ranges = formula.ranges
    substitutions = {size_symbol(k): v for k, v in sizes.items()}
    bounds = [int(last.xreplace(substitutions)) for _, _, last in ranges]
    result = np.empty(bounds)
    for index in itertools.product(*[range(1, b + 1) for b in bounds]):
        expr = formula.rhs.xreplace({r[0]: i for r, i in zip(ranges, index)}).xreplace(substitutions).doit()
        expr = expr.replace(lambda e: isinstance(e, _D),
                            lambda e: sp.Float(values["d" + e.args[1].base.label.name][tuple(int(i) - 1 for i in e.args[1].indices)], 30))
        expr = expr.replace(lambda e: isinstance(e, sp.Indexed),
                            lambda e: sp.Float(values[e.base.label.name][tuple(int(i) - 1 for i in e.indices)], 30))
        result[tuple(i - 1 for i in index)] = float(expr.subs(sp.Symbol("eps", real=True), 1e-5))
    return result


SET_SHAPES = {  # each array's sizes, as the sets' templates name them
    "affine": {"x": "ND", "w": "DM", "b": "M", "dout": "NM"},
    "batchnorm": {"x": "ND", "mu": "D", "var": "D", "xhat": "ND", "gamma": "D", "dout": "ND", "dxhat": "ND",
                  "dvar": "D"},
    "layernorm": {"x": "ND", "mu": "N", "var": "N", "xhat": "ND", "gamma": "D", "dout": "ND", "dxhat": "ND",
                  "dvar": "N"},
    "attention": {"Q": "Td", "K": "Td", "V": "Td", "P": "TT", "dout": "Td", "dP": "TT", "dS": "TT"},
    "softmax_cross_entropy": {"p": "NC", "y": "NC", "x": "NC"},
}
CASES = [(set_id, f.id) for set_id in SET_SHAPES for f in builtin_sets()[set_id].formulas]


@pytest.mark.parametrize("set_id, formula_id", CASES)
def test_every_kernel_formula_compiles_to_its_entry_by_entry_value(set_id, formula_id):
    formula = next(f for f in builtin_sets()[set_id].formulas if f.id == formula_id)
    rng = np.random.default_rng(len(formula_id))
    shapes = SET_SHAPES[set_id]
    values = {name: rng.uniform(0.2, 1.5, tuple(SIZES[c] for c in axes)) for name, axes in shapes.items()}
    inputs = {name: Input(tuple(size_symbol(c) for c in axes)) for name, axes in shapes.items()}
    program = Program(inputs, {sp.Symbol("eps", real=True): 1e-5})
    quantity = formula.lhs.args[1]
    program.output("out", formula.rhs, quantity.indices, ranges=formula.ranges)
    ours = program.run(values)["out"]
    expected = entry_by_entry(formula, values, SIZES)
    assert ours.shape == expected.shape
    assert np.allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_a_lead_axis_is_kept_and_float32_stays_float32():
    t, c, k = sp.symbols("t c k", integer=True)
    T, W = size_symbol("T"), size_symbol("d")
    Q, K = sp.IndexedBase("Q"), sp.IndexedBase("K")
    program = Program({"Q": Input((T, W), lead=True), "K": Input((T, W), lead=True)})
    program.output("S", sp.Sum(Q[t, k] * K[c, k], (k, 1, W)) / sp.sqrt(W), (t, c), lead=True)
    rng = np.random.default_rng(0)
    q, kk = rng.standard_normal((5, 4, 3)).astype(np.float32), rng.standard_normal((5, 4, 3)).astype(np.float32)
    scores = program.run({"Q": q, "K": kk})["S"]
    assert scores.dtype == np.float32 and scores.shape == (5, 4, 4)
    assert np.allclose(scores, q @ kk.transpose(0, 2, 1) / np.sqrt(3), rtol=1e-5)


def test_a_sum_whose_body_does_not_use_its_index_counts_the_terms():
    n, k = sp.symbols("n k", integer=True)
    N = size_symbol("N")
    x = sp.IndexedBase("x")
    program = Program({"x": Input((N,))})
    program.output("y", sp.Sum(x[n], (k, 1, N)) - sp.Sum(1, (k, 1, N)), (n,))
    assert np.allclose(program.run({"x": np.array([1.0, 2.0, 4.0])})["y"], [0.0, 3.0, 9.0])


@pytest.mark.parametrize("build, message", [
    (lambda x, n, k, N: x[n, n], "distinct letter"),
    (lambda x, n, k, N: sp.Sum(x[n, k], (k, 2, N)), "only sums from 1"),
    (lambda x, n, k, N: sp.Sum(x[n, k], (k, 1, N + 1)), "runs to"),
    (lambda x, n, k, N: sp.IndexedBase("z")[n, k], "does not have"),
    (lambda x, n, k, N: x[n, k] ** n, "exponent"),
    (lambda x, n, k, N: sp.sin(x[n, k]), "no array code"),
    (lambda x, n, k, N: x[n, k], "not among its indices"),
])
def test_what_has_no_array_code_is_a_kernel_error(build, message):
    n, k = sp.symbols("n k", integer=True)
    N = size_symbol("N")
    x = sp.IndexedBase("x")
    program = Program({"x": Input((N, N))})
    with pytest.raises(KernelError, match=message):
        program.output("y", build(x, n, k, N), (n,))
