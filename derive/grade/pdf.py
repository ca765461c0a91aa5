"""`derive grade --pdf`: each student's feedback and the class summary as PDF, through the report machinery.

The contexts are built here from a Gradebook (derive.grade.outputs); the templates are
reports/grade-feedback.tex and reports/grade-summary.tex, rendered in the reports' Jinja
sandbox (derive.report.render.environment), whose `finalize` escapes every plain string it
prints; the labels are reports/labels/LANG.toml's grade_* keys. What a student typed (a
name, an answer) and what an assignment says (a prompt) stay plain strings, or become
`breakable` escaped text: an answer is shown as typed, in typewriter text, never as math.
Each document is written and compiled by `write_report`, as `derive report` does: the .tex
beside each PDF, atomically; when TeX is missing, the .tex files are still written and one
message says so.

    written = write_pdfs(book, Path("graded"), lang="en")
    # {"summary_pdf": "graded/summary.pdf", "feedback_pdf": "graded/feedback", ...}
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from derive.grade.outputs import Gradebook, feedback_names, summary
from derive.report.context import base_context
from derive.report.format import breakable
from derive.report.labels import Labels
from derive.report.render import Outcome, remove_stale_pdf, render, write_report
from derive.report.tex import engine_for, missing_tools
from derive.texsafe import Tex

MAX_ANSWER = 1000  # characters of an answer shown in a student's feedback
MAX_WRONG = 160  # characters of a common wrong answer shown in the summary
WRONG_SHOWN = 3  # common wrong answers per question in the summary
MAX_POINT = 8  # counterexample coordinates shown
MAX_PROBLEMS = 20
MARKS = {"proven": "proven", "refuted": "refuted", "undecided": "undecided"}  # unparsed, error: refuted


def write_pdfs(book: Gradebook, out: Path, *, lang: str = "en",
               warn: Callable[[str], None] | None = None) -> dict[str, str]:
    """OUT/summary.pdf and OUT/feedback/NNNN-name.pdf (the stems of feedback_names), each with its .tex.

    Returns what was written: summary_tex and feedback_tex always; summary_pdf and feedback_pdf
    (the folder) when every PDF of them was made; pdf_message when some were not (TeX missing,
    or failing), which `warn` (default: a line on stderr) is also told.
    """
    warn = warn or (lambda message: print(f"derive: {message}", file=sys.stderr))
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    compiler = _Compiler(lang)
    written = {"summary_tex": str(out / "summary.tex"), "feedback_tex": str(out / "feedback")}
    if compiler.write(render("grade-summary", summary_context(book, lang=lang)), out / "summary.pdf"):
        written["summary_pdf"] = str(out / "summary.pdf")
    names = feedback_names(book)
    made = 0
    for student, name in names.items():
        tex = render("grade-feedback", feedback_context(book, student, lang=lang))
        made += compiler.write(tex, out / "feedback" / f"{name}.pdf")
    if made == len(names):
        written["feedback_pdf"] = str(out / "feedback")
    else:
        compiler.failures.append(f"{len(names) - made} of {len(names)} feedback PDFs were not made")
    if compiler.failures:
        written["pdf_message"] = "; ".join(compiler.failures)
        for message in compiler.messages[:5]:
            warn(message)
    return written


class _Compiler:
    """write_report for each document; once an engine is known missing, only the .tex is written."""

    def __init__(self, lang: str):
        self.lang = lang
        self.missing: set[str] = set()
        self.messages: list[str] = []
        self.failures: list[str] = []

    def write(self, tex: str, pdf: Path) -> bool:
        engine = engine_for(tex, self.lang)
        if engine in self.missing:  # said once already: the .tex only, no older PDF beside it
            write_report(tex, pdf.with_suffix(".tex"), lang=self.lang)
            remove_stale_pdf(pdf)  # an older PDF was not made from this .tex
            return False
        outcome: Outcome = write_report(tex, pdf, lang=self.lang)
        if outcome.ok:
            return True
        self.messages.append(outcome.message)
        missing = missing_tools(outcome.engine)
        if missing:
            self.missing.add(engine)
            self.failures.append(f"no TeX engine ({', '.join(missing)} not found): the LaTeX sources are written")
        elif len(self.failures) < 5:
            self.failures.append(f"{outcome.engine} failed on {pdf.name}")
        return False


def _number(value: float) -> str:
    return f"{value:g}"


def _title(book: Gradebook, t: Labels) -> str | Tex:
    return book.assignment.title or t("untitled")


# ---------------------------------------------------------------------------
# One student's feedback
# ---------------------------------------------------------------------------


def feedback_context(book: Gradebook, student: str, *, lang: str = "en") -> dict:
    t = Labels(lang)
    assignment = book.assignment
    context = base_context(lang, _title(book, t), t("grade_feedback_for", student=student))
    questions = []
    for grade in book.grades[student]:
        question = assignment.question(grade.question)
        verdict, explanation, lines = outcome_texts(grade.outcome, assignment.show_correct, t)
        answer = grade.answer.strip()
        questions.append({
            "id": question.id,
            "prompt": question.prompt,
            "points": t("grade_question_points", got=_number(grade.points), points=_number(question.points)),
            "answer": breakable(answer[:MAX_ANSWER] + ("…" if len(answer) > MAX_ANSWER else "")) if answer else None,
            "mark": MARKS.get(grade.outcome.get("status"), "refuted"),
            "verdict": verdict,
            "explanation": explanation,
            "lines": lines,
        })
    context["feedback"] = {
        "student": student,
        "total": t("grade_total", total=_number(book.total(student)), points=_number(assignment.total)),
        "questions": questions,
    }
    return context


def outcome_texts(outcome: dict, show_correct: bool, t: Labels) -> tuple[Tex, str | Tex, list[Tex]]:
    """An answer's verdict, what it means, and the lines beneath (counterexample, mistake, correct formula):
    what derive.grade.outputs.outcome_lines says, in the report's language."""
    status = outcome.get("status")
    if status not in MARKS:
        label = "grade_unparsed" if status == "unparsed" else "grade_error"
        return t(label), t.message(str(outcome.get("message") or "")), []
    verdict, explanation = t(status), t(f"grade_explain_{status}")
    lines = []
    detail = outcome.get("detail") or {}
    counterexample = detail.get("counterexample")
    if status == "refuted" and counterexample:
        point = counterexample.get("point") or {}
        shown = ", ".join(f"{k} = {v}" for k, v in list(point.items())[:MAX_POINT])
        if len(point) > MAX_POINT:
            shown += ", …"
        lines.append(t("grade_counterexample", point=shown, lhs=str(counterexample.get("lhs")),
                       rhs=str(counterexample.get("rhs"))))
    diagnosis = detail.get("diagnosis_detail")
    if diagnosis:
        message = diagnosis.get("message") or diagnosis.get("title") or diagnosis.get("id") or ""
        lines.append(t("grade_mistake", mistake=t.message(str(message))))
    if show_correct and status != "proven" and detail.get("expected"):
        formula = Tex(r"\texttt{" + breakable(str(detail["expected"])) + "}")
        lines.append(t("grade_correct", formula=formula))
    return verdict, explanation, lines


