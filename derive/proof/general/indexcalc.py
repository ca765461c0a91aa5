"""Index calculus over symbolic widths: sums with symbolic bounds, Kronecker deltas, a canonical form.

Expressions are SymPy expressions over `IndexedBase` families (`w[l+1, k, j]`)
whose bounds are symbols (`size[l]`, `L`). Two expressions are equal for every
size when their difference reaches 0 under these exact rewritings:

- a sum of a sum of terms is the sum of the sums (linearity);
- a factor that does not mention a sum's index leaves the sum;
- `Σ_{p=lo}^{hi} f(p) δ_{pq} = f(q)` when q is known to range over exactly lo..hi
  (the Kronecker delta contracted; a sum over an index no term mentions is
  `(hi − lo + 1)·f`);
- a sum's index is renamed to a canonical name (alpha-equivalence), so that
  `Σ_k w_{kj} δ_k` and `Σ_p δ_p w_{pj}` are one object.

Ranges of free indices come from the formula (`for = { j = "1..size[l]" }`)
and from the sums that enclose a term.
"""

from __future__ import annotations

import time
from typing import Mapping

import sympy as sp

MAX_PASSES = 40  # of the rewriting loop; each pass is linear in the expression
MAX_CANONICAL_SECONDS = 5.0

Ranges = Mapping[sp.Symbol, tuple[sp.Expr, sp.Expr]]


class NotCanonical(Exception):
    """The rewriting ran past its budget: the difference is left undecided."""


def same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.expand(a - b) == 0


def contract(expr: sp.Expr, ranges: Ranges, deadline: float) -> sp.Expr:
    """The expression with its sums distributed, factors pulled out and Kronecker deltas contracted."""
    for _ in range(MAX_PASSES):
        if time.perf_counter() > deadline:
            raise NotCanonical("the index calculus ran out of time")
        after = _pass(sp.expand(expr), dict(ranges))
        if after == expr:
            return after
        expr = after
    raise NotCanonical(f"the index calculus did not settle in {MAX_PASSES} passes")


def _pass(expr: sp.Expr, ranges: dict) -> sp.Expr:
    if isinstance(expr, sp.Sum):
        return _sum(expr, ranges)
    if isinstance(expr, sp.KroneckerDelta):
        return _delta(expr, ranges)
    if not expr.args or isinstance(expr, (sp.Indexed, sp.IndexedBase)):
        return expr
    return expr.func(*[_pass(arg, ranges) for arg in expr.args])


def _delta(delta: sp.KroneckerDelta, ranges: dict) -> sp.Expr:
    """δ_{ij} of two indices whose ranges cannot meet is 0; of two equal ones 1 (SymPy decides the latter)."""
    i, j = delta.args
    if i in ranges and j in ranges:
        (lo_i, hi_i), (lo_j, hi_j) = ranges[i], ranges[j]
        if _known_less(hi_i, lo_j) or _known_less(hi_j, lo_i):
            return sp.S.Zero
    return delta


def _known_less(a: sp.Expr, b: sp.Expr) -> bool:
    gap = sp.expand(b - a)
    return gap.is_number and gap > 0


def _sum(node: sp.Sum, ranges: dict) -> sp.Expr:
    """Σ over each limit in turn, the innermost first, each with the ranges of the limits around it."""
    inner = dict(ranges)
    for index, lo, hi in node.limits:
        inner[index] = (lo, hi)
    expr = _pass(node.function, inner)
    for position, (index, lo, hi) in enumerate(node.limits):
        around = dict(ranges)
        for outer, o_lo, o_hi in node.limits[position + 1:]:
            around[outer] = (o_lo, o_hi)
        expr = sp.Add(*[_sum_of_term(term, index, lo, hi, around) for term in sp.Add.make_args(sp.expand(expr))])
    return expr


def _sum_of_term(term: sp.Expr, index: sp.Symbol, lo, hi, ranges: dict) -> sp.Expr:
    outside, inside = [], []
    for factor in sp.Mul.make_args(term):
        (inside if factor.has(index) else outside).append(factor)
    if not inside:
        return sp.Mul(*outside) * (hi - lo + 1)
    body = sp.Mul(*inside)
    for factor in inside:
        if isinstance(factor, sp.KroneckerDelta) and index in factor.args:
            other = factor.args[0] if factor.args[1] == index else factor.args[1]
            if other.has(index):
                continue
            if _within(other, lo, hi, ranges):
                rest = sp.Mul(*[f for f in inside if f is not factor])
                return sp.Mul(*outside) * rest.xreplace({index: other})
    return sp.Mul(*outside) * sp.Sum(body, (index, lo, hi))


def _within(value: sp.Expr, lo: sp.Expr, hi: sp.Expr, ranges: dict) -> bool:
    """Whether `value` is known to lie in lo..hi: it is an index whose range is exactly lo..hi (or inside it)."""
    if value in ranges:
        v_lo, v_hi = ranges[value]
        return (same(v_lo, lo) or _known_less(lo, v_lo)) and (same(v_hi, hi) or _known_less(v_hi, hi))
    return False


def rename_dummies(expr: sp.Expr) -> sp.Expr:
    """Each sum's index renamed to `_i{depth}` (its nesting depth, the outermost 1): alpha-equivalent sums
    become one object. Every index is first made a unique Dummy, so that no renaming captures another."""
    return _renamed(_renamed(expr, 1, lambda depth: sp.Dummy("i", integer=True)), 1,
                    lambda depth: sp.Symbol(f"_i{depth}", integer=True))


def _renamed(node: sp.Expr, depth: int, name_at) -> sp.Expr:
    if isinstance(node, sp.Sum):
        count = len(node.limits)
        names = {index: name_at(depth + count - 1 - position)
                 for position, (index, _, _) in enumerate(node.limits)}
        limits = [(names[index], lo.xreplace(names), hi.xreplace(names)) for index, lo, hi in node.limits]
        return sp.Sum(_renamed(node.function.xreplace(names), depth + count, name_at), *limits)
    if not node.args or isinstance(node, (sp.Indexed, sp.IndexedBase)):
        return node
    return node.func(*[_renamed(arg, depth, name_at) for arg in node.args])


def canonical(expr: sp.Expr, ranges: Ranges, deadline: float) -> sp.Expr:
    """The canonical form: contracted, dummies renamed, rational in its atoms and sums."""
    expr = rename_dummies(contract(expr, ranges, deadline))
    expr = contract(expr, ranges, deadline)
    return sp.cancel(sp.together(sp.expand(expr)))
