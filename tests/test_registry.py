"""The function registry: every entry complete, its parts agreeing with each other, and softplus end to end.

In the manner of autograd's check_grads: each entry's numpy, math, exact,
interval and approximate evaluations are compared with SymPy's evalf at a few
points, its derivative with a central finite difference, its array-formula
code with its numpy implementation and its exp form with the function.
"""

import textwrap
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

import derive
from derive.claims import claimsfile as claims, diagnosis
from derive.graph import network, registry
from derive.kernels import elementwise as kernels
from derive.graph import numeric
from derive.report import drawing
from derive.claims.check import check
from derive.claims.claimsfile import load_claims
from derive.train.gradcheck import gradcheck
from derive.kernels import compile_kernel
from derive.graph.numeric import ApproximateArithmetic, Evaluator, ExactArithmetic, IntervalArithmetic, NotExact
from derive.graph.parser import Vocabulary, parse_formula
from derive.texsafe import Tex
from derive.train.training import load_data, train

ENTRIES = {e.name: e for e in registry.ENTRIES}
POINTS = ["-7/2", "-3/4", "1/3", "9/4", "6"]
t = sp.Symbol("t", real=True)


def _points(entry):
    """The points of POINTS where the function is real."""
    found = []
    for p in POINTS:
        value = sp.N(entry.function(sp.Rational(p)), 30)
        if value.is_real and value.is_finite:
            found.append(sp.Rational(p))
    assert len(found) >= 3, f"{entry.name}: fewer than 3 test points in its domain"
    return found


def _reference(expr, x, digits=40):
    return sp.N(expr.xreplace({t: x}), digits)


def _evaluate(arithmetic, expr, x):
    return Evaluator(arithmetic, {t: Fraction(int(x.p), int(x.q))}, lambda s: None)(expr)


# -- completeness ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_entry_has_every_part(name):
    entry = ENTRIES[name]
    assert entry.name.isidentifier()
    assert isinstance(entry.function, type) and issubclass(entry.function, sp.Function)
    for part in ("evaluate", "numpy", "math"):
        assert callable(getattr(entry, part)), f"{name}: no {part}"
    for part in ("tex", "label"):
        assert isinstance(getattr(entry, part), str) and getattr(entry, part), f"{name}: no {part}"
    assert isinstance(entry.activation, bool) and isinstance(entry.packable, bool)
    if entry.packable:
        assert callable(entry.emit), f"{name}: packable without an array-formula emitter"
    assert entry.function(t).diff(t) != 0, f"{name}: no derivative"
    rewritten = entry.function(t).rewrite(sp.exp)
    if rewritten != entry.function(t):
        assert entry.exp_form is not None, f"{name}: built from exp, but no exp form for the prover"


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_module_reads_the_entry(name):
    entry = ENTRIES[name]
    f = entry.function
    assert parse_formula(f"{name}(t)", Vocabulary({"t": t})) == f(t)
    assert registry.FORMULA_FUNCTIONS[name] == (f, 1)
    assert name in network.RESERVED
    assert numeric._FUNCTIONS[f] is entry.evaluate
    assert drawing.FUNCTION_LABELS[f.__name__] == entry.label
    if not f.__module__.startswith("sympy"):  # lambdify knows SymPy's own functions
        assert kernels.NUMPY_FUNCTIONS[name] is entry.numpy
        assert kernels.MATH_FUNCTIONS[name] is entry.math
    assert (f in kernels.PACKABLE) == entry.packable
    assert (f in registry.EXP_FORMS) == (entry.exp_form is not None)
    assert sp.latex(f(t)).startswith(entry.tex)
    if entry.activation:
        assert registry.ACTIVATIONS[name] is f
        assert f in diagnosis.ACTIVATION_FUNCTIONS and f in registry.ACTIVATION_CLASSES
        definitions = {str(k): v for k, v in derive.layered([2, 2], activation=name).definitions.items()}
        assert definitions["a2_1"].func is f and str(definitions["a2_1"].args[0]) == "z2_1"
    else:
        assert name not in registry.ACTIVATIONS
    assert claims is not None  # claims.py reads registry.ACTIVATION_CLASSES


