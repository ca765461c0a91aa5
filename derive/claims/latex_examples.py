r"""The LaTeX reader's per-example scripts, the cost's usual names, and the layer of a free-form unit.

A claims file may declare its example index (`example = "x"`, top level or per
claim): the letter the sources use for one training example. The network
computes one example, so a script naming it is dropped:

* Nielsen's `a^{x,l}_j`, `\delta^{x,l}_j`: the part `x` is the example, `l` the
  layer (a label, never a power): `a^{x,l}_j` is `a^l_j`;
* deeplearning.ai's `a^{[l](i)}_j` (also `a^{(i)[l]}_j`): `[l]` the layer, `(i)`
  the example; `y^{(i)}` alone is the name `y`; with `example = "i"`, `^{(2)}`
  and `^{(l)}` stay layer labels;
* a subscript that is only the example index on the cost: Nielsen's `C_x`,
  Zhou's `E_k`.

Without the declaration these forms are refused, saying to declare it; with it,
the example letter anywhere else (`x_k` with `example = "k"`, `\sum_x`) is
refused too: it never silently becomes an index.

The cost's usual names: `E_{total}` (the worked 2-2-2 post) is the cost where
the cost is named `E` and no `Etotal`/`E_total` exists; Nielsen's `C_0` is the
cost where the cost is `C` and the network has no `C0` (no regularization:
C = C_0).

A layer label on a named unit of a free-form network (`out_{h1}^{(2)}`) is
checked against the unit's layer in the graph: the inputs are layer 1, and a
node is one layer deeper than its deepest input-side argument when its
definition multiplies a parameter by such an argument (a weighted sum:
`net_{h1} = w_1 x_1 + …` is layer 2), else in the same layer (`out_{h1} =
σ(net_{h1})`, Zhou's `b_h = f(α_h − γ_h)`, whose threshold is subtracted).
"""

from __future__ import annotations

import re

import sympy as sp

from derive.errors import FormulaError
from derive.graph.network import per_network

COST_WORDS = {"E": ("total",)}  # E_{total}: the cost named E
COST_UNREGULARIZED = {"C": ("0",)}  # Nielsen's C_0, where the network has no C0
# deeplearning.ai's loss 𝓛 of one example and cost J: the network's cost, where it has no such name
LOSS_NAMES = {r"\mathcal{L}", r"\mathcal{J}", "J"}


def declare_hint(letter: str) -> str:
    return (f"declare the example index in the claims file, example = \"{letter}\" (the network computes one "
            "training example)")


def items_text(part) -> str:
    return "".join(text for _, text in part)


def example_superscript(parts, example: str | None, typed: str, column: int):
    """`^{x,l}`: the layer's items, the example part dropped; or a FormulaError."""
    shown = ", ".join(items_text(p) for p in parts)
    if len(parts) != 2 or not all(parts):
        raise FormulaError(f"'{typed}': a superscript of {len(parts)} comma-separated parts ({shown}) is no layer, "
                           "power or example label", column=column)
    singles = [p for p in parts if len(p) == 1 and p[0][0] == "letter"]
    if example is None:
        letter = items_text(singles[0]) if singles else "x"
        raise FormulaError(f"'{typed}': a superscript {{{shown}}} is the per-example form (Nielsen's a^{{x,l}}: "
                           f"example x, layer l); {declare_hint(letter)}, or write the layer alone", column=column)
    examples = [i for i, p in enumerate(parts) if len(p) == 1 and p[0] == ("letter", example)]
    if len(examples) != 1:
        raise FormulaError(f"'{typed}': a superscript {{{shown}}} has two parts, and not one of them is the "
                           f"example index {example} (example = \"{example}\")", column=column)
    return parts[1 - examples[0]]


def is_example_label(parts, example: str | None) -> bool:
    """`(i)` with example = "i": the one example, not a layer."""
    return example is not None and len(parts) == 1 and parts[0] == [("letter", example)]


def network_of(vocabulary):
    """The claims vocabulary's network, or None (a plain vocabulary has none)."""
    try:
        return vocabulary.network
    except AttributeError:
        return None


def cost_name(vocabulary) -> str | None:
    network = network_of(vocabulary)
    if network is None:
        return None
    cost = network.cost
    return cost.name if isinstance(cost, sp.Symbol) else None


def uses_example(pieces, example: str | None) -> bool:
    return example is not None and pieces is not None and any(example in part for part in pieces)


def cost_alias(base: str, sub, vocabulary, lookup) -> sp.Expr | None:
    """`E_{total}`, `C_0`: the cost, where the network's cost has that base and no such name exists."""
    cost = cost_name(vocabulary)
    if cost is None or base != cost or sub is None or len(sub) != 1:
        return None
    written = "".join(sub[0])
    if written in COST_WORDS.get(base, ()) or written in COST_UNREGULARIZED.get(base, ()):
        return lookup([cost])
    return None


def loss_alias(typed: str, vocabulary, lookup) -> sp.Expr | None:
    """`\\mathcal{L}`, `J`: the cost, as course notes name the loss of an example and the mean cost."""
    cost = cost_name(vocabulary)
    if cost is None or re.sub(r"\s+", "", typed) not in LOSS_NAMES:
        return None
    return lookup([cost])


KRONECKER = re.compile(r"\\delta_\{?([a-zA-Z]),?([a-zA-Z])\}?")


def kronecker(name, indices) -> sp.Expr | None:
    """`\\delta_{jk}` with two index letters and no neuron error of that name: Kronecker's delta, 1 or 0
    (the softmax's ∂a_j/∂z_k = a_j(δ_jk − a_k)). Written with numbers (`\\delta_{12}`) it stays a name."""
    match = KRONECKER.fullmatch(re.sub(r"\s+", "", name.typed))
    if match is None or not all(letter in indices for letter in match.groups()):
        return None
    return sp.Integer(int(indices[match[1]] == indices[match[2]]))


# -- the layer of a free-form unit ---------------------------------------------------------

@per_network
def unit_layers(network) -> dict[sp.Symbol, int]:
    """Each input and computed node's layer (inputs 1); nodes not fed by an input have none."""
    layer = {s: 1 for s in network.inputs}
    parameters = set(network.parameters)
    for node in network.order:
        definition = network.definitions[node]
        units = {s for s in definition.free_symbols if s in layer}
        if not units:
            continue
        top = max(layer[s] for s in units)
        deepest = {s for s in units if layer[s] == top}
        weighted = any(set(m.args) & parameters and any(a.free_symbols & deepest for a in m.args if a not in parameters)
                       for m in definition.atoms(sp.Mul))
        layer[node] = top + 1 if weighted else top
    return layer


def check_unit_layer(found: sp.Expr, label: list[str], vocabulary, typed: str, column: int) -> sp.Expr | None:
    """A labelled name of a network without layered names: the unit if its layer is the label's, else refused;
    None when its layer cannot be established."""
    network = network_of(vocabulary)
    if network is None or not isinstance(found, sp.Symbol) or network.facts.get("kind") == "layered":
        return None
    layer = unit_layers(network).get(found)
    if layer is None:
        return None
    written = "".join(label)
    if not written.lstrip("-").isdigit():
        raise FormulaError(f"'{typed}': the layer label {written} is no number; {found} is in layer {layer} "
                           "(counting the inputs as layer 1)", column=column)
    if int(written) != layer:
        raise FormulaError(f"'{typed}': {found} is in layer {layer} (counting the inputs as layer 1, each weighted "
                           f"sum one layer deeper), not {written}", column=column)
    return found
