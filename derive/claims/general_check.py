"""`derive check --general`: each matrix claim decided for every size, not only for the declared network.

Proven for every size (derive.claims.general), or refuted on the smallest
network where it fails (derive.claims.smallest: a counterexample, or shapes
that conform only for some sizes), or undecided in general with the number of
small networks where it held (evidence, not a proof).
"""

from __future__ import annotations

from derive.errors import FormulaError, InputError
from derive.claims.general_index import index_link_results, sympy_templates
from derive.claims.latex_template import latex_templates
from derive.claims.batch_matrix import names_batch
from derive.claims.batch_read import rewrite_numpy
from derive.claims.general import GeneralShape, NotGeneral, general_link_results
from derive.claims.generic import split_chain
from derive.claims.matrix import names_whole_layer, split_masked
from derive.claims.matrix_sympy import names_whole_layer_sympy
from derive.claims.smallest import smallest_refutation
from derive.proof.general.prove import SYMBOLIC_FAULTS
from derive.proof.general.report import _step


def general_verdicts(file_result, budget: float) -> None:
    """Each matrix or index claim's `general` verdict, set on its result (other claims keep None)."""
    network = file_result.claims_file.network
    for result in file_result.results:
        claim = result.claim
        links = _general_reader(claim, network, budget)
        if links is not None:
            result.general = general_verdict(claim, links, network, budget, result.verdict.status)


def _general_reader(claim, network, budget: float):
    """A function giving the claim's links proven for every size, or None when it is no matrix or index claim."""
    try:
        if claim.syntax == "sympy":
            pieces = split_chain(claim.text, "sympy")
            if len(pieces) < 2:
                return None
            if names_whole_layer_sympy(pieces, _Vocabulary(network)):
                return lambda: general_link_results(pieces, network, budget, "sympy")
            if network.kind == "layered" and any("[" in piece for piece, _ in pieces):
                return lambda: index_link_results(sympy_templates(pieces), network, budget)
            return None
        text = rewrite_numpy(claim.text) if network.kind in ("batch", "affine", "module") else claim.text
        pieces = split_masked(text, split_chain)
    except (FormulaError, InputError):
        return None
    if len(pieces) < 2:
        return None
    if names_batch(pieces, _Vocabulary(network)) or names_whole_layer(pieces, _Vocabulary(network)):
        return lambda: general_link_results(pieces, network, budget, "latex")
    if network.kind == "layered" and claim.generic is not None:
        return lambda: index_link_results(latex_templates(pieces), network, budget)
    return None


class _Vocabulary:
    """What names_whole_layer asks of a vocabulary: the network, and no names of the file's own."""

    def __init__(self, network):
        self.network = network
        self.definitions, self.rates, self.example = {}, {}, None


def general_verdict(claim, read_links, network, budget: float, here: str = "") -> dict:
    """`here` is the claim's verdict on the declared network: a claim refuted there is refuted for every size
    even where its general reading does not apply (the search may still find a smaller network)."""
    reason = ""
    try:
        links = read_links()
        if all(link.proven for link in links):
            return {"status": "proven", "method": "general proof: every width and depth",
                    "assumptions": links[0].assumptions,
                    "steps": [{"lhs": [_step(s) for s in link.lhs_steps], "rhs": [_step(s) for s in link.rhs_steps]}
                              for link in links]}
        reason = next(link.reason for link in links if not link.proven)
    except GeneralShape as exc:
        reason = f"its shapes do not conform for every size: {exc}"
    except (NotGeneral, InputError, *SYMBOLIC_FAULTS) as exc:  # InputError: a template that does not read
        detail = exc.message if isinstance(exc, InputError) else str(exc)[:200]
        reason = f"not read for every size: {detail}"
        if here != "refuted":
            return {"status": "not-read", "method": reason}
    if claim.narrowed and here != "refuted":  # where = 'l = L-1': other sizes would try values it excludes
        return {"status": "not-read", "method": f"{reason}; its letters are narrowed by indices or where, so no "
                                                "other size is tried"}
    if claim.assumptions and here == "refuted":  # refuted under its own assumptions, on this network
        return {"status": "refuted", "network": _sizes(network), "declared": _sizes(network),
                "method": f"{reason}; refuted on the declared network itself (above), under its assumptions"}
    if claim.assumptions:  # y1_1 + y1_2 + y1_3 = 1 names this network's units: no other size has them
        return {"status": "not-read", "method": f"{reason}; its assumptions ({'; '.join(claim.assumptions)}) name "
                                                f"this network's units, so no other size is tried"}
    found = smallest_refutation(claim, network, budget)
    if found.sizes is None and here == "refuted":
        return {"status": "refuted", "network": _sizes(network), "declared": _sizes(network),
                "method": f"{reason}; refuted on the declared network itself (above), the smallest tried"}
    if found.sizes is None:
        return {"status": "undecided", "method": f"{reason}; no network of {found.tried} small ones tried refutes it "
                                                 "(evidence, not a proof)", "tried": found.tried}
    other = found.result
    name = "-".join(map(str, found.sizes)) + (f" (m={found.m})" if found.m is not None else "")
    declared = _sizes(network)
    holds = [*found.held[:3], *([f"the declared {declared}"] if here == "proven" else [])]
    holds_here = f" (it holds on {', '.join(holds)}: not for every size)" if holds else ""
    return {
        "status": "refuted",
        "method": f"{reason}; refuted on the {name} network, the smallest tried{holds_here}",
        "network": name,
        "declared": declared,
        "diagnosis": other.diagnosis.id if other.diagnosis else None,
        "counterexample": other.verdict.counterexample.to_dict() if other.verdict.counterexample else None,
        "detail": other.verdict.method,
        "tried": found.tried,
        "held": list(found.held),
    }



def _sizes(network) -> str:
    facts = network.facts
    return "-".join(map(str, facts["sizes"])) + (f" (m={facts['m']})" if facts.get("m") else "")
