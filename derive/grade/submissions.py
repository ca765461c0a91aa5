"""A class's answers, in the two shapes a course has them.

- One CSV as a learning-management system exports it: a header with `student`, `question` and
  `answer` (and optionally `syntax`: latex or sympy), UTF-8 with or without a byte-order mark,
  LF or CRLF line ends, quoted fields for answers with commas or line breaks.
- A folder of per-student claims files (`*.toml`): `student = "name"` (default: the file's stem)
  and `[[claim]]` tables with `question = "q1"` and `formula` (optionally `syntax`).

Every student gets a row for every question: an answer a student did not give is graded
`unparsed` ("no answer"). A row naming an unknown question, a student's second answer to one
question, or a file that cannot be read is reported and skipped, never the run's failure.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from derive.errors import InputError
from derive.files import parse_toml, read_bytes
from derive.grade.assignment import SYNTAXES, Assignment

MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 20_000
MAX_ANSWERS = 1_000_000
MAX_NAME = 200


@dataclass
class Submissions:
    answers: dict[tuple[str, str], tuple[str, str | None]]  # (student, question) ↦ (answer, syntax or None)
    students: list[str]
    problems: list[str] = field(default_factory=list)  # rows or files skipped, and why
    digest: str = ""


def load_submissions(path: str | Path, assignment: Assignment) -> Submissions:
    path = Path(path)
    if path.is_dir():
        return _folder(path, assignment)
    if path.suffix.lower() != ".csv":
        raise InputError("submissions are a .csv file or a folder of .toml files", where=str(path))
    return _csv(path, assignment)


def _csv(path: Path, assignment: Assignment) -> Submissions:
    data = read_bytes(path, limit=MAX_CSV_BYTES, where=str(path))
    try:
        text = data.decode("utf-8-sig")  # the BOM a spreadsheet writes is dropped
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 (byte {exc.start})", where=str(path)) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    missing = [f for f in ("student", "question", "answer") if f not in fields]
    if missing:
        raise InputError(f"the header needs the columns student, question, answer (missing: {', '.join(missing)})",
                         where=str(path))
    reader.fieldnames = fields
    collected = _Collector(assignment)
    try:
        for number, row in enumerate(reader, start=2):
            if row.get(None):  # DictReader's overflow: an answer with commas, not quoted
                collected.problems.append(f"line {number}: skipped, more fields than the header has "
                                          "(an answer with commas must be in double quotes)")
                continue
            collected.add(row.get("student"), row.get("question"), row.get("answer"), row.get("syntax") or None,
                          f"line {number}")
    except csv.Error as exc:
        raise InputError(f"is not valid CSV: {exc}", where=str(path)) from None
    return collected.finish(hashlib.sha256(data).hexdigest())


def _folder(path: Path, assignment: Assignment) -> Submissions:
    files = sorted(p for p in path.iterdir() if p.suffix == ".toml")
    if len(files) > MAX_FILES:
        raise InputError(f"more than {MAX_FILES:,} files", where=str(path))
    collected = _Collector(assignment)
    digest = hashlib.sha256()
    for file in files:
        try:
            data = read_bytes(file, limit=MAX_FILE_BYTES, where=str(file))
            table = parse_toml(data.decode("utf-8-sig"), where=str(file))
        except (InputError, UnicodeDecodeError) as exc:
            collected.problems.append(f"{file.name}: skipped, {exc}")
            continue
        digest.update(file.name.encode() + b"\0" + data + b"\0")
        student = table.get("student", file.stem)
        claims = table.get("claim", [])
        if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
            collected.problems.append(f"{file.name}: skipped, [[claim]] tables expected")
            continue
        collected.student(student, file.name)
        for number, claim in enumerate(claims, start=1):
            collected.add(student, claim.get("question"), claim.get("formula", claim.get("answer")),
                          claim.get("syntax"), f"{file.name} [[claim]] {number}")
    return collected.finish(digest.hexdigest())


class _Collector:
    def __init__(self, assignment: Assignment):
        self.ids = {q.id for q in assignment.questions}
        self.answers: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.students: dict[str, None] = {}
        self.problems: list[str] = []

    def student(self, name, where: str) -> bool:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            self.problems.append(f"{where}: skipped, the student's name must be printable text of at most "
                                 f"{MAX_NAME} characters")
            return False
        self.students.setdefault(name.strip())
        return True

    def add(self, student, question, answer, syntax, where: str) -> None:
        if not self.student(student, where):
            return
        student = student.strip()
        question = question.strip() if isinstance(question, str) else question
        if question not in self.ids:
            self.problems.append(f"{where}: skipped, no question '{question}' in the assignment")
            return
        if syntax is not None and syntax not in SYNTAXES:
            self.problems.append(f"{where}: skipped, syntax must be latex or sympy")
            return
        if not isinstance(answer, str):
            answer = ""
        if (student, question) in self.answers:
            self.problems.append(f"{where}: skipped, {student} answered {question} before (the first answer counts)")
            return
        if len(self.answers) >= MAX_ANSWERS:
            raise InputError(f"more than {MAX_ANSWERS:,} answers")
        self.answers[(student, question)] = (answer, syntax)

    def finish(self, digest: str) -> Submissions:
        return Submissions(self.answers, list(self.students), self.problems, digest)
