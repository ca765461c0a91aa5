r"""An index claim for every size: `\delta^l_j = \Big(\sum_k w^{l+1}_{kj} \delta^{l+1}_k\Big) \sigma'(z^l_j)`.

A claim in index form on a layered network (SymPy's indexed form
`delta[l, j] = sum(w[l+1, k, j]*delta[l+1, k], k, 1, size[l+1])*sigma_prime(z[l, j])`,
or Nielsen's LaTeX component form, read by derive.claims.latex_template) is a
template over symbolic letters, exactly as a formula set's formula is. Its
letters' ranges come from where they stand: the layer letter l of δ^l runs over
the layers where every name exists (2..L−1 when δ^{l+1} is named), a unit
letter j of δ^l_j over 1..size[l], the sum index k of w^{l+1}_{kj} over
1..size[l+1]. A letter that would run over two different widths is not read
for every size (its instances are those of the smaller one, which no single
range states).
"""

from __future__ import annotations

import sympy as sp

from derive.claims.general import LOWEST_LAYER, NotGeneral, narrow_layer, network_when
from derive.proof.formulas import _template
from derive.proof.general.models import L, SIZE
from derive.proof.general.prove import GeneralResult, prove_identity

_LAYERED = {"w": 3, "b": 2, "z": 2, "a": 2, "delta": 2}  # family ↦ its number of indices


def sympy_templates(pieces) -> list[sp.Expr]:
    """The members in SymPy's indexed form as templates, every single letter an integer index symbol."""
    templates = []
    for piece, _ in pieces:
        plain = _template(piece, {}, "claim")
        letters = {s.name: sp.Symbol(s.name, integer=True) for s in plain.free_symbols
                   if len(s.name) == 1 and s.name not in ("L", "C")}
        templates.append(_template(piece, letters, "claim"))
    return templates


def index_link_results(templates, network, budget: float) -> list[GeneralResult]:
    """Each link `A = B` of a chain of templates, proven (or not) for every size."""
    if network.kind != "layered":
        raise NotGeneral("index claims are read for every size on layered networks")
    ranges = letter_ranges(templates)
    when = network_when(network)
    return [prove_identity(left, right, ranges, when, budget=budget) for left, right in zip(templates, templates[1:])]


def letter_ranges(templates) -> list[tuple]:
    """(letter, lo, hi) for each free letter: the layers where every name exists, the widths units run over."""
    layers: dict[sp.Symbol, list] = {}
    units: dict[sp.Symbol, sp.Expr] = {}
    for template in templates:
        for item in template.atoms(sp.Indexed):
            family = item.base.label.name
            if family == "y":
                _unit(units, item.indices[0], SIZE[L])
                continue
            if family not in _LAYERED or len(item.indices) != _LAYERED[family]:
                continue
            layer = item.indices[0]
            narrow_layer(layers, layer, LOWEST_LAYER[family])
            widths = [SIZE[layer], SIZE[layer - 1]]
            for index, width in zip(item.indices[1:], widths):
                _unit(units, index, width)
    bound = _bound_symbols(templates)
    ranges = [(letter, lo, hi) for letter, (lo, hi) in layers.items()]
    ranges += [(letter, sp.S.One, hi) for letter, hi in units.items() if letter not in bound]
    return ranges


def _bound_symbols(templates) -> set:
    return {limit[0] for template in templates for s in template.atoms(sp.Sum) for limit in s.limits}


def _unit(units: dict, index: sp.Expr, width: sp.Expr) -> None:
    if not isinstance(index, sp.Symbol):
        return  # a number, or index arithmetic: no range of its own
    known = units.get(index)
    if known is not None and sp.expand(known - width) != 0:
        raise NotGeneral(f"the index {index} runs over two widths ({known} and {width})")
    units[index] = width
