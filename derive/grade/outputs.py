"""What a grading run hands back: the gradebook, each student's feedback, the class summary.

All three are built from the run's store (derive.grade.store), so a resumed run writes the same
files as an uninterrupted one. Files go through derive.files.write_atomically (an exclusive,
unpredictably named temporary file, then a rename). A student's name never becomes a path as
written: feedback files are numbered slugs. A gradebook cell that a spreadsheet would run as a
formula (=, +, −, @ first) is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from derive.files import write_atomically
from derive.grade.assignment import Assignment
from derive.grade.grading import points
from derive.grade.store import Store

STATUSES = ("proven", "refuted", "undecided", "unparsed", "error")
COMMON_WRONG = 5
MAX_POINT_VALUES = 60  # a counterexample's values printed in feedback (every one, for textbook networks)
HISTOGRAM_BINS = 10


@dataclass
class Grade:
    question: str
    answer: str
    outcome: dict
    points: float


@dataclass
class Gradebook:
    assignment: Assignment
    grades: dict[str, list[Grade]]  # student ↦ one grade per question, in the assignment's order
    distinct: int  # decisions made (distinct answers, or every answer without the cache)
    answers: int
    problems: list[str] = field(default_factory=list)
    every_answer: bool = False  # graded with --every-answer: one decision per answer

    def total(self, student: str) -> float:
        return sum(g.points for g in self.grades[student])


def gradebook(assignment: Assignment, store: Store, problems: list[str] = ()) -> Gradebook:
    outcomes = store.outcomes()
    grades: dict[str, list[Grade]] = {}
    keys = set()
    for student, question_id, answer, _syntax, key in store.answers():
        question = assignment.question(question_id)
        outcome = outcomes.get(key, {"status": "error", "message": "not graded (the run was interrupted)"})
        keys.add(key)
        grades.setdefault(student, []).append(Grade(question_id, answer, outcome, points(question, outcome)))
    given = sum(len(g) for g in grades.values())  # answers given, before the unanswered questions are filled in
    order = {q.id: n for n, q in enumerate(assignment.questions)}
    for student_grades in grades.values():  # a question a student has not answered (yet, when served): 0
        answered = {g.question for g in student_grades}
        student_grades += [Grade(q.id, "", {"status": "unparsed", "message": "no answer"}, 0.0)
                           for q in assignment.questions if q.id not in answered]
        student_grades.sort(key=lambda g: order[g.question])
    every = store.db.execute("SELECT value FROM meta WHERE key = 'distinct'").fetchone()
    return Gradebook(assignment, grades, len(keys), given, list(problems), every_answer=bool(every and every[0] == "False"))


def write_all(book: Gradebook, out: Path) -> dict[str, str]:
    """gradebook.csv, feedback/NNN-name.txt and summary.txt/summary.json in `out`: the paths written."""
    written = {"gradebook": str(out / "gradebook.csv"), "summary": str(out / "summary.txt"),
               "summary_json": str(out / "summary.json"), "feedback": str(out / "feedback")}
    write_atomically(out / "gradebook.csv", gradebook_csv(book).encode("utf-8"))
    (out / "feedback").mkdir(exist_ok=True)
    for student, name in feedback_names(book).items():
        write_atomically(out / "feedback" / f"{name}.txt", feedback_text(book, student).encode("utf-8"))
    import json

    write_atomically(out / "summary.txt", summary_text(book).encode("utf-8"))
    write_atomically(out / "summary.json", json.dumps(summary(book), indent=2, ensure_ascii=False).encode("utf-8"))
    return written


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _number(value: float) -> str:
    return f"{value:g}"


def gradebook_csv(book: Gradebook) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    questions = [q.id for q in book.assignment.questions]
    writer.writerow(["student", *questions, "total"])
    for student in sorted(book.grades):
        writer.writerow([_cell(student), *[_number(g.points) for g in book.grades[student]],
                         _number(book.total(student))])
    return buffer.getvalue()


def feedback_names(book: Gradebook) -> dict[str, str]:
    """Each student's feedback file stem: a number, then the name reduced to letters, digits and dashes."""
    names = {}
    for number, student in enumerate(sorted(book.grades), start=1):
        slug = re.sub(r"[^A-Za-z0-9]+", "-", student).strip("-")[:40] or "student"
        names[student] = f"{number:04d}-{slug}"
    return names


def feedback_text(book: Gradebook, student: str) -> str:
    assignment = book.assignment
    lines = [f"{assignment.title or 'Assignment'}: feedback for {student}",
             f"total {_number(book.total(student))} of {_number(assignment.total)} points", ""]
    for grade in book.grades[student]:
        question = assignment.question(grade.question)
        lines.append(f"{question.id} ({_number(grade.points)} of {_number(question.points)} points)"
                     + (f": {question.prompt}" if question.prompt else ""))
        lines.append(f"  your answer: {grade.answer.strip() or '(none)'}")
        lines += ["  " + line for line in outcome_lines(grade.outcome, assignment.show_correct)]
        lines.append("")
    return "\n".join(lines)


