"""An assignment: the network a class works on, and its questions with points and partial credit.

    network = "two-two-two"        # a built-in network, or a spec file relative to this file
    title = "Backpropagation, homework 3"
    syntax = "latex"               # the default syntax of answers: "latex" or "sympy"
    show_correct = true            # whether feedback shows the correct formula (default true)
    credit = { sign = 0.5 }        # optional: partial credit by diagnosis, for every question

    [[question]]
    id = "q1"
    points = 2
    prompt = "∂E/∂w5 for Mazur's network"   # what the feedback repeats
    wrt = "w5"                     # the answer is ∂(cost)/∂w5 (kind "gradient", the default)
    reference = "(outo1 - y1)*outo1*(1 - outo1)*outh1"   # optional: checked to be proven before grading
    reference_syntax = "sympy"
    credit = { "constant-factor" = 0.25 }   # this question's own credit (over the assignment's)

A question's kind is `gradient` (`wrt`, optional `of`), `update` (`wrt`, `rate`) or
`identity` (`lhs` given, the answer is the right side). A proven answer earns the
question's points; a refuted one the share its diagnosis is credited (0 without one);
undecided, unparsed and error answers earn 0.

The assignment and its network travel to the workers as text (`Source`), so that a
Dask worker on another machine needs no copy of the files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from derive.claims.mistakes import DIAGNOSES
from derive.errors import InputError
from derive.files import parse_toml, path_exists, read_text
from derive.graph.spec import builtin_names, networks_dir
from derive.limits import MAX_CLAIMS_BYTES, MAX_SPEC_BYTES

KINDS = ("gradient", "update", "identity")
SYNTAXES = ("latex", "sympy")
QUESTION_KEYS = {"id", "points", "prompt", "kind", "wrt", "of", "rate", "lhs", "reference", "reference_syntax",
                 "credit", "syntax"}
TOP_KEYS = {"network", "title", "syntax", "show_correct", "credit", "question", "latex_names", "definitions", "assume"}
MAX_QUESTIONS = 500
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Question:
    id: str
    points: float
    kind: str
    prompt: str
    claim: Mapping[str, object]  # the claim table an answer completes (wrt, of, rate, lhs), without its formula
    credit: Mapping[str, float]
    syntax: str
    reference: str | None = None
    reference_syntax: str | None = None


@dataclass(frozen=True)
class Source:
    """What a worker needs to grade: the assignment's text and its network's (a spec's text, or a built-in name)."""

    assignment: str
    network_text: str | None
    network_name: str

    @property
    def digest(self) -> str:
        return hashlib.sha256("\0".join([self.assignment, self.network_text or "", self.network_name]).encode()).hexdigest()


@dataclass(frozen=True)
class Assignment:
    title: str
    questions: tuple[Question, ...]
    show_correct: bool
    source: Source
    shared: Mapping[str, object] = field(default_factory=dict)  # latex_names, definitions, assume for every answer

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    @property
    def total(self) -> float:
        return sum(q.points for q in self.questions)


def load_assignment(path: str | Path) -> Assignment:
    path = Path(path)
    text = read_text(path, limit=MAX_CLAIMS_BYTES, where=str(path))
    data = parse_toml(text, where=str(path))
    try:
        return parse_assignment(data, text, base=path.parent)
    except InputError as exc:
        raise exc.located(str(path)) from None


def parse_assignment(data: Mapping, text: str, *, base: Path, network_text: str | None = None) -> Assignment:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    reference = data.get("network")
    if not isinstance(reference, str) or not reference:
        raise InputError("'network' must name a built-in network or a spec file next to the assignment")
    if network_text is None:
        network_text = _network_text(reference, base)
    syntax = _choice(data.get("syntax", "latex"), SYNTAXES, "syntax")
    show_correct = data.get("show_correct", True)
    if not isinstance(show_correct, bool):
        raise InputError("must be true or false", where="show_correct")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise InputError("must be a string", where="title")
    shared_credit = _credit(data.get("credit", {}), "credit")
    tables = data.get("question")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise InputError("an assignment needs [[question]] tables", where="[[question]]")
    if len(tables) > MAX_QUESTIONS:
        raise InputError(f"at most {MAX_QUESTIONS} questions", where="[[question]]")
    questions, seen = [], set()
    for number, table in enumerate(tables, start=1):
        question = _question(table, number, syntax, shared_credit)
        if question.id in seen:
            raise InputError(f"the id '{question.id}' is given twice", where=f"[[question]] {number}")
        seen.add(question.id)
        questions.append(question)
    shared = {key: data[key] for key in ("latex_names", "definitions", "assume") if key in data}
    source = Source(text, network_text, reference)
    return Assignment(title, tuple(questions), show_correct, source, shared)


def _network_text(reference: str, base: Path) -> str | None:
    """A spec file's text (read now, sent to every worker), or None for a built-in network."""
    candidate = base / reference
    if reference.endswith(".toml") or path_exists(candidate):
        return read_text(candidate, limit=MAX_SPEC_BYTES, where=str(candidate))
    if reference not in builtin_names():
        raise InputError(f"no spec file '{reference}' next to the assignment and no built-in network of that name "
                         f"(built-in: {', '.join(builtin_names())})", where="network")
    return None


def builtin_text(name: str) -> str:
    return (networks_dir() / f"{name}.toml").read_text(encoding="utf-8")


def _question(table: Mapping, number: int, syntax: str, shared_credit: Mapping[str, float]) -> Question:
    where = f"[[question]] {number}"
    unknown = sorted(set(table) - QUESTION_KEYS)
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(QUESTION_KEYS))})", where=where)
    question_id = table.get("id")
    if not isinstance(question_id, str) or not question_id.strip() or len(question_id) > 64 or any(
            c in question_id for c in ",\r\n\t\"") or not question_id.isprintable():
        raise InputError("needs id = a short name (no commas, quotes or line breaks)", where=where)
    where = f"[[question]] {question_id}"
    points = table.get("points", 1)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not (
            math.isfinite(points) and 0 < points <= MAX_POINTS):
        raise InputError(f"points must be a number above 0 and at most {MAX_POINTS:,}", where=where)
    kind = _choice(table.get("kind", "gradient"), KINDS, f"{where} kind")
    needed = {"gradient": ("wrt",), "update": ("wrt", "rate"), "identity": ("lhs",)}[kind]
    allowed = {"gradient": ("wrt", "of"), "update": ("wrt", "of", "rate"), "identity": ("lhs",)}[kind]
    claim = {}
    for key in ("wrt", "of", "rate", "lhs"):
        if key in table:
            if key not in allowed:
                raise InputError(f"a {kind} question has no '{key}'", where=where)
            if not isinstance(table[key], str) or not table[key].strip():
                raise InputError(f"'{key}' must be a non-empty string", where=where)
            claim[key] = table[key]
    for key in needed:
        if key not in claim:
            raise InputError(f"a {kind} question needs '{key}'", where=where)
    prompt = table.get("prompt", "")
    reference = table.get("reference")
    if not isinstance(prompt, str) or (reference is not None and not isinstance(reference, str)):
        raise InputError("prompt and reference must be strings", where=where)
    credit = {**shared_credit, **_credit(table.get("credit", {}), f"{where} credit")}
    question_syntax = _choice(table.get("syntax", syntax), SYNTAXES, f"{where} syntax")
    reference_syntax = _choice(table.get("reference_syntax", question_syntax), SYNTAXES, f"{where} reference_syntax")
    return Question(question_id, float(points), kind, prompt, claim, credit, question_syntax, reference,
                    reference_syntax if reference is not None else None)


def _credit(table, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise InputError("must be a table of diagnosis = share (0 to 1)", where=where)
    credit = {}
    for key, value in table.items():
        if key not in DIAGNOSES:
            raise InputError(f"'{key}' is not a diagnosis (known: {', '.join(DIAGNOSES)})", where=where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise InputError("a share of the points from 0 to 1", where=f"{where} {key}")
        credit[key] = float(value)
    return credit


def _choice(value, options, where: str) -> str:
    if value not in options:
        raise InputError(f"must be one of {', '.join(options)}", where=where)
    return value
