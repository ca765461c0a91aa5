"""One answer to one question: read (its normal form, for grading each distinct answer once) and decided.

An answer becomes a one-claim claims file: the question's table (wrt, of, rate or lhs) with the
answer as its formula, read by derive.claims against the assignment's network and decided by
derive.claims.check, as `derive check` would. `normal_form` is what two answers must share to
be graded as one: the parsed formula (whitespace, LaTeX spelling and SymPy's ordering of terms
folded), or, for an answer that cannot be read, the reason. `decide` runs in a worker process
(or on a Dask worker): it gets the assignment as text and keeps the network it builds for the
next answer.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import sympy as sp

from derive.claims.check import check
from derive.claims.claimsfile import parse_claims
from derive.claims.mistakes import DIAGNOSES
from derive.errors import DeriveError
from derive.grade.assignment import Assignment, Question, Source, parse_assignment
from derive.files import parse_toml
from derive.graph.spec import load, parse_spec

MAX_ANSWER = 20_000  # characters: a formula's own limit (derive.graph.parser.MAX_LENGTH)


@functools.lru_cache(maxsize=4)
def context(source: Source) -> tuple[Assignment, object]:
    """The assignment and its network, built once per process for each assignment."""
    assignment = parse_assignment(parse_toml(source.assignment, where="assignment"), source.assignment,
                                  base=Path("."), network_text=source.network_text)
    if source.network_text is not None:
        network = parse_spec(source.network_text, where=source.network_name)
    else:
        network = load(source.network_name)
    return assignment, network


def claims_data(assignment: Assignment, question: Question, answer: str, syntax: str) -> dict:
    entry = {"name": question.id, **question.claim, "syntax": syntax}
    if question.kind == "identity":
        entry.update(kind="identity", rhs=answer)
    else:
        entry.update(kind=question.kind, formula=answer)
    return {"network": assignment.source.network_name, "syntax": syntax, "show_correct": assignment.show_correct,
            **assignment.shared, "claim": [entry]}


def read(source: Source, question_id: str, answer: str, syntax: str | None):
    """The claims file of one answer: (ClaimsFile, None), or (None, the reason it cannot be read)."""
    assignment, network = context(source)
    question = assignment.question(question_id)
    if not answer.strip():
        return None, "no answer"
    if len(answer) > MAX_ANSWER:
        return None, f"longer than {MAX_ANSWER:,} characters"
    try:
        claims = parse_claims(claims_data(assignment, question, answer, syntax or question.syntax),
                              base=Path("."), network=network, index_letters=False)
    except DeriveError as exc:
        return None, str(exc)
    if claims.unparsed:
        return None, claims.unparsed[0].message
    claim = claims.claims[0]
    if claim.kind != "identity" and claim.rhs.has(claim.lhs):
        return None, f"the answer uses the derivative it is asked for ({claim.lhs}): write it out"
    return claims, None


def folded(answer: str, syntax: str) -> str:
    """The answer's text with what cannot change its reading taken out, so that spelling variants meet before
    the (costlier) parse: runs of spaces, spaces beside punctuation and operators, and in LaTeX the thin
    spaces (\\, \\; \\! \\:) and \\left / \\right. A space between two letters or after a command
    word (\\cdot x) is kept."""
    text = answer.strip()
    if syntax == "latex":
        text = re.sub(r"\\[,;:!](?![A-Za-z])", " ", text)
        text = re.sub(r"\\(left|right)\s*(?=[()\[\]|]|\\[{}])", "", text)
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\s*([-+*/^_=(){}\[\],|])\s*", r"\1", text)


def normal_form(source: Source, question_id: str, answer: str, syntax: str | None) -> str:
    """What two answers to a question share when they are the same answer: their parsed formula, in SymPy's
    canonical form, or the reason neither can be read."""
    claims, reason = read(source, question_id, answer, syntax)
    if claims is None:
        return f"{question_id}\0unparsed\0{reason}"
    claim = claims.claims[0]
    parts = (claim.lhs, claim.rhs) if claim.kind == "identity" else (claim.rhs,)
    return f"{question_id}\0{claim.kind}\0" + "\0".join(sp.srepr(p) for p in parts) + f"\0{claim.assumptions}"


def decide(source: Source, question_id: str, answer: str, syntax: str | None, budget: float, seed: int = 0) -> dict:
    """The verdict of one answer as `derive check --json` gives one claim, with `status` and `diagnosis`."""
    start = time.perf_counter()
    claims, reason = read(source, question_id, answer, syntax)
    if claims is None:
        return {"status": "unparsed", "diagnosis": None, "message": reason, "seconds": time.perf_counter() - start}
    result = check(claims, budget=budget, seed=seed).results[0]
    detail = result.to_dict()
    diagnosis = result.diagnosis.id if result.diagnosis is not None else None
    return {"status": result.verdict.status, "diagnosis": diagnosis,
            "diagnosis_title": DIAGNOSES.get(diagnosis) if diagnosis else None,
            "detail": detail, "seconds": time.perf_counter() - start}


def points(question: Question, outcome: dict) -> float:
    """The points an outcome earns: all of them when proven, the diagnosis's share when refuted, else 0."""
    if outcome["status"] == "proven":
        return question.points
    if outcome["status"] == "refuted" and outcome.get("diagnosis"):
        return question.points * question.credit.get(outcome["diagnosis"], 0.0)
    return 0.0


def check_references(assignment: Assignment, budget: float) -> None:
    """Each question's reference answer must be proven: an assignment whose key is wrong is refused (exit 2)
    before a class is graded against it."""
    from derive.errors import InputError

    for question in assignment.questions:
        if question.reference is None:
            continue
        outcome = decide(assignment.source, question.id, question.reference, question.reference_syntax, budget)
        if outcome["status"] != "proven":
            reason = outcome.get("message") or (outcome.get("diagnosis_title") or "")
            raise InputError(f"the reference answer is {outcome['status']}" + (f" ({reason})" if reason else "")
                             + ": fix the assignment before grading", where=f"[[question]] {question.id}")

