"""Candidate corrections for wiring slips the within-layer search misses.

- `wrong-unit` across layers and for inputs and δs: `a^3_1` where `a^2_1`
  belongs, `x_2` for `x_1`, `δ^2_2` for `δ^3_2`;
- `wrong-weight` in one term: a weight written twice (`w^2_{12}` read as
  w2_1_2 where `w^2_{1,12}` = w2_1_12 belongs, beside the right w2_1_2 of x2);
- `transposed-index` inside a partial: `∂z^3_1/∂w^3_{21}` (which is 0) where
  `∂z^3_1/∂w^3_{12}` belongs; the claim's text is read again with each such
  partial's weight transposed.

Each builder yields (id, message, corrected right side); diagnosis.py proves
them like its own. Nothing here is named unless the prover proves it.
"""

from __future__ import annotations

import re
import time
from typing import Iterator

import sympy as sp

from derive.claims.vocabulary import ClaimVocabulary
from derive.graph.numeric import OutOfTime

MAX_POOL = 60  # replacements tried for one symbol (the likeliest first)


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.perf_counter() > deadline:
        raise OutOfTime()


def _where(network) -> dict[sp.Symbol, tuple[str, tuple]]:
    """Each layered symbol's family and index tuple (x1 → ('a', (1, 1)): the inputs are layer 1's a)."""
    where: dict[sp.Symbol, tuple[str, tuple]] = {}
    for family, members in network.families.items():
        for index, s in members.items():
            where.setdefault(s, (family, index))
    return where


def _letters(s: sp.Symbol) -> str:
    return re.sub(r"[\d_]+", "", s.name)


def _indices(s: sp.Symbol, where) -> tuple:
    found = where.get(s)
    if found is not None:
        return found[1]
    return tuple(int(d) for d in re.findall(r"\d+", s.name))


def _score(other: sp.Symbol, s: sp.Symbol, hints: set, where) -> tuple:
    """How likely `other` is where `s` was written: indices it shares with s or with the term's units."""
    mine, theirs = _indices(s, where), _indices(other, where)
    shared = sum(1 for a, b in zip(mine, theirs) if a == b)
    hinted = sum(1 for b in theirs[1:] if b in hints)
    return (-(shared + hinted), other.name)


def _one_term(expr: sp.Expr, s: sp.Symbol, other: sp.Symbol) -> Iterator[tuple[sp.Expr, sp.Expr]]:
    """expr with s replaced by other in one term only, of each sum that has s in two or more terms; and that term."""
    if expr.is_Atom or not expr.has(s):
        return
    if isinstance(expr, sp.Add):
        holding = [i for i, a in enumerate(expr.args) if a.has(s)]
        if len(holding) > 1:
            for i in holding:
                args = list(expr.args)
                args[i] = args[i].xreplace({s: other})
                yield expr.func(*args), expr.args[i]
    for i, a in enumerate(expr.args):
        for sub, term in _one_term(a, s, other):
            args = list(expr.args)
            args[i] = sub
            yield expr.func(*args), term


def _unit_hints(expr: sp.Expr, where) -> set:
    """The unit indices (last index) of the layered symbols in expr."""
    return {where[x][1][-1] for x in expr.free_symbols if x in where and where[x][1]}


def wrong_weight_in_one_term(network, R: sp.Expr, deadline: float | None) -> Iterator[tuple]:
    """A weight that appears in several terms, replaced in one of them by another of its layer."""
    where = _where(network)
    weights = network.families.get("w", {})
    for s in sorted((x for x in R.free_symbols if x in where and where[x][0] == "w"), key=lambda x: x.name):
        layer = where[s][1][0]
        pool = [w for index, w in weights.items() if index[0] == layer and w != s]
        if len(list(_one_term(R, s, s))) < 2:
            continue
        hints = _unit_hints(R, where)
        for other in sorted(pool, key=lambda o: _score(o, s, hints, where))[:MAX_POOL]:
            check_deadline(deadline)
            for corrected, term in _one_term(R, s, other):
                yield "wrong-weight", f"{s} does not connect those units in the term {term}; {other} does", corrected


