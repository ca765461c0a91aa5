"""Derived gradients against three independent routes: sympy.diff, finite differences, PyTorch."""

import math

import pytest
import sympy as sp

from derive import Derivations, Derived, free_form, layered, load
from conftest import SYMBOLIC_BUILTINS
from oracles import derived_gradients, finite_differences, random_point, sympy_gradient, torch_gradients

BUILTINS = SYMBOLIC_BUILTINS


def relative_error(a: float, b: float, floor: float = 1e-300) -> float:
    return abs(a - b) / max(abs(a), abs(b), floor)


def assert_close(ours: dict, theirs: dict, tolerance: float, label: str, floor_ratio: float = 0.0) -> None:
    """Every component within `tolerance`, relative to its size or, for components
    below `floor_ratio` × the largest one, relative to that floor.

    The floor is for float64 oracles: their rounding error is absolute, about
    1e-16 × the size of the sums they form, so a component 1e-7 times smaller
    than the gradient's largest has no 1e-10 relative accuracy left in them.
    """
    assert ours.keys() == theirs.keys()
    floor = max(floor_ratio * max(abs(v) for v in theirs.values()), 1e-300)
    error_of = {p: relative_error(ours[p], theirs[p], floor) if abs(theirs[p]) > 1e-14 or floor > 1e-300
                else abs(ours[p] - theirs[p]) for p in ours}
    worst = max(error_of, key=error_of.get)
    assert error_of[worst] <= tolerance, (
        f"{label}: {worst} derived {ours[worst]!r}, oracle {theirs[worst]!r} (error {error_of[worst]:.2e})"
    )