# -- the parts against each other ------------------------------------------------------


@pytest.mark.parametrize("name", list(ENTRIES))
def test_evaluations_agree_with_sympy(name):
    entry = ENTRIES[name]
    expr = entry.function(t)
    for x in _points(entry):
        reference = _reference(expr, x)
        want = float(reference)
        assert entry.math(float(x)) == pytest.approx(want, rel=1e-14, abs=1e-15), (name, x)
        assert float(entry.numpy(np.array([float(x)]))[0]) == pytest.approx(want, rel=1e-14, abs=1e-15), (name, x)
        interval = _evaluate(IntervalArithmetic(256), expr, x)
        with mpmath.workdps(40):
            assert interval.a <= mpmath.mpf(str(reference)) + mpmath.mpf(10) ** -35
            assert interval.b >= mpmath.mpf(str(reference)) - mpmath.mpf(10) ** -35
            assert interval.delta < mpmath.mpf(10) ** -30
        approximate = _evaluate(ApproximateArithmetic(50), expr, x)
        assert abs(mpmath.mpf(approximate) - mpmath.mpf(str(reference))) < 1e-35
        try:
            exact = _evaluate(ExactArithmetic(), expr, x)
        except NotExact:
            continue
        assert sp.Rational(exact.numerator, exact.denominator) == sp.nsimplify(expr.xreplace({t: x}))


@pytest.mark.parametrize("name", list(ENTRIES))
def test_derivative_matches_central_differences(name):
    entry = ENTRIES[name]
    derivative = entry.function(t).diff(t)
    h = sp.Rational(1, 10**15)
    for x in _points(entry):
        if x == 0:
            continue  # relu has a kink there
        difference = (_reference(entry.function(t), x + h, 60) - _reference(entry.function(t), x - h, 60)) / (2 * h)
        assert abs(float(_reference(derivative, x) - difference)) < 1e-12, (name, x)
        float_difference = (entry.math(float(x) + 1e-6) - entry.math(float(x) - 1e-6)) / 2e-6
        assert float(_reference(derivative, x)) == pytest.approx(float_difference, rel=1e-6, abs=1e-8), (name, x)


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.emit is not None])
def test_array_formula_matches_numpy(name):
    entry = ENTRIES[name]
    values = np.array([float(x) for x in _points(entry)] * 5)
    formula = kernels._ArrayFormula(entry.function(t), [t])
    assert np.allclose(formula(values), entry.numpy(values), rtol=1e-14, atol=1e-15)
    derivative = kernels._ArrayFormula(entry.function(t).diff(t), [t])  # the σ' a kernel computes
    lambdified = sp.lambdify(t, entry.function(t).diff(t), modules=[kernels.NUMPY_FUNCTIONS, "numpy"])
    assert np.allclose(derivative(values), lambdified(values), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.exp_form is not None])
def test_exp_form_equals_the_function(name):
    entry = ENTRIES[name]
    form = entry.exp_form(entry.function(t))
    assert not form.atoms(entry.function) and form.atoms(sp.exp)
    for x in _points(entry):
        assert abs(_reference(form, x) - _reference(entry.function(t), x)) < 1e-35


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if e.activation])
def test_activations_stay_finite_and_quiet_at_extreme_inputs(name):
    entry = ENTRIES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in (np.float64, np.float32):
            out = entry.numpy(np.array([-1e4, -800.0, 0.0, 800.0, 1e4], dtype=dtype))
            assert out.dtype == dtype and np.all(np.isfinite(out))
        assert all(np.isfinite(entry.math(x)) for x in (-1e4, -800.0, 800.0, 1e4))
    for x in (-800, 800):
        assert numeric.is_finite(_evaluate(IntervalArithmetic(256), entry.function(t), sp.Integer(x)))


# -- softplus, end to end --------------------------------------------------------------


SOFTPLUS = derive.layered([3, 4, 2], activation="softplus", cost="quadratic", name="softplus-3-4-2")


def test_softplus_is_derived_with_the_sigmoid_as_its_derivative():
    d = derive.Derivations(SOFTPLUS).cost
    z = next(s for s in SOFTPLUS.definitions if s.name == "z3_1")
    assert str(d.closed_form(z)) == "(a3_1 - y1)*sigmoid(z3_1)"


