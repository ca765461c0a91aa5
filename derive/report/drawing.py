"""Where each unit of a network goes in a picture: the geometry behind the TikZ drawing.

The report's template (reports/drawing.tex) draws what this module places:
units as circles in columns, edges between them (labelled with their weights
when the network is small), and, for a convolutional network, its feature
maps as stacked grids. Geometry is computed here, in centimetres; the
template only styles it, so a user's template can restyle it freely.

* layered: one column per layer, a^l_j in each; the cost to the right.
* free-form and threshold networks: one column per depth in the graph
  (inputs at depth 0); an edge u → v for each symbol v's definition uses,
  labelled with its coefficient when that is one parameter (w5 in
  `neto1 = w5*outh1 + …`), or with the function applied (σ); parameters that
  label no edge (biases) are written under their unit.
* cnn: the input, each convolution's and pooling's maps, dense units, the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from derive.graph import registry
from derive.graph.network import Network
from derive.texsafe import Tex

COLUMN_GAP = 2.4  # cm between columns of units
ROW_GAP = 1.05  # cm between units of a column
MAX_SHOWN = 7  # units of a column drawn before the middle ones are elided
MAX_LABELLED_EDGES = 24  # edge labels only for networks this small
PAGE_WIDTH = 15.0  # cm; wider pictures are scaled to the line width


@dataclass
class Drawing:
    kind: str  # "graph" or "cnn"
    units: list[dict] = field(default_factory=list)  # id, x, y, label (Tex), style
    edges: list[dict] = field(default_factory=list)  # source, target, label (Tex or None), pos
    captions: list[dict] = field(default_factory=list)  # x, y, text (Tex)
    blocks: list[dict] = field(default_factory=list)  # cnn maps: x, y, width, height, rows, cols, count, grid
    arrows: list[dict] = field(default_factory=list)  # cnn: x1, x2, y, label (Tex)
    width: float = 0.0
    height: float = 0.0

    @property
    def fit(self) -> bool:
        """Whether the picture must be scaled down to the line width."""
        return self.width > PAGE_WIDTH

    def as_dict(self) -> dict:
        for caption in self.captions:
            caption["y"] = -self.height / 2 - 0.15
        return {
            "kind": self.kind,
            "units": self.units,
            "edges": self.edges,
            "captions": self.captions,
            "blocks": self.blocks,
            "arrows": self.arrows,
            "width": round(self.width, 3),
            "height": round(self.height, 3),
            "fit": self.fit,
        }


def draw(network: Network, math: Callable[[sp.Expr], Tex]) -> dict:
    if network.kind == "layered":
        return _layered(network, math).as_dict()
    if network.kind == "cnn":
        return _cnn(network, math).as_dict()
    return _graph(network, math).as_dict()


def _unit(unit_id: str, x: float, y: float, label: Tex, style: str) -> dict:
    return {"id": unit_id, "x": x, "y": y, "label": label, "style": style, "note": None}


def _column_slots(count: int) -> list[int | None]:
    """Which members of a column are drawn: all, or the first and last few with None for the elision."""
    if count <= MAX_SHOWN:
        return list(range(count))
    return [0, 1, 2, None, count - 2, count - 1]


def _place_column(drawing: Drawing, x: float, members: list, label_of, id_of, style="unit") -> dict:
    """Units of one column, centred on y = 0; returns member ↦ unit id for the drawn ones.

    `style`: one TikZ style for every unit, or a function of the member.
    """
    style_of = style if callable(style) else (lambda member: style)
    slots = _column_slots(len(members))
    top = (len(slots) - 1) * ROW_GAP / 2
    placed = {}
    for row, index in enumerate(slots):
        y = top - row * ROW_GAP
        if index is None:
            drawing.units.append(_unit(f"dots{len(drawing.units)}", x, y, Tex(r"\vdots"), "dots"))
            continue
        member = members[index]
        unit_id = id_of(member)
        drawing.units.append(_unit(unit_id, x, y, label_of(member), style_of(member)))
        placed[member] = unit_id
    drawing.height = max(drawing.height, 2 * top + ROW_GAP)
    return placed


def _layered(network: Network, math) -> Drawing:
    facts, families = network.facts, network.families
    sizes = facts["sizes"]
    drawing = Drawing("graph")
    members_of: list[list[sp.Symbol]] = []  # layer l's units, x for the input layer
    columns: list[dict] = []  # the drawn ones: unit ↦ TikZ id
    for l, size in enumerate(sizes, start=1):
        members = [families["x"][(k,)] if l == 1 else families["a"][(l, k)] for k in range(1, size + 1)]
        x = (l - 1) * COLUMN_GAP
        members_of.append(members)
        columns.append(_place_column(drawing, x, members, math, lambda s: _tikz_id(s.name),
                                     "input" if l == 1 else "unit"))
        activation = "" if l == 1 else facts["activations"][l - 2]
        drawing.captions.append({"x": x, "text": Tex(rf"$l={l}$"), "sub": activation or "input"})
    x_cost = len(sizes) * COLUMN_GAP
    cost_id = _tikz_id(network.cost.name)
    drawing.units.append(_unit(cost_id, x_cost, 0.0, math(network.cost), "cost"))
    edge_count = sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    labelled = edge_count <= MAX_LABELLED_EDGES
    for l in range(2, len(sizes) + 1):
        below, here = columns[l - 2], columns[l - 1]
        inputs = members_of[l - 2]
        for j_index, a in enumerate(members_of[l - 1], start=1):
            if a not in here:
                continue
            for k_index, source in enumerate(inputs, start=1):
                if source not in below:
                    continue
                label = math(families["w"][(l, j_index, k_index)]) if labelled else None
                drawing.edges.append({"source": below[source], "target": here[a], "label": label,
                                      "pos": 0.3 if (j_index + k_index) % 2 else 0.62})
    for a, unit in columns[-1].items():
        drawing.edges.append({"source": unit, "target": cost_id, "label": None, "pos": 0.5})
    drawing.width = x_cost + 1.0
    return drawing


def _graph(network: Network, math) -> Drawing:
    """Any graph of named equations: columns by depth, edge labels from the definitions."""
    drawing = Drawing("graph")
    parameters = set(network.parameters)
    hidden = parameters | set(network.targets) | set(network.constants)
    depth = network.depth
    shown = [s for s in network.inputs if s in network.ancestors_of_cost] + list(network.order)
    by_column: dict[int, list[sp.Symbol]] = {}
    for s in shown:
        by_column.setdefault(depth[s], []).append(s)
    ids = {}
    for column_index, column in enumerate(sorted(by_column)):
        x = column_index * COLUMN_GAP
        ids_here = _place_column(
            drawing, x, by_column[column], math, lambda s: _tikz_id(s.name),
            lambda s: "input" if s in network.inputs else ("cost" if s == network.cost else "unit"),
        )
        ids.update(ids_here)
        drawing.width = x + 1.0
    edges = []
    for node in network.order:
        if node not in ids:
            continue
        definition = network.definitions[node]
        used = [u for u in sorted(definition.free_symbols, key=lambda s: (network.position[s], s.name)) if u not in hidden]
        labelled_parameters = set()
        for u in used:
            if u not in ids:
                continue
            label = _edge_label(definition, u, parameters, math)
            if label is not None and label[1] is not None:
                labelled_parameters.add(label[1])
            edges.append({"source": ids[u], "target": ids[node], "label": label[0] if label else None, "pos": 0.5})
        rest = sorted((definition.free_symbols & parameters) - labelled_parameters, key=lambda s: s.name)
        if rest and len(rest) <= 3:
            text = Tex(", ".join(math(p) for p in rest))
            for unit in drawing.units:
                if unit["id"] == ids[node]:
                    unit["note"] = text
    if len(edges) > MAX_LABELLED_EDGES:
        for edge in edges:
            edge["label"] = None
        for unit in drawing.units:
            unit["note"] = None
    for i, edge in enumerate(edges):
        edge["pos"] = 0.3 if i % 2 else 0.6
    drawing.edges = edges
    return drawing


FUNCTION_LABELS = {**registry.LABELS, "sigma": r"\sigma", "maxpool": r"\max", "Max": r"\max", "sqrt": r"\surd"}


def _edge_label(definition: sp.Expr, used: sp.Symbol, parameters: set, math) -> tuple[Tex, sp.Symbol | None] | None:
    """The weight on the edge from `used`: its coefficient when that is one parameter, or the function applied."""
    if isinstance(definition, sp.Function) and definition.args == (used,):
        name = FUNCTION_LABELS.get(type(definition).__name__)
        return (Tex(name), None) if name else None
    if definition.is_Add or definition.is_Mul:
        for term in sp.Add.make_args(definition):
            factors = sp.Mul.make_args(term)
            if used in factors and len(factors) == 2:
                other = factors[0] if factors[1] == used else factors[1]
                if other in parameters:
                    return math(other), other
    return None


def _cnn(network: Network, math) -> Drawing:
    """Feature maps as stacked grids, dense layers as columns of units."""
    drawing = Drawing("cnn")
    facts = network.facts
    x = 0.0
    c, h, w = facts["input_shape"]
    stages = [("x", (c, h, w), ""), *(layer.drawing_column() for layer in facts["layers"])]
    largest = max(max(shape[-2:]) if len(shape) == 3 else 1 for _, shape, _ in stages)
    cell = min(0.35, 2.4 / largest)
    previous_right = None
    for name, shape, operation in stages:
        if len(shape) == 3:
            channels, rows, cols = shape
            count = min(channels, 4)
            offset = 0.18
            width, height = cols * cell, rows * cell
            block = {
                "x": x, "y": -height / 2, "width": width, "height": height, "rows": rows, "cols": cols,
                "count": count, "offset": offset, "grid": rows <= 14 and cols <= 14, "cell": cell,
                "label": Tex(rf"${name}$"), "shape": Tex(rf"${channels}\times{rows}\times{cols}$"),
            }
            drawing.blocks.append(block)
            left, right = x, x + width + offset * (count - 1)
        else:
            units = shape[0]
            _place_column(drawing, x + 0.3, list(range(units)), lambda j: Tex(rf"{name}_{{{j + 1}}}"),
                          lambda j, name=name: _tikz_id(f"{name}{j}"))
            left, right = x, x + 0.6
            drawing.captions.append({"x": x + 0.3, "text": Tex(rf"${name}$"), "sub": f"{units} units"})
        if previous_right is not None:
            drawing.arrows.append({"x1": previous_right + 0.15, "x2": left - 0.15, "y": 0.0, "label": Tex(rf"${operation}$")})
        previous_right = right
        x = right + 2.2
    cost_x = previous_right + 1.4
    drawing.arrows.append({"x1": previous_right + 0.15, "x2": cost_x - 0.35, "y": 0.0, "label": Tex("")})
    drawing.units.append(_unit("cost", cost_x, 0.0, math(network.cost), "cost"))
    drawing.width = cost_x + 0.8
    drawing.height = max(drawing.height, max((b["height"] + b["offset"] * b["count"] for b in drawing.blocks), default=0))
    return drawing


def _tikz_id(name: str) -> str:
    """A TikZ node name made only of letters and digits, from a network name (already an identifier)."""
    return "n" + "".join(ch if ch.isalnum() else f"X{ord(ch)}" for ch in name)
