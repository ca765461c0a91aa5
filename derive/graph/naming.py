"""Names the network's formulas give what it computes but does not name: the neuron errors.

A neuron error δ = ∂C/∂z is named after its net input z: `delta` and z's name
without its `z` (z2_1 → delta2_1, zF_1_1_1 → deltaF_1_1_1, and in index
notation the family z → delta, zF → deltaF). A pooling unit has no z of its
own: its family zP holds its output aP_1_1_1, so its error is deltaP_1_1_1.
The derivation prints these names, claims write them and formula sets index
them, so each reads them here.
"""

from __future__ import annotations

import sympy as sp

from derive.graph.network import Network

DELTA = "delta"
NET_INPUT = "z"


def delta_of(net_input_name: str) -> str:
    """The neuron error's name for a net input's (z2_1 → delta2_1), or its family's (zF → deltaF)."""
    return DELTA + net_input_name.removeprefix(NET_INPUT)


def net_input_family(delta_family: str) -> str | None:
    """The net inputs' family a family of neuron errors is named after (delta → z, deltaF → zF), or None."""
    if not delta_family.startswith(DELTA):
        return None
    return NET_INPUT + delta_family.removeprefix(DELTA)


def net_inputs(network: Network) -> dict[sp.Symbol, tuple[str, tuple[int, ...]]]:
    """Each net input the network computes ↦ its family and index (the first, where it has several)."""
    found: dict[sp.Symbol, tuple[str, tuple[int, ...]]] = {}
    for key, family in network.families.items():
        if not key.startswith(NET_INPUT):
            continue
        for index, z in family.items():
            if z not in found and z in network.definitions:
                found[z] = (key, index)
    return found


def delta_names(network: Network) -> dict[sp.Symbol, str]:
    """Each net input z ↦ the name a claim gives its neuron error ∂C/∂z: delta2_1, deltaF_1_1_1, deltaO_1."""
    found: dict[sp.Symbol, str] = {}
    for z, (key, index) in net_inputs(network).items():
        if z.name.startswith(NET_INPUT):
            found[z] = delta_of(z.name)
        else:  # a pooling unit, whose z is its a: deltaP_1_1_1
            found[z] = delta_of(key) + "_" + "_".join(str(v) for v in index)
    return found


def delta_spellings(network: Network) -> dict[str, sp.Symbol]:
    """Every name a claim may give a neuron error ↦ its net input: one for each name of z, aliases included
    (deltaF_1_2_3 and deltaF_1_23 for zF_1_2_3)."""
    computed = net_inputs(network)
    return {
        delta_of(name): s for name, s in network.by_name.items() if name.startswith(NET_INPUT) and s in computed
    }


def delta_latex(network: Network, z: sp.Symbol) -> str | None:
    r"""The neuron error's LaTeX name, z's with δ for its letter (z^{2}_{1} → \delta^{2}_{1}), or None."""
    base = network.latex_names.get(z, "")
    return "\\delta" + base[1:] if base[:1] in ("z", "a") else None

