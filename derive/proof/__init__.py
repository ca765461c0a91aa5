"""The proof stage: decide formula instances on a network (proven, refuted with a counterexample, or undecided).

engine.py decides one identity (Prover), algebra.py runs the cancellation in
a child process, points.py looks for counterexamples at random points,
report.py proves whole formula sets (prove); formulas.py reads and
instantiates the sets, sets.py chooses them, vocabulary.py says what their
words mean, values.py evaluates a network at its [values] point (exact and
interval evaluation is derive/graph/numeric.py's).
"""

from derive.proof.engine import DEFAULT_BUDGET, Prover, Verdict
from derive.proof.points import SIGMA_STAND_INS, SUBSTITUTES, Counterexample
from derive.proof.report import InstanceResult, ProofReport, prove
from derive.proof.text import shared_text

__all__ = [
    "DEFAULT_BUDGET",
    "SIGMA_STAND_INS",
    "SUBSTITUTES",
    "Counterexample",
    "InstanceResult",
    "ProofReport",
    "Prover",
    "Verdict",
    "prove",
    "shared_text",
]
