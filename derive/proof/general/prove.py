"""Proving an index formula for every size: the chain rule, the model's definitions, and index calculus.

A formula `lhs = rhs` over symbolic indices and widths (a formula set's
template, or a matrix claim read componentwise) is proven in general like this:

1. Each gradient it names (∂C/∂w[m, j, k], δ[m, j] = ∂C/∂z[m, j], ∂C/∂a[m, j],
   ∂E/∂b[h], …) sits at a level on the way to the cost. The highest level the
   formula names is the frontier: gradients there stay as they are (for a
   layered network of unknown depth, δ^{l+1} is what the induction hypothesis
   gives; a formula at the output layer with a known cost goes on to the cost).
2. Every gradient below the frontier is rewritten by one step of the
   multivariable chain rule, the one step taken as given:
   ∂C/∂u = Σ_i ∂C/∂v_i · ∂v_i/∂u over the quantities v that consume u; the
   partial ∂v_i/∂u is computed by differentiating v_i's definition (SymPy's
   `diff`, Kronecker deltas for indexed symbols), then the deltas are contracted.
3. Both sides, in the model's facts (σ(z) is a, f' = f(1 − f)), are brought to
   the canonical form of derive.proof.general.indexcalc; the formula is proven
   when the difference is 0. Each rewriting is kept as a step of the argument.

A nonzero difference proves nothing either way (the canonical form is not
complete): the formula is then `unproven` here, and a concrete smallest network
decides (derive.proof.general.smallest).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import sympy as sp
from sympy.tensor.indexed import IndexException

from derive.proof.formulas import _D
from derive.proof.general import show
from derive.proof.general.indexcalc import NotCanonical, canonical, contract, rename_dummies
from derive.proof.general.models import DELTA, Consumer, NotCovered, model_for

MAX_STEPS = 24
# what SymPy raises on a template it cannot take (yhat[j] differentiated by yhat[j, j]): undecided, never proven
SYMBOLIC_FAULTS = (IndexException, sp.PolynomialError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                   ZeroDivisionError, RecursionError)
_FRESH_NAME = re.compile(r"^[a-z]_\d+$")
DEFAULT_BUDGET = 5.0


@dataclass
class Step:
    text: str  # the reason, in words
    expr: sp.Expr  # the side after the step, in the model's facts (σ(z) written a), common factors out


@dataclass
class GeneralResult:
    status: str  # proven | unproven | not-covered
    reason: str = ""
    assumptions: list[str] = field(default_factory=list)
    lhs_steps: list[Step] = field(default_factory=list)
    rhs_steps: list[Step] = field(default_factory=list)
    difference: sp.Expr | None = None
    seconds: float = 0.0

    @property
    def proven(self) -> bool:
        return self.status == "proven"


def prove_identity(lhs: sp.Expr, rhs: sp.Expr, ranges, when, assume=None,
                   budget: float = DEFAULT_BUDGET) -> GeneralResult:
    """Whether lhs = rhs in every network the model of `when` describes, with the argument."""
    start = time.perf_counter()
    deadline = start + budget
    ranges = {symbol: (lo, hi) for symbol, lo, hi in ranges}
    try:
        model = model_for(when)
        result = _prove(model, lhs, rhs, ranges, assume, deadline)
    except NotCovered as exc:
        result = GeneralResult("not-covered", f"not covered by the general model: {exc}")
    except NotCanonical as exc:
        result = GeneralResult("unproven", str(exc))
    except SYMBOLIC_FAULTS as exc:  # a user's template SymPy cannot differentiate or reduce: nothing is claimed
        result = GeneralResult("unproven", f"the general proof could not handle it ({type(exc).__name__}: "
                                           f"{str(exc)[:200]})")
    result.seconds = time.perf_counter() - start
    return result


def _prove(model, lhs, rhs, ranges, assume, deadline) -> GeneralResult:
    sides = [model.prepare(side, _D) for side in (lhs, rhs)]
    frontier = _frontier(model, sides)
    result = GeneralResult("unproven", assumptions=model.assumptions())
    for which, side in enumerate(sides):
        steps = result.lhs_steps if which == 0 else result.rhs_steps
        steps.append(Step("as written", side))
        side = _direct(model, side, ranges, deadline, steps)
        sides[which] = _expand(model, side, frontier, ranges, deadline, steps)
        for step in steps[1:]:
            step.expr = sp.factor_terms(rename_dummies(_facts(model, step.expr)))
    facts = [_facts(model, side) for side in sides]
    difference = canonical(facts[0] - facts[1], ranges, deadline)
    identities = getattr(model, "identities", None)  # what the definitions make true of sums (Σ_k x_k = N μ)
    if difference != 0 and identities is not None:
        difference = canonical(identities(difference), ranges, deadline)
    if difference != 0 and assume is not None:
        difference = _assumed(difference, model, assume, ranges, deadline)
    result.difference = difference
    if difference == 0:
        result.status = "proven"
        result.reason = "both sides reach the same canonical form: their difference is 0"
    else:
        result.reason = "the difference of the two sides does not reduce to 0 in the index calculus"
    return result


def _facts(model, expr: sp.Expr) -> sp.Expr:
    """The model's facts applied outside the gradients: ∂C/∂a[L, i] stays a gradient with respect to a."""
    held = {node: sp.Dummy() for node in sp.preorder_traversal(expr) if isinstance(node, _D)}
    return model.facts(expr.xreplace(held)).xreplace({v: k for k, v in held.items()})


