"""Pooling windows in the index calculus: which pooling unit's window holds a feature-map unit.

A pooling layer reads windows of a feature map aF[k, 1..rowsF, 1..colsF]. Two
index predicates name them, both constant under differentiation (they depend on
indices only, or, for `ismax`, are piecewise constant in the activations: their
derivative is 0 wherever no window has a tie):

- `window(aP[k', r, s], aF[k, i, j])`: 1 when aF[k, i, j] is in aP[k', r, s]'s window, else 0;
- `ismax(aF[k, i, j], aP[k', r, s])`: 1 when aF[k, i, j] is in that window and is its maximum.

A pool acts on each channel alone: both are 0 when k ≠ k', so both are written
[k = k'] · (the same predicate at channel k) — `split_channel`.

With windows of p × p units and stride p that tile the map (rowsF = p·rowsP,
colsF = p·colsP), aF[k, i, j] is in window (r, s) exactly when
r = ρ(i) = ⌊(i − 1)/p⌋ + 1 and s = ρ(j): for integers i, r and 1 ≤ u ≤ p,
i = p(r − 1) + u holds for one u exactly when r − 1 = ⌊(i − 1)/p⌋. So

    window(aP[k', r, s], aF[k, i, j]) = [k = k'] [r = ρ(i)] [s = ρ(j)]
    ismax(aF[k, i, j], aP[k', r, s])  = [k = k'] [r = ρ(i)] [s = ρ(j)] · ismax(aF[k, i, j], aP[k, ρ(i), ρ(j)])

(`explicit`), and for i in 1..rowsF the index ρ(i) lies in 1..rowsP
(`window_ranges`), so that Σ_{r=1}^{rowsP} f(r) [r = ρ(i)] = f(ρ(i)) is the
index calculus's ordinary contraction. `normal` writes every ⌊·⌋ one way
(⌊(i + 1)/2⌋ and ⌊(i − 1)/2⌋ + 1 are one index), by ⌊x + n⌋ = ⌊x⌋ + n for
integer n, which holds for every real x.
"""

from __future__ import annotations

import sympy as sp

from derive.proof.general.indexcalc import same


class window(sp.Function):
    """window(pool, unit): 1 if the feature-map unit is in the pooling unit's window, else 0."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.S.Zero  # an index predicate: constant in the activations


class ismax(sp.Function):
    """ismax(unit, pool): 1 if the unit is in the pool's window and is its maximum, else 0."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.S.Zero  # piecewise constant: its derivative is 0 wherever the window has no tie


def _floor_normal(node: sp.floor) -> sp.Expr:
    inner = sp.expand(node.args[0])
    constant = sp.Add(*[t for t in sp.Add.make_args(inner) if t.is_Rational])
    whole = sp.floor(constant)
    return sp.floor(inner - whole) + whole


def normal(expr: sp.Expr) -> sp.Expr:
    """Each ⌊x⌋ written ⌊x'⌋ + n with x' = x − n and n the floor of x's constant term."""
    for _ in range(8):
        after = expr.replace(lambda e: isinstance(e, sp.floor), _floor_normal)
        if after == expr:
            return after
        expr = after
    return expr


def rho(index: sp.Expr, size: int) -> sp.Expr:
    """The row (or column) of the pooling window that holds feature row `index`, windows of `size`, stride `size`."""
    return normal(sp.floor((index - 1) / sp.Integer(size)) + 1)


def split_channel(expr: sp.Expr) -> sp.Expr:
    """window(aP[k', …], aF[k, …]) = [k = k'] window(aP[k, …], aF[k, …]), and so for ismax."""
    def split(node):
        unit, pool = (node.args[1], node.args[0]) if isinstance(node, window) else node.args
        if not (isinstance(unit, sp.Indexed) and isinstance(pool, sp.Indexed)) or unit.indices[0] == pool.indices[0]:
            return node
        k, other = unit.indices[0], pool.indices[0]
        pool = pool.base[(k, *pool.indices[1:])]
        return sp.KroneckerDelta(k, other) * node.func(*((pool, unit) if isinstance(node, window) else (unit, pool)))
    return expr.replace(lambda e: isinstance(e, (window, ismax)), split)


def explicit(expr: sp.Expr, size) -> sp.Expr:
    """Both predicates as Kronecker deltas on ρ(i) and ρ(j): windows of size × size with stride size."""
    def rewrite(node):
        unit, pool = (node.args[1], node.args[0]) if isinstance(node, window) else node.args
        if not (isinstance(unit, sp.Indexed) and isinstance(pool, sp.Indexed)):
            return node
        (k, i, j), (c, r, s) = unit.indices, pool.indices
        home = (k, rho(i, size), rho(j, size))
        deltas = sp.Mul(*[sp.S.One if same(a, b) else sp.KroneckerDelta(a, b) for a, b in zip((c, r, s), home)])
        if isinstance(node, window):
            return deltas
        return deltas * node.func(unit, pool.base[home])
    return expr.replace(lambda e: isinstance(e, (window, ismax)), rewrite)


def window_ranges(ranges, size, tiles) -> dict:
    """ρ(v) ranges over 1..P for each index v known to lie in 1..F, for each (F, P) of `tiles` (F = size·P)."""
    found = {}
    for symbol, (lo, hi) in list(ranges.items()):
        if not isinstance(symbol, sp.Symbol):
            continue
        for feature, pooled in tiles:
            lo_gap, hi_gap = sp.expand(lo - 1), sp.expand(feature - hi)
            if lo_gap.is_number and lo_gap >= 0 and hi_gap.is_number and hi_gap >= 0:
                found[rho(symbol, size)] = (sp.S.One, pooled)
    return found