def outcome_lines(outcome: dict, show_correct: bool) -> list[str]:
    status = outcome["status"]
    if status in ("unparsed", "error"):
        return [f"{status}: {outcome.get('message', '')}"]
    lines = [{"proven": "proven: your formula equals the derivative for every value",
              "refuted": "refuted: your formula differs from the derivative",
              "undecided": "undecided: neither proven nor refuted within the time allowed"}[status]]
    detail = outcome.get("detail") or {}
    counterexample = detail.get("counterexample")
    if status == "refuted" and counterexample:
        point = list(counterexample.get("point", {}).items())
        shown = ", ".join(f"{k} = {v}" for k, v in point[:MAX_POINT_VALUES])
        more = f" and {len(point) - MAX_POINT_VALUES} more values" if len(point) > MAX_POINT_VALUES else ""
        lines.append(f"  at {shown}{more}: the derivative is {counterexample.get('lhs')}, yours gives "
                     f"{counterexample.get('rhs')}")
    diagnosis = detail.get("diagnosis_detail")
    if diagnosis:  # its message names the mistake in words already
        lines.append(f"  mistake: {diagnosis.get('message') or diagnosis.get('title')}")
    if show_correct and status != "proven" and detail.get("expected"):
        lines.append(f"  the correct formula: {detail['expected']}")
    return lines


def summary(book: Gradebook) -> dict:
    assignment = book.assignment
    questions = []
    for index, question in enumerate(assignment.questions):
        grades = [grades[index] for grades in book.grades.values()]
        statuses = Counter(g.outcome["status"] for g in grades)
        diagnoses = Counter(g.outcome.get("diagnosis") for g in grades if g.outcome.get("diagnosis"))
        wrong = Counter(" ".join(g.answer.split()) for g in grades if g.outcome["status"] != "proven")
        questions.append({
            "id": question.id, "points": question.points, "answers": len(grades),
            "right": statuses.get("proven", 0), "share_right": statuses.get("proven", 0) / len(grades) if grades else 0,
            "mean_points": sum(g.points for g in grades) / len(grades) if grades else 0,
            "statuses": {s: statuses.get(s, 0) for s in STATUSES},
            "diagnoses": dict(diagnoses.most_common()),
            "common_wrong": [{"answer": a or "(none)", "count": c} for a, c in wrong.most_common(COMMON_WRONG)],
        })
    totals = [book.total(s) for s in book.grades]
    return {"title": assignment.title, "students": len(book.grades), "questions": questions,
            "answers": book.answers, "decided": book.distinct, "every_answer": book.every_answer,
            "total_points": assignment.total,
            "mean_total": sum(totals) / len(totals) if totals else 0,
            "histogram": histogram(totals, assignment.total), "problems": book.problems}


def histogram(totals: list[float], maximum: float) -> list[dict]:
    """Counts of totals in HISTOGRAM_BINS equal bins from 0 to the assignment's points (the last bin closed)."""
    width = maximum / HISTOGRAM_BINS if maximum else 1
    counts = [0] * HISTOGRAM_BINS
    for total in totals:  # a total on a bin's lower edge (2.4 of 8) belongs to that bin, rounding aside
        counts[min(HISTOGRAM_BINS - 1, int(total * HISTOGRAM_BINS / (maximum or HISTOGRAM_BINS) + 1e-9))] += 1
    return [{"from": round(i * width, 6), "to": round((i + 1) * width, 6), "count": c} for i, c in enumerate(counts)]


def summary_text(book: Gradebook) -> str:
    data = summary(book)
    how = "one per answer" if data["every_answer"] else "each distinct answer once"
    lines = [f"{data['title'] or 'Assignment'}: {data['students']} students, {data['answers']} answers, "
             f"{data['decided']} decisions ({how})",
             f"mean total {data['mean_total']:.2f} of {_number(data['total_points'])} points", ""]
    for q in data["questions"]:
        lines.append(f"{q['id']}: {100 * q['share_right']:.0f} % right ({q['right']} of {q['answers']}), "
                     f"mean {q['mean_points']:.2f} of {_number(q['points'])} points; "
                     + ", ".join(f"{s} {n}" for s, n in q["statuses"].items() if n))
        if q["diagnoses"]:
            lines.append("  mistakes: " + ", ".join(f"{d} {n}" for d, n in q["diagnoses"].items()))
        for wrong in q["common_wrong"][:3]:
            lines.append(f"  {wrong['count']:>5} × {wrong['answer'][:100]}")
    lines += ["", "totals:"] + text_histogram(data["histogram"])
    if data["problems"]:
        lines += ["", f"skipped ({len(data['problems'])}):"] + [f"  {p}" for p in data["problems"][:20]]
    return "\n".join(lines) + "\n"


def text_histogram(bins: list[dict], width: int = 40) -> list[str]:
    top = max((b["count"] for b in bins), default=0) or 1
    return [f"  {b['from']:>7g} – {b['to']:<7g} {'█' * round(width * b['count'] / top):<{width}} {b['count']}"
            for b in bins]