def _assumed(difference, model, assume, ranges, deadline):
    left, right, _ = assume
    known = canonical(model.prepare(left, _D), ranges, deadline)
    if not isinstance(known, sp.Sum):
        return difference
    return canonical(difference.xreplace({known: right}), ranges, deadline)


def _direct(model, expr, ranges, deadline, steps) -> sp.Expr:
    """Each ∂v/∂u of a quantity v other than the cost: from v's definition where u appears in it
    (∂ŷ_j/∂β_j = f'(β_j − θ_j)), else by the chain rule through what consumes u (∂z^{l+1}_k/∂z^l_j
    through a^l), until only direct partials are left."""
    for _ in range(MAX_STEPS):
        if time.perf_counter() > deadline:
            raise NotCanonical("the general proof ran out of time")
        pending = [node for node in sp.preorder_traversal(expr)
                   if isinstance(node, _D) and str(node.args[0]) not in model.cost_names
                   and isinstance(node.args[0], sp.Indexed) and isinstance(node.args[1], sp.Indexed)
                   and model.definition(node.args[0], ranges) is not None]
        if not pending:
            return expr
        partial = pending[0]
        replacement, reason = _partial(model, *partial.args, ranges)
        expr = contract(expr.xreplace({partial: replacement}), ranges, deadline)
        steps.append(Step(reason, expr))
    raise NotCanonical(f"a partial derivative needed more than {MAX_STEPS} steps of the chain rule")


def _partial(model, of: sp.Indexed, wrt: sp.Indexed, ranges) -> tuple[sp.Expr, str]:
    """∂of/∂wrt by one step: 0 or a Kronecker delta, of's definition, or the chain rule through wrt's consumer."""
    named = f"∂{show.text(of)}/∂{show.text(wrt)}"
    try:
        gap = sp.expand(model.level(wrt) - model.level(of))
    except KeyError:
        raise NotCovered(f"{named}: a partial derivative the general model does not follow") from None
    if not gap.is_number:
        raise NotCovered(f"{named}: layers whose order is unknown")
    if gap == 0:  # one level: the same quantity (a Kronecker delta) or independent ones (0)
        return sp.diff(of, wrt), f"{named}: quantities of one level, a Kronecker delta"
    if gap > 0:
        return sp.S.Zero, f"{named} = 0: {show.text(of)} comes before {show.text(wrt)}"
    definition = model.definition(of, ranges)
    if any(_same_place(model, item, wrt) for item in definition.atoms(sp.Indexed)):
        return sp.diff(definition, wrt), f"{named} from {show.text(of)}'s definition"
    consumer = model.consumer(str(of), wrt, ranges)
    if consumer is None or consumer.quantity is None or consumer.definition is None:
        raise NotCovered(f"{named}: the model does not say what consumes {show.text(wrt)}")
    step = sp.Sum(_D(of, consumer.quantity) * sp.diff(consumer.definition, wrt), *consumer.limits)
    through = show.text(consumer.quantity.xreplace({i: sp.Symbol("·") for i, _, _ in consumer.limits}))
    return step, f"chain rule: {named} through {through}"


def _same_place(model, item: sp.Indexed, wrt: sp.Indexed) -> bool:
    """Whether item is of wrt's family at wrt's layer (a layered family's first index is its layer)."""
    if item.base != wrt.base:
        return False
    if model.kind in ("layered", "batch"):
        return sp.expand(item.indices[0] - wrt.indices[0]) == 0
    return True


