"""`derive check --general`: each matrix claim decided for every size, not only for the declared network.

Proven for every size (derive.claims.general), or refuted on the smallest
network where it fails (derive.claims.smallest: a counterexample, or shapes
that conform only for some sizes), or undecided in general with the number of
small networks where it held (evidence, not a proof).
"""

from __future__ import annotations

from derive.errors import FormulaError
from derive.claims.batch_matrix import names_batch
from derive.claims.batch_read import rewrite_numpy
from derive.claims.general import GeneralShape, NotGeneral, general_link_results
from derive.claims.generic import split_chain
from derive.claims.matrix import names_whole_layer, split_masked
from derive.claims.matrix_sympy import names_whole_layer_sympy
from derive.claims.smallest import smallest_refutation
from derive.proof.general.report import _step


def general_verdicts(file_result, budget: float) -> None:
    """Each matrix claim's `general` verdict, set on its result (other claims keep None)."""
    claims_file = file_result.claims_file
    for result in file_result.results:
        claim = result.claim
        network = claims_file.network
        if claim.syntax == "sympy":
            try:
                pieces = split_chain(claim.text, "sympy")
            except FormulaError:
                continue
            matrix = names_whole_layer_sympy(pieces, _Vocabulary(network))
        else:
            try:
                text = rewrite_numpy(claim.text) if network.kind in ("batch", "affine") else claim.text
                pieces = split_masked(text, split_chain)
            except FormulaError:
                continue
            matrix = names_batch(pieces, _Vocabulary(network)) or names_whole_layer(pieces, _Vocabulary(network))
        if len(pieces) < 2 or not matrix:
            continue
        result.general = general_verdict(claim, pieces, network, budget,
                                         proven_here=result.verdict.status == "proven")


class _Vocabulary:
    """What names_whole_layer asks of a vocabulary: the network, and no names of the file's own."""

    def __init__(self, network):
        self.network = network
        self.definitions, self.rates, self.example = {}, {}, None


def general_verdict(claim, pieces, network, budget: float, proven_here: bool = False) -> dict:
    reason = ""
    try:
        links = general_link_results(pieces, network, budget, claim.syntax)
        if all(link.proven for link in links):
            return {"status": "proven", "method": "general proof: every width and depth",
                    "assumptions": links[0].assumptions,
                    "steps": [{"lhs": [_step(s) for s in link.lhs_steps], "rhs": [_step(s) for s in link.rhs_steps]}
                              for link in links]}
        reason = next(link.reason for link in links if not link.proven)
    except GeneralShape as exc:
        reason = f"its shapes do not conform for every size: {exc}"
    except NotGeneral as exc:
        return {"status": "not-read", "method": f"not read for every size: {exc}"}
    found = smallest_refutation(claim, network, budget)
    if found.sizes is None:
        return {"status": "undecided", "method": f"{reason}; no network of {found.tried} small ones tried refutes it "
                                                 "(evidence, not a proof)", "tried": found.tried}
    other = found.result
    name = "-".join(map(str, found.sizes)) + (f" (m={found.m})" if found.m is not None else "")
    declared = "-".join(map(str, network.facts["sizes"])) + (
        f" (m={network.facts['m']})" if network.facts.get("m") else "")
    holds = [*found.held[:3], *([f"the declared {declared}"] if proven_here else [])]
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