def atomized(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """The expressions with every function application replaced by a symbol, innermost first.

    Equal applications get the same symbol, so two expressions that agree as
    rational functions of those symbols agree as functions: an exact check
    that does not expand σ, exp or log (expanding the sigmoid network's
    gradients took over ten minutes).
    """
    names: dict[sp.Expr, sp.Symbol] = {}
    done: dict[sp.Expr, sp.Expr] = {}

    def visit(e: sp.Expr) -> sp.Expr:
        # one pass, arguments before the application that holds them (innermost first), each
        # distinct subexpression once: rescanning the whole expressions per nesting level took 9 s
        if not e.args:
            return e
        if e not in done:
            rebuilt = e.func(*[visit(a) for a in e.args])
            if isinstance(rebuilt, sp.Function):
                rebuilt = names.setdefault(rebuilt, sp.Dummy(f"f{len(names)}"))
            done[e] = rebuilt
        return done[e]

    return [visit(e) for e in exprs]


def spread(parameters: list, count: int) -> list:
    """`count` parameters spread evenly over the list, the first and the last among them."""
    if len(parameters) <= count:
        return parameters
    step = (len(parameters) - 1) / (count - 1)
    return [parameters[round(i * step)] for i in range(count)]


@pytest.mark.parametrize("name", BUILTINS)
def test_closed_forms_equal_plain_sympy_diff(name, builtin_networks):
    network = builtin_networks[name]
    d = Derivations(network).cost
    parameters = list(network.parameters)
    if len(parameters) > 1000:
        # sympy.diff of the substituted 64-30-10 cost takes 20 s per first-layer
        # parameter and 4 s per output-layer one: two of the output layer here;
        # finite differences and PyTorch check the first layer.
        parameters = parameters[-2:]
    else:
        parameters = spread(parameters, 9)
    for p in parameters:
        ours, naive = atomized([network.substituted(d.closed_form(p)), sympy_gradient(network, p)])
        difference = sp.cancel(sp.together(ours - naive))
        assert difference == 0, f"{name}: ∂C/∂{p} differs from sympy.diff by {difference}"


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("seed", [1, 2])
def test_gradients_equal_pytorch_autograd(name, seed, builtin_networks, derivations):
    network = builtin_networks[name]
    point = random_point(network, seed)
    ours, theirs = derived_gradients(derivations[name], point), torch_gradients(network, point)
    assert_close(ours, theirs, 1e-10, f"{name} vs torch", floor_ratio=1e-4)


@pytest.mark.parametrize("name", BUILTINS)
def test_gradients_equal_central_finite_differences(name, builtin_networks, derivations):
    network = builtin_networks[name]
    point = random_point(network, 3)
    parameters = spread(list(network.parameters), 60)  # each one costs two 60-digit forward passes
    ours = derived_gradients(derivations[name], point)
    theirs = finite_differences(network, point, parameters)
    assert_close({p: ours[p] for p in parameters}, theirs, 1e-12, f"{name} vs FD")


def test_mazur_numbers_at_the_spec_values():
    """The worked example's published numbers (Mazur 2015) at its [values] point."""
    derived = Derived(load("two-two-two"))
    values = derived.values()
    d = derived.derivation
    by_name = {s.name: v for s, v in values.items()}
    assert math.isclose(by_name["E"], 0.298371109, rel_tol=1e-8)
    assert math.isclose(by_name["D(E, w5)"], 0.082167041, rel_tol=1e-7)
    assert math.isclose(by_name["D(E, w1)"], 0.000438568, rel_tol=1e-6)
    assert math.isclose(values[d.adjoint(load("two-two-two").by_name["outh1"])], 0.036350306, rel_tol=1e-7)


def test_recurrence_is_read_off_the_graph():
    network = load("two-two-two")
    d = Derivations(network).cost
    s = network.by_name
    terms = d.terms(s["outh1"])
    assert [t.consumer for t in terms] == [s["neto1"], s["neto2"]]
    assert [t.partial for t in terms] == [s["w5"], s["w7"]]
    assert d.definition(s["neth1"]) == d.adjoint(s["outh1"]) * s["outh1"] * (1 - s["outh1"])
    # shared bias: one term per unit it feeds
    assert d.definition(s["b2"]) == d.adjoint(s["neto1"]) + d.adjoint(s["neto2"])


def test_layered_recurrence_has_one_term_per_unit_of_the_next_layer():
    network = layered([3, 4, 5, 2], activation="sigma", cost="generic")
    d = Derivations(network).cost
    a2_1 = network.by_name["a2_1"]
    assert len(d.terms(a2_1)) == 5
    assert {t.partial for t in d.terms(a2_1)} == {network.by_name[f"w3_{j}_1"] for j in range(1, 6)}


def test_derivatives_of_other_quantities_and_inputs():
    network = load("two-two-two")
    s = network.by_name
    ders = Derivations(network)
    # ∂neto1/∂w1 through the graph
    closed = ders.of(s["neto1"]).closed_form(s["w1"])
    assert sp.expand(network.substituted(closed) - sp.diff(network.substituted(s["neto1"]), s["w1"])) == 0
    # an input's derivative exists too
    assert ders.cost.closed_form(s["x1"]) != 0
    # a quantity that does not depend on a symbol has derivative 0
    assert ders.of(s["neth1"]).adjoint(s["w5"]) == 0


def test_free_form_from_sympy_expressions_shares_symbols():
    x, w, b, y = sp.symbols("x w b y")
    network = free_form(
        {"z": w * x + b, "a": sp.tanh(sp.Symbol("z")), "C": (sp.Symbol("a") - y) ** 2},
        cost="C",
        inputs=["x"],
        targets=["y"],
    )
    assert [p.name for p in network.parameters] == ["b", "w"]  # preorder of SymPy's canonical b + w*x
    d = Derivations(network).cost
    a = network.by_name["a"]
    assert d.closed_form(network.by_name["w"]) == 2 * (a - network.by_name["y"]) * (1 - a**2) * network.by_name["x"]


def test_fast_product_is_sympys_product():
    from derive.graph.network import product

    names = ["x1", "x10", "x2", "D(C, z2_1)", "D(C, z10_3)", "w2_1_1", "a", "B", "_t"]
    symbols = [sp.Symbol(n, real=True) for n in names] + [sp.Symbol("p"), sp.Dummy("d")]
    for a in symbols:
        for b in symbols:
            for ours, theirs in ((product(a, b), sp.Mul(a, b)), (product(a, 2 * b), sp.Mul(a, 2 * b))):
                assert ours == theirs and hash(ours) == hash(theirs) and ours.args == theirs.args
                assert ours - theirs == 0
    assert product(sp.S.One, symbols[0]) is symbols[0]


def test_latex_names_are_made_once_and_kept_up_to_date():
    """Printing n entries names each adjoint once (linear), and adjoints made later get names too."""
    network = layered([3, 4, 2], activation="sigmoid", cost="quadratic", name="names")
    derivations = Derivations(network)
    cost = derivations.cost
    z = network.families["z"][(2, 1)]
    assert derivations.latex(cost.adjoint(z)) == r"\delta^{2}_{1}"
    a = network.families["a"][(2, 1)]
    assert derivations.latex(cost.adjoint(a)) == rf"\frac{{\partial {network.latex(network.cost)}}}{{\partial {network.latex(a)}}}"
    names = derivations.latex_names()
    assert set(names) == {cost.adjoint(z), cost.adjoint(a)}
    names.clear()  # a copy: the derivations' own names are untouched
    assert derivations.latex(cost.adjoint(z)) == r"\delta^{2}_{1}"
    calls = []
    original = network.latex
    network_latex = lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs)  # noqa: E731
    object.__setattr__(network, "latex", network_latex)
    try:
        for p in network.parameters:
            derivations.latex(cost.definition(p))
    finally:
        object.__delattr__(network, "latex")
    assert not calls  # the network's names are read from its table, not printed per entry