def _gradients(model, expr: sp.Expr) -> list[sp.Expr]:
    """The gradients of the cost the expression names: δ[m, j] and D(C, u), in order of appearance."""
    found = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Indexed) and node.base == DELTA:
            found.append(node)
        elif isinstance(node, _D) and str(node.args[0]) in model.cost_names:
            found.append(node)
    return list(dict.fromkeys(found))


def _quantity(gradient: sp.Expr) -> tuple[str, sp.Expr]:
    if isinstance(gradient, sp.Indexed):
        from derive.proof.general.models import Z
        return "C", Z[gradient.indices]
    cost, quantity = gradient.args
    if not isinstance(quantity, sp.Indexed):
        raise NotCovered(f"∂{cost}/∂{quantity}: a gradient with respect to a name without indices")
    return str(cost), quantity


def _level(model, gradient) -> sp.Expr:
    try:
        return model.level(_quantity(gradient)[1])
    except KeyError:
        raise NotCovered(f"{gradient} is not a gradient the general model follows") from None


def _floor(model, gradient) -> sp.Expr:
    try:
        return model.floor(_quantity(gradient)[1])
    except KeyError:
        raise NotCovered(f"{gradient} is not a gradient the general model follows") from None


def _frontier(model, sides) -> sp.Expr:
    levels = [_floor(model, g) for side in sides for g in _gradients(model, side)]
    if not levels:
        return model.top()
    highest = levels[0]
    for level in levels[1:]:
        gap = sp.expand(level - highest)
        if not gap.is_number:
            raise NotCovered(f"it names layers whose order is unknown ({highest} and {level})")
        if gap > 0:
            highest = level
    return model.top() if model.reaches_cost(highest) else highest


def _below(model, gradient, frontier) -> bool:
    gap = sp.expand(frontier - _level(model, gradient))
    if not gap.is_number:
        raise NotCovered(f"it names layers whose order is unknown ({frontier} and {_level(model, gradient)})")
    return gap > 0


def _expand(model, expr, frontier, ranges, deadline, steps) -> sp.Expr:
    for _ in range(MAX_STEPS):
        if time.perf_counter() > deadline:
            raise NotCanonical("the general proof ran out of time")
        pending = [g for g in _gradients(model, expr) if _below(model, g, frontier)]
        if not pending:
            return expr
        gradient = pending[0]
        cost, quantity = _quantity(gradient)
        consumer = model.consumer(cost, quantity, ranges)
        if consumer is None:
            raise NotCovered(f"the model does not say what consumes {quantity}")
        consumers = consumer if isinstance(consumer, list) else [consumer]  # several: batch norm's x feeds μ, σ², x̂
        replacement = sp.Add(*[_chain_rule(model, cost, quantity, c) for c in consumers])
        expr = contract(expr.xreplace({gradient: replacement}), ranges, deadline)
        steps.append(Step("; ".join(_reason(cost, quantity, c, len(consumers) > 1) for c in consumers), expr))
    raise NotCanonical(f"the chain rule was applied {MAX_STEPS} times without reaching the frontier")


def _chain_rule(model, cost: str, quantity: sp.Expr, consumer: Consumer) -> sp.Expr:
    if consumer.quantity is None:
        return sp.diff(consumer.definition, quantity)
    if consumer.definition is None:
        partial = _D(consumer.quantity, quantity)
    else:
        partial = sp.diff(consumer.definition, quantity)
    outer = model.gradient(cost, consumer.quantity, _D)
    return sp.Sum(outer * partial, *consumer.limits) + consumer.extra


def _reason(cost: str, quantity: sp.Expr, consumer: Consumer, several: bool = False) -> str:
    quantity = quantity.xreplace({s: sp.Symbol("·") for s in quantity.free_symbols if _FRESH_NAME.match(s.name)})
    if consumer.quantity is None:
        return f"∂{cost}/∂{show.text(quantity)} from the cost's definition, Kronecker deltas contracted"
    through = show.text(consumer.quantity.xreplace({index: sp.Symbol("·") for index, _, _ in consumer.limits}))
    text = (f"chain rule: {cost} depends on {show.text(quantity)} {'through' if several else 'only through'} "
            f"{through}; each ∂{through}/∂{show.text(quantity)} from its definition, Kronecker deltas contracted")
    if consumer.extra != 0:
        text += "; plus the penalty's own derivative"
    return text
