"""What the server asks of a worker process: read a formula (for the live preview) or decide it.

Every request's formula is a stranger's: it is read and decided only in a worker process of a
pool whose processes cap their address space (MEMORY_CAP more than they start with), under the
claim budget (a claim takes at most 1 + DIAGNOSIS_BUDGETS budgets, see derive.claims.check); the
server waits for the answer at most `deadline(budget)` and answers `undecided` past it, so one
costly formula never holds up the others' event loop. A request names a network (a built-in
name: no file path ever comes from a request) or a question of the served assignment.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from derive.claims.check import check
from derive.claims.claimsfile import KINDS, parse_claims
from derive.claims.diagnosis import DIAGNOSIS_BUDGETS
from derive.errors import DeriveError
from derive.grade import grading
from derive.grade.assignment import Source
from derive.graph.spec import builtin_names, load

MEMORY_CAP = 2 << 30
MAX_FORMULA = 5_000  # characters a request's formula may have
SYNTAXES = ("latex", "sympy")


def deadline(budget: float) -> float:
    """How long the server waits for one check: every budget a claim may take, and a margin."""
    return (1 + DIAGNOSIS_BUDGETS) * budget + 5.0


def cap_memory() -> None:
    """The pool's initializer: this worker's address space is capped (derive.proof.algebra's limit), and
    SIGTERM and SIGINT end it again (a forked worker inherits uvicorn's handlers, which only set a flag)."""
    import signal

    from derive.proof.algebra import _limit_memory

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _limit_memory(MEMORY_CAP)


@functools.lru_cache(maxsize=16)
def network(name: str):
    if name not in builtin_names():
        raise DeriveError(f"no built-in network '{name}'")
    return load(name)


def claim_entry(request: dict) -> dict:
    """The one [[claim]] table a request states: kind, wrt/of/rate or lhs, the formula and its syntax."""
    kind = request.get("kind") or ("identity" if "lhs" in request and "wrt" not in request else "gradient")
    entry = {"name": "formula", "kind": kind, "syntax": request["syntax"]}
    for key in ("wrt", "of", "rate", "lhs"):
        if request.get(key):
            entry[key] = request[key]
    entry["rhs" if kind == "identity" and "lhs" in entry else "formula"] = request["formula"]
    return entry


def read_claim(request: dict, source: Source | None):
    """(ClaimsFile, None) or (None, the reason the formula cannot be read)."""
    if request.get("question") is not None:
        return grading.read(source, request["question"], request["formula"], request["syntax"])
    net = network(request["network"])
    data = {"network": request["network"], "syntax": request["syntax"], "claim": [claim_entry(request)]}
    try:
        claims = parse_claims(data, base=Path("."), network=net)
    except DeriveError as exc:
        return None, str(exc)
    if claims.unparsed:
        return None, claims.unparsed[0].message
    return claims, None


def preview(request: dict, source: Source | None) -> dict:
    """The formula as read: MathML of both sides from the parse tree, or the reason it cannot be read."""
    from derive.serve.mathml import claim_mathml

    claims, reason = read_claim(request, source)
    if claims is None:
        return {"ok": False, "message": reason}
    return {"ok": True, "mathml": claim_mathml(claims), "read_as": f"{claims.claims[0].lhs} = {claims.claims[0].rhs}"}


def decide(request: dict, source: Source | None, budget: float, show_correct: bool) -> dict:
    """One claim's result, with the fields of `derive check --json`, plus the preview."""
    start = time.perf_counter()
    claims, reason = read_claim(request, source)
    if claims is None:
        return {"verdict": "unparsed", "message": reason, "seconds": round(time.perf_counter() - start, 4)}
    result = check(claims, budget=budget).results[0]
    data = result.to_dict()
    if not show_correct:
        for key in ("expected", "expected_latex"):
            data.pop(key, None)
        if data.get("diagnosis_detail"):
            data["diagnosis_detail"] = {k: v for k, v in data["diagnosis_detail"].items() if k != "corrected"}
    from derive.serve.mathml import claim_mathml, expression_mathml

    data["mathml"] = claim_mathml(claims)
    if show_correct and result.verdict.status != "proven" and result.expected is not None:
        data["expected_mathml"] = expression_mathml(claims, result.expected)
    return data


def checked_request(body: object, assignment_questions: set[str] | None) -> dict:
    """A request body checked field by field (a ValueError names the first wrong one)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    for key, value in body.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: not text, and SQLite cannot store it
                raise ValueError(f"'{key}' must be Unicode text (it holds a lone surrogate)") from None
    formula = body.get("formula")
    if not isinstance(formula, str) or not formula.strip():
        raise ValueError("'formula' must be a non-empty string")
    if len(formula) > MAX_FORMULA:
        raise ValueError(f"'formula' has more than {MAX_FORMULA:,} characters")
    syntax = body.get("syntax", "latex")
    if syntax not in SYNTAXES:
        raise ValueError("'syntax' must be latex or sympy")
    request = {"formula": formula, "syntax": syntax}
    question = body.get("question")
    if question is not None:
        if not isinstance(question, str) or assignment_questions is None or question not in assignment_questions:
            raise ValueError("'question' must be a question id of the served assignment")
        request["question"] = question
        return request
    name = body.get("network")
    if not isinstance(name, str) or name not in builtin_names():
        raise ValueError(f"'network' must be a built-in network ({', '.join(builtin_names())})")
    request["network"] = name
    kind = body.get("kind", "gradient")
    if kind not in KINDS:
        raise ValueError(f"'kind' must be one of {', '.join(KINDS)}")
    request["kind"] = kind
    for key in ("wrt", "of", "rate", "lhs"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, str) or len(value) > 200:
                raise ValueError(f"'{key}' must be a short string")
            request[key] = value
    if kind in ("gradient", "update") and "wrt" not in request:
        raise ValueError(f"a {kind} claim needs 'wrt'")
    if kind == "identity" and "lhs" not in request and "=" not in formula:
        raise ValueError("an identity needs 'lhs', or a formula 'lhs = rhs'")
    return request