def wrong_unit_across_layers(network, derivations, R: sp.Expr, deadline: float | None) -> Iterator[tuple]:
    """A unit's quantity, an input or a δ replaced by another of its kind in any layer (within-layer ones come first)."""
    where = _where(network)
    parameters = set(network.parameters)
    for s in sorted(R.free_symbols, key=lambda x: x.name):
        if s in parameters:
            continue
        info = derivations.adjoint_info(s)
        if info is not None:
            derivation, z = info
            pool = [derivation.adjoint(o) for o in _kind_pool(network, z, where) if o != z]
        elif s in network.definitions or s in set(network.inputs) or s in set(network.targets):
            pool = [o for o in _kind_pool(network, s, where) if o != s]
        else:
            continue
        hints = {_indices(s, where)[-1]} if _indices(s, where) else set()
        for other in sorted(pool, key=lambda o: _score(o, s, hints, where))[:MAX_POOL]:
            check_deadline(deadline)
            if other not in R.free_symbols:
                yield "wrong-unit", f"{s} is used where {other} belongs", R.xreplace({s: other})
            for corrected, term in _one_term(R, s, other):
                yield "wrong-unit", f"{s} is used where {other} belongs, in the term {term}", corrected


def _kind_pool(network, s: sp.Symbol, where) -> list[sp.Symbol]:
    """The symbols of s's kind in every layer: its family (a, z, x, …), or its letters for unlayered names."""
    if s in where:
        family = where[s][0]
        return list(network.families[family].values())
    letters = _letters(s)
    candidates = list(network.order) + [x for x in network.leaves if x not in set(network.parameters)]
    return [x for x in dict.fromkeys(candidates) if _letters(x) == letters]


# ---------------------------------------------------------------------------
# A transposed weight inside a partial: ∂z^3_1/∂w^3_{21}
# ---------------------------------------------------------------------------


class _TransposingVocabulary(ClaimVocabulary):
    """A claim vocabulary whose D(q, w^l_jk), when 0, is D(q, w^l_kj) (when that is not 0)."""

    def __init__(self, network, derivations):
        super().__init__(network, derivations)
        self.swapped: list[tuple[sp.Symbol, sp.Symbol]] = []
        weights = network.families.get("w", {})
        self.partner = {}
        for (layer, j, *rest), w in weights.items():
            if len(rest) == 1 and weights.get((layer, rest[0], j)) not in (None, w):
                self.partner[w] = weights[(layer, rest[0], j)]

    def _derivative(self, args: list) -> sp.Expr:
        value = super()._derivative(args)
        quantity, variable = args
        partner = self.partner.get(variable)
        if value == 0 and partner is not None:
            swapped = super()._derivative([quantity, partner])
            if swapped != 0:
                self.swapped.append((variable, partner))
                return swapped
        return value


def transposed_in_partial(cf, claim, deadline: float | None) -> Iterator[tuple]:
    """The claim read again with each partial ∂q/∂w^l_jk that is 0 taken as ∂q/∂w^l_kj."""
    if not re.search(r"partial|\bD\(|Derivative", claim.text) or "w" not in cf.network.families:
        return
    check_deadline(deadline)
    rhs_text = _right_side_text(cf, claim)
    if rhs_text is None:
        return
    vocabulary = _vocabulary(cf, claim, _TransposingVocabulary)
    try:
        corrected = vocabulary.parse(rhs_text, claim.syntax, {}, "diagnosis")
    except Exception:  # noqa: BLE001 - a text that does not read again gets no such candidate
        return
    if vocabulary.swapped:
        shown = ", ".join(f"∂/∂{a} where ∂/∂{b} belongs" for a, b in dict.fromkeys(vocabulary.swapped))
        yield "transposed-index", f"a partial's weight has its indices transposed: {shown}", corrected


def _vocabulary(cf, claim, kind=ClaimVocabulary) -> ClaimVocabulary:
    vocabulary = kind(cf.network, cf.derivations)
    for name, value in cf.definitions.items():
        vocabulary.define(name, value)
    if claim.rate is not None:
        vocabulary.rates[claim.rate.name] = claim.rate
    return vocabulary


def _right_side_text(cf, claim) -> str | None:
    """The claim's right side as written: the formula, or an identity's text after the ' = ' that ends its lhs."""
    if claim.kind != "identity":
        return claim.text
    text = claim.text
    for match in re.finditer(" = ", text):
        try:
            left = _vocabulary(cf, claim).parse(text[: match.start()], claim.syntax, {}, "diagnosis")
        except Exception:  # noqa: BLE001 - not the split point
            continue
        if sp.simplify(left - claim.lhs) == 0:
            return text[match.end():]
    return None