# ---------------------------------------------------------------------------
# The class summary
# ---------------------------------------------------------------------------


def summary_context(book: Gradebook, *, lang: str = "en") -> dict:
    t = Labels(lang)
    data = summary(book)
    context = base_context(lang, _title(book, t), t("class_summary"))
    prompts = {q.id: q.prompt for q in book.assignment.questions}
    questions = []
    diagnoses: Counter = Counter()
    where: dict[str, list[str]] = {}
    for q in data["questions"]:
        for diagnosis, count in q["diagnoses"].items():
            diagnoses[diagnosis] += count
            where.setdefault(diagnosis, []).append(q["id"])
        questions.append({
            "id": q["id"], "prompt": prompts.get(q["id"], ""), "points": _number(q["points"]),
            "share_right": f"{100 * q['share_right']:.0f} %", "mean_points": f"{q['mean_points']:.2f}",
            "common_wrong": [{"count": w["count"], "answer": _shown_wrong(w["answer"])}
                             for w in q["common_wrong"][:WRONG_SHOWN]],
        })
    context["grades"] = {
        "counts": t("grade_counts", students=data["students"], answers=data["answers"], decided=data["decided"]),
        "mean": t("grade_mean", mean=f"{data['mean_total']:.2f}", points=_number(data["total_points"])),
        "questions": questions,
        "diagnoses": [{"id": d, "title": t.name("diagnosis_title", d), "count": n, "questions": ", ".join(where[d])}
                      for d, n in diagnoses.most_common()],
        "histogram": histogram_axis(data["histogram"]),
        "problems": data["problems"][:MAX_PROBLEMS],
        "problems_count": len(data["problems"]),
    }
    return context


def _shown_wrong(answer: str) -> Tex | None:
    """A common wrong answer as escaped, breakable text, cut at MAX_WRONG; None for no answer."""
    if answer == "(none)" or not answer.strip():  # summary()'s word for an empty answer
        return None
    return breakable(answer[:MAX_WRONG] + ("…" if len(answer) > MAX_WRONG else ""))


def histogram_axis(bins: list[dict]) -> dict:
    """pgfplots' ybar interval over the bins: each bin's left edge and count, then the last right edge;
    ymin 0 and a ymax of at least 1 (an empty class draws an empty axis, not "Dimension too large")."""
    top = max((b["count"] for b in bins), default=0)
    step = max(1, math.ceil(top / 6))
    ymax = max(1, math.ceil((top + 0.5) / step) * step) if top else 1
    points = [(b["from"], b["count"]) for b in bins]
    if bins:
        points.append((bins[-1]["to"], bins[-1]["count"]))
    edges = [b["from"] for b in bins] + ([bins[-1]["to"]] if bins else [])
    return {"points": points, "edges": edges, "xmin": edges[0] if edges else 0, "xmax": edges[-1] if edges else 1,
            "ymax": ymax, "ystep": step}