def test_a_layered_softplus_network_is_proven():
    report = derive.prove(SOFTPLUS)
    summary = report.summary()
    assert summary["proven"] == summary["total"] > 0, summary
    assert {"nielsen"} <= {s.id for s in derive.builtin_sets().values() if s.applicable(SOFTPLUS)}


def test_a_layered_softplus_network_passes_gradcheck():
    assert gradcheck(SOFTPLUS).passed
    assert gradcheck(SOFTPLUS, dtype="float32").passed


def test_the_softplus_kernel_equals_pytorch():
    kernel = compile_kernel(SOFTPLUS)
    params = kernel.init(3)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((64, 3)), rng.uniform(0.05, 0.95, (64, 2))
    loss, grad = kernel.value_and_grad(params, x, y)
    views = {k: torch.tensor(v, requires_grad=True) for k, v in kernel.views(params).items()}
    softplus = torch.nn.functional.softplus
    h = softplus(torch.tensor(x) @ views["W2"].T + views["b2"])
    a = softplus(h @ views["W3"].T + views["b3"])
    torch_loss = (((torch.tensor(y) - a) ** 2).sum(dim=1) / 2).mean()
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) < 1e-12
    for name, view in kernel.views(grad).items():
        assert np.allclose(view, views[name].grad.numpy(), rtol=1e-10, atol=1e-14), name


def test_a_softplus_network_trains():
    network = derive.layered([12, 3, 2], activation=["softplus", "sigmoid"], cost="quadratic", name="sp")
    result = train(network, load_data("book-0-1", network), epochs=100, batch=8, lr=2.0)
    assert result.train_accuracy == 1.0


FREE_FORM = """
[network]
name = "softplus-free"
inputs = ["x1", "x2"]
targets = ["y1"]
parameters = ["w1", "w2", "w3", "w4", "w5", "w6", "b1", "b2"]
cost = "E"

[equations]
z1 = "w1*x1 + w2*x2 + b1"
z2 = "w3*x1 + w4*x2 + b1"
h1 = "softplus(z1)"
h2 = "softplus(z2)"
o1 = "softplus(w5*h1 + w6*h2 + b2)"
E = "(o1 - y1)**2/2"
"""

CLAIMS = """
network = "net.toml"

[[claim]]
name = "by name"
wrt = "w5"
formula = "(o1 - y1)*sigmoid(w5*h1 + w6*h2 + b2)*h1"
expect = "proven"

[[claim]]
name = "generic sigma"
wrt = "w5"
formula = "(o1 - y1)*sigma_prime(w5*h1 + w6*h2 + b2)*h1"
expect = "proven"

[[claim]]
name = "through exp"
wrt = "w5"
formula = "(o1 - y1)*h1/(1 + exp(-(w5*h1 + w6*h2 + b2)))"
expect = "proven"

[[claim]]
name = "LaTeX"
wrt = "w6"
syntax = "latex"
formula = '(o_1 - y_1)\\, \\operatorname{sigmoid}(w_5 h_1 + w_6 h_2 + b_2)\\, \\operatorname{softplus}(z_2)'
expect = "proven"

[[claim]]
name = "sigmoid's derivative"
wrt = "w5"
formula = "(o1 - y1)*o1*(1 - o1)*h1"
expect = "refuted"
"""


def test_softplus_in_free_form_equations_and_claims(tmp_path):
    (tmp_path / "net.toml").write_text(textwrap.dedent(FREE_FORM))
    (tmp_path / "claims.toml").write_text(textwrap.dedent(CLAIMS))
    net = derive.load(str(tmp_path / "net.toml"))
    assert gradcheck(net).passed
    result = check(load_claims(tmp_path / "claims.toml"))
    assert [r.verdict.status for r in result.results] == ["proven"] * 4 + ["refuted"]
    assert all(r.expect_matched for r in result.results)
    edges = drawing.draw(net, lambda e: Tex(sp.latex(e)))["edges"]
    assert r"\mathrm{softplus}" in [e["label"] for e in edges]
